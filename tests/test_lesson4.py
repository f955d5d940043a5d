"""Lesson 4 (activation and the Gram eigenvalue): every claim at the defaults and at the settings the notebook
invites, a sweep over each dashboard's controls, each claim on a deliberately wrong run, the formulas against
independent computations, the training dashboard's time control, the exercises, and reproduce."""
import importlib.util
import math
import os
from itertools import combinations_with_replacement

import nbformat
import numpy as np
import pytest
import torch

from course_lib import data, kernels
from course_lib.activations import get_activation
from course_lib.lessons import activation_gram as ag
from course_lib.models import TwoLayer

from ._fixtures import _cpu_reference, _one_thread  # noqa: F401 - autouse fixtures
from .claims_harness import Invitation, check_defaults, check_invitation, check_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_ACTS = ("relu", "leaky_relu", "selu", "elu", "gelu", "softplus", "tanh", "swish", "erf", "sigmoid")

INVITATIONS = [
    Invitation("Select every activation: gelu, softplus, erf and sigmoid bend like tanh, and leaky ReLU falls on "
               "ReLU's slope.", "4.1", {"activations": ALL_ACTS}),
    Invitation("Set $n = 32$: the same powers, and the bound stays within the same limits (factor 2, and 10 for ELU; "
               "claim `4.2.bound`)", "4.2", {"n": 32}, expect={"4.2.smooth-floor": "does not apply"}),
    Invitation("Set $n = 50$ on the left: the gap still closes to under 10× by $d'=12$ (claim `4.3.gap-closes`)",
               "4.3", {"n": 50}),
    Invitation("Set $\\alpha = 1$, the standard scale. ReLU's loss leaves its dashed line", "4.4", {"alpha": 1},
               expect={"4.4.overlay": "fails", "4.4.kernel-still": "fails"}),
    Invitation("Raise $d'$ to 10: all losses fall by many decades", "4.4", {"d_sub": 10},
               expect={"4.4.not-lambda-min": "does not apply"}),
    *[Invitation("Change the width, from 64 to 2048: at every width each loss follows its own dashed line.", "4.4",
                 {"width": w}) for w in (64, 2048)],
    Invitation("Set $d' = 2$: the counts drop to $k+1$ (claim `4.5.rank`).", "4.5", {"d_sub": 2}),
    *[Invitation("Choose softplus or sigmoid: $\\hat\\phi'(1)<1$", "4.6", {"activation": a}) for a in ("softplus", "sigmoid")],
    Invitation("Try gelu ($\\hat\\phi'(1)=1.07$): it climbs, slowly.", "4.6", {"activation": "gelu"}),
]


