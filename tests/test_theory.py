"""Independent checks of course_lib.theory.

References: explicit iterations of the update rules, companion matrices built here from the HB and
NAG updates (numpy eigenvalues), simulated scalar runs, Monte Carlo over x ~ N(0, I) with standard
errors from the samples, and torch autograd of a loop-based closed-form loss written here.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib import theory as T

f64 = torch.float64


def rand_psd(n, seed, floor=0.05):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return B @ B.T / n + floor * np.eye(n)


# ------------------------------------------------------------------------------------------
# Linearized GD
# ------------------------------------------------------------------------------------------
def test_linearized_residuals_vs_explicit_iteration():
    H = rand_psd(6, 0)
    r0 = np.random.default_rng(1).standard_normal(6)
    lr, steps = 0.9 / np.linalg.eigvalsh(H)[-1], 40
    R = T.linearized_residuals(torch.from_numpy(H), torch.from_numpy(r0), lr, steps).numpy()
    assert R.shape == (steps + 1, 6)
    r = r0.copy()
    for k in range(steps + 1):
        # eigendecomposition vs repeated matrix-vector products: rounding ~1e-15 per step
        np.testing.assert_allclose(R[k], r, rtol=0, atol=1e-12)
        r = r - lr * H @ r
    L = T.linearized_loss(torch.from_numpy(H), torch.from_numpy(r0), lr, steps)
    np.testing.assert_allclose(L, 0.5 * np.sum(R**2, axis=1), rtol=1e-14)


def test_linearized_residuals_diverge_above_stability_limit():
    H = rand_psd(5, 2)
    lam_max = np.linalg.eigvalsh(H)[-1]
    assert T.stability_limit(torch.from_numpy(H)) == pytest.approx(2 / lam_max, rel=1e-12)
    r0 = np.ones(5)
    below = T.linearized_loss(torch.from_numpy(H), torch.from_numpy(r0), 0.99 * 2 / lam_max, 300)
    above = T.linearized_loss(torch.from_numpy(H), torch.from_numpy(r0), 1.01 * 2 / lam_max, 300)
    assert below[-1] < below[0] and above[-1] > 10 * above[0]  # |1 - eta lam_max| = 1.01 > 1


def test_linearized_validation():
    H = torch.eye(3, dtype=f64)
    with pytest.raises(ValueError, match="H must be n x n"):
        T.linearized_residuals(H, torch.ones(4), 0.1, 3)
    with pytest.raises(ValueError, match=r"^lr\b"):
        T.linearized_residuals(H, torch.ones(3), 0.0, 3)
    with pytest.raises(ValueError, match=r"^steps\b"):
        T.linearized_residuals(H, torch.ones(3), 0.1, -1)


def test_linearized_modes_with_a_given_eigendecomposition():
    """eig=(lam, V) skips the decomposition and gives the same coefficients as decomposing H (and as the
    explicit iteration r <- r - lr H r, projected on V)."""
    H = rand_psd(6, 3)
    r0 = np.random.default_rng(4).standard_normal(6)
    lr = 0.7 / np.linalg.eigvalsh(H)[-1]
    lam, V, coef = T.linearized_modes(torch.from_numpy(H), torch.from_numpy(r0), lr, [0, 3, 17])
    lam2, V2, coef2 = T.linearized_modes(None, torch.from_numpy(r0), lr, [0, 3, 17], eig=(lam, V))
    np.testing.assert_array_equal(coef, coef2)
    r = r0.copy()
    for _ in range(17):
        r = r - lr * H @ r
    np.testing.assert_allclose(coef2[2], V.T @ r, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="eig must be"):
        T.linearized_modes(None, torch.ones(5), lr, 3, eig=(lam, V))


def test_du_bound_formula():
    out = T.du_bound(2.5, 0.3, 0.4, 10)
    ref, v = [], 2.5
    for _ in range(11):  # loss0 (1 - eta lambda0 / 2)^k by repeated multiplication
        ref.append(v)
        v *= 1 - 0.4 * 0.3 / 2
    np.testing.assert_allclose(out, ref, rtol=1e-14)
    with pytest.raises(ValueError, match=r"^lambda0\b"):
        T.du_bound(1.0, -0.1, 0.1, 3)
    with pytest.raises(ValueError, match=r"^loss0\b"):
        T.du_bound(-1.0, 0.1, 0.1, 3)


# ------------------------------------------------------------------------------------------
# Momentum rates
# ------------------------------------------------------------------------------------------
def companion(method: str, lam: float, lr: float, beta: float) -> np.ndarray:
    """One step of the method on the scalar quadratic L(w) = lam e^2 / 2, state (e_k, e_{k-1})."""
    if method == "hb":
        # e+ = e - lr lam e + beta (e - e_prev)
        return np.array([[1 - lr * lam + beta, -beta], [1.0, 0.0]])
    if method == "nag":
        # v = e + beta (e - e_prev); e+ = v - lr lam v
        q = 1 - lr * lam
        return np.array([[q * (1 + beta), -q * beta], [1.0, 0.0]])
    return np.array([[1 - lr * lam, 0.0], [1.0, 0.0]])  # gd: e+ = e - lr lam e


def spectral_radius(M):
    return float(np.max(np.abs(np.linalg.eigvals(M))))


GRID = list(itertools.product([0.0, 0.05, 0.3, 1.0, 1.7, 2.5], [0.3, 1.0], [0.0, 0.3, 0.6, 0.9, 0.99]))


@pytest.mark.parametrize("method", ["gd", "hb", "nag"])
def test_mode_rate_vs_companion_matrix(method):
    lam = np.array([g[0] for g in GRID])
    for lr in (0.3, 1.0):
        for beta in (0.0, 0.3, 0.6, 0.9, 0.99):
            if method == "gd" and beta:
                continue
            got = T.mode_rate(lam, lr, beta, method)
            ref = [spectral_radius(companion(method, l, lr, beta)) for l in lam]
            # at a double root (critical damping) both the quadratic formula and the 2x2 eigenvalue
            # solver lose half the digits: error ~ sqrt(machine eps) ~ 1.5e-8
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_mode_rate_scalar_and_gd_beta_zero_equivalence():
    lam = np.linspace(0, 3, 31)
    # HB and NAG with beta = 0 are GD
    np.testing.assert_allclose(T.mode_rate(lam, 0.5, 0.0, "hb"), np.abs(1 - 0.5 * lam), atol=1e-15)
    np.testing.assert_allclose(T.mode_rate(lam, 0.5, 0.0, "nag"), np.abs(1 - 0.5 * lam), atol=1e-15)
    assert float(T.mode_rate(0.5, 1.0, 0.5, "hb")) == pytest.approx(spectral_radius(companion("hb", 0.5, 1.0, 0.5)))


def simulate(method, lam, lr, beta, steps, w_star=0.0, w0=-1.3):
    """Run the update rule of the design notes on L(w) = lam (w - w*)^2 / 2; return e_k = w_k - w*.

    w* = 0 keeps e_k accurate in floating point down to 1e-300 (w - w* would stall at ~1e-16 |w*|).
    """
    grad = lambda w: lam * (w - w_star)
    w_prev, w = w0, w0
    errs = [w - w_star]
    for _ in range(steps):
        if method == "gd":
            w_new = w - lr * grad(w)
        elif method == "hb":
            w_new = w - lr * grad(w) + beta * (w - w_prev)
        else:
            v = w + beta * (w - w_prev)
            w_new = v - lr * grad(v)
        w_prev, w = w, w_new
        errs.append(w - w_star)
    return np.array(errs)


# rates between 0.65 and 0.98: real, complex (0.5, 0.95), oscillating (gd 1.97) and q < 0 (nag 1.2) roots
CASES = [("gd", 0.02, 1.0, 0.0), ("gd", 1.97, 1.0, 0.0), ("hb", 0.02, 1.0, 0.5), ("hb", 0.01, 1.0, 0.8),
         ("hb", 0.5, 1.0, 0.95), ("hb", 3.7, 1.0, 0.9), ("nag", 0.05, 1.0, 0.6), ("nag", 0.01, 1.0, 0.9),
         ("nag", 0.02, 1.0, 0.3), ("nag", 1.2, 1.0, 0.9)]


@pytest.mark.parametrize("method,lam,lr,beta", CASES)
def test_mode_rate_vs_simulated_run(method, lam, lr, beta):
    pred = float(T.mode_rate(lam, lr, beta, method))
    K0 = 50
    K = K0 + min(3000, int(300 / -math.log(pred)))  # the error shrinks by ~e^-300: no underflow
    e = simulate(method, lam, lr, beta, K)
    state = np.stack([e[1:], e[:-1]], axis=1)  # s_k = (e_k, e_{k-1}), k >= 1
    emp = (np.linalg.norm(state[K - 1]) / np.linalg.norm(state[K0 - 1])) ** (1 / (K - K0))
    # s_k = V D^k y, y = V^{-1} s_0: ||s_k|| / rho^k lies in [smin(V) |y_top|, smax(V) ||y||], so
    # |log(emp) - log(pred)| <= log(cond(V) ||y|| / |y_top|) / (K - K0)  (y_top: the dominant modes)
    M = companion(method, lam, lr, beta)
    vals, V = np.linalg.eig(M)
    y = np.linalg.solve(V, state[0])
    top = np.abs(vals) >= np.abs(vals).max() * (1 - 1e-9)
    C = np.linalg.cond(V) * np.linalg.norm(y) / np.linalg.norm(y[top])
    assert C < 1e6  # well-conditioned cases only (no double roots), else the bound is vacuous
    assert abs(math.log(emp) - math.log(pred)) <= math.log(C) / (K - K0) + 1e-12


@pytest.mark.parametrize("method", ["gd", "hb", "nag"])
def test_predicted_rate_is_max_over_spectrum(method):
    H = rand_psd(7, 3)
    ev = np.linalg.eigvalsh(H)
    lr, beta = 1.0 / ev[-1], (0.0 if method == "gd" else 0.7)
    pred = T.predicted_rate(ev, lr, beta, method)
    assert isinstance(pred, float)
    ref = max(spectral_radius(companion(method, l, lr, beta)) for l in ev)
    assert pred == pytest.approx(ref, abs=1e-7)  # see the double-root note above
    # simulate the method on the quadratic (1/2) e^T H e in R^7 from a generic start
    rng = np.random.default_rng(4)
    w = w_prev = rng.standard_normal(7)
    norms = []
    for _ in range(2000):
        if method == "gd":
            w_new = w - lr * H @ w
        elif method == "hb":
            w_new = w - lr * H @ w + beta * (w - w_prev)
        else:
            v = w + beta * (w - w_prev)
            w_new = v - lr * H @ v
        w_prev, w = w, w_new
        norms.append(math.hypot(np.linalg.norm(w), np.linalg.norm(w_prev)))
    emp = (norms[-1] / norms[499]) ** (1 / 1500)
    # the slowest mode dominates; transients and eigenvector conditioning change the 1500-step
    # geometric mean by a factor C^(1/1500) with C < 1e3 here: |log ratio| < 5e-3
    assert abs(math.log(emp / pred)) < 5e-3


def test_nag_vs_hb_where_the_gradient_correction_acts():
    # at eta lam = 1 NAG's factor q = 1 - eta lam vanishes (one-step convergence of that mode) while
    # HB keeps |z| = sqrt(beta); NAG is stable only for eta lam < 2 (1 + beta) / (1 + 2 beta), HB up to
    # 2 (1 + beta) (the edges where a root reaches -1: p(-1) = 0 for each characteristic polynomial)
    beta = 0.5
    assert float(T.mode_rate(1.0, 1.0, beta, "nag")) == pytest.approx(0.0, abs=1e-15)
    assert float(T.mode_rate(1.0, 1.0, beta, "hb")) == pytest.approx(math.sqrt(beta), rel=1e-14)
    edge_nag, edge_hb = 2 * (1 + beta) / (1 + 2 * beta), 2 * (1 + beta)
    for edge, method in ((edge_nag, "nag"), (edge_hb, "hb")):
        assert float(T.mode_rate(edge * 0.999, 1.0, beta, method)) < 1
        assert float(T.mode_rate(edge * 1.001, 1.0, beta, method)) > 1


def test_rate_validation():
    with pytest.raises(ValueError, match=r"^method\b"):
        T.mode_rate(1.0, 0.1, 0.5, "adam")
    with pytest.raises(ValueError, match=r"^beta\b"):
        T.mode_rate(1.0, 0.1, 1.0, "hb")
    with pytest.raises(ValueError, match=r"^lr\b"):
        T.predicted_rate([1.0], 0.0, 0.5, "hb")
    with pytest.raises(ValueError, match=r"^eigenvalues\b"):
        T.mode_rate([1.0, np.nan], 0.1)


# ------------------------------------------------------------------------------------------
# Sums of ReLUs: closed-form population loss and gradient
# ------------------------------------------------------------------------------------------
def k_ref(a: torch.Tensor, b: torch.Tensor, same: bool = False) -> torch.Tensor:
    """E[relu(a.x) relu(b.x)] written out for one pair (autograd-friendly); a == b: ||a||^2 / 2."""
    if same:
        return 0.5 * (a * a).sum()
    na, nb = a.norm(), b.norm()
    cos = (a * b).sum() / (na * nb)
    theta = torch.arccos(cos)
    return na * nb * (torch.sqrt(1 - cos * cos) + (math.pi - theta) * cos) / (2 * math.pi)


def loss_ref(c, U, cs, V):
    """sum_ij c_i c_j k(u_i, u_j) - 2 sum_ij c_i c*_j k(u_i, v_j) + sum_ij c*_i c*_j k(v_i, v_j), by loops."""
    total = 0.0
    for i in range(len(c)):
        for j in range(len(c)):
            total = total + c[i] * c[j] * k_ref(U[i], U[j], same=(i == j))
        for j in range(len(cs)):
            total = total - 2 * c[i] * cs[j] * k_ref(U[i], V[j])
    for i in range(len(cs)):
        for j in range(len(cs)):
            total = total + cs[i] * cs[j] * k_ref(V[i], V[j], same=(i == j))
    return total


def _problem(seed, p=3, q=2, d=4):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(p, d, generator=g, dtype=f64)
    V = torch.randn(q, d, generator=g, dtype=f64)
    c = torch.randn(p, generator=g, dtype=f64)
    cs = torch.randn(q, generator=g, dtype=f64)
    return c, U, cs, V


def test_relu_sum_loss_vs_monte_carlo():
    c, U, cs, V = _problem(0)
    loss = float(T.relu_sum_loss(c, U, cs, V, grad=False))
    N = 200_000
    x = torch.randn(N, 4, generator=torch.Generator().manual_seed(1), dtype=f64)
    f = torch.relu(x @ U.T) @ c
    fs = torch.relu(x @ V.T) @ cs
    sq = ((f - fs) ** 2).numpy()
    mean, se = sq.mean(), sq.std(ddof=1) / math.sqrt(N)
    assert abs(loss - mean) <= 5 * se  # 5 standard errors of the sample mean
    assert se < 0.02 * mean  # and the check is sharp: ~1% relative


def test_relu_sum_loss_matches_loop_reference():
    c, U, cs, V = _problem(2, p=4, q=3, d=5)
    loss = float(T.relu_sum_loss(c, U, cs, V, grad=False))
    assert loss == pytest.approx(float(loss_ref(c, U, cs, V)), rel=1e-12)  # same formula, other code


@pytest.mark.parametrize("seed", [3, 4])
def test_relu_sum_loss_gradient_vs_autograd(seed):
    c, U, cs, V = _problem(seed, p=4, q=3, d=5)
    loss, (dc, dU) = T.relu_sum_loss(c, U, cs, V)
    c_, U_ = c.clone().requires_grad_(True), U.clone().requires_grad_(True)
    ref = loss_ref(c_, U_, cs, V)
    gc, gU = torch.autograd.grad(ref, (c_, U_))
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-12)
    # closed-form gradient vs autograd of an independent closed form, both float64: rounding only
    torch.testing.assert_close(dc, gc, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(dU, gU, rtol=1e-8, atol=1e-10)


def test_relu_sum_loss_gradient_vs_finite_differences():
    c, U, cs, V = _problem(5)
    _, (dc, dU) = T.relu_sum_loss(c, U, cs, V)
    h = 1e-6
    L = lambda c_, U_: float(T.relu_sum_loss(c_, U_, cs, V, grad=False))
    num_c = torch.zeros_like(c)
    for i in range(len(c)):
        e = torch.zeros_like(c)
        e[i] = h
        num_c[i] = (L(c + e, U) - L(c - e, U)) / (2 * h)
    num_U = torch.zeros_like(U)
    for idx in itertools.product(range(U.shape[0]), range(U.shape[1])):
        E = torch.zeros_like(U)
        E[idx] = h
        num_U[idx] = (L(c, U + E) - L(c, U - E)) / (2 * h)
    # central differences: truncation O(h^2 L''') ~ 1e-11, rounding O(eps L / h) ~ 1e-9
    torch.testing.assert_close(dc, num_c, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dU, num_U, rtol=1e-6, atol=1e-6)


def test_relu_sum_loss_zero_at_teacher_and_batched():
    _, _, cs, V = _problem(6)
    loss, (dc, dU) = T.relu_sum_loss(cs, V, cs, V)
    assert abs(float(loss)) < 1e-12  # f = f*: E[(f - f*)^2] = 0, up to rounding of O(1) terms
    assert float(dc.abs().max()) < 1e-12 and float(dU.abs().max()) < 1e-12
    # leading ensemble dimension: each member equals its unbatched call
    g = torch.Generator().manual_seed(7)
    Ub = torch.randn(3, 4, 5, generator=g, dtype=f64)
    cb = torch.randn(3, 4, generator=g, dtype=f64)
    Vb = torch.randn(3, 2, 5, generator=g, dtype=f64)
    csb = torch.randn(3, 2, generator=g, dtype=f64)
    lb, (dcb, dUb) = T.relu_sum_loss(cb, Ub, csb, Vb)
    assert lb.shape == (3,) and dcb.shape == (3, 4) and dUb.shape == (3, 4, 5)
    for e in range(3):
        le, (dce, dUe) = T.relu_sum_loss(cb[e], Ub[e], csb[e], Vb[e])
        torch.testing.assert_close(lb[e], le, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(dcb[e], dce, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(dUb[e], dUe, rtol=1e-13, atol=1e-14)


def test_relu_sum_loss_shape_validation():
    c, U, cs, V = _problem(8)
    with pytest.raises(ValueError, match="shapes"):
        T.relu_sum_loss(c[:2], U, cs, V)
    with pytest.raises(ValueError, match="shapes"):
        T.relu_sum_loss(c, U, cs, V[:, :3])


# ------------------------------------------------------------------------------------------
# Identity mapping (Li & Yuan)
# ------------------------------------------------------------------------------------------
def _identity_problem(seed, d=4):
    g = torch.Generator().manual_seed(seed)
    W = 0.4 * torch.randn(d, d, generator=g, dtype=f64)
    Ws = 0.3 * torch.randn(d, d, generator=g, dtype=f64)
    return W, Ws


def identity_loss_ref(W, Ws, identity=True):
    d = W.shape[0]
    eye = torch.eye(d, dtype=f64) if identity else torch.zeros(d, d, dtype=f64)
    U, V = (eye + W).T, (eye + Ws).T  # rows u_i = e_i + w_i, w_i the columns of W
    return loss_ref(torch.ones(d, dtype=f64), U, torch.ones(d, dtype=f64), V)


@pytest.mark.parametrize("identity", [True, False])
def test_identity_population_loss_vs_monte_carlo(identity):
    W, Ws = _identity_problem(0)
    loss = float(T.identity_population_loss(W, Ws, identity=identity, grad=False))
    eye = torch.eye(4, dtype=f64) if identity else torch.zeros(4, 4, dtype=f64)
    N = 200_000
    x = torch.randn(N, 4, generator=torch.Generator().manual_seed(1), dtype=f64)
    f = torch.relu(x @ (eye + W)).sum(1)  # ||relu((I + W)^T x)||_1, rows of x as samples
    fs = torch.relu(x @ (eye + Ws)).sum(1)
    sq = ((f - fs) ** 2).numpy()
    assert abs(loss - sq.mean()) <= 5 * sq.std(ddof=1) / math.sqrt(N)  # 5 standard errors


@pytest.mark.parametrize("identity", [True, False])
def test_identity_population_loss_gradient_vs_autograd(identity):
    W, Ws = _identity_problem(2)
    loss, g = T.identity_population_loss(W, Ws, identity=identity)
    W_ = W.clone().requires_grad_(True)
    ref = identity_loss_ref(W_, Ws, identity)
    (gref,) = torch.autograd.grad(ref, W_)
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-12)
    torch.testing.assert_close(g, gref, rtol=1e-8, atol=1e-10)  # float64, rounding only


def test_identity_population_loss_batched():
    g = torch.Generator().manual_seed(3)
    W = 0.3 * torch.randn(5, 3, 3, generator=g, dtype=f64)
    Ws = 0.3 * torch.randn(5, 3, 3, generator=g, dtype=f64)
    lb, gb = T.identity_population_loss(W, Ws)
    assert lb.shape == (5,) and gb.shape == (5, 3, 3)
    for e in range(5):
        le, ge = T.identity_population_loss(W[e], Ws[e])
        torch.testing.assert_close(lb[e], le, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(gb[e], ge, rtol=1e-13, atol=1e-14)
    # a shared teacher broadcasts
    lshared = T.identity_population_loss(W, Ws[0], grad=False)
    for e in range(5):
        assert float(lshared[e]) == pytest.approx(float(T.identity_population_loss(W[e], Ws[0], grad=False)), rel=1e-13)


def test_identity_loss_zero_at_teacher():
    _, Ws = _identity_problem(4)
    loss, g = T.identity_population_loss(Ws, Ws)
    assert abs(float(loss)) < 1e-12 and float(g.abs().max()) < 1e-12


def test_potential_g_vs_loop():
    W, Ws = _identity_problem(5, d=5)
    ref = 0.0
    for i in range(5):
        e = np.zeros(5)
        e[i] = 1.0
        ref += np.linalg.norm(e + Ws[:, i].numpy()) - np.linalg.norm(e + W[:, i].numpy())
    assert float(T.potential_g(W, Ws)) == pytest.approx(ref, rel=1e-13, abs=1e-14)
    assert float(T.potential_g(Ws, Ws)) == 0.0
    # batched
    g = torch.Generator().manual_seed(6)
    Wb = 0.3 * torch.randn(4, 5, 5, generator=g, dtype=f64)
    pb = T.potential_g(Wb, Ws)
    assert pb.shape == (4,)
    for e in range(4):
        assert float(pb[e]) == pytest.approx(float(T.potential_g(Wb[e], Ws)), rel=1e-13, abs=1e-15)


# ------------------------------------------------------------------------------------------
# Rounding-level negatives of PSD spectra, degenerate input (issue 16, c05)
# ------------------------------------------------------------------------------------------
def _singular_gram() -> tuple[np.ndarray, float, float]:
    """H^inf of ReLU with a repeated point, built in numpy (arc-cosine formula, not course_lib): singular, so
    its smallest eigenvalue is 0 exactly and numpy's eigvalsh returns it rounded, often slightly negative."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X[7] = X[3]
    R = np.clip(X @ X.T, -1, 1)
    H = R * (math.pi - np.arccos(R)) / (2 * math.pi)
    np.fill_diagonal(H, 0.5)
    ev = np.linalg.eigvalsh(H)
    return H, float(ev[0]), float(ev[-1])


