"""Numerics that every device and every data set rely on, checked against independent computations.

* angles of nearly parallel / antiparallel vectors against 50-digit mpmath (``kernels.angles``);
* the infinite-width Gram matrix of every kinked activation against mpmath quadrature of
  E[phi'(u) phi'(v)] (an outer integral over u of a closed-form inner expectation over v | u, a derivation
  independent of the library's Owen's-T closed form), against Monte Carlo, and at repeated points (exactly
  singular);
* the Hermite series' refusal where it cannot resolve the data (a kinked activation without a closed form).

The reference phi' are written out here by hand (Klambauer et al.'s SELU constants to 30 digits).
"""
from __future__ import annotations

import functools
import math

import mpmath as mp
import numpy as np
import pytest
import torch

from course_lib import kernels as K
from course_lib import theory
from course_lib.activations import JUMP_DPHI, Activation, get_activation

f64 = torch.float64
SELU_L = mp.mpf("1.0507009873554804934193349852946")
SELU_A = mp.mpf("1.6732632423543772848170429916717")
# phi'(t) = A 1[t > 0] + 1[t < 0] (B0 + B1 e^t), from the definitions of the activations
PIECES = {
    "relu": (mp.mpf(1), mp.mpf(0), mp.mpf(0)),
    "leaky_relu": (mp.mpf(1), mp.mpf("0.1"), mp.mpf(0)),
    "elu": (mp.mpf(1), mp.mpf(0), mp.mpf(1)),
    "selu": (SELU_L, mp.mpf(0), SELU_L * SELU_A),
}
KINKED = tuple(PIECES)


# ------------------------------------------------------------------------------------------
# mpmath references
# ------------------------------------------------------------------------------------------
def exact_angle(a, b):
    """The angle between two float64 vectors, in 50-digit arithmetic."""
    with mp.workdps(50):
        a = [mp.mpf(float(x)) for x in a]
        b = [mp.mpf(float(x)) for x in b]
        na, nb = mp.sqrt(mp.fsum(x * x for x in a)), mp.sqrt(mp.fsum(x * x for x in b))
        minus = mp.sqrt(mp.fsum((x / na - y / nb) ** 2 for x, y in zip(a, b)))
        plus = mp.sqrt(mp.fsum((x / na + y / nb) ** 2 for x, y in zip(a, b)))
        return 2 * mp.atan2(minus, plus)


@functools.lru_cache(maxsize=None)
def kappa_ref(name: str, theta: float) -> mp.mpf:
    """E[phi'(u) phi'(v)], corr(u, v) = cos(theta), as int phi'(u) E[phi'(v) | u] pdf(u) du with
    v | u ~ N(rho u, s^2): E[1[v > 0] | u] = Phi(rho u / s), E[e^v 1[v < 0] | u] = e^(rho u + s^2/2) Phi(-rho u/s - s).
    The outer integral is split at the kink u = 0 and at +-30 s, where the inner step is resolved."""
    with mp.workdps(22):
        return _kappa_ref(name, theta)


def _kappa_ref(name, theta):
    A, B0, B1 = PIECES[name]
    theta = mp.mpf(theta)
    rho, s = mp.cos(theta), mp.sin(theta)

    def dphi(w):
        return A if w > 0 else B0 + B1 * mp.e**w

    def inner(u):
        t = rho * u / s
        return A * mp.ncdf(t) + B0 * mp.ncdf(-t) + B1 * mp.e ** (rho * u + s * s / 2) * mp.ncdf(-t - s)

    f = lambda u: dphi(u) * inner(u) * mp.npdf(u)  # noqa: E731
    w = 30 * s
    return mp.quad(f, [-mp.inf, -w, 0]) + mp.quad(f, [0, w, mp.inf])


@functools.lru_cache(maxsize=None)
def second_moment_ref(name: str) -> mp.mpf:
    A, B0, B1 = PIECES[name]
    with mp.workdps(30):
        return A * A / 2 + mp.quad(lambda z: (B0 + B1 * mp.e**z) ** 2 * mp.npdf(z), [-mp.inf, 0])


