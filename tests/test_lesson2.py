"""Lesson 2 (identity mapping): the claims at the defaults and at the settings the text invites, a sweep over every
control, each claim on a deliberately wrong run, the closed forms and the predictions against independent
computations, the time control's state panel, and reproduce."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from course_lib import data, theory
from course_lib.lessons import identity_mapping as im
from course_lib.lessons.identity_mapping import compare, core, phases, seeds

from ._fixtures import _cpu_reference, _one_thread  # noqa: F401
from .claims_harness import Invitation, check_defaults, check_invitation, check_sweep

INVITATIONS = [
    Invitation("Set the batch to 10: SGD diverges, although the step is only 0.6 times GD's limit", "2.1",
               {"batch": 10}),
    Invitation("Keep batch 10, lower the step to 0.15 and run 1200 steps: it converges geometrically again, with no "
               "floor", "2.1", {"batch": 10, "lr_fraction": 0.15, "steps": 1200}),
    Invitation("Set the batch back to 200, add label noise σ = 0.3 and run 600 steps: the distance levels off at the "
               "floor the linearized SGD predicts", "2.1", {"noise": 0.3, "steps": 600}),
    *[Invitation("Change the seed: the teacher and the starts change, and every claim above still holds", "2.1",
                 {"seed": s}) for s in (3, 11, 20)],
    Invitation("Choose *init* `minus_identity` ($W_0=-0.5I$): $g$ falls as fast, but the distance falls by half with it "
               "(`2.2.g-first` fails), the cosine stays positive (`2.2.wrong-way` fails) and $\\rho$ is above 0.05 from "
               "step 0, so the rule finds no phase I at all (`2.2.threshold` fails)", "2.2",
               {"init": "minus_identity"},
               expect={"2.2.g-first": "fails", "2.2.wrong-way": "fails", "2.2.threshold": "fails"}),
    Invitation("turn the columns further, angle 1.0, and run 900 steps. Stage 1 looks the same, but the run does not "
               "reach the linear regime (`2.2.converges` fails)", "2.2", {"angle": 1.0, "steps": 900},
               expect={"2.2.converges": "fails", "2.2.g-first": "holds", "2.2.wrong-way": "holds"}),
    Invitation("Set $d=30$ and run 900 steps: the same three stages, stage 2 longer (stage 3 starts near step 450), and "
               "every claim still holds.", "2.2", {"d": 30, "steps": 900}),
    Invitation("Set $d=10$: now not every seed's vanilla net stays far (`2.3.vanilla-far` fails).", "2.3", {"d": 10},
               expect={"2.3.vanilla-far": "fails", "2.3.vanilla-loss": "holds"}),
    Invitation("Raise the step to 0.9: every run is faster, and every claim still holds.", "2.4", {"lr_fraction": 0.9}),
]


@pytest.fixture
def full_length(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")


@pytest.fixture(scope="module")
def default_runs():
    """Each experiment at its defaults, full length (shared by the tampering tests)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_FAST", "0")
        mp.setenv("COURSE_DEVICE", "cpu")
        return {e.id: e.execute() for e in im.EXPERIMENTS}


def verdicts(claims) -> dict:
    return {c.id: c.verdict for c in claims}


# ---------------------------------------------------------------------------------------------- claims
@pytest.mark.parametrize("exp", im.EXPERIMENTS, ids=lambda e: e.id)
def test_claims_hold_at_the_defaults(exp, full_length):
    check_defaults(exp)


@pytest.mark.parametrize("inv", INVITATIONS, ids=lambda i: f"{i.experiment}-{i.settings}")
def test_claims_at_the_settings_the_text_invites(inv, full_length):
    check_invitation(inv)


def test_batch_10_small_step_ends_above_gds_linearization(full_length):
    """'at batch 10 every student's solid line ends above its dashed one (by 20-40% at this seed)': the dashed line is
    GD's linearization; SGD's noise slows the contraction."""
    res = seeds.EXPERIMENT.execute(batch=10, lr_fraction=0.15, steps=1200).result
    above = res["history"]["dist"][-1] / res["prediction"][-1]
    assert np.all(above > 1.15) and np.all(above < 1.45), above