def test_du_bound_accepts_a_rounded_zero_lambda0():
    _, lam0, lam_max = _singular_gram()
    assert abs(lam0) < 1e-14 * lam_max  # a rounded 0 (its sign is rounding)
    for lam in (lam0, -abs(lam0) - 1e-17, -1e-13 * lam_max):
        out = T.du_bound(1.0, lam, 1.0 / lam_max, 5)
        np.testing.assert_array_equal(out, np.ones(6))  # taken as exactly 0: the bound stays at loss0
        out = T.du_bound(1.0, lam, 1.0 / lam_max, 5, scale=lam_max)
        np.testing.assert_array_equal(out, np.ones(6))
    # beyond the documented tolerance (1e-12 x the scale) it is a real negative eigenvalue: refused, named
    with pytest.raises(ValueError, match=r"^lambda0 must be >= 0 .*got -1e-06, below the rounding level -1e-12 x 1/lr"):
        T.du_bound(1.0, -1e-6, 1.0 / lam_max, 5)
    with pytest.raises(ValueError, match=r"^lambda0 must be >= 0 .*-1e-12 x scale"):
        T.du_bound(1.0, -1e-6, 0.5, 5, scale=lam_max)
    with pytest.raises(ValueError, match=r"^scale\b"):
        T.du_bound(1.0, 0.1, 0.5, 5, scale=-1.0)