@pytest.fixture
def full_length(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")


def verdicts(claims) -> dict:
    return {c.id: c.verdict for c in claims}


# ----------------------------------------------------------------------------------------------
# Claims: defaults, invitations, sweeps
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exp", ag.EXPERIMENTS, ids=lambda e: e.id)
def test_claims_hold_at_the_defaults(exp, full_length):
    check_defaults(exp)


@pytest.mark.parametrize("inv", INVITATIONS, ids=lambda i: f"{i.experiment}-{i.settings}")
def test_claims_at_the_settings_the_text_invites(inv, full_length):
    check_invitation(inv)


def test_the_text_names_the_pair_that_lambda_min_misranks(full_length):
    """"at the defaults tanh has a larger lambda_min than swish, yet ends higher": the claim picks that pair."""
    c = ag.TRAINING.execute().claim("4.4.not-lambda-min")
    assert c.verdict == "holds" and c.tolerance.startswith("tanh") and "above swish" in c.tolerance


@pytest.mark.parametrize("exp", ag.EXPERIMENTS, ids=lambda e: e.id)
def test_sweep_of_the_controls(exp, fast):
    runs = check_sweep(exp)
    assert len(runs) >= 4


def test_invalid_settings_raise_plain_messages():
    with pytest.raises(ValueError, match="which must be one of"):
        ag.dashboard("nope")
    with pytest.raises(ValueError, match="activation must be one of"):
        ag.separation_experiment(("relu", "bogus"))
    with pytest.raises(ValueError, match="delta must be in"):
        ag.depth_experiment("tanh", n=16, delta=0.5)
    with pytest.raises(ValueError, match="activations must be a non-empty selection"):
        ag.TRAINING.execute(activations=())
    with pytest.raises(ValueError, match="choose at least one activation"):
        ag.training_experiment(activations=())
    with pytest.raises(ValueError, match="output scale α must be one of"):
        ag.TRAINING.execute(alpha=3)
    with pytest.raises(ValueError, match="width must be even"):
        ag.training_experiment(width=63)


def test_dashboard_shows_errors_not_exceptions(fast):
    dash = ag.dashboard("training", width=128)
    dash.run()
    assert dash.error is None and dash.png is not None and "4.4.overlay" in dash.status.value
    dash.set(activations=())  # SelectMultiple emptied: a plain message, not an exception
    assert isinstance(dash.error, ValueError) and "at least one activation" in dash.status.value


# ----------------------------------------------------------------------------------------------
# Each claim fails on a deliberately wrong run
# ----------------------------------------------------------------------------------------------
def _tampered(res, **changes):
    out = dict(res)
    out.update(changes)
    return out


def test_coefficient_claims_fail_on_wrong_coefficients():
    res = ag.COEFFICIENTS.execute().result
    per = {a: dict(v) for a, v in res["per_act"].items()}
    p = np.arange(len(per["relu"]["c2"]), dtype=float)
    wrong = dict(per)
    c2 = per["relu"]["c2"].copy()
    c2[1:] = p[1:] ** -2.0 * (p[1:] % 2)  # a p^-2 law: between the two classes
    wrong["relu"] = {**per["relu"], "c2": c2, "parity_slopes": ag.parity_slopes(c2, 64, len(c2))}
    wrong["relu"]["fitted_slope"] = max(wrong["relu"]["parity_slopes"].values())
    assert verdicts(ag.spectra.coefficients_claims(_tampered(res, per_act=wrong)))["4.1.kink-slopes"] == "fails"
    # a smooth activation whose coefficients follow a power law (steep, but straight) does not "bend"
    q = np.arange(len(per["tanh"]["c2"]), dtype=float)
    straight = np.where(q > 0, np.maximum(q, 1) ** -8.0, 1.0)
    s1, s2 = ag.spectra.parity_slopes_all(straight, 16, 64), ag.spectra.parity_slopes_all(straight, 64, 256)
    wrong = dict(per)
    wrong["tanh"] = {**per["tanh"], "c2": straight, "local_slopes": (s1, s2)}
    assert verdicts(ag.spectra.coefficients_claims(_tampered(res, per_act=wrong)))["4.1.smooth-bend"] == "fails"


def test_separation_claims_fail_on_wrong_runs():
    res = ag.SEPARATION.execute().result
    d = res["deltas"]
    # ReLU's lambda_min bent to delta^1.5: the exponent claim fails
    lam = dict(res["lambda_min"])
    lam["relu"] = lam["relu"] * (d / d[-1]) ** 0.5
    assert verdicts(ag.spectra.separation_claims(_tampered(res, lambda_min=lam)))["4.2.kink-power"] == "fails"
    # tanh following a power law delta^2, well above the floor: not "faster than any power, down to the floor"
    lam = dict(res["lambda_min"])
    lam["tanh"] = 1e-3 * (d / d[-1]) ** 2
    assert verdicts(ag.spectra.separation_claims(_tampered(res, lambda_min=lam)))["4.2.smooth-floor"] == "fails"
    # a bound 3x higher lies above the measurement
    bounds = {a: b * 3 for a, b in res["lower_bound"].items()}
    assert verdicts(ag.spectra.separation_claims(_tampered(res, lower_bound=bounds)))["4.2.bound"] == "fails"
    # a bound 3x lower is no longer within a factor 2 for ReLU
    bounds = {a: b / 3 for a, b in res["lower_bound"].items()}
    assert verdicts(ag.spectra.separation_claims(_tampered(res, lower_bound=bounds)))["4.2.bound"] == "fails"


def test_dimension_claims_fail_on_wrong_runs():
    res = ag.DIMENSION.execute().result
    bd, bn = res["by_d"], res["by_n"]
    # smooth activations as large as ReLU at d' = 2: no gap to close
    lam = {a: (bd["lambda_min"]["relu"] if a in ("tanh", "swish") else v) for a, v in bd["lambda_min"].items()}
    wrong = _tampered(res, by_d={**bd, "lambda_min": lam})
    assert verdicts(ag.dimension.dimension_claims(wrong))["4.3.gap-closes"] == "fails"
    # ReLU falling like delta^2: no longer tracking the separation
    lam = dict(bn["lambda_min"])
    lam["relu"] = lam["relu"] * bn["separation"] / bn["separation"][0]
    wrong = _tampered(res, by_n={**bn, "lambda_min": lam})
    assert verdicts(ag.dimension.dimension_claims(wrong))["4.3.kink-tracks-separation"] == "fails"
    # tanh never reaching the floor
    at_floor = dict(bn["at_floor"])
    at_floor["tanh"] = np.zeros_like(at_floor["tanh"])
    wrong = _tampered(res, by_n={**bn, "at_floor": at_floor})
    assert verdicts(ag.dimension.dimension_claims(wrong))["4.3.smooth-collapse"] == "fails"
    # a bound that does not fall with n
    ub = {a: np.full_like(v, v[0]) for a, v in bn["upper_bound"].items()}
    wrong = _tampered(res, by_n={**bn, "upper_bound": ub})
    assert verdicts(ag.dimension.dimension_claims(wrong))["4.3.bound"] == "fails"
    wrong = _tampered(res, by_n={**bn, "bound_holds": {**bn["bound_holds"], "relu": False}})
    assert verdicts(ag.dimension.dimension_claims(wrong))["4.3.bound"] == "fails"


def _with_metric(res, a, name, values):
    h = res["history"][a]
    metrics = dict(h.metrics)
    metrics[name] = values
    return _tampered(res, history={**res["history"], a: type(h)(**{**h.__dict__, "metrics": metrics})})


def test_training_claims_fail_on_wrong_runs(full_length):
    res = ag.TRAINING.execute().result
    claims = ag.training.claims
    h = res["history"]["relu"]
    # a loss decaying 1% per step slower than measured leaves the 20% band
    slow = _with_metric(res, "relu", "loss", h["loss"] * np.exp(0.01 * h.steps)[:, None])
    assert verdicts(claims(slow))["4.4.overlay"] == "fails"
    # a Gram matrix that moved by a lot
    moved = _with_metric(res, "tanh", "drift", res["history"]["tanh"]["drift"] * 1e7)
    assert verdicts(claims(moved))["4.4.kernel-still"] == "fails"
    # ReLU ending above tanh: the plateaus no longer rank as the G^inf predictions do
    hi = _with_metric(res, "relu", "loss", h["loss"] * 100)
    assert verdicts(claims(hi))["4.4.rank"] == "fails"
    # tanh ending below swish: lambda_min would have ranked them
    ht = res["history"]["tanh"]
    low = _with_metric(res, "tanh", "loss", ht["loss"] * 0.3)
    assert verdicts(claims(low))["4.4.not-lambda-min"] == "fails"
    # a frozen residual: no mode is ever fit
    frozen = _with_metric(res, "relu", "residual", np.repeat(h["residual"][:1], len(h.steps), axis=0))
    assert verdicts(claims(frozen))["4.4.modes-fit"] == "fails"


def test_polynomial_claims_fail_on_wrong_runs():
    res = ag.POLYNOMIAL.execute().result
    per = {k: dict(v) for k, v in res["per_degree"].items()}
    per[3] = {**per[3], "rank": [r + 1 for r in per[3]["rank"]]}
    assert verdicts(ag.dimension.polynomial_claims(_tampered(res, per_degree=per)))["4.5.rank"] == "fails"
    per = {k: dict(v) for k, v in res["per_degree"].items()}
    per[2] = {**per[2], "lambda_min": [1.0] * len(per[2]["lambda_min"])}
    assert verdicts(ag.dimension.polynomial_claims(_tampered(res, per_degree=per)))["4.5.singular"] == "fails"


def test_depth_claims_fail_on_wrong_runs():
    res = ag.DEPTH.execute().result
    L = np.arange(len(res["depths"]))
    sep = res["one_minus_max_corr"] * 1.05**L  # 5% faster growth per layer than the slope predicts
    wrong = _tampered(res, one_minus_max_corr=sep, factors=sep[1:] / sep[:-1])
    assert verdicts(ag.depth.depth_claims(wrong))["4.6.slope"] == "fails"
    flat = _tampered(res, lambda_min=np.full_like(res["lambda_min"], res["lambda_min"][-1]))
    assert verdicts(ag.depth.depth_claims(flat))["4.6.depth-helps"] == "fails"
    noisy = _tampered(res, max_err_K=res["max_err_K"] * 100)
    assert verdicts(ag.depth.depth_claims(noisy))["4.6.finite-width"] == "fails"
    # softplus: lambda_min leaving the floor would contradict "depth merges the points"
    soft = ag.DEPTH.execute(activation="softplus").result
    up = _tampered(soft, lambda_min=soft["floor"] * 10)
    assert verdicts(ag.depth.depth_claims(up))["4.6.depth-helps"] == "fails"


# ----------------------------------------------------------------------------------------------
# G^inf and the closed forms against independent computations
# ----------------------------------------------------------------------------------------------
def _quad2d(act, rho, order=40, panels=8, L=9.0):
    """E[phi'(u) phi'(v)], (u, v) standard normal with correlation rho, by nested Gauss-Legendre
    quadrature, each integral split where its integrand's kink lies (independent of the Hermite code)."""
    act = get_activation(act)
    x, w = np.polynomial.legendre.leggauss(order)

    def rule(a, b):
        e = np.linspace(a, b, panels + 1)
        nodes = ((e[:-1, None] + e[1:, None]) / 2 + (e[1:, None] - e[:-1, None]) / 2 * x).ravel()
        return nodes, ((e[1:, None] - e[:-1, None]) / 2 * w).ravel()

    def dphi(z):
        return act.dphi(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()

    pdf = lambda z: np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    (u1, w1), (u2, w2) = rule(-L, 0.0), rule(0.0, L)
    u, wu = np.concatenate([u1, u2]), np.concatenate([w1, w2])
    s = math.sqrt(1 - rho * rho)
    total = 0.0
    for ui, wi in zip(u, wu):
        zs = min(max(-rho * ui / s, -L), L)  # v = rho u + s z crosses the kink at z = zs
        (a1, b1), (a2, b2) = rule(-L, zs), rule(zs, L)
        z, wz = np.concatenate([a1, a2]), np.concatenate([b1, b2])
        total += wi * pdf(ui) * dphi(np.array([ui]))[0] * np.sum(wz * pdf(z) * dphi(rho * ui + s * z))
    return total


@pytest.mark.parametrize("name", ["relu", "selu", "elu", "tanh", "swish"])
def test_gram_matches_direct_2d_quadrature(name, tol=1e-9):
    """Entries of G^inf (course_lib.kernels.gram_inf, through the lesson's gram_matrix) for close and far points of
    a half circle (delta = 0.05) against 2-D quadrature. Tolerance: the quadrature itself is good to ~1e-10; the
    kernel is exact for the kinked activations and within 1e-12 E[phi'^2] for the smooth ones."""
    X = data.half_circle(8, 0.05, dtype=torch.float64)
    G = ag.gram_matrix(X, name)
    R = (X @ X.T).numpy()
    for i, j in [(0, 1), (0, 7)]:
        ref = R[i, j] * _quad2d(name, float(R[i, j]))
        assert abs(ref - float(G[i, j])) < tol, (name, i, j, ref, float(G[i, j]))
    assert abs(float(G[3, 3]) - get_activation(name).dphi_second_moment()) < 1e-12


@pytest.mark.parametrize("name", ["selu", "tanh"])
def test_gram_matches_monte_carlo(name):
    """G^inf against a Monte Carlo average over 400k Gaussian w: within 5 standard errors, per entry."""
    X = data.unit_sphere(5, 3, seed=3, dtype=torch.float64)
    G = ag.gram_matrix(X, name)
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    D = get_activation(name).dphi(W @ X.T)  # (samples, n)
    prod = D[:, :, None] * D[:, None, :]
    mean = prod.mean(0) * (X @ X.T)
    se = prod.std(0) / math.sqrt(W.shape[0]) * (X @ X.T).abs()
    assert bool(((mean - G).abs() <= 5 * se + 1e-12).all()), float(((mean - G).abs() / (se + 1e-30)).max())


def test_gram_batch_is_the_gram_of_each_data_set():
    Xs = [data.subspace_data(9, 6, 2, seed=s, dtype=torch.float64) for s in range(3)]
    for name in ("relu", "elu", "tanh"):
        G = ag.gram_batch(Xs, name)
        for i, X in enumerate(Xs):
            assert float((G[i] - ag.gram_matrix(X, name)).abs().max()) < 1e-14


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "selu", "elu"])
def test_closed_form_coefficients_match_quadrature(name):
    """kinked_coeffs (a recursion per piece c e^(t z) 1[side z > 0]) against course_lib's quadrature, p < 2000,
    and their squares summing to E[phi'^2] (the tail beyond 2^18 terms is ~p^-1/2 small for a jump in phi')."""
    c = ag.kinked_coeffs(name, 2000)
    np.testing.assert_allclose(c, get_activation(name).hermite_coeffs(2000), atol=2e-15)
    big = ag.kinked_coeffs(name, 2**18) ** 2
    m2 = get_activation(name).dphi_second_moment()
    tail = m2 - big.sum()
    assert 0 <= tail < (0.003 if name != "elu" else 1e-9), tail