def test_2_2_text_numbers(full_length):
    """2.2's text: at the defaults rho stays just above 0.04 on the plateau (so the c = 0.04 boundary sits at the end
    of stage 1), at d = 30 it dips below and the boundary falls inside the plateau; ||W_0||_2 about 0.94 (default) and
    1.2 (angle 1.0); at d = 30 and 900 steps stage 3 starts near step 450."""
    res = phases.EXPERIMENT.execute().result
    n = phases.numbers(res)
    low = n["lowest ρ on the plateau (steps 10 to stage 3)"]
    assert 0.04 < low < 0.045
    assert n["one-point boundary for c = 0.04"] <= 10
    assert phases.start_norm(res) == pytest.approx(0.94, abs=0.01)
    assert phases.start_norm(phases.EXPERIMENT.execute(angle=1.0, steps=900).result) == pytest.approx(1.2, abs=0.03)
    r30 = phases.EXPERIMENT.execute(d=30, steps=900).result
    assert phases.numbers(r30)["one-point boundary for c = 0.04"] > 20
    assert abs(r30["linear_start"][0] - 450) < 30


def test_2_3_at_d_10_one_seed_finds_the_teacher(full_length):
    """'One seed finds the teacher ... about 3% of its initial distance; another gets about 90% of the way and the third
    stalls at about 40%'."""
    vh = compare.COMPARE.execute(d=10).result["vanilla"]["history"]
    frac = np.sort(vh["matched"][-1] / vh["dist"][0])
    assert frac[0] < 0.05 and 0.07 < frac[1] < 0.15 and 0.3 < frac[2] < 0.5, frac


def test_the_invited_batch_10_run_diverges_early(full_length):
    """'Set the batch to 10: SGD diverges': the run stops within the first few steps, and the status says the step is
    above the stable step for the batch (not the wrong ratio to GD's limit)."""
    run = seeds.EXPERIMENT.execute(batch=10)
    h = run.result["history"]
    assert h.diverged and int(h.diverged_at.min()) < 20
    head = seeds.headline(run.result)
    ratio = run.result["lr"] / run.result["stable_step"]
    assert f"{ratio:.2g} × the stable step" in head and ratio > 2
    assert run.result["stable_step"] / run.result["gd_limit"] == pytest.approx(0.25, abs=0.03)  # "about a quarter"


