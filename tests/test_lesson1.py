"""Lesson 1 (kernel regime): the claims of experiments 1.1-1.3 at the defaults and at the settings the notebook invites,
a sweep over every control, each claim against a deliberately wrong run, the overlays and metrics against
independent computations, the time control, and reproduce."""
import copy
import math

import numpy as np
import pytest
import torch

from course_lib import data, kernels, theory
from course_lib.lessons import kernel_regime as kr
from course_lib.lessons.kernel_regime import edge, gd, widths
from course_lib.models import TwoLayer
from course_lib.train import train

from .claims_harness import Invitation, check_defaults, check_invitation, check_sweep

EXP1, EXP2, EXP3 = kr.EXPERIMENTS

INVITATIONS = [
    Invitation("At width 1024 the loss follows its dashed line for the first 10 steps, within 20%", "1.1", {}),
    Invitation("Move the width to 16384 (10–20 s): the drift now stays below $\\lambda_0/4$, so `1.1.kernel-moves` "
               "fails there", "1.1", {"width": 16384}, expect={"1.1.kernel-moves": "fails"}),
    Invitation("Switch *trained* to *both layers*", "1.1", {"layers": "both layers"},
               expect={"1.1.coupling": "does not apply"}),
    Invitation("Switch the activation to `tanh`: the same happens", "1.1", {"activation": "tanh"},
               expect={"1.1.coupling": "does not apply"}),
    *[Invitation("Change the seed (new data, labels and initialization): every claim above still holds at width 1024.",
                 "1.1", {"seed": s}) for s in (1, 7, 20)],
    Invitation("Move the largest width to 16384 (10–20 s) to see the drift cross", "1.2", {"max_width": 16384}),
    Invitation("One network (width 1024) at $\\eta = 1.1\\times 2/\\lambda_{\\max}(G)$", "1.3", {}),
    Invitation("Move the step slider to 2.0: now the network diverges", "1.3", {"lr_fraction": 2.0},
               expect={"1.3.catapult": "does not apply", "1.3.kernel-leaves": "does not apply"}),
    Invitation("Move it to 1.0", "1.3", {"lr_fraction": 1.0},
               expect={"1.3.catapult": "fails", "1.3.kernel-leaves": "fails"}),
]