def test_step_and_relu_coefficients_in_closed_form():
    """The step's coefficients s_p = phi(0) h_{p-1}(0) / sqrt(p) (written out here) are ReLU's kinked_coeffs, and
    relu's own coefficients a_p (phi_hermite, by quadrature) are s_{p-1} / sqrt(p) (Gaussian integration by parts)."""
    num = 40
    h0 = np.zeros(num)
    for q in range(0, num, 2):
        h0[q] = (-1) ** (q // 2) * math.sqrt(math.factorial(q)) / (2 ** (q // 2) * math.factorial(q // 2))
    s = np.zeros(num)
    s[0] = 0.5
    s[1:] = h0[:-1] / math.sqrt(2 * math.pi) / np.sqrt(np.arange(1, num))
    np.testing.assert_allclose(ag.kinked_coeffs("relu", num), s, atol=1e-15)
    a, m2 = ag.phi_hermite("relu", num)
    np.testing.assert_allclose(a[1:], s[:-1] / np.sqrt(np.arange(1, num)), atol=1e-12)
    assert a[0] == pytest.approx(1 / math.sqrt(2 * math.pi)) and m2 == pytest.approx(0.5, abs=1e-9)


def test_lower_bound_against_relu_closed_form():
    """The lower bound below lambda_min of the closed-form H^inf (course_lib.kernels, not the lesson's series),
    within a factor 2 and linear in delta (the course's derivation: of order delta / sqrt(log n))."""
    n = 16
    deltas = np.geomspace(0.003, 0.05, 6)
    lam, lb = [], []
    for delta in deltas:
        X = data.half_circle(n, float(delta), dtype=torch.float64)
        H = kernels.relu_h_inf(X)
        lam.append(kernels.lambda_min(H))
        lb.append(ag.lower_bound("relu", n, float(delta)))
        assert lb[-1] <= lam[-1] <= float(H[0, 0] - H[0, 1]) + 1e-15  # G_ii - G_ij bounds lambda_min from above
    ratio = np.array(lam) / np.array(lb)
    assert np.all((1 <= ratio) & (ratio <= 2)), ratio
    # slope 1 up to the slowly varying factor sqrt(log(n) / delta^2)-ish of the bound's cutoff
    assert abs(ag.fit_power(deltas, lb)[0] - 1) < 0.05 and abs(ag.fit_power(deltas, lam)[0] - 1) < 0.02


def test_bounds_bracket_lambda_min():
    """lower_bound <= lambda_min <= upper_bound for random subspace data and several activations."""
    for d_sub in (2, 3):
        X = data.subspace_data(20, 8, d_sub, seed=1, dtype=torch.float64)
        delta = data.separation(X)
        for name in ("relu", "elu", "tanh", "swish"):
            ev = ag.spectrum(ag.gram_matrix(X, name))
            assert ag.lower_bound(name, 20, delta) <= ev[0] + 1e-12 * ev[-1]
            assert ev[0] <= ag.upper_bound(name, 20, d_sub) + 1e-12 * ev[-1]


@pytest.mark.parametrize("k,d_sub", [(2, 2), (3, 2), (2, 3), (3, 3), (4, 3)])
def test_polynomial_rank_is_the_dimension_count(k, d_sub):
    """rank G = min(n, C(d'+k-1, k)), and the same as the rank of the explicit degree-k monomial features
    (an independent construction of the feature space)."""
    res = ag.polynomial_experiment((k,), d_sub=d_sub, n_max=30)
    r = res["per_degree"][k]
    assert r["rank"] == r["predicted"]
    X = data.subspace_data(30, 16, d_sub, seed=0, dtype=torch.float64)
    Z = (X @ torch.linalg.qr(X.T)[0][:, :d_sub]).numpy()  # coordinates in the data's own subspace
    feats = np.stack([np.prod(Z[:, list(c)], axis=1) for c in combinations_with_replacement(range(d_sub), k)], 1)
    assert np.linalg.matrix_rank(feats, tol=1e-9) == math.comb(d_sub + k - 1, k) == r["singular_from"] - 1


def test_dual_activation_against_monte_carlo_and_its_slope():
    """phi-hat(rho) = E[phi(u) phi(v)] / E[phi^2] by Monte Carlo (unit-variance inputs, correlation rho), and
    phi-hat'(1) (by quadrature) against a finite difference of the series at rho = 1."""
    gen = torch.Generator().manual_seed(1)
    u, z = torch.randn(2, 400_000, generator=gen, dtype=torch.float64)
    for name in ("tanh", "softplus", "gelu"):
        act = get_activation(name)
        m2 = float((act.phi(u) ** 2).mean())
        for rho in (0.3, 0.9):
            v = rho * u + math.sqrt(1 - rho * rho) * z
            mc = float((act.phi(u) * act.phi(v)).mean()) / m2
            series = float(ag.dual_correlation(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64), name)[0, 1])
            assert abs(mc - series) < 0.01, (name, rho, mc, series)
        eps = 1e-5
        R = torch.tensor([[1.0, 1 - eps], [1 - eps, 1.0]], dtype=torch.float64)
        fd = (1 - float(ag.dual_correlation(R, name)[0, 1])) / eps
        assert fd == pytest.approx(ag.dual_slope(name), rel=1e-3)