# ------------------------------------------------------------------------------------------
# Angles
# ------------------------------------------------------------------------------------------
def _pair_at(theta: float, d: int, rng) -> tuple[np.ndarray, np.ndarray]:
    a = rng.standard_normal(d) * rng.uniform(0.1, 10)
    u = rng.standard_normal(d)
    u -= u @ a / (a @ a) * a
    u /= np.linalg.norm(u)
    b = (math.cos(theta) * a / np.linalg.norm(a) + math.sin(theta) * u) * rng.uniform(0.1, 10)
    return a, b


@pytest.mark.parametrize("theta", [0.0, 1e-15, 1e-12, 1e-8, 1e-4, 0.3, 1.0, 2.0, math.pi - 1e-4, math.pi - 1e-8,
                                   math.pi - 1e-12, math.pi])
def test_angles_accurate_near_zero_and_pi(theta):
    """Absolute error <= 2 ulp of pi (4.4e-16) against 50-digit mpmath, for any angle: the best possible,
    since rounding the unit vectors' components already moves the angle by ~1e-16."""
    rng = np.random.default_rng(int(1e6 * theta) % 1000)
    A, B, ref = [], [], []
    for _ in range(8):
        a, b = _pair_at(theta, 5, rng)
        A.append(a)
        B.append(b)
    A, B = np.array(A), np.array(B)
    got = K.angles(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    for i in range(len(A)):
        ref = exact_angle(A[i], B[i])
        assert abs(got[i, i] - float(ref)) <= 4.5e-16, (theta, got[i, i], ref)
    # batched rows give the same numbers
    batched = K.angles(torch.from_numpy(A[:, None, :]), torch.from_numpy(B[:, None, :]))[:, 0, 0].numpy()
    np.testing.assert_allclose(batched, np.diag(got), rtol=0, atol=4.5e-16)


def test_arccos_of_the_cosine_is_the_fault_angles_fixes():
    # the kind of error that motivated angles(): arccos of a rounded cosine is off by ~1e-8 near 0
    rng = np.random.default_rng(3)
    worst_arccos, worst_angles = 0.0, 0.0
    for _ in range(50):
        a, b = _pair_at(1e-9, 4, rng)
        ref = float(exact_angle(a, b))
        cos = np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)
        worst_arccos = max(worst_arccos, abs(math.acos(cos) - ref))
        worst_angles = max(worst_angles, abs(float(K.angles(torch.from_numpy(a[None]), torch.from_numpy(b[None]))) - ref))
    assert worst_arccos > 1e-9  # the fault is real (typically 1e-8)
    assert worst_angles < 1e-15


def test_angles_cos_sin_are_accurate_and_zero_rows_are_orthogonal():
    rng = np.random.default_rng(5)
    for theta in (1e-10, 1e-5, 0.7, math.pi - 1e-7):
        a, b = _pair_at(theta, 3, rng)
        th, cos, sin = (float(v) for v in K.angles_cos_sin(torch.from_numpy(a[None]), torch.from_numpy(b[None])))
        ref = exact_angle(a, b)
        assert abs(sin - float(mp.sin(ref))) <= 4e-16 * max(1.0, float(mp.sin(ref)))
        assert abs(sin - float(mp.sin(ref))) <= 1e-6 * float(mp.sin(ref))  # relative, even for tiny sines
        assert abs(cos - float(mp.cos(ref))) <= 4e-16
    Z = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=f64)
    th = K.angles(Z)
    assert float(th[0, 1]) == pytest.approx(math.pi / 2) and float(th[0, 0]) == pytest.approx(math.pi / 2)
    assert float(th[1, 1]) == 0.0
    with pytest.raises(ValueError, match="same number of columns"):
        K.angles(torch.ones(2, 3), torch.ones(2, 4))


def test_population_loss_gradient_vanishes_at_the_teacher():
    """theory's closed forms use the same angles: at W = W* (u_i parallel to v_i) the gradient is 0 to
    rounding; arccos of the rounded cosine left ~1e-9 there."""
    gen = torch.Generator().manual_seed(0)
    W_star = 0.3 * torch.randn(2, 6, 6, generator=gen, dtype=f64)
    loss, grad = theory.identity_population_loss(W_star.clone(), W_star)
    assert float(loss.abs().max()) < 1e-14
    assert float(grad.abs().max()) < 1e-14