@pytest.mark.parametrize("exp", im.EXPERIMENTS, ids=lambda e: e.id)
def test_sweep_of_the_controls(exp, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")  # the same code path, a tenth of the steps
    runs = check_sweep(exp)
    assert len(runs) >= 3


# ---------------------------------------------------------------------------------------------- wrong runs
def _with(res: dict, **metrics) -> dict:
    """A copy of an experiment result whose history has some metrics replaced, re-analysed (stages, predictions)."""
    h = res["history"]
    new = dataclasses.replace(h, metrics={**h.metrics, **metrics})
    out = {k: v for k, v in res.items() if k not in ("rows",)}
    out["history"] = new
    modes = core.hessian_modes(res["d"], 0.6, 1000 + res["seed"]) if res.get("lam") is not None else None
    return core.analyse(out, modes)


def test_2_1_claims_fail_on_wrong_runs(default_runs):
    res = default_runs["2.1"].result
    h = res["history"]
    s = h.steps[:, None]
    assert set(verdicts(seeds.claims(res)).values()) == {"holds"}
    # a loss that stalled: fell by only 2 orders
    bad = _with(res, pop_loss=np.maximum(h["pop_loss"], 1e-2 * h["pop_loss"][:1]))
    assert verdicts(seeds.claims(bad))["2.1.converges"] == "fails"
    # a dip of the one-point ratio below 0.04 at one record
    ratio = h["ratio"].copy()
    ratio[3, 1] = 0.01
    assert verdicts(seeds.claims(_with(res, ratio=ratio)))["2.1.one-point"] == "fails"
    # a distance that contracts 15% slower (in -log rate) than measured from step 150 on: late rate and worst case fail
    k0 = 150
    slow = h["dist"] * np.where(s > k0, np.exp(0.15 * np.log(0.9861) * -(s - k0)), 1.0)
    v = verdicts(seeds.claims(_with(res, dist=slow)))
    assert v["2.1.late-rate"] == "fails"
    # a distance that follows the worst-case rate: it is not closer to the dashed line
    i0 = np.searchsorted(h.steps, 150)
    worst = h["dist"].copy()
    worst[i0:] = h["dist"][i0] * res["worst_rate"] ** (s[i0:] - 150)
    assert verdicts(seeds.claims(_with(res, dist=worst)))["2.1.worst-case"] == "fails"
    # a distance that levels off over the last quarter: a floor
    floor = h["dist"].copy()
    q = h.steps >= 225
    floor[q] = floor[np.argmax(q)]
    assert verdicts(seeds.claims(_with(res, dist=floor)))["2.1.floor"] == "fails"
    # a run below the stable step that is reported as diverged
    div = dataclasses.replace(h, diverged_at=np.full(h.ensemble, 100))
    bad = {**res, "history": div}
    assert verdicts(seeds.claims(bad))["2.1.stable-step"] == "fails"


def test_2_1_floor_fails_when_the_noise_floor_is_off(full_length):
    res = seeds.EXPERIMENT.execute(noise=0.3, steps=600).result
    assert verdicts(seeds.claims(res))["2.1.floor"] == "holds"
    h = res["history"]
    assert verdicts(seeds.claims(_with(res, dist=1.5 * h["dist"])))["2.1.floor"] == "fails"


def test_2_2_claims_fail_on_wrong_runs(default_runs):
    res = default_runs["2.2"].result
    h = res["history"]
    s = h.steps[:, None]
    assert set(verdicts(phases.claims(res)).values()) == {"holds"}
    k1 = res["g_fixed"][0]
    # the distance falls by 30% while g is fixed
    dist = h["dist"].copy()
    dist[1: np.searchsorted(h.steps, k1) + 1] *= 0.7
    assert verdicts(phases.claims(_with(res, dist=dist)))["2.2.g-first"] == "fails"
    # a cosine that never dips below zero
    assert verdicts(phases.claims(_with(res, cos=np.abs(h["cos"]))))["2.2.wrong-way"] == "fails"
    # a one-point ratio that ends at half its linearized value: no linear regime
    ratio = h["ratio"].copy()
    ratio[h.steps > 200] = 0.5 * h["rho_H"][h.steps > 200]
    assert verdicts(phases.claims(_with(res, ratio=ratio)))["2.2.converges"] == "fails"
    # g fixed only at step 40: stage 2 is no longer 20 times as long
    g = h["g"].copy()
    g[h.steps < 40] = g[0]
    assert verdicts(phases.claims(_with(res, g=g)))["2.2.stage-two"] == "fails"
    # stage 3 contracting 10% slower than measured
    k3 = res["linear_start"][0]
    slow = h["dist"] * np.where(s > k3, np.exp(0.1 * np.log(0.9891) * -(s - k3)), 1.0)
    assert verdicts(phases.claims(_with(res, dist=slow)))["2.2.late-rate"] == "fails"
    # a ratio above 0.05 from step 5 on: raising c does not move the boundary
    ratio = h["ratio"].copy()
    ratio[h.steps >= 5] = np.maximum(ratio[h.steps >= 5], 0.06)
    assert verdicts(phases.claims(_with(res, ratio=ratio)))["2.2.threshold"] == "fails"


def test_2_3_claims_fail_on_wrong_runs(default_runs):
    res = default_runs["2.3"].result
    ir, vr = res["identity"], res["vanilla"]
    assert set(verdicts(compare.claims_compare(res)).values()) == {"holds"}
    ih, vh = ir["history"], vr["history"]
    swapped = {**res, "identity": {**ir, "history": dataclasses.replace(ih, metrics={**ih.metrics, "dist": vh["dist"]})}}
    assert verdicts(compare.claims_compare(swapped))["2.3.identity-recovers"] == "fails"
    close = {**res, "vanilla": {**vr, "history": dataclasses.replace(vh, metrics={**vh.metrics,
                                                                               "pop_loss": 10 * ih["pop_loss"]})}}
    assert verdicts(compare.claims_compare(close))["2.3.vanilla-loss"] == "fails"
    found = {**res, "vanilla": {**vr, "history": dataclasses.replace(vh, metrics={**vh.metrics,
                                                                               "matched": 0.01 * vh["matched"]})}}
    assert verdicts(compare.claims_compare(found))["2.3.vanilla-far"] == "fails"


def test_2_4_claims_fail_on_wrong_runs(default_runs):
    res = default_runs["2.4"].result
    assert set(verdicts(compare.claims_sweep(res)).values()) == {"holds"}
    runs = res["runs"]
    # the d = 30 run first: the rate no longer slows with d
    assert verdicts(compare.claims_sweep({**res, "runs": runs[::-1]}))["2.4.slower-with-d"] == "fails"
    # the large-scale run at d = 20 contracting 20% faster late: off its prediction, and off the small scale's rate
    r = runs[1]
    h = r["history"]
    k0 = max(r["linear_start"])
    s = h.steps
    dist = h["dist"].copy()
    rate = core.rates(r, 1)[0]
    dist[:, 1] *= np.where(s > k0, np.exp(0.2 * np.log(rate) * (s - k0)), 1.0)
    fast = _with(r, dist=dist)
    fast["linear_start"], fast["prediction"] = r["linear_start"], r["prediction"]  # the prediction stays the run's own
    v = verdicts(compare.claims_sweep({**res, "runs": [runs[0], fast, runs[2]]}))
    assert v["2.4.prediction"] == "fails" and v["2.4.scale"] == "fails"
    # a run following the worst-case rate
    dist = h["dist"].copy()
    i0 = int(np.searchsorted(s, k0))
    dist[i0:, 0] = dist[i0, 0] * r["worst_rate"] ** (s[i0:] - k0)
    worst = _with(r, dist=dist)
    worst["linear_start"], worst["prediction"] = r["linear_start"], r["prediction"]
    assert verdicts(compare.claims_sweep({**res, "runs": [runs[0], worst, runs[2]]}))["2.4.worst-case"] == "fails"


def test_permuted_minima_are_far_from_small_w():
    """The summary's derivation: for every permutation P != I, ||P - I||_2 >= sqrt(3) (the smallest is a 3-cycle's),
    so the permuted minimum (I + W*) P - I has spectral norm >= sqrt(3) - ||W*||_2 (checked for all P at d = 4, 5)."""
    import itertools

    for d in (4, 5):
        W_star = data.identity_teacher(d, scale=0.6, seed=d, dtype=torch.float64).numpy()
        norms = []
        for perm in itertools.permutations(range(d)):
            if perm == tuple(range(d)):
                continue
            P = np.eye(d)[:, perm]
            norms.append(np.linalg.norm(P - np.eye(d), 2))
            assert np.linalg.norm((np.eye(d) + W_star) @ P - np.eye(d), 2) >= math.sqrt(3) - 0.6 - 1e-12
        assert min(norms) == pytest.approx(math.sqrt(3))


# ---------------------------------------------------------------------------------------------- closed forms
def _case(d=6, seed=0, identity=True):
    W_star = data.identity_teacher(d, scale=0.6, seed=100 + seed, dtype=torch.float64)
    W = im.initial_weights(d, "gaussian", 0.6, ensemble=2, seed=seed)
    return W, W_star, im.PopulationObjective(W_star, identity=identity)


@pytest.mark.parametrize("identity", [True, False])
def test_population_loss_and_gradient_match_monte_carlo(identity):
    """The objective (theory.identity_population_loss against the identity teacher, for the vanilla student against
    its first layer I + W*) vs a Monte Carlo average over 400k Gaussian inputs with IdentityNet's per-sample
    gradient: the loss within 4 standard errors, the gradient within 4 standard errors per entry."""
    d = 5
    W, W_star, obj = _case(d, identity=identity)
    W = W[:1]
    L, G = obj.value(W)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400_000, d, generator=gen, dtype=torch.float64)
    y = torch.relu(X @ (torch.eye(d, dtype=torch.float64) + W_star)).sum(-1)
    U = obj.first_layer(W)[0]
    pre = X @ U
    r = torch.relu(pre).sum(-1) - y
    sq = r * r
    se = float(sq.std() / math.sqrt(len(sq)))
    assert abs(float(L[0]) - float(sq.mean())) < 4 * se, (float(L[0]), float(sq.mean()), se)
    per = 2 * r[:, None, None] * X[:, :, None] * (pre > 0)[:, None, :]  # d(r^2)/dW per sample, (N, d, d)
    se_g = per.std(0) / math.sqrt(len(sq))
    assert (torch.abs(G[0] - per.mean(0)) < 4 * se_g + 1e-12).all()