def test_depth_kernel_matches_a_wide_network():
    """The composed dual activation (NNGP K) and the last layer's G against one random net of width 4096:
    correlations entrywise within 6/sqrt(m) (Monte Carlo over the width)."""
    X = data.half_circle(10, 0.1, dtype=torch.float64)
    m = 4096
    emp = ag.empirical_deep_grams(X, "tanh", 4, m, seed=0)
    for L, (G, K) in enumerate(ag.deep_grams(X, "tanh", 4)):
        Ge, Ke = emp[L]
        assert float((ag.correlation(Ke) - K).abs().max()) < 6 / math.sqrt(m)
        assert float((ag.correlation(Ge) - ag.correlation(G)).abs().max()) < 6 / math.sqrt(m)


# ----------------------------------------------------------------------------------------------
# Training: the dashed line is this network's own linearized dynamics; the recorded state
# ----------------------------------------------------------------------------------------------
def test_training_prediction_is_this_networks_own_linearized_dynamics(fast):
    """u(0) = 0 (antisymmetric start); the dashed curve equals an independent iteration of
    r <- r - eta G(0) r, with G(0) built here from phi'(w_r . x_i) (not with course_lib.kernels)."""
    res = ag.training_experiment(("tanh",), width=256, alpha=16, steps=30)
    assert np.abs(res["u0"]["tanh"]).max() < 1e-12
    X = data.subspace_data(8, 10, 2, seed=0, dtype=torch.float64)
    model = TwoLayer(256, "tanh")
    p = model.init(10, seed=0, dtype=torch.float64)
    W = p["W"][0].clone()
    W[128:] = W[:128]
    D = get_activation("tanh").dphi(X @ W.T)  # (n, m); |a_r| = alpha, divided out
    G0 = (X @ X.T) * (D @ D.T) / 256
    y = torch.tensor(res["y"])
    r = -y
    losses = [0.5 * float(r @ r)]
    for _ in range(res["steps"]):
        r = r - res["lr"] * (G0 @ r)
        losses.append(0.5 * float(r @ r))
    np.testing.assert_allclose(res["prediction"]["tanh"], losses, rtol=1e-9)
    assert res["lr"] == pytest.approx(1.0 / float(kernels.spectrum(ag.gram_matrix(X, "tanh"))[-1]), rel=1e-12)