# ------------------------------------------------------------------------------------------
# G^inf of kinked activations: exact
# ------------------------------------------------------------------------------------------
ANGLES = [1e-8, 1e-4, 0.5, 2.5, math.pi - 1e-8]


@pytest.mark.parametrize("name", KINKED)
def test_dphi_kernel_vs_mpmath(name):
    got = K.dphi_kernel(torch.tensor(ANGLES, dtype=f64), name).numpy()
    ref = np.array([float(kappa_ref(name, t)) for t in ANGLES])
    # entries are O(1); the closed form is accurate to a few ulp (Owen's T to ~3e-17, the tilts exact)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-15)
    # the end points theta = 0 and pi: E[phi'^2] and E[phi'(u) phi'(-u)]
    ends = K.dphi_kernel(torch.tensor([0.0, math.pi], dtype=f64), name).numpy()
    assert ends[0] == pytest.approx(float(second_moment_ref(name)), abs=2e-15)
    A, B0, B1 = PIECES[name]
    with mp.workdps(30):
        antipodal = 2 * A * mp.quad(lambda z: (B0 + B1 * mp.e ** (-z)) * mp.npdf(z), [0, mp.inf])
    assert ends[1] == pytest.approx(float(antipodal), abs=2e-15)


@pytest.mark.parametrize("name", KINKED)
@pytest.mark.parametrize("theta", [1e-6, 1e-4, 1e-2, 0.3])
def test_lambda_min_of_two_close_points_vs_mpmath(name, theta):
    """Two unit points at angle theta: G = [[m2, rho k], [rho k, m2]], lambda_min = m2 - rho kappa(theta)
    (kappa <= m2, Cauchy-Schwarz). The public gram_inf gets it to ~1e-15 absolute: relative 1e-9 at 1e-6 for
    the kinked-in-phi' ones (lambda_min ~ theta), and where lambda_min ~ theta^2 (ELU) down to 1e-4."""
    X = torch.tensor([[1.0, 0.0], [math.cos(theta), math.sin(theta)]], dtype=f64)
    th = float(exact_angle(X[0].numpy(), X[1].numpy()))
    with mp.workdps(30):
        ref = float(second_moment_ref(name) - mp.cos(th) * kappa_ref(name, th))
    got = K.lambda_min(K.gram_inf(X, name))
    assert abs(got - ref) <= 4e-15, (got, ref)
    if ref > 1e-9:
        assert abs(got - ref) / ref <= 1e-6


@pytest.mark.parametrize("name", KINKED + ("tanh", "gelu", "swish", "sigmoid", "poly3"))
def test_repeated_points_give_an_exactly_singular_gram(name):
    """A data set with a repeated point has a singular G^inf (two equal rows): lambda_min is 0 to rounding
    for every activation, kinked or smooth (the truncated series used to report 2.3e-3 for leaky_relu)."""
    X = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
    G = K.gram_inf(X, name)
    ev = K.spectrum(G)
    assert float(ev[0].abs()) <= 1e-14 * float(ev[-1])
    assert K.lambda_min(G, psd=True) == 0.0 or K.lambda_min(G, psd=True) <= 1e-14 * float(ev[-1])