def test_hessian_matches_finite_differences_of_the_gradient():
    """Central differences (eps 1e-4) of the closed-form gradient at W*. Truncation is O(eps^2) ~ 1e-8; rounding in
    the angle of the near-parallel pairs (u_i, v_i) is ~1e-8 in the gradient, ~1e-8 / (2 eps) = 5e-5 in the worst
    case. Tolerance 5e-5 on entries of size up to 1."""
    d = 4
    W_star = data.identity_teacher(d, seed=5, dtype=torch.float64)
    obj = im.PopulationObjective(W_star)
    H = im.hessian_at_teacher(W_star)
    eps, cols = 1e-4, []
    for k in range(d * d):
        E = torch.zeros(d * d, dtype=torch.float64)
        E[k] = eps
        E = E.view(d, d)
        cols.append(((obj.value((W_star + E)[None])[1] - obj.value((W_star - E)[None])[1])[0] / (2 * eps)).flatten())
    assert (H - torch.stack(cols, 1)).abs().max() < 5e-5
    assert torch.allclose(H, H.T)
    # trace H = 2 E[||x||^2 #active] = d^2 exactly (the course's stable-step formula uses it)
    assert float(torch.trace(H)) == pytest.approx(d * d, rel=1e-12)


def test_kernel_matrix_matches_monte_carlo():
    A = torch.tensor([[1.0, 0.2, -0.3], [0.0, 2.0, 0.5]], dtype=torch.float64)
    X = torch.randn(400_000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mc = (torch.relu(X @ A.T)[:, :, None] * torch.relu(X @ A.T)[:, None, :]).mean(0)
    assert torch.allclose(im.kernel_matrix(A, A), mc, rtol=0.02)


def test_potential_g_is_theorys():
    W, W_star, _ = _case(7, seed=2)
    res = im.experiment(d=7, steps=3, seeds=2, method="gd", seed=0, prediction=False)
    h = res["history"]
    W0 = torch.from_numpy(h["W"][0]).view(2, 7, 7) - torch.eye(7, dtype=torch.float64)
    Ws = torch.from_numpy(res["W_star"])
    np.testing.assert_allclose(h["g"][0], theory.potential_g(W0, Ws).numpy(), rtol=1e-12)


def _second_moment_matrix(lam, lr, B):
    """The linearized SGD's second-moment recursion s <- A s (+ b), built explicitly."""
    return np.diag((1 - lr * lam) ** 2 - lr**2 * lam**2 / B) + lr**2 / B * np.outer(lam, lam)


@pytest.mark.parametrize("d, B", [(10, 10), (10, 50), (20, 20)])
def test_stable_step_is_where_the_second_moment_stops_contracting(d, B):
    """Independent of the bisection: at the stable step the explicit recursion matrix has spectral radius 1, just below
    it less, just above it more."""
    lam = core.hessian_modes(d, 0.6, 1000)[0]
    eta = im.sgd_stable_step(lam, B)
    radius = lambda e: float(np.max(np.abs(np.linalg.eigvalsh(_second_moment_matrix(lam, e, B)))))  # noqa: E731
    assert radius(eta) == pytest.approx(1.0, abs=1e-8)
    assert radius(0.98 * eta) < 1 < radius(1.02 * eta)
    assert im.sgd_stable_step(lam, None) == pytest.approx(2 / lam[-1])


def test_noise_floor_is_the_fixed_point_of_the_recursion():
    """Sherman-Morrison's closed form against iterating s <- A s + b to convergence."""
    lam = core.hessian_modes(10, 0.6, 1000)[0]
    lr, B, sigma = 0.1, 100, 0.3
    A = _second_moment_matrix(lam, lr, B)
    b = lr**2 * 2 * sigma**2 / B * lam
    s = np.zeros_like(lam)
    for _ in range(20000):
        s = A @ s + b
    dist, loss = im.noise_floor(lam, lr, B, sigma)
    assert dist == pytest.approx(math.sqrt(s.sum()), rel=1e-9)
    assert loss == pytest.approx(0.5 * float(lam @ s), rel=1e-9)
    assert im.noise_floor(lam, 1.1 * im.sgd_stable_step(lam, B), B, sigma)[0] == math.inf


def test_prediction_is_this_runs_own_linearized_dynamics(default_runs):
    """The dashed line equals an independent iteration e <- e - eta H e from the run's own error at the start of
    stage 3 (H built here by hessian_at_teacher, iterated with matrix-vector products, not eigenvectors)."""
    res = default_runs["2.2"].result
    h = res["history"]
    k0 = res["linear_start"][0]
    i0 = int(np.searchsorted(h.steps, k0))
    W_star = torch.from_numpy(res["W_star"])
    H = im.hessian_at_teacher(W_star).numpy()
    e = h["W"][i0, 0] - (np.eye(res["d"]) + res["W_star"]).reshape(-1)
    out = {}
    for k in range(k0, int(h.steps[-1]) + 1):
        out[k] = np.linalg.norm(e)
        e = e - res["lr"] * (H @ e)
    for i in range(i0, len(h.steps)):
        assert res["prediction"][i, 0] == pytest.approx(out[int(h.steps[i])], rel=1e-9)
    assert np.isnan(res["prediction"][:i0]).all()
    # the linear regime's start: rho within 10% of rho_H from there on, not before
    q = np.abs(h["ratio"][:, 0] / h["rho_H"][:, 0] - 1)
    assert (q[i0:] <= core.LINEAR_TOL).all() and q[i0 - 1] > core.LINEAR_TOL


def test_rho_H_is_the_rayleigh_quotient(default_runs):
    res = default_runs["2.1"].result
    h = res["history"]
    H = im.hessian_at_teacher(torch.from_numpy(res["W_star"])).numpy()
    e = h["W"][7, 2] - (np.eye(res["d"]) + res["W_star"]).reshape(-1)
    assert h["rho_H"][7, 2] == pytest.approx(e @ H @ e / (e @ e), rel=1e-10)


def test_rows_are_angles_and_lengths(default_runs):
    """The state panel's data: angle between u_i and v_i (against arccos where it is well conditioned) and the length
    ratio; for the vanilla net, rows in the order of its best column permutation."""
    res = default_runs["2.1"].result
    rw = im.rows(res)
    h = res["history"]
    d = res["d"]
    U = h["W"][0, 1].reshape(d, d).T
    V = (np.eye(d) + res["W_star"]).T
    cos = (U * V).sum(1) / np.linalg.norm(U, axis=1) / np.linalg.norm(V, axis=1)
    np.testing.assert_allclose(rw["angle"][0, 1], np.arccos(cos), rtol=1e-9)
    np.testing.assert_allclose(rw["length"][0, 1], np.linalg.norm(U, axis=1) / np.linalg.norm(V, axis=1), rtol=1e-12)
    van = default_runs["2.3"].result["vanilla"]
    vh = van["history"]
    perm = vh["perm"][-1, 0].astype(int)
    Uv = vh["W"][-1, 0].reshape(d, d)  # columns are the vanilla rows
    T = np.eye(d) + van["W_star"]
    assert np.linalg.norm(Uv[:, perm] - T) == pytest.approx(vh["matched"][-1, 0], rel=1e-9)
    from scipy.optimize import linear_sum_assignment
    C = ((Uv[:, :, None] - T[:, None, :]) ** 2).sum(0)
    r, c = linear_sum_assignment(C)
    assert vh["matched"][-1, 0] == pytest.approx(math.sqrt(C[r, c].sum()), rel=1e-9)


def test_phase_boundary_rule():
    assert im.phase_boundary([0, 1, 2, 3], [0.5, -0.1, 0.05, 0.2], 0.04) == 2
    assert im.phase_boundary([0, 1, 2], [0.5, 0.5, 0.01], 0.04) is None
    assert im.phase_boundary([0, 5], [0.1, 0.1], 0.04) == 0


def test_phase_defaults_and_the_exercise_call_still_work(monkeypatch):
    """exercises/solutions run im.experiment(**{**im.PHASE_DEFAULTS, "seeds": 1}) and read h["ratio"], phase2_start."""
    monkeypatch.setenv("COURSE_FAST", "1")
    res = im.experiment(**{**im.PHASE_DEFAULTS, "seeds": 1})
    h = res["history"]
    assert res["phase2_start"][0] == im.phase_boundary(h.steps, h["ratio"][:, 0], im.PHASE_RATIO)
    assert im.experiment(steps=20)["history"].steps[-1] >= 10


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="d must"):
        im.experiment(d=1)
    with pytest.raises(ValueError, match="init"):
        im.experiment(init="ones")
    with pytest.raises(ValueError, match=r"step η / \(2/λ_max\(H\)\) must be in"):
        seeds.EXPERIMENT.execute(lr_fraction=1.5)
    with pytest.raises(ValueError, match="dimension d must be one of"):
        phases.EXPERIMENT.execute(d=50)  # the d^2 x d^2 Hessian at d = 50 is too heavy for a widget