@pytest.fixture
def full_length(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")


@pytest.fixture(autouse=True)
def one_thread():
    # one thread, as the dashboards run: on the shared 2-core machine two torch threads contend with other processes
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def default_runs():
    """One full-length run of each experiment at its defaults (shared by the tampering tests)."""
    import os

    old = os.environ.get("COURSE_FAST")
    os.environ["COURSE_FAST"] = "0"
    try:
        return {e.id: e.execute() for e in kr.EXPERIMENTS}
    finally:
        if old is None:
            os.environ.pop("COURSE_FAST")
        else:
            os.environ["COURSE_FAST"] = old


# ---------------------------------------------------------------------------------------------- the claims
@pytest.mark.parametrize("exp", kr.EXPERIMENTS, ids=lambda e: e.id)
def test_claims_hold_at_the_defaults(exp, full_length):
    check_defaults(exp)


@pytest.mark.parametrize("inv", INVITATIONS, ids=lambda i: f"{i.experiment}-{i.settings}")
def test_claims_at_the_settings_the_text_invites(inv, full_length):
    check_invitation(inv)


@pytest.mark.parametrize("exp", kr.EXPERIMENTS, ids=lambda e: e.id)
def test_sweep_of_the_controls(exp, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")  # the same code path, a tenth of the steps
    runs = check_sweep(exp)
    assert len(runs) >= 5


def test_controls_offer_only_valid_step_sizes():
    """The first dashboard's step slider stays below the stability edge; experiment 1.3's covers 1.0 to 2.0; every
    value either one offers is accepted by the run (no slider end that raises)."""
    c1, c3 = EXP1.controls["lr_fraction"], EXP3.controls["lr_fraction"]
    assert max(c1.values()) < 1 and min(c3.values()) == 1.0 and max(c3.values()) == 2.0
    with pytest.raises(ValueError, match=r"step η × λmax/2 must be in \[0.05, 0.95\]"):
        EXP1.settings(lr_fraction=2.5)
    with pytest.raises(ValueError, match="lr_fraction"):
        kr.experiment(lr_fraction=-1)
    with pytest.raises(ValueError, match="activation"):
        kr.experiment(activation="nope")
    assert max(EXP1.controls["width"].values()) == 16384


def _verdicts(claims_fn, res):
    return {c.id: c.verdict for c in claims_fn(res)}


def _with_top(res, **changes):
    """A copy of a 1.1 result whose widest run has ``changes``."""
    out = dict(res)
    out["runs"] = list(res["runs"])
    out["runs"][-1] = {**res["runs"][-1], **changes}
    return out


def test_claims_of_1_1_fail_on_wrong_runs(default_runs):
    res = default_runs["1.1"].result
    top = res["runs"][-1]
    k = top["steps"]
    assert all(v == "holds" for v in _verdicts(gd.claims, res).values())
    # early-match: a loss 2% per step slower than measured leaves the 20% band within 10 steps
    v = _verdicts(gd.claims, _with_top(res, loss=top["loss"] * np.exp(0.02 * k)))
    assert v["1.1.early-match"] == "fails"
    # kernel-moves: a kernel that did not move
    assert _verdicts(gd.claims, _with_top(res, drift=top["drift"] * 1e-3))["1.1.kernel-moves"] == "fails"
    # ends-above: a loss that ends on (below) its dashed line
    on_line = 0.9 * top["pred_loss"][k]
    assert _verdicts(gd.claims, _with_top(res, loss=on_line))["1.1.ends-above"] == "fails"
    # late-rate: a residual 3% per step slower than measured is further from the dashed line than the drift allows
    slower = top["loss"] * np.exp(2 * 0.03 * k)
    assert _verdicts(gd.claims, _with_top(res, loss=slower))["1.1.late-rate"] == "fails"
    # coupling: a residual that follows the linearized dynamics (another method's history) does not couple
    linear = top["pred_coef"][k] @ top["V"].T
    assert _verdicts(gd.claims, _with_top(res, residual=linear))["1.1.coupling"] == "fails"
    # du-bound: a loss decaying at (1 - eta lambda_0 / 4)^k exceeds the guarantee (1 - eta lambda_0 / 2)^k
    slow = top["loss"][0] * (1 - res["lr"] * res["lambda_0"] / 4) ** k
    assert _verdicts(gd.claims, _with_top(res, loss=slow))["1.1.du-bound"] == "fails"


def test_wider_network_stays_closer_to_its_dashed_line(default_runs, full_length):
    """'Move the width to 16384: ... the loss stays closer to its dashed line': the final loss over its dashed line's,
    and the gap in late rate, both shrink from width 1024 to 16384."""
    wide = EXP1.execute(width=16384).result["runs"][-1]
    base = default_runs["1.1"].result["runs"][-1]

    def gaps(run):
        _, rm, rp = gd.late_rates(run)
        return run["loss"][-1] / run["pred_loss"][int(run["steps"][-1])], abs(math.log(rm) / math.log(rp) - 1)

    (end_w, rate_w), (end_b, rate_b) = gaps(wide), gaps(base)
    assert end_w < end_b and rate_w < rate_b, (gaps(wide), gaps(base))


def test_claims_of_1_2_fail_on_wrong_runs(default_runs):
    res = default_runs["1.2"].result
    assert all(v == "holds" for v in _verdicts(widths.claims, res).values())
    w = np.asarray(res["widths"], float)

    def tampered(key, factor):
        out = copy.deepcopy({k: v for k, v in res.items()})
        out[key] = [v * f for v, f in zip(res[key], factor)]
        out["slopes"] = {k: kr.loglog_slope(w, widths.means(out, k)) for k in ("movement", "drift", "H0_dev")}
        out["crossing"] = {k: kr.crossing_width(w[-3:], widths.means(out, k)[-3:], out["lambda_0"] / 4)
                           for k in ("drift", "H0_dev")}
        return _verdicts(widths.claims, out)

    assert tampered("movement", w**0.3)["1.2.movement-slope"] == "fails"  # slope -0.2: not like m^-1/2
    assert tampered("drift", w**0.4)["1.2.drift-slope"] == "fails"  # a drift that shrinks too slowly
    assert tampered("H0_dev", w**0.3)["1.2.init-slope"] == "fails"
    assert tampered("drift", np.full(len(w), 0.01))["1.2.lazy-width"] == "fails"  # a kernel inside the margin
    assert tampered("H0_dev", np.full(len(w), 0.01))["1.2.init-margin"] == "fails"


def test_claims_of_1_3_fail_on_wrong_runs(default_runs):
    res = default_runs["1.3"].result
    assert all(v == "holds" for v in _verdicts(edge.claims, res).values())
    run = res["run"]
    # a network whose top eigenvalue stays past its edge: no catapult
    stuck = {**res, "run": {**run, "lam_max_H": np.full_like(run["lam_max_H"], run["lam_max_H"][0])}}
    assert _verdicts(edge.claims, stuck)["1.3.catapult"] == "fails"
    # another method's history: the stable run's own kernel drift
    same = {**res, "run": {**run, "drift": res["reference"]["drift"]}}
    assert _verdicts(edge.claims, same)["1.3.kernel-leaves"] == "fails"


# ---------------------------------------------------------------------------------------------- the overlays
def test_dashed_line_is_this_networks_own_linearized_dynamics():
    """The dashed loss equals an independent iteration r <- r - eta H(0) r with H(0) built here from the activation
    patterns (not with course_lib.kernels), from this network's own u(0)."""
    res = kr.experiment(width=256, steps=30)
    top, T = res["runs"][-1], res["steps"]
    prob = kr.problem(50, 10, 0, "relu", False)
    X64, y = prob["X"].double(), prob["y"].double()
    p = TwoLayer(256).init(10, seed=0)
    W = p["W"][0].double()
    act = (X64 @ W.T >= 0).double()
    H0 = (X64 @ X64.T) * (act @ act.T) / 256
    r = (act * (X64 @ W.T)) @ p["a"][0].double() / 16 - y  # u(0) - y, relu(z) = 1[z >= 0] z
    losses = [0.5 * float(r @ r)]
    for _ in range(T):
        r = r - res["lr"] * (H0 @ r)
        losses.append(0.5 * float(r @ r))
    np.testing.assert_allclose(top["pred_loss"], losses, rtol=1e-5)  # u(0) is computed in float32 by the network
    assert res["lr"] == pytest.approx(0.5 * theory.stability_limit(kernels.relu_h_inf(prob["X"])), rel=1e-12)


def test_past_the_edge_stable_directions_keep_decaying():
    """Issue 13: past the edge, re-projecting a residual whose top direction grew by 1.2^200 made the stable
    directions' dashed lines rise. Computed directly, each stable coefficient decays by |1 - eta lambda_i| per step
    and the top one grows by exactly |1 - eta lambda_max|."""
    res = kr.edge_experiment(lr_fraction=1.1, width=256, steps=200)
    run = res["run"]
    coef, lam, lr = np.abs(run["pred_coef"]), run["lam_H0"], res["lr"]
    stable = np.abs(1 - lr * lam) < 1
    assert stable.sum() == len(lam) - 1
    assert np.all(np.diff(coef[:, stable], axis=0) <= 0)
    growth = coef[1:, -1] / coef[:-1, -1]
    np.testing.assert_allclose(growth, abs(1 - lr * lam[-1]), rtol=1e-10)


def test_drift_metric_is_the_operator_norm_of_the_gram_change():
    res = kr.experiment(width=128, steps=20)
    top = res["runs"][-1]
    assert top["frames"][-1] == res["steps"]
    prob = kr.problem(50, 10, 0, "relu", False)
    model = TwoLayer(128)
    p0 = model.init(10, seed=0)
    X64 = prob["X"].double()

    def gram(W):
        act = (X64 @ W.double().T >= 0).double()
        return (X64 @ X64.T) * (act @ act.T) / 128

    HT = gram(top["history"].params["W"][0])
    expect = float(torch.linalg.svdvals(HT - gram(p0["W"][0]))[0])
    assert top["drift"][-1] == pytest.approx(expect, rel=1e-9)


def test_fit_window_stays_above_the_float32_floor():
    k = np.arange(201)
    norms = np.maximum(10 * 0.9**k, 3e-6)  # reaches a floor of 3e-7 x its start at step ~150
    a, b = kr.fit_window(k, norms)
    assert norms[b] > kr.FIT_FLOOR * norms[0] and norms[b + 1] <= kr.FIT_FLOOR * norms[0] and a == b // 2
    assert kr.rate_over(k, norms, (a, b)) == pytest.approx(0.9, rel=1e-12)
    assert kr.fit_window(k[:12], norms[:12]) is None  # too short
    # a diverged record ends the window before the first non-finite value
    bad = norms.copy()
    bad[50:] = np.nan
    assert kr.fit_window(k, bad) == (24, 49)


def test_time_control_of_the_width_sweep_replays_the_recorded_drift(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    dash = kr.width_dashboard(max_width=1024, n=20)
    dash.run()
    assert dash.error is None, dash.error
    frames = dash.frames()
    res = dash.result
    assert frames[0] == 1 and frames[-1] == res["steps"]
    assert dash.show_step(frames[0]) != dash.show_step(frames[-1])
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    k = frames[2]
    dots, line = EXP2.state(ax, res)(k)
    i = res["record_steps"].index(k)
    expect = [float(np.mean(p[i])) for p in res["drift_path"]]
    np.testing.assert_allclose(line.get_ydata(), expect, rtol=1e-12)
    np.testing.assert_allclose(dots.get_offsets()[:, 1], np.concatenate([p[i] for p in res["drift_path"]]), rtol=1e-12)
    # the drift recorded at the last frame is the drift the figure's right panel shows at its maximum
    assert all(np.max(p, axis=0) == pytest.approx(d) for p, d in zip(res["drift_path"], res["drift"]))


def test_time_control_replays_the_recorded_state(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    for exp, run_of in ((EXP1, lambda r: r["runs"][-1]), (EXP3, lambda r: r["run"])):
        dash = exp.dashboard(**({"width": 128} if exp is EXP1 else {"width": 256}))
        dash.run()
        assert dash.error is None, dash.error
        frames = dash.frames()
        assert frames[0] == 0 and frames[-1] == dash.result["steps"] and len(frames) >= 10
        png_a = dash.show_step(frames[1])
        png_b = dash.show_step(frames[-1])
        assert png_a != png_b and dash.time_slider.value == frames[-1]
        # the state panel's data at step k is the recorded residual projected on H(0)'s eigenvectors, the linearized
        # coefficients at k, and the recorded drift at k in units of lambda_0 / 4
        from matplotlib.figure import Figure

        res = dash.result
        run = run_of(res)
        ax = Figure().subplots()
        update = exp.state(ax, res)
        k = frames[4]
        bars, line, below, gauge, text = update(k)[:5]
        i = int(np.searchsorted(run["steps"], k))
        assert run["steps"][i] == k
        floor = bars.get_data().baseline
        np.testing.assert_allclose(bars.get_data().values, np.maximum(np.abs(run["V"].T @ run["residual"][i]), floor),
                                   rtol=1e-12)
        top = ax.get_ylim()[1]
        p = np.abs(run["pred_coef"][k])
        np.testing.assert_allclose(line.get_data().values, np.where(p >= floor, np.minimum(p, 10 * top), np.nan),
                                   rtol=1e-12)
        # the directions whose prediction lies below the axis are marked there (a triangle each), not drawn as a floor
        np.testing.assert_array_equal(below.get_offsets()[:, 0], np.flatnonzero(p < floor))
        j = run["frames"].index(k)
        ratio, lo, hi = run["drift"][j] / (res["lambda_0"] / 4), 0.05, max(4.0, 1.3 * np.max(run["drift"]) / (res["lambda_0"] / 4))
        expect = 0.38 * np.log(min(ratio, hi) / lo) / np.log(hi / lo)  # the gauge's log scale, 0.38 axes wide
        assert gauge.get_width() == pytest.approx(expect, rel=1e-9)
        q = run["lam_min_H"][j] / (res["lambda_0"] / 2)
        assert f"λmin(H(k)) = {q:.2g} × λ₀/2" in text.get_text() and f"= {ratio:.2g} × λ₀/4" in text.get_text()
        with pytest.raises(ValueError, match="step must be between"):
            dash.show_step(10**6)


# ---------------------------------------------------------------------------------------------- the theory
def _closed_form_h_inf(X: np.ndarray) -> np.ndarray:
    """H^inf from its formula in numpy (independent of course_lib.kernels)."""
    cos = np.clip(X @ X.T, -1, 1)
    theta = np.arccos(cos)
    np.fill_diagonal(theta, 0.0)
    return cos * (np.pi - theta) / (2 * np.pi)


def test_late_contraction_tends_to_one_minus_eta_lambda0_at_large_width():
    """At width 32768 the measured late per-step contraction of ||u - y|| is 1 - eta lambda_0.

    Setting: n = 10 unit points in R^4 (data seed 0: eta lambda_0 = 0.150, eta lambda_1 = 0.188, so the
    slowest direction is separated), eta = 0.9 x 2/lambda_max, float64, 100 steps, 3 seeds; the rate is
    exp(slope of log ||u - y||) fitted on steps 50..100.
    Tolerance: late in training the residual lies along the slowest eigen-direction of the Gram matrix the
    network actually has, H(t); by Weyl's inequality its eigenvalue is within ||H(t) - H^inf||_2 of lambda_0,
    so the rate is within eta max_t ||H(t) - H^inf||_2 of 1 - eta lambda_0 (measured at t = 0 and at the end;
    ~1/sqrt(m)). Add the window's own bias: the linearized prediction from the same start, fitted on the
    same window, is not exactly at 1 - eta lambda_0 while the lambda_1 direction lingers. The tolerance must
    stay under eta lambda_0 / 4, so the test separates lambda_0 from the guarantee's lambda_0 / 2 and from lambda_1.
    """
    n, d, m, E, steps = 10, 4, 32768, 3, 100
    X = data.unit_sphere(n, d, seed=0, dtype=torch.float64)
    H = _closed_form_h_inf(X.numpy())
    lam = np.linalg.eigvalsh(H)
    eta = 0.9 * 2 / lam[-1]
    rho = 1 - eta * lam[0]
    y = kr.problem(n, d, 0, "relu", False)["y"].double()
    model = TwoLayer(m)
    params = model.init(d, ensemble=E, seed=7, dtype=torch.float64)
    hist = train(model, params, X, y, steps=steps, lr=eta, record_every=1, progress=False,
                 metrics={"residual": kr.residual})
    k = hist.steps
    window = k >= 50
    rnorm = np.linalg.norm(hist["residual"], axis=2)  # (steps + 1, E)
    H_t = torch.from_numpy(H)
    dev = np.maximum(torch.linalg.matrix_norm(kernels.empirical_gram(model, hist.params0, X) - H_t, 2).numpy(),
                     torch.linalg.matrix_norm(kernels.empirical_gram(model, hist.params, X) - H_t, 2).numpy())
    for e in range(E):
        measured = math.exp(np.polyfit(k[window], np.log(rnorm[window, e]), 1)[0])
        _, _, c = theory.linearized_modes(H_t, torch.from_numpy(hist["residual"][0, e]), eta, steps)
        lin = np.linalg.norm(c, axis=1)
        bias = abs(math.exp(np.polyfit(k[window], np.log(lin[window]), 1)[0]) - rho)
        tol = eta * dev[e] + bias
        assert tol < eta * lam[0] / 4, "the tolerance is too loose to test anything"
        assert abs(measured - rho) <= tol, (measured, rho, tol)


def test_movement_and_gram_distances_shrink_with_width():
    """Fitted log-log slopes: movement and ||H(0) - H^inf|| near -1/2, the drift at least as steep.

    Movement: each neuron's gradient is (1/sqrt m) a_r sum_i r_i 1[w_r.x_i >= 0] x_i, of norm at most
    sqrt(n/m) ||r||, so max_r ||w_r(k) - w_r(0)|| <= eta sqrt(n/m) sum_{j<k} ||r(j)|| (checked exactly
    below): the 1/sqrt(m) factor is explicit; what remains, the residual path sum_j ||r(j)||, drifts little
    with width (asserted: a slope under 0.15 in magnitude over 64x), hence tolerance 0.1 on the slope.
    ||H(0) - H^inf||: a Monte Carlo average over m independent neurons, error ~ 1/sqrt(m) up to O(1/m). The
    drift ||H(k) - H(0)|| is bounded by a multiple of the movement (Du et al.'s Lemma 3.2 is linear in it), so
    it shrinks at least as fast: slope <= -0.4.
    """
    res = kr.width_experiment(n=20, widths=[64, 256, 1024, 4096], steps=100, seeds=4, dtype=torch.float64)
    s = res["slopes"]
    assert abs(s["movement"] + 0.5) < 0.1 and abs(s["H0_dev"] + 0.5) < 0.1 and s["drift"] <= -0.4, s
    prob = kr.problem(20, 10, 0, "relu", False)
    X, y = prob["X"].double(), prob["y"].double()
    paths = []
    for m in (64, 4096):
        model = TwoLayer(m)
        h = train(model, model.init(10, seed=m, dtype=torch.float64), X, y, steps=100, lr=res["lr"], record_every=1,
                  progress=False, metrics={"movement": kr.neuron_movement, "residual": kr.residual})
        rn = np.linalg.norm(h["residual"][:, 0], axis=1)
        bound = res["lr"] * math.sqrt(20 / m) * np.cumsum(np.r_[0, rn[:-1]])
        assert np.all(h["movement"][:, 0] <= bound + 1e-12)
        paths.append(rn[:-1].sum())
    assert abs(math.log(paths[1] / paths[0]) / math.log(64)) < 0.15, paths


def test_crossing_width_of_a_power_law():
    w = [256, 1024, 4096]
    c = kr.crossing_width(w, [8.0 / math.sqrt(m) for m in w], 0.05)  # 8 / sqrt(m) = 0.05 at m = 25600
    assert c["width"] == pytest.approx(25600, rel=1e-9) and c["extrapolated"]
    assert kr.crossing_width(w, [1.0, 2.0, 3.0], 0.5)["width"] is None


def test_both_layers_gram_is_h_inf_plus_arccos_kernel():
    """empirical Gram with the output layer trained -> H^inf + K (error ~ 1/sqrt(m): 4x smaller at 16x width)."""
    X = data.unit_sphere(12, 5, seed=3, dtype=torch.float64)
    G = kr.predicted_gram(X, "relu", train_output=True)
    errs = []
    for m in (4096, 65536):
        model = TwoLayer(m, train_output=True)
        H = kernels.empirical_gram(model, model.init(5, seed=1, dtype=torch.float64), X)[0]
        errs.append(float(torch.linalg.matrix_norm(H - G, 2)))
    assert errs[1] < errs[0] / 2.5 and errs[1] < 0.05, errs


@pytest.mark.parametrize("activation", ["tanh", "softplus", "gelu"])
def test_output_kernel_against_monte_carlo(activation):
    """K_ij = E[phi(w.x_i) phi(w.x_j)] from the Hermite series vs 400k Gaussian samples (std error ~ 2e-3)."""
    from course_lib.activations import get_activation

    X = data.unit_sphere(6, 3, seed=2, dtype=torch.float64)
    K = kr.output_kernel(X, activation)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    F = get_activation(activation).phi(w @ X.T)
    K_mc = F.T @ F / w.shape[0]
    scale = float(K_mc.diagonal().max())
    assert float((K - K_mc).abs().max()) < 0.01 * scale + 0.005, (K, K_mc)


def test_output_kernel_relu_is_arccos1_and_predicted_gram():
    X = data.unit_sphere(7, 4, seed=1, dtype=torch.float64)
    assert torch.allclose(kr.output_kernel(X, "relu"), kernels.arccos1(X))
    np.testing.assert_allclose(kr.predicted_gram(X).numpy(), _closed_form_h_inf(X.numpy()), atol=1e-12)


def test_late_rate_and_slope_helpers():
    k = np.arange(100)
    assert abs(kr.late_rate(k, 3 * 0.9**k) - 0.9) < 1e-12
    assert math.isnan(kr.late_rate(k[:2], np.ones(2)))
    assert abs(kr.loglog_slope([10, 100, 1000], [1, 0.1, 0.01]) + 1) < 1e-12
    assert kr.comparison_widths(1024) == [16, 128, 1024] and kr.comparison_widths(8) == [8]
    g = kr.mode_groups(50)
    assert list(g["slowest"]) == [0, 1, 2, 3, 4] and list(g["fastest"]) == [45, 46, 47, 48, 49]


def test_activation_table_lists_every_activation():
    t = kr.activation_table()
    assert [r[0] for r in t.rows] == list(kr.ACTIVATIONS)
    relu = t.rows[0]
    assert relu[1] == pytest.approx(float(kr.problem(50, 10, 0, "relu", False)["lam"][0]))


# ---------------------------------------------------------------------------------------------- reproduce
def test_reproduce_writes_figures_numbers_and_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    from course_lib.reproduce import reproduce

    out = reproduce("1", str(tmp_path))
    runs = out["runs"]
    assert set(runs) == {f"{e.id}.{name}" for e in kr.EXPERIMENTS for name in e.reproduce}
    for name, entry in runs.items():
        assert (tmp_path / "lesson1" / entry["figure"]).stat().st_size > 10_000, name
        assert (tmp_path / "lesson1" / entry["state_figure"]).stat().st_size > 10_000, name
    assert {c["verdict"] for c in runs["1.3.diverged"]["claims"]} == {"does not apply"}
    assert (tmp_path / "lesson1" / "key_numbers.json").exists()