def test_training_drift_is_the_operator_norm_of_the_gram_change(fast):
    res = ag.training_experiment(("elu",), width=128, alpha=1, steps=20)
    h = res["history"]["elu"]
    assert h.steps[-1] == res["steps"]
    model = TwoLayer(128, "elu")
    X = data.subspace_data(8, 10, 2, seed=0, dtype=torch.float64)
    G0 = kernels.empirical_gram(model, h.params0, X)[0]
    GT = kernels.empirical_gram(model, h.params, X)[0]
    assert h["drift"][-1, 0] == pytest.approx(float(torch.linalg.svdvals(GT - G0)[0]), rel=1e-9)
    np.testing.assert_allclose(h["gram_eigs"][-1, 0], torch.linalg.eigvalsh(GT).numpy(), rtol=1e-9, atol=1e-15)


def test_stacked_nets_match_one_two_layer_net_each():
    """StackedTwoLayer (all activations in one train call) against course_lib.models.TwoLayer, net by net: outputs,
    losses and gradients (TwoLayer's gradient is itself checked against autograd in test_models)."""
    acts = ("relu", "elu", "tanh", "swish")
    X = data.subspace_data(8, 10, 3, seed=1, dtype=torch.float64)
    y = torch.linspace(-1, 1, 8, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    params = {"W": torch.randn(4, 64, 10, generator=gen, dtype=torch.float64),
              "a": torch.randn(4, 64, generator=gen, dtype=torch.float64)}
    stacked = ag.training.StackedTwoLayer(64, acts)
    loss, grads, u = stacked.loss_and_grad(params, X, y)
    np.testing.assert_allclose(stacked.apply(params, X).numpy(), u.numpy(), rtol=1e-13)
    for e, a in enumerate(acts):
        net, p = stacked.member(params, e)
        ref_loss, ref_grads, ref_u = TwoLayer(64, a).loss_and_grad(p, X, y)
        assert net.activation.name == a
        np.testing.assert_allclose(u[e].numpy(), ref_u[0].numpy(), rtol=1e-12)
        np.testing.assert_allclose(float(loss[e]), float(ref_loss[0]), rtol=1e-12)
        np.testing.assert_allclose(grads["W"][e].numpy(), ref_grads["W"][0].numpy(), rtol=1e-10, atol=1e-14)


def test_training_runs_the_mps_case_signature():
    """/work/shared/cases/c04_mps_float64.py calls training_experiment(steps=20)."""
    res = ag.training_experiment(steps=20)
    assert res["acts"] == ("relu", "elu", "tanh", "swish") and not res["partial"]


def test_time_control_replays_the_recorded_state(fast):
    from matplotlib.figure import Figure

    dash = ag.dashboard("training", width=128)
    dash.run()
    frames = dash.frames()
    assert frames[0] == 0 and frames[-1] == dash.result["steps"] and len(frames) >= 10
    png_a = dash.show_step(frames[2])
    png_b = dash.show_step(frames[-1])
    assert png_a != png_b and dash.time_slider.value == frames[-1]
    res = dash.result
    ax = Figure().subplots()
    update = ag.training.state(ax, res)
    k = frames[4]
    arts = update(k)
    for j, a in enumerate(res["acts"]):
        filled, hollow = arts[2 * j], arts[2 * j + 1]
        h = res["history"][a]
        i = int(np.searchsorted(h.steps, k))
        eigs = np.linalg.eigvalsh(h["gram"][i, 0])
        coef = np.abs(res["V0"][a].T @ h["residual"][i, 0]) / np.abs(res["V0"][a].T @ (res["u0"][a] - res["y"]))
        fit = coef < math.exp(-1)
        lo = ax.get_ylim()[0]
        np.testing.assert_allclose(filled.get_offsets()[:, 1], np.clip(eigs, lo, None)[fit], rtol=1e-9)
        np.testing.assert_allclose(hollow.get_offsets()[:, 1], np.clip(eigs, lo, None)[~fit], rtol=1e-9)
    assert arts[-1].get_ydata()[0] == pytest.approx(1 / (res["lr"] * k))
    band = arts[-2]  # where 4.4.modes-fit allows either state: 1/(2ηk) .. 2/(ηk)
    assert band.get_y() == pytest.approx(1 / (2 * res["lr"] * k))
    assert band.get_y() + band.get_height() == pytest.approx(2 / (res["lr"] * k))
    update(0)
    assert not band.get_visible() and not np.isfinite(arts[-1].get_ydata()[0])  # 1/(η·0): no line at step 0
    with pytest.raises(ValueError, match="step must be between"):
        dash.show_step(10**6)
    assert dash.small_multiples_png() is not None


# ----------------------------------------------------------------------------------------------
# exercises: solutions pass the public and hidden checks, stubs fail
# ----------------------------------------------------------------------------------------------
def _exercise_functions(path):
    ns = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "check(" not in cell.source:
            exec(cell.source, ns)  # noqa: S102 - our own notebook
    return {"4.1": ns["hermite_coeffs"], "4.2": ns["gram_from_coeffs"], "4.3": ns["rank_by_speed"]}


def _hidden():
    spec = importlib.util.spec_from_file_location("hidden_lesson4", os.path.join(ROOT, "tests", "hidden", "lesson4.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.HIDDEN


def test_solutions_pass_public_and_hidden_checks():
    from course_lib.checks.lesson4 import CHECKS

    fns = _exercise_functions(os.path.join(ROOT, "solutions", "04_activation_gram.ipynb"))
    for key, fn in fns.items():
        for chk in CHECKS[key] + _hidden()[key]:
            chk(fn)


def test_stubs_fail_the_checks():
    from course_lib.checks.lesson4 import CHECKS
    from course_lib.exercises import student_notebook

    nb = student_notebook(nbformat.read(os.path.join(ROOT, "solutions", "04_activation_gram.ipynb"), as_version=4))
    ns = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "check(" not in cell.source:
            exec(cell.source, ns)  # noqa: S102
    for key, name in [("4.1", "hermite_coeffs"), ("4.2", "gram_from_coeffs"), ("4.3", "rank_by_speed")]:
        for chk in CHECKS[key]:
            with pytest.raises(NotImplementedError):
                chk(ns[name])


# ----------------------------------------------------------------------------------------------
# reproduce
# ----------------------------------------------------------------------------------------------
def test_reproduce_writes_figures_numbers_and_claims(tmp_path, fast):
    from course_lib.reproduce import reproduce

    out = reproduce("4", str(tmp_path))
    runs = out["runs"]
    expected = {f"{e.id}.{name}" for e in ag.EXPERIMENTS for name in e.reproduce}
    assert set(runs) == expected
    for entry in runs.values():
        assert (tmp_path / "lesson4" / entry["figure"]).stat().st_size > 10_000
    for name in ("4.4.alpha4096", "4.4.alpha1", "4.4.d10"):
        assert (tmp_path / "lesson4" / runs[name]["state_figure"]).stat().st_size > 10_000
    assert {c["id"] for c in runs["4.4.alpha4096"]["claims"]} == {
        "4.4.overlay", "4.4.kernel-still", "4.4.rank", "4.4.not-lambda-min", "4.4.modes-fit"}
    assert (tmp_path / "lesson4" / "key_numbers.json").exists()


def test_reproduce_paper_runs_figure_1s_layout(tmp_path, fast):
    """``reproduce 4 --paper``: the training runs (loss per activation, G(0) spectrum at step 0) and the λmin panels
    for n = 10 and n = 50, each labelled as the course's closest analogue."""
    from course_lib.reproduce import reproduce

    out = reproduce("4", str(tmp_path), paper=True)
    runs = out["runs"]
    assert set(runs) == {"4.3.n10", "4.3.n50", "4.4.n10", "4.4.n50"}
    for name, entry in runs.items():
        assert entry["settings"]["n"] == int(name[-2:])
        assert entry["paper_note"].startswith("the course's closest analogue")
        assert (tmp_path / "lesson4-paper" / entry["figure"]).stat().st_size > 10_000
    for name in ("4.4.n10", "4.4.n50"):
        assert (tmp_path / "lesson4-paper" / runs[name]["state_figure"]).stat().st_size > 10_000
