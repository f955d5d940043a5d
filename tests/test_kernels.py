"""Independent numerical checks of course_lib.kernels.

References: Monte Carlo over w ~ N(0, I) with standard errors computed from the samples, 2-D
quadrature of E[phi'(u) phi'(v)] for correlated standard normals (scipy's Gauss-Hermite rule for
smooth phi'; a closed-form inner integral and scipy.integrate.quad split at the kink for kinked ones),
the ReLU closed forms, numpy's eigvalsh and autograd Jacobians.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import torch
from .test_activations import REF_DPHI, SELU_ALPHA, SELU_LAMBDA, relu_closed_form

from course_lib import kernels as K
from course_lib.activations import get_activation
from course_lib.models import TwoLayer, select

f64 = torch.float64


def rand_unit(n, d, seed, *, max_abs_cos=None):
    """n unit vectors in R^d from numpy (not course_lib.data); optionally resampled until every
    off-diagonal |cos| is at most max_abs_cos."""
    rng = np.random.default_rng(seed)
    while True:
        X = rng.standard_normal((n, d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        R = X @ X.T - np.eye(n)
        if max_abs_cos is None or np.abs(R).max() <= max_abs_cos:
            return X


# ------------------------------------------------------------------------------------------
# Closed forms vs Monte Carlo
# ------------------------------------------------------------------------------------------
def _mc_mean_and_se(samples: np.ndarray):
    """Mean and standard error over axis 0."""
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])


def test_relu_h_inf_vs_monte_carlo():
    X = rand_unit(6, 5, seed=1)
    N = 200_000
    W = np.random.default_rng(2).standard_normal((N, 5))
    ind = (W @ X.T >= 0).astype(float)  # (N, n)
    inner = X @ X.T
    # per-entry mean of <x_i, x_j> 1[w.x_i >= 0] 1[w.x_j >= 0] and its standard error
    mean, se = _mc_mean_and_se(ind[:, :, None] * ind[:, None, :] * inner[None])
    H = K.relu_h_inf(torch.from_numpy(X)).numpy()
    assert H.dtype == np.float64 and H.shape == (6, 6)
    # 5 standard errors per entry (false alarm ~6e-7 per entry); 1e-15 covers the exact-zero SE
    # of entries with inner product 0 (none here)
    assert np.all(np.abs(H - mean) <= 5 * se + 1e-15)
    # exact values that need no sampling: diagonal ||x||^2 / 2, antipodal points 0
    np.testing.assert_allclose(np.diag(H), 0.5, rtol=0, atol=1e-15)


def test_relu_h_inf_special_angles():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [math.cos(1.0), math.sin(1.0)]], dtype=f64)
    H = K.relu_h_inf(X)
    assert float(H[0, 1]) == 0.0  # orthogonal: <x, y> = 0
    assert float(H[0, 2]) == pytest.approx(0.0, abs=1e-16)  # antipodal: P(both positive) = 0
    # angle 1 rad: cos(1) (pi - 1) / (2 pi), the half-space intersection probability
    assert float(H[0, 3]) == pytest.approx(math.cos(1.0) * (math.pi - 1) / (2 * math.pi), rel=1e-14)
    # non-unit rows: bilinear in the norms
    H2 = K.relu_h_inf(X * torch.tensor([[2.0], [1.0], [1.0], [3.0]], dtype=f64))
    assert float(H2[0, 3]) == pytest.approx(6 * float(H[0, 3]), rel=1e-14)
    assert float(H2[0, 0]) == pytest.approx(2.0, rel=1e-15)


def test_arccos1_vs_monte_carlo_non_unit_rows():
    rng = np.random.default_rng(3)
    Amat = rng.standard_normal((4, 3)) * np.array([[0.5], [1.0], [2.0], [3.0]])
    Bmat = rng.standard_normal((3, 3)) * np.array([[1.5], [0.2], [1.0]])
    N = 200_000
    W = np.random.default_rng(4).standard_normal((N, 3))
    ra, rb = np.maximum(W @ Amat.T, 0), np.maximum(W @ Bmat.T, 0)
    mean, se = _mc_mean_and_se(ra[:, :, None] * rb[:, None, :])
    Kab = K.arccos1(torch.from_numpy(Amat), torch.from_numpy(Bmat)).numpy()
    assert Kab.shape == (4, 3) and Kab.dtype == np.float64
    assert np.all(np.abs(Kab - mean) <= 5 * se)  # 5 standard errors from the samples
    mean_aa, se_aa = _mc_mean_and_se(ra[:, :, None] * ra[:, None, :])
    assert np.all(np.abs(K.arccos1(torch.from_numpy(Amat)).numpy() - mean_aa) <= 5 * se_aa)


def test_arccos1_exact_values():
    a = torch.tensor([[3.0, 4.0]], dtype=f64)
    # E[relu(w.a)^2] = ||a||^2 / 2; E[relu(w.a) relu(-w.a)] = 0;
    # orthogonal: E[relu(g1)] E[relu(g2)] ||a|| ||b|| = ||a|| ||b|| / (2 pi)
    assert float(K.arccos1(a)) == pytest.approx(12.5, rel=1e-15)
    assert float(K.arccos1(a, -a)) == pytest.approx(0.0, abs=1e-14)
    b = torch.tensor([[-8.0, 6.0]], dtype=f64)
    assert float(K.arccos1(a, b)) == pytest.approx(50 / (2 * math.pi), rel=1e-14)
    zero = torch.zeros(1, 2, dtype=f64)
    assert float(K.arccos1(a, zero)) == 0.0
    with pytest.raises(ValueError, match="columns"):
        K.arccos1(a, torch.ones(1, 3, dtype=f64))


# ------------------------------------------------------------------------------------------
# Hermite-series Gram matrix vs direct 2-D quadrature
# ------------------------------------------------------------------------------------------
_GH_X, _GH_W = sp.roots_hermitenorm(200)  # scipy's rule, not the module's quadrature
_GH_W = _GH_W / math.sqrt(2 * math.pi)

# phi'(t) = A 1[t > 0] + 1[t < 0] (B0 + B1 e^t)
_PIECES = {
    "relu": (1.0, 0.0, 0.0),
    "leaky_relu": (1.0, 0.1, 0.0),
    "elu": (1.0, 0.0, 1.0),
    "selu": (SELU_LAMBDA, 0.0, SELU_LAMBDA * SELU_ALPHA),
}


def e_dphi_dphi(name: str, rho: float) -> float:
    """E[phi'(u) phi'(v)], (u, v) standard normals with correlation rho, v = rho u + s z."""
    f = REF_DPHI[name]
    s = math.sqrt(1 - rho * rho)
    if name not in _PIECES:
        # 2-D Gauss-Hermite, 200 x 200 nodes: converged to ~1e-14 for these analytic phi'
        # (tanh', with poles at +-i pi/2, is the slowest: 150 vs 200 nodes differ by 5e-14)
        U, Z = np.meshgrid(_GH_X, _GH_X, indexing="ij")
        return float(np.einsum("i,j,ij->", _GH_W, _GH_W, f(U) * f(rho * U + s * Z)))
    a, b0, b1 = _PIECES[name]

    def inner(u):
        # E_z[phi'(rho u + s z)] in closed form: A P(z > -t) + B0 P(z < -t) + B1 e^{rho u + s^2/2} Phi(-t - s)
        t = rho * u / s
        val = a * sp.ndtr(t) + b0 * sp.ndtr(-t)
        if b1:
            val += b1 * math.exp(rho * u + s * s / 2 + sp.log_ndtr(-t - s))
        return val

    h = lambda u: float(f(np.float64(u))) * inner(u) * math.exp(-u * u / 2) / math.sqrt(2 * math.pi)
    lo, elo = si.quad(h, -np.inf, 0, epsabs=1e-14, epsrel=1e-13, limit=400)  # split at phi'(u)'s kink
    hi, ehi = si.quad(h, 0, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)
    assert elo + ehi < 1e-12
    return lo + hi


def gram_by_quadrature(X: np.ndarray, name: str) -> np.ndarray:
    R = X @ X.T
    n = len(X)
    G = np.empty((n, n))
    for i in range(n):
        G[i, i] = _second_moment_ref(name)
        for j in range(i):
            G[i, j] = G[j, i] = R[i, j] * e_dphi_dphi(name, float(np.clip(R[i, j], -1, 1)))
    return G


def _second_moment_ref(name):
    f = REF_DPHI[name]
    if name in _PIECES:
        g = lambda z: float(f(np.float64(z))) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return si.quad(g, -np.inf, 0, epsabs=1e-14)[0] + si.quad(g, 0, np.inf, epsabs=1e-14)[0]
    return float(np.sum(_GH_W * f(_GH_X) ** 2))


def test_two_d_reference_matches_relu_closed_form():
    # sanity of the reference itself: P(u > 0, v > 0) = (pi - arccos rho) / (2 pi)
    for rho in (-0.9, -0.3, 0.2, 0.8, 0.99):
        assert e_dphi_dphi("relu", rho) == pytest.approx((math.pi - math.acos(rho)) / (2 * math.pi), abs=1e-13)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "selu", "tanh", "gelu", "erf", "swish",
                                  "softplus", "sigmoid", "poly3"])
def test_gram_hermite_vs_2d_quadrature(name):
    X = rand_unit(5, 3, seed=10, max_abs_cos=0.9)
    G = K.gram_hermite(torch.from_numpy(X), name, num_coeffs=400).numpy()
    ref = gram_by_quadrature(X, name)
    # off-diagonal truncation error <= 0.9^401 E[phi'^2] < 1e-18; both sides are converged to ~1e-13
    np.testing.assert_allclose(G, ref, rtol=0, atol=1e-10)
    assert G.dtype == np.float64
    np.testing.assert_array_equal(G, G.T)


@pytest.mark.parametrize("name", ["selu", "tanh", "elu", "leaky_relu", "gelu"])
def test_gram_hermite_auto_close_points(name):
    # close points (cos up to 0.995): every entry within GRAM_RTOL x E[phi'^2] of the 2-D quadrature (kinked:
    # the closed form; smooth: the series with a rigorous truncation bound); both sides converged to ~1e-13
    t = np.array([0.0, 0.1, 0.5, 1.3, 2.0])
    X = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=1)
    P = K.auto_num_coeffs(torch.from_numpy(X))  # the old heuristic, kept for callers summing their own series
    assert P == math.ceil(math.log(1e-3) / math.log(math.cos(0.1)))  # |rho|^P <= 1e-3
    G = K.gram_hermite(torch.from_numpy(X), name).numpy()
    assert np.all(np.isfinite(G))
    ref = gram_by_quadrature(X, name)
    m2 = _second_moment_ref(name)
    np.testing.assert_allclose(np.diag(G), m2, rtol=0, atol=1e-12)
    assert np.abs(G - ref).max() <= 2e-12 * m2


def test_gram_hermite_relu_truncation_vs_closed_form():
    # 12 points on a half circle 0.2 rad apart (max cos 0.98): lambda_min(H^inf) ~ 0.016
    t = 0.2 * np.arange(12)
    X = np.stack([np.cos(t), np.sin(t)], axis=1)
    Xt = torch.from_numpy(X)
    H = K.relu_h_inf(Xt).numpy()
    lam_H = np.linalg.eigvalsh(H)[0]
    P = 300
    G_drop = K.gram_hermite(Xt, "relu", num_coeffs=P, tail="drop").numpy()
    # the plain truncation misses exactly 1/2 - sum_{p<P} c_p^2 (closed-form c_p) on the diagonal
    missing = 0.5 - np.sum(relu_closed_form(P) ** 2)
    np.testing.assert_allclose(0.5 - np.diag(G_drop), missing, rtol=0, atol=1e-13)
    # H - G_drop = sum_{p >= P} c_p^2 R^(p+1) is PSD (Schur product theorem) with diagonal `missing`, so the
    # truncation underestimates lambda_min, by nearly the whole missing mass
    lam_drop = np.linalg.eigvalsh(G_drop)[0]
    assert lam_drop < lam_H - 0.5 * missing
    # the default (tail="diagonal") is the series' exact value: the closed form, whatever num_coeffs says
    for num in (None, 10, P):
        G = K.gram_hermite(Xt, "relu", num_coeffs=num).numpy()
        np.testing.assert_allclose(G, H, rtol=0, atol=1e-15)


def test_gram_hermite_diagonal_tail_for_smooth_truncation():
    # tanh with an explicit, too short truncation: the missing mass goes on the diagonal (exact diagonal),
    # and the off-diagonal error is bounded by missing * |rho|^(P+1) (every c_p^2 >= 0)
    X = rand_unit(6, 3, seed=21, max_abs_cos=0.9)
    Xt = torch.from_numpy(X)
    P = 8
    G = K.gram_hermite(Xt, "tanh", num_coeffs=P).numpy()
    ref = gram_by_quadrature(X, "tanh")
    c2 = get_activation("tanh").hermite_coeffs(P) ** 2
    missing = _second_moment_ref("tanh") - c2.sum()
    np.testing.assert_allclose(np.diag(G), np.diag(ref), rtol=0, atol=1e-13)
    R = np.abs(X @ X.T)
    off = ~np.eye(6, dtype=bool)
    assert np.all(np.abs(G - ref)[off] <= missing * R[off] ** (P + 1) + 1e-13)
    assert np.abs(G - ref)[off].max() > 1e-6  # the truncation is visible: the test can fail


def test_gram_hermite_relu_default_matches_closed_form():
    X = torch.from_numpy(rand_unit(15, 3, seed=5))
    H = K.relu_h_inf(X)
    G = K.gram_hermite(X, "relu")
    # the closed form through the pieces (Owen's T path) equals the arc-cosine formula to rounding
    assert float((G - H).abs().max()) <= 1e-15
    assert abs(K.lambda_min(G) - K.lambda_min(H)) <= 1e-14
    # gram_inf: closed form for ReLU, the series otherwise
    torch.testing.assert_close(K.gram_inf(X, "relu"), H, rtol=0, atol=0)
    torch.testing.assert_close(K.gram_inf(X, "tanh"), K.gram_hermite(X, "tanh"), rtol=0, atol=0)


def test_gram_hermite_validation():
    X = torch.from_numpy(rand_unit(4, 3, seed=6))
    with pytest.raises(ValueError, match="unit-norm"):
        K.gram_hermite(2 * X, "tanh")
    with pytest.raises(ValueError, match=r"^tail\b"):
        K.gram_hermite(X, "tanh", tail="keep")
    with pytest.raises(ValueError, match=r"^num_coeffs\b"):
        K.gram_hermite(X, "tanh", num_coeffs=0)
    with pytest.raises(ValueError, match=r"^activation\b"):
        K.gram_hermite(X, "nope")


def test_auto_num_coeffs():
    X = torch.from_numpy(rand_unit(6, 4, seed=7))
    rho = np.abs(X.numpy() @ X.numpy().T - np.eye(6)).max()
    P = K.auto_num_coeffs(X)
    assert P == max(64, math.ceil(math.log(1e-3) / math.log(rho)))
    assert rho**P <= 1e-3
    orth = torch.eye(3, dtype=f64)
    assert K.auto_num_coeffs(orth) == 64
    dup = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=f64)
    assert K.auto_num_coeffs(dup) == 2000


# ------------------------------------------------------------------------------------------
# Polynomial activations: exactly singular G once n exceeds the dimension of the feature space
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,dsub", [(1, 3), (2, 2), (2, 3), (3, 2), (3, 3), (4, 2), (5, 2)])
def test_polynomial_gram_rank(k, dsub):
    """phi = z^k: phi' ~ z^(k-1) has c_p != 0 only for p = k-1, k-3, ..., so
    G = sum_q c_{q-1}^2 R^(elementwise q) over q = k, k-2, ... >= 1. (x.y)^q is the Gram kernel of
    the homogeneous degree-q polynomials of R^d' (dimension C(d'+q-1, q)), and on the unit sphere
    |x|^2 = 1 embeds degree q-2 in degree q. So rank G = min(n, C(d'+k-1, k)) for generic unit data
    in a d'-dimensional subspace (below the crude bound sum_{q<=k} C(d'+q-1, q))."""
    dim = math.comb(dsub + k - 1, k)
    rng = np.random.default_rng(100 + 10 * k + dsub)
    basis, _ = np.linalg.qr(rng.standard_normal((6, dsub)))  # a random d'-plane of R^6
    for n, expect in ((dim, dim), (dim + 3, dim)):
        Z = rng.standard_normal((n, dsub))
        X = (Z / np.linalg.norm(Z, axis=1, keepdims=True)) @ basis.T
        ev = np.linalg.eigvalsh(K.gram_hermite(torch.from_numpy(X), f"poly{k}", num_coeffs=k + 4).numpy())
        # float64 eigenvalues of an n x n matrix with entries <= 1: exact zeros show up as < 1e-12;
        # the nonzero ones of generic random data are >= 1e-6 here (checked via the gap)
        rank = int(np.sum(ev > 1e-10 * ev[-1]))
        assert rank == expect, (n, ev)
        if n > dim:
            assert np.all(np.abs(ev[: n - dim]) < 1e-12) and ev[n - dim] > 1e-7


# ------------------------------------------------------------------------------------------
# Finite-width Gram matrices
# ------------------------------------------------------------------------------------------
def test_empirical_gram_converges_to_h_inf_like_one_over_sqrt_m():
    X = rand_unit(10, 4, seed=8)
    Xt = torch.from_numpy(X)
    H = K.relu_h_inf(Xt).numpy()
    # each entry is <x_i, x_j> times a mean of m Bernoulli(p_ij), p_ij = (pi - theta_ij) / (2 pi):
    # E ||H_m - H||_F^2 = sum_ij <x_i, x_j>^2 p_ij (1 - p_ij) / m exactly
    R = np.clip(X @ X.T, -1, 1)
    p = (math.pi - np.arccos(R)) / (2 * math.pi)
    np.fill_diagonal(p, 0.5)
    var_sum = np.sum(R**2 * p * (1 - p))
    E = 16
    ratios, rms = {}, {}
    for m in (500, 8000):
        model = TwoLayer(m, "relu")
        params = model.init(4, ensemble=E, seed=m, dtype=f64, device="cpu")
        Hm = K.empirical_gram(model, params, Xt).numpy()
        assert Hm.shape == (E, 10, 10)
        mse = np.mean(np.sum((Hm - H) ** 2, axis=(1, 2)))
        ratios[m], rms[m] = mse / (var_sum / m), math.sqrt(mse)
    # mean of 16 squared Frobenius errors against its exact expectation: the ratio is 1 with a
    # standard error of ~0.12 (measured over the 16 nets); [0.5, 1.6] is ~4-5 standard errors
    for m, r in ratios.items():
        assert 0.5 < r < 1.6, (m, r)
    # hence the error shrinks like 1/sqrt(m): a 16x wider net is 4x closer (2.2 .. 7.2 by the bounds)
    assert 4 * math.sqrt(0.5 / 1.6) < rms[500] / rms[8000] < 4 * math.sqrt(1.6 / 0.5)


def test_empirical_gram_matches_indicator_formula():
    # doc: H_ij = <x_i, x_j> (1/m) sum_r 1[w_r.x_i >= 0] 1[w_r.x_j >= 0] for ReLU with a_r = +-1
    X = rand_unit(7, 3, seed=9)
    model = TwoLayer(50, "relu")
    params = model.init(3, ensemble=2, seed=1, dtype=f64, device="cpu")
    Hm = K.empirical_gram(model, params, torch.from_numpy(X)).numpy()
    for e in range(2):
        Wn = params["W"][e].numpy()
        ind = (X @ Wn.T >= 0).astype(float)  # (n, m)
        ref = (X @ X.T) * (ind @ ind.T) / 50
        np.testing.assert_allclose(Hm[e], ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "tanh", "selu"])
@pytest.mark.parametrize("train_output", [False, True])
@pytest.mark.parametrize("output_init", ["sign", "gaussian"])
def test_empirical_gram_vs_autograd_ntk(activation, train_output, output_init):
    model = TwoLayer(40, activation, train_output=train_output, output_init=output_init)
    params = model.init(5, ensemble=3, seed=2, device="cpu")  # float32 parameters: both paths work in float64
    X = torch.from_numpy(rand_unit(6, 5, seed=11))
    Hm = K.empirical_gram(model, params, X)
    assert Hm.dtype == f64
    for e in range(3):
        ntk = K.empirical_ntk(model, params, X, member=e)
        # J J^T two ways in float64 (closed-form Jacobian vs autograd): rounding only
        torch.testing.assert_close(Hm[e], ntk, rtol=1e-10, atol=1e-12)
    # include_output overrides the model's setting: first-layer part + output part
    H_first = K.empirical_gram(model, params, X, include_output=False)
    H_both = K.empirical_gram(model, params, X, include_output=True)
    pre = torch.einsum("nd,emd->enm", X, params["W"].to(f64))
    F = get_activation(activation).phi(pre)
    torch.testing.assert_close(H_both - H_first, F @ F.transpose(1, 2) / 40, rtol=1e-10, atol=1e-12)


def test_empirical_ntk_member_and_batch_consistency():
    model = TwoLayer(30, "gelu", train_output=True)
    params = model.init(4, ensemble=3, seed=3, dtype=f64, device="cpu")
    X = torch.from_numpy(rand_unit(5, 4, seed=12))
    H = K.empirical_gram(model, params, X)
    for e in range(3):
        torch.testing.assert_close(K.empirical_gram(model, select(params, e), X)[0], H[e], rtol=1e-13, atol=1e-15)
    with pytest.raises(TypeError, match=r"^model\b"):
        K.empirical_gram(object(), params, X)
    with pytest.raises(ValueError, match=r"^member\b"):
        K.empirical_ntk(model, params, X, member=-1)


# ------------------------------------------------------------------------------------------
# Spectra
# ------------------------------------------------------------------------------------------
def test_spectrum_and_lambda_min_vs_numpy():
    rng = np.random.default_rng(13)
    B = rng.standard_normal((8, 8))
    S = B @ B.T + 1e-3 * np.eye(8)
    ev = K.spectrum(torch.from_numpy(S)).numpy()
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(S), rtol=1e-12, atol=1e-12)  # LAPACK both
    assert K.lambda_min(torch.from_numpy(S)) == pytest.approx(np.linalg.eigvalsh(S)[0], rel=1e-10)
    assert isinstance(K.lambda_min(torch.from_numpy(S)), float)
    # a non-symmetric input is symmetrized; float32 input is promoted
    N = rng.standard_normal((5, 5))
    np.testing.assert_allclose(K.spectrum(torch.from_numpy(N)).numpy(), np.linalg.eigvalsh((N + N.T) / 2),
                               rtol=1e-12, atol=1e-12)
    assert K.spectrum(torch.from_numpy(S).float()).dtype == f64
    # batches: one spectrum per matrix, lambda_min a tensor
    batch = np.stack([S, 2 * S, S + np.eye(8)])
    lam = K.lambda_min(torch.from_numpy(batch))
    assert isinstance(lam, torch.Tensor) and lam.shape == (3,)
    np.testing.assert_allclose(lam.numpy(), [np.linalg.eigvalsh(M)[0] for M in batch], rtol=1e-10)
    vals, vecs = K.eigh(torch.from_numpy(S))
    np.testing.assert_allclose(vecs.numpy() @ np.diag(vals.numpy()) @ vecs.numpy().T, S, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        K.spectrum(torch.ones(3, 4, dtype=f64))
    with pytest.raises(ValueError, match=r"^G\b"):
        K.spectrum(torch.ones(3, dtype=f64))


def test_h_inf_is_positive_definite_for_distinct_points():
    # Du et al.: lambda_min(H^inf) > 0 when no two x_i are parallel
    X = rand_unit(20, 3, seed=14)
    assert K.lambda_min(K.relu_h_inf(torch.from_numpy(X))) > 0
    # and exactly singular with a duplicated point (two equal rows)
    Xd = np.vstack([X, X[:1]])
    assert abs(K.lambda_min(K.relu_h_inf(torch.from_numpy(Xd)))) < 1e-14


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    X = torch.from_numpy(rand_unit(6, 4, seed=15))
    torch.testing.assert_close(K.relu_h_inf(X.cuda()).cpu(), K.relu_h_inf(X), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(K.gram_hermite(X.cuda(), "tanh").cpu(), K.gram_hermite(X, "tanh"), rtol=1e-12, atol=1e-14)
    model = TwoLayer(64, "relu", train_output=True)
    p_cpu = model.init(4, ensemble=2, seed=0, dtype=f64, device="cpu")
    p_gpu = model.init(4, ensemble=2, seed=0, dtype=f64, device="cuda")
    # same seed, same weights on every device; float64 Gram matrices agree to rounding
    torch.testing.assert_close(p_gpu["W"].cpu(), p_cpu["W"], rtol=0, atol=0)
    torch.testing.assert_close(K.empirical_gram(model, p_gpu, X).cpu(), K.empirical_gram(model, p_cpu, X),
                               rtol=1e-12, atol=1e-14)