def test_stability_limit_vs_numpy_and_degenerate_matrices():
    H, _, lam_max = _singular_gram()
    assert T.stability_limit(H) == pytest.approx(2 / lam_max, rel=1e-14)
    for bad, what in ((np.zeros((3, 3)), "H is zero"), (-np.eye(2), r"lambda_max\(H\) = -1")):
        with pytest.raises(ValueError, match=rf"^H must be positive semi-definite with lambda_max > 0; {what}"):
            T.stability_limit(bad)
    with pytest.raises(ValueError, match=r"^H must be a non-empty square matrix"):
        T.stability_limit(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^H must be a non-empty square matrix"):
        T.stability_limit(np.zeros((0, 0)))


# every public function of theory.py and kernels.py, on degenerate input: a ValueError or TypeError that names
# the parameter, never ZeroDivisionError / IndexError / a bare torch RuntimeError
def _degenerate_calls():
    from course_lib import kernels as K

    Z = torch.zeros(3, 3, dtype=torch.float64)
    E = torch.zeros(0, 0, dtype=torch.float64)
    nan = torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=torch.float64)
    return [
        ("H", lambda: T.stability_limit(Z)),
        ("H", lambda: T.stability_limit(E)),
        ("H", lambda: T.linearized_residuals(nan, torch.ones(2), 0.1, 3)),
        ("H must be n x n", lambda: T.linearized_residuals(torch.ones(2, 3), torch.ones(2), 0.1, 3)),
        ("steps", lambda: T.linearized_modes(torch.eye(2), torch.ones(2), 0.1, [0, -1])),
        ("lr", lambda: T.linearized_loss(torch.eye(2), torch.ones(2), float("inf"), 3)),
        ("lambda0", lambda: T.du_bound(1.0, float("nan"), 0.1, 3)),
        ("eigenvalues", lambda: T.predicted_rate([], 0.1)),
        ("eigenvalues", lambda: T.mode_rate(np.array([]), 0.1)),
        ("U", lambda: T.relu_sum_loss(torch.ones(2), torch.tensor([[1.0, float("inf")], [0.0, 1.0]]),
                                      torch.ones(1), torch.ones(1, 2))),
        ("shapes do not match", lambda: T.relu_sum_loss(torch.ones(3), torch.ones(2, 2), torch.ones(1), torch.ones(1, 2))),
        ("W", lambda: T.identity_population_loss(torch.zeros(2, 3), torch.zeros(2, 3))),
        ("W and W_star", lambda: T.potential_g(torch.zeros(2, 2), torch.zeros(3, 3))),
        ("G", lambda: K.spectrum(E)),
        ("G", lambda: K.lambda_min(torch.ones(2, 3))),
        ("G", lambda: K.eigh(E)),
        ("G", lambda: K.psd_spectrum(-torch.eye(2, dtype=torch.float64))),
        ("X", lambda: K.relu_h_inf(torch.ones(3))),
        ("A and B", lambda: K.arccos1(torch.ones(2, 2), torch.ones(2, 3))),
        ("A and B", lambda: K.angles(torch.ones(2, 2), torch.ones(2, 3))),
        ("X must have unit-norm rows", lambda: K.gram_hermite(2 * torch.eye(2), "tanh")),
        ("num_coeffs", lambda: K.gram_inf(torch.eye(2), "tanh", 0)),
        ("activation", lambda: K.gram_inf(torch.eye(2), "nope")),
        ("theta", lambda: K.dphi_kernel(torch.tensor([float("nan")]), "relu")),
        ("R must be a correlation matrix", lambda: K.gram_from_correlation(3 * torch.eye(2), "relu")),
        ("member", lambda: K.empirical_ntk(None, {}, torch.eye(2), member=-1)),
        ("model must be a TwoLayer", lambda: K.empirical_gram(object(), {}, torch.eye(2))),
    ]


@pytest.mark.parametrize("name,call", _degenerate_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_degenerate_input_names_the_parameter(name, call):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert name in str(err.value), str(err.value)


def test_psd_spectrum_takes_rounding_as_zero():
    from course_lib import kernels as K

    H, _, lam_max = _singular_gram()
    ev = K.psd_spectrum(H)
    assert float(ev[0]) >= 0.0 and float(ev[0]) < 1e-14 * lam_max
    raw = K.spectrum(H)
    np.testing.assert_allclose(ev[1:], raw[1:], rtol=0, atol=0)
    assert K.lambda_min(H, psd=True) >= 0.0
    # a batch, and a clearly indefinite matrix
    batch = np.stack([H, H])
    assert K.psd_spectrum(batch).shape == (2, 20)
    with pytest.raises(ValueError, match=r"^G must be positive semi-definite; it has an eigenvalue -1 x lambda_max"):
        K.psd_spectrum(np.diag([1.0, -1.0]))