# ---------------------------------------------------------------------------------------------- dashboards and time
@pytest.mark.parametrize("exp", im.EXPERIMENTS, ids=lambda e: e.id)
def test_time_control_replays_the_recorded_rows(exp, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    dash = exp.dashboard()
    dash.run()
    assert dash.error is None, dash.error
    frames = dash.frames()
    assert frames[0] == 0 and len(frames) >= 8
    a, b = dash.show_step(frames[1]), dash.show_step(frames[-1])
    assert a != b and dash.time_slider.value == frames[-1]
    assert dash.small_multiples_png() is not None
    from matplotlib.figure import Figure

    res = dash.result
    ax = Figure().subplots()
    update = exp.state(ax, res)
    k = frames[len(frames) // 2]
    arts = update(k)
    first = res["identity"] if exp.id == "2.3" else res["runs"][0] if exp.id == "2.4" else res
    h = first["history"]
    i = int(np.searchsorted(h.steps, k))
    rw = im.rows(first)
    expect = np.column_stack([np.clip(rw["angle"][i, 0], 1e-6, None), np.clip(np.abs(rw["length"][i, 0] - 1), 1e-7, None)])
    np.testing.assert_allclose(arts[0].get_offsets(), expect, rtol=1e-12)
    with pytest.raises(ValueError, match="step must be between"):
        dash.show_step(10**7)


def test_dashboards_answer_the_benchmarks_changes(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    dash = im.dashboard()
    dash.run()
    png = dash.png
    for change in ({"seed": 3}, {"batch": 10}, {"method": "gd"}, {"noise": 0.3}):
        dash.set(**change)
        assert dash.error is None, (change, dash.error)
    assert dash.png != png


def test_reproduce_writes_figures_numbers_and_claims(tmp_path, monkeypatch):
    """Every experiment's figure and state small multiples; 2.1 at all its settings (a diverged run included), the
    others at their defaults only (the time budget of the test suite)."""
    monkeypatch.setenv("COURSE_FAST", "1")
    from course_lib.reproduce import reproduce

    assert set(phases.EXPERIMENT.reproduce) == {"default", "minus_identity", "angle1"}
    monkeypatch.setattr(im, "EXPERIMENTS", (im.SEEDS, *(dataclasses.replace(e, reproduce={"default": {}})
                                                        for e in im.EXPERIMENTS[1:])))
    out = reproduce("2", str(tmp_path))
    runs = out["runs"]
    assert set(runs) == {"2.1.default", "2.1.batch10", "2.1.batch10_small_step", "2.1.label_noise", "2.2.default",
                         "2.3.default", "2.4.default"}
    for entry in runs.values():
        assert (tmp_path / "lesson2" / entry["figure"]).stat().st_size > 10_000
        assert (tmp_path / "lesson2" / entry["state_figure"]).stat().st_size > 5_000
    assert (tmp_path / "lesson2" / "key_numbers.json").exists()


def test_the_invited_large_rotation_stalls_as_the_text_says(full_length):
    """'rho falls to about zero, the distance to the teacher grows again, and some rows are still far from their
    teacher rows at the end'."""
    res = phases.EXPERIMENT.execute(angle=1.0, steps=900).result
    h = res["history"]
    dist = h["dist"][:, 0]
    assert abs(h["ratio"][-1, 0]) < 0.02
    assert dist[-1] > 1.2 * dist.min() and h.steps[int(np.argmin(dist))] > 100
    assert np.degrees(np.max(im.rows(res)["angle"][-1, 0])) > 45


@pytest.mark.parametrize("fraction", [0.7, 0.9])
def test_2_4_text_numbers(fraction, full_length):
    """2.4 item 2: 'from d = 10 to 30 the step falls to about 0.4 of its value, the measured -log rate only to about
    0.6-0.65'; item 3: the two scales' difference in rate shows in the dashed predictions too (same sign at each d)."""
    res = compare.SWEEP.execute(lr_fraction=fraction).result
    runs = res["runs"]
    assert runs[-1]["lr"] / runs[0]["lr"] == pytest.approx(0.4, abs=0.03)
    rr = compare.sweep_rates(res)
    for e in range(len(compare.SWEEP_SCALES)):
        slow = core.neg_log(rr[-1][e][0]) / core.neg_log(rr[0][e][0])
        assert 0.58 <= slow <= 0.67, slow
    for row in rr:
        assert np.sign(row[1][0] - row[0][0]) == np.sign(row[1][1] - row[0][1])