@pytest.mark.parametrize("name", ["leaky_relu", "selu", "elu"])
def test_gram_inf_vs_monte_carlo_with_close_points(name):
    """G^inf_ij = <x_i, x_j> E_w[phi'(w.x_i) phi'(w.x_j)]: every entry within 5 standard errors (estimated from
    the samples) of a Monte Carlo mean over 400k Gaussian w; the data include a pair at angle 1e-3."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((5, 3))
    X[1] = X[0] + 1e-3 * rng.standard_normal(3) * np.linalg.norm(X[0])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    G = K.gram_inf(torch.from_numpy(X), name).numpy()
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(400_000, 3, generator=gen, dtype=f64)
    A, B0, B1 = (float(v) for v in PIECES[name])
    Z = (W @ torch.from_numpy(X).T).numpy()
    D = np.where(Z > 0, A, B0 + B1 * np.exp(np.minimum(Z, 0)))
    prod = D[:, :, None] * D[:, None, :]
    mean = prod.mean(0) * (X @ X.T)
    se = prod.std(0) / math.sqrt(W.shape[0]) * np.abs(X @ X.T)
    assert np.all(np.abs(mean - G) <= 5 * se + 1e-12), np.max(np.abs(mean - G) / (se + 1e-30))


@pytest.mark.parametrize("name", KINKED)
def test_c03_angles_from_lesson_4_range(name):
    """lambda_min at angles 0.5 .. 1e-4 against the series of lesson 4's closed form for the leaky ReLU
    (rho (a^2 + a(1-a) + (1-a)^2 (pi - theta)/(2 pi))) and mpmath for the others: within 1e-9 relative."""
    for theta in (0.5, 0.1, 1e-2, 1e-3, 1e-4):
        X = torch.tensor([[1.0, 0.0], [math.cos(theta), math.sin(theta)]], dtype=f64)
        th = float(exact_angle(X[0].numpy(), X[1].numpy()))
        if name == "leaky_relu":
            a = 0.1
            kap = a * a + a * (1 - a) + (1 - a) ** 2 * (math.pi - th) / (2 * math.pi)
            ref = (a * a + a * (1 - a) + (1 - a) ** 2 / 2) - math.cos(th) * kap
        else:
            ref = float(second_moment_ref(name) - mp.cos(th) * kappa_ref(name, th))
        got = K.lambda_min(K.gram_inf(X, name))
        assert abs(got - ref) <= 1e-9 * abs(ref) + 4e-15, (theta, got, ref)


def test_gram_from_correlation_matches_gram_hermite():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Xt = torch.from_numpy(X)
    for name in ("selu", "tanh"):
        G = K.gram_hermite(Xt, name)
        R = Xt @ Xt.T
        H = K.gram_from_correlation(R, name, theta=K.angles(Xt))
        # both within GRAM_RTOL x E[phi'^2] of the exact value (they may use different numbers of terms)
        m2 = get_activation(name).dphi_second_moment()
        torch.testing.assert_close(H, G, rtol=0, atol=2 * K.GRAM_RTOL * m2)
    with pytest.raises(ValueError, match="correlation matrix"):
        K.gram_from_correlation(2 * torch.eye(2, dtype=f64), "relu")


# ------------------------------------------------------------------------------------------
# The series: resolved, or refused
# ------------------------------------------------------------------------------------------
def _relu_without_closed_form() -> Activation:
    return Activation("relu_as_series", lambda z: torch.clamp(z, min=0), lambda z: (z > 0).to(z.dtype), JUMP_DPHI,
                      "relu, described without dphi_pieces", kink=0.0)


def test_series_resolves_separated_points_with_a_rigorous_bound():
    act = _relu_without_closed_form()
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.6, 0.8]], dtype=f64)  # |cos| <= 0.8
    G = K.gram_inf(X, act)
    torch.testing.assert_close(G, K.relu_h_inf(X), rtol=0, atol=K.GRAM_RTOL * 0.5 + 1e-15)
    P = K.series_terms(act, 0.8)
    c2 = get_activation("relu").hermite_coeffs(P) ** 2
    assert (0.5 - c2.sum()) * 0.8 ** (P + 1) <= K.GRAM_RTOL * 0.5  # the bound it promises


def test_series_refuses_close_points_it_cannot_resolve():
    act = _relu_without_closed_form()
    X = torch.tensor([[1.0, 0.0], [math.cos(0.01), math.sin(0.01)]], dtype=f64)
    with pytest.raises(ValueError, match=r"activation 'relu_as_series': the Hermite series cannot resolve these points"):
        K.gram_inf(X, act)
    # asking for a truncation explicitly is allowed (and visibly inexact)
    G = K.gram_hermite(X, act, num_coeffs=200)
    assert abs(K.lambda_min(G) - K.lambda_min(K.relu_h_inf(X))) > 1e-4


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid", "softplus", "swish", "gelu"])
def test_smooth_series_reaches_the_tolerance_even_for_repeated_points(name):
    # the Hermite tail of a smooth phi' decays fast: within 2000 terms it is below GRAM_RTOL even at |rho| = 1
    P = K.series_terms(name, 1.0)
    assert P <= 512
