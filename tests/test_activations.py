"""Independent numerical checks of course_lib.activations.

Every reference below is computed without course_lib's code: torch autograd of phi for phi',
one-sided finite differences of phi for the smoothness classes, closed forms (ReLU, erf, monomials)
and scipy / mpmath quadrature with scipy's Hermite polynomials for the Hermite coefficients.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import scipy.stats as st
import torch

from course_lib import activations as A
from course_lib.activations import get_activation

REGISTERED = ["relu", "leaky_relu", "elu", "selu", "gelu", "softplus", "tanh", "swish", "erf", "sigmoid"]
POLYS = [f"poly{k}" for k in range(1, 6)]
ALL = REGISTERED + POLYS

# Klambauer et al. (2017), eq. (14), to 30 digits: independent of the module's constants.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
LEAKY = 0.1  # documented slope of leaky_relu: "max(z, 0.1 z)"


# ------------------------------------------------------------------------------------------
# Reference phi' in plain numpy (derivatives written out by hand; checked against autograd of
# the module's phi in test_dphi_matches_autograd, and phi itself against torch / scipy below).
# ------------------------------------------------------------------------------------------
def _sech2(z):
    e = np.exp(-2 * np.abs(z))
    return 4 * e / (1 + e) ** 2


def _sigmoid(z):
    return sp.expit(z)


REF_DPHI = {
    "relu": lambda z: (z > 0).astype(float),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, LEAKY),
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
    "selu": lambda z: SELU_LAMBDA * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0))),
    "gelu": lambda z: sp.ndtr(z) + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi),
    "softplus": _sigmoid,
    "tanh": _sech2,
    "swish": lambda z: _sigmoid(z) + z * _sigmoid(z) * _sigmoid(-z),
    "erf": lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z),
    "sigmoid": lambda z: _sigmoid(z) * _sigmoid(-z),
}


def _poly_amplitude(k: int) -> float:
    """phi' = A z^(k-1) with E[phi'^2] = 1: A = 1 / sqrt(E[z^(2k-2)]), moment from scipy."""
    return 1.0 / math.sqrt(st.norm.moment(2 * k - 2)) if k > 1 else 1.0


def _ref_poly_dphi(k):
    return lambda z: _poly_amplitude(k) * np.asarray(z, float) ** (k - 1)


for _k in range(1, 6):
    REF_DPHI[f"poly{_k}"] = _ref_poly_dphi(_k)

KINKED = {"relu", "leaky_relu", "elu", "selu"}


def quad_gauss(f, kinked=True):
    """E[f(z)], z ~ N(0, 1), by scipy.integrate.quad on each half-line (split at the kink 0)."""
    g = lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    a, ea = si.quad(g, -np.inf, 0, epsabs=1e-14, epsrel=1e-13, limit=400)
    b, eb = si.quad(g, 0, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)
    return a + b, ea + eb


def quad_hermite_coeff(name: str, p: int):
    """c_p = E[phi'(z) He_p(z) / sqrt(p!)] with scipy's He_p (not the module's recurrence)."""
    f = REF_DPHI[name]
    norm = math.sqrt(math.factorial(p))
    return quad_gauss(lambda z: float(f(np.float64(z))) * sp.eval_hermitenorm(p, z) / norm)


# ------------------------------------------------------------------------------------------
# phi and phi'
# ------------------------------------------------------------------------------------------
def _grid():
    z = torch.linspace(-6, 6, 2401, dtype=torch.float64)
    return z[z.abs() > 1e-3]  # away from the kink at 0


@pytest.mark.parametrize("name", ALL)
def test_dphi_matches_autograd(name):
    act = get_activation(name)
    z = _grid().requires_grad_(True)
    (auto,) = torch.autograd.grad(act.phi(z).sum(), z)
    # closed-form phi' vs autograd of phi: both float64 evaluations of the same derivative, so they
    # agree to rounding (~1e-16 relative); 1e-12 leaves room for cancellation in e.g. swish'.
    torch.testing.assert_close(act.dphi(z.detach()), auto, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ALL)
def test_reference_dphi_matches_module(name):
    """The numpy phi' used as quadrature reference below equals the module's (so the quadrature
    checks test the integration, and the autograd check above ties both to phi)."""
    z = _grid().numpy()
    got = get_activation(name).dphi(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, REF_DPHI[name](z), rtol=1e-12, atol=1e-14)  # float64 rounding


def test_phi_matches_torch_and_scipy_references():
    z = _grid()
    F = torch.nn.functional
    refs = {
        "relu": F.relu(z),
        "leaky_relu": F.leaky_relu(z, LEAKY),
        "elu": F.elu(z),
        "selu": F.selu(z),
        "gelu": F.gelu(z),  # exact erf form
        "softplus": torch.log1p(torch.exp(z)),
        "tanh": torch.from_numpy(np.tanh(z.numpy())),
        "swish": F.silu(z),
        "erf": torch.from_numpy(sp.erf(z.numpy())),
        "sigmoid": torch.from_numpy(sp.expit(z.numpy())),
    }
    for name, ref in refs.items():
        # independent float64 implementations of the same function: agree to rounding
        torch.testing.assert_close(get_activation(name).phi(z), ref, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("k", range(1, 6))
def test_polynomial_phi_is_normalized_monomial(k):
    z = _grid()
    # phi = A z^k / k with A from scipy's Gaussian moments: E[phi'^2] = 1
    ref = _poly_amplitude(k) * z**k / k
    torch.testing.assert_close(get_activation(f"poly{k}").phi(z), ref, rtol=1e-12, atol=1e-14)
    val, err = quad_gauss(lambda t: REF_DPHI[f"poly{k}"](t) ** 2)
    assert err < 1e-10 and abs(val - 1.0) < 1e-10  # quad of a polynomial x Gaussian: ~1e-14


@pytest.mark.parametrize("name", ALL)
def test_dphi_keeps_dtype_and_shape(name):
    act = get_activation(name)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    for dt in (torch.float32, torch.float64):
        out = act.dphi(z.to(dt))
        assert out.dtype == dt and out.shape == (3, 4)
        assert act(z.to(dt)).dtype == dt


# ------------------------------------------------------------------------------------------
# Smoothness classes, measured from phi alone by one-sided finite differences at 0
# ------------------------------------------------------------------------------------------
def _one_sided(phi, side: int):
    """Second-order one-sided estimates of phi'(0+-) and phi''(0+-) from phi alone (float64)."""
    def f(t):
        return float(phi(torch.tensor(side * t, dtype=torch.float64)))

    h1, h2 = 1e-4, 1e-3
    d1 = side * (-3 * f(0) + 4 * f(h1) - f(2 * h1)) / (2 * h1)  # error O(h1^2) + O(eps / h1)
    d2 = (2 * f(0) - 5 * f(h2) + 4 * f(2 * h2) - f(3 * h2)) / h2**2  # error O(h2^2) + O(eps / h2^2)
    return d1, d2


def _classify(phi) -> str:
    (r1, r2), (l1, l2) = _one_sided(phi, +1), _one_sided(phi, -1)
    # Finite-difference errors here are < 1e-5 for phi' and < 1e-4 for phi'' (measured: < 1e-7);
    # the jumps that exist are >= 0.7 (SELU: lambda (alpha - 1)), 0.9 (leaky) and 1 (ELU's phi'').
    # Values in the gap (1e-4 .. 1e-2 for phi', 1e-3 .. 1e-1 for phi'') fail loudly instead of guessing.
    jump1, jump2 = abs(r1 - l1), abs(r2 - l2)
    assert not (1e-4 < jump1 < 1e-2) and not (1e-3 < jump2 < 1e-1), (jump1, jump2)
    if jump1 > 1e-2:
        return A.JUMP_DPHI
    if jump2 > 1e-1:
        return A.JUMP_D2PHI
    return A.SMOOTH


@pytest.mark.parametrize("name", ALL)
def test_smoothness_class_matches_finite_differences(name):
    act = get_activation(name)
    measured = _classify(act.phi)
    assert act.smoothness == measured
    assert act.is_smooth == (measured == A.SMOOTH)
    # a kink location exactly when phi' or phi'' jumps (the quadrature splits there)
    assert (act.kink is not None) == (measured != A.SMOOTH)


def test_expected_smoothness_classes():
    # the classification of Panigrahi et al. (2020) that lesson 4 teaches
    expect = {"relu": A.JUMP_DPHI, "leaky_relu": A.JUMP_DPHI, "selu": A.JUMP_DPHI, "elu": A.JUMP_D2PHI}
    for name in ALL:
        assert _classify(get_activation(name).phi) == expect.get(name, A.SMOOTH), name


def test_dphi_one_sided_limits_at_kink():
    eps = torch.tensor([1e-9, -1e-9], dtype=torch.float64)
    lim = {name: get_activation(name).dphi(eps).tolist() for name in ("relu", "leaky_relu", "selu", "elu")}
    # right and left limits of phi' from the definitions (Klambauer constants for SELU); exp(-1e-9)
    # differs from 1 by 1e-9
    assert lim["relu"] == pytest.approx([1.0, 0.0], abs=1e-12)
    assert lim["leaky_relu"] == pytest.approx([1.0, LEAKY], abs=1e-12)
    assert lim["selu"] == pytest.approx([SELU_LAMBDA, SELU_LAMBDA * SELU_ALPHA], abs=1e-8)
    assert lim["elu"] == pytest.approx([1.0, 1.0], abs=1e-8)  # ELU: phi' continuous


# ------------------------------------------------------------------------------------------
# Hermite coefficients
# ------------------------------------------------------------------------------------------
def relu_closed_form(P: int) -> np.ndarray:
    """c_0 = 1/2, c_p = He_{p-1}(0) pdf(0) / sqrt(p!) with He_{2j}(0) = (-1)^j (2j-1)!!, in mpmath."""
    c = np.zeros(P)
    c[0] = 0.5
    for p in range(1, P):
        n = p - 1
        if n % 2 == 0:
            he0 = (-1) ** (n // 2) * mpmath.fac2(n - 1)
            c[p] = float(he0 / mpmath.sqrt(2 * mpmath.pi) / mpmath.sqrt(mpmath.factorial(p)))
    return c


def test_relu_hermite_closed_form_small():
    c = get_activation("relu").hermite_coeffs(4)
    pdf0 = 1 / math.sqrt(2 * math.pi)
    # the example of the module docstring, written out: 1/2, pdf(0), 0, -pdf(0)/sqrt(6)
    np.testing.assert_allclose(c, [0.5, pdf0, 0.0, -pdf0 / math.sqrt(6)], rtol=0, atol=1e-14)


@pytest.mark.parametrize("P", [64, 400, 2000])
def test_relu_hermite_closed_form(P):
    c = get_activation("relu").hermite_coeffs(P)
    assert np.all(np.isfinite(c))
    # the closed form is exact (mpmath); the split quadrature reaches ~1e-15 absolute at every p,
    # 1e-12 leaves room for a coarser rule while catching any real error (c_p ~ 1e-5 at p = 2000)
    np.testing.assert_allclose(c, relu_closed_form(P), rtol=0, atol=1e-12)
    assert np.all(c[2::2] == 0.0)  # even p >= 2: exactly zero (He_{odd}(0) = 0)


def test_erf_hermite_closed_form():
    # phi' = (2/sqrt(pi)) e^{-z^2}: from the generating function exp(zt - t^2/2) of He_n,
    # E[e^{-z^2} He_{2k}] = (-1/3)^k (2k)! / (sqrt(3) k!), so c_{2k} = 2/sqrt(3 pi) (-1/3)^k sqrt((2k)!)/k!
    P = 300
    ref = np.zeros(P)
    for k in range(P // 2):
        ref[2 * k] = float(2 / mpmath.sqrt(3 * mpmath.pi) * mpmath.mpf(-1) ** k / mpmath.mpf(3) ** k
                           * mpmath.sqrt(mpmath.factorial(2 * k)) / mpmath.factorial(k))
    np.testing.assert_allclose(get_activation("erf").hermite_coeffs(P), ref, rtol=0, atol=1e-12)  # as for ReLU


@pytest.mark.parametrize("name", REGISTERED)
def test_hermite_coeffs_vs_scipy_quad(name):
    P = 31
    c = get_activation(name).hermite_coeffs(P)
    for p in range(P):
        val, err = quad_hermite_coeff(name, p)
        # quad reports < 1e-12 abs error; the module's rule is converged to ~1e-15: 1e-11 is safe
        assert err < 1e-11, (p, err)
        assert abs(c[p] - val) < 1e-11, (name, p, c[p], val)


@pytest.mark.parametrize("name,ps", [("tanh", (0, 2, 30)), ("gelu", (1, 2, 17)), ("selu", (0, 3, 29)),
                                     ("elu", (1, 4, 24))])
def test_hermite_coeffs_vs_mpmath(name, ps):
    lam, alpha = mpmath.mpf("1.0507009873554804934193349852946"), mpmath.mpf("1.6732632423543772848170429916717")
    dphi = {
        "tanh": lambda z: mpmath.sech(z) ** 2,
        "gelu": lambda z: mpmath.ncdf(z) + z * mpmath.npdf(z),
        "selu": lambda z: lam if z > 0 else lam * alpha * mpmath.exp(z),
        "elu": lambda z: 1 if z > 0 else mpmath.exp(z),
    }[name]
    c = get_activation(name).hermite_coeffs(max(ps) + 1)
    for p in ps:
        with mpmath.workdps(25):
            # He_p(z) = 2^(-p/2) H_p(z / sqrt 2) (mpmath's physicists' Hermite)
            f = lambda z, p=p: dphi(z) * mpmath.hermite(p, z / mpmath.sqrt(2)) * 2 ** (-mpmath.mpf(p) / 2) * mpmath.npdf(z)
            ref = float(mpmath.quad(f, [-mpmath.inf, 0, mpmath.inf]) / mpmath.sqrt(mpmath.factorial(p)))
        assert abs(c[p] - ref) < 1e-12, (name, p)  # 25-digit reference vs a float64 rule (~1e-15)


@pytest.mark.parametrize("k", range(1, 6))
def test_polynomial_hermite_coeffs_exact(k):
    # z^n = sum_j n! / (j! 2^j (n-2j)!) He_{n-2j}(z)  =>  E[z^n h_p] = n! / (j! 2^j sqrt(p!)), p = n - 2j
    n, amp = k - 1, _poly_amplitude(k)
    ref = np.zeros(k + 6)
    for j in range(n // 2 + 1):
        p = n - 2 * j
        ref[p] = amp * math.factorial(n) / (math.factorial(j) * 2**j * math.sqrt(math.factorial(p)))
    c = get_activation(f"poly{k}").hermite_coeffs(k + 6)
    np.testing.assert_allclose(c, ref, rtol=1e-13, atol=1e-15)  # exact values vs float64 quadrature
    assert np.all(c[k:] == 0.0)  # exactly zero for p >= degree (and for the wrong parity)
    wrong_parity = [p for p in range(k + 6) if (p - n) % 2]
    assert np.all(c[wrong_parity] == 0.0)  # phi' has the parity of z^(k-1)


@pytest.mark.parametrize("name", ALL)
def test_dphi_second_moment_vs_quad(name):
    val, err = quad_gauss(lambda z: float(REF_DPHI[name](np.float64(z))) ** 2)
    assert err < 1e-11
    assert abs(get_activation(name).dphi_second_moment() - val) < 1e-11  # both converged to ~1e-14


@pytest.mark.parametrize("name", ["gelu", "softplus", "tanh", "swish", "erf", "sigmoid", "poly3", "poly5"])
def test_parseval_smooth(name):
    act = get_activation(name)
    c = act.hermite_coeffs(300)
    # c_p decays geometrically for these analytic phi' (the tail beyond p = 300 is < 1e-20), so
    # sum c_p^2 = E[phi'^2] up to rounding; the reference is an independent scipy quad.
    ref, _ = quad_gauss(lambda z: float(REF_DPHI[name](np.float64(z))) ** 2)
    assert abs(np.sum(c**2) - ref) < 1e-12


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "selu"])
def test_parseval_kinked_partial_sums_increase_to_moment(name):
    act = get_activation(name)
    ref, _ = quad_gauss(lambda z: float(REF_DPHI[name](np.float64(z))) ** 2)
    partial = np.cumsum(act.hermite_coeffs(1000) ** 2)
    deficits = ref - partial[[49, 199, 999]]
    # partial sums of squares never exceed E[phi'^2] (Bessel) and the deficit shrinks with P
    assert np.all(deficits > -1e-12) and deficits[0] > deficits[1] > deficits[2]
    if name == "elu":  # phi' continuous: c_p^2 ~ p^-2.5, the deficit ~ P^-1.5 is tiny at P = 1000
        assert deficits[2] < 1e-4
    else:  # a jump in phi' (size J): deficit ~ J^2 / (2 pi) sqrt(2/pi) P^-1/2
        jump = {"leaky_relu": 1 - LEAKY, "selu": SELU_LAMBDA * (SELU_ALPHA - 1)}[name]
        pred = jump**2 / (2 * math.pi) * math.sqrt(2 / math.pi) / math.sqrt(1000)
        assert deficits[2] == pytest.approx(pred, rel=0.05)  # O(1/P) corrections + elu part of selu


def test_parseval_relu_deficit_decays_like_p_to_minus_half():
    c = get_activation("relu").hermite_coeffs(2000)  # same num as above: cached
    Ps = np.array([100, 200, 400, 800, 1600])
    deficit = 0.5 - np.array([np.sum(c[:P] ** 2) for P in Ps])  # E[relu'^2] = P(z > 0) = 1/2
    assert np.all(deficit > 0)
    slope = np.polyfit(np.log(Ps), np.log(deficit), 1)[0]
    assert abs(slope + 0.5) < 0.01  # c_p^2 ~ p^-3/2 => deficit ~ P^-1/2 (+ O(1/P) corrections)
    # constant: sum over odd p >= P of (1/2pi) sqrt(2/pi) p^-3/2 ~ (1/2pi) sqrt(2/pi) P^-1/2
    const = 1 / (2 * math.pi) * math.sqrt(2 / math.pi)
    assert deficit[-1] * math.sqrt(Ps[-1]) == pytest.approx(const, rel=0.01)


def test_hermite_coeffs_cached_copy_and_validation():
    act = get_activation("tanh")
    c = act.hermite_coeffs(10)
    c[:] = 123.0  # mutating the returned array must not poison the cache
    assert act.hermite_coeffs(10)[0] != 123.0
    # a different num gives a different (finer) rule: the same values up to rounding
    np.testing.assert_allclose(act.hermite_coeffs(10), act.hermite_coeffs(20)[:10], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"^num\b"):
        act.hermite_coeffs(0)
    with pytest.raises(TypeError, match=r"^num\b"):
        act.hermite_coeffs(2.5)


def test_hermite_functions_orthonormal():
    # h_p = He_p / sqrt(p!) vs scipy's He_p, and orthonormality under N(0, 1) by scipy's Gauss rule
    z = np.linspace(-4, 4, 9)
    h = A.hermite_functions(z, 12)
    for p in range(12):
        np.testing.assert_allclose(h[p], sp.eval_hermitenorm(p, z) / math.sqrt(math.factorial(p)), rtol=1e-12, atol=1e-12)
    x, w = sp.roots_hermitenorm(40)
    H = A.hermite_functions(x, 12)
    gram = (H * (w / math.sqrt(2 * math.pi))) @ H.T
    np.testing.assert_allclose(gram, np.eye(12), atol=1e-12)  # Gauss rule exact for degree < 80


# ------------------------------------------------------------------------------------------
# Registry and validation
# ------------------------------------------------------------------------------------------
def test_registry_lookup():
    for name in ALL:
        act = get_activation(name)
        assert act.name == name
        assert get_activation(act) is act
    assert get_activation(" ReLU ") is get_activation("relu")
    assert get_activation("poly3") is get_activation("poly3")  # cached
    names = A.available_activations()
    assert set(REGISTERED) <= set(names)


def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError) as info:
        get_activation("reluu")
    msg = str(info.value)
    assert "activation" in msg and "reluu" in msg
    for name in REGISTERED:
        assert name in msg
    assert "poly" in msg
    with pytest.raises(ValueError, match=r"^activation\b"):
        get_activation(3)


@pytest.mark.parametrize("bad", ["poly0", "poly13", "poly99"])
def test_poly_degree_out_of_range(bad):
    with pytest.raises(ValueError, match=r"^activation 'poly\d+': the degree K must be between 1 and 12"):
        get_activation(bad)


def test_polynomial_validation():
    with pytest.raises(ValueError, match=r"^degree\b"):
        A.polynomial(0)
    with pytest.raises(ValueError, match=r"^degree\b"):
        A.polynomial(13)
    with pytest.raises(TypeError, match=r"^degree\b"):
        A.polynomial(2.5)
    assert A.polynomial(12).name == "poly12"


# ------------------------------------------------------------------------------------------
# dphi_pieces: the exact description of kinked phi' that gives the closed-form Gram matrix
# ------------------------------------------------------------------------------------------
def _pieces_value(pieces, z):
    z = np.asarray(z, float)
    out = np.zeros_like(z)
    for c, t, side in pieces:
        mask = np.ones_like(z, bool) if side == 0 else (side * z > 0)
        out += np.where(mask, c * np.exp(t * z), 0.0)
    return out


@pytest.mark.parametrize("name", sorted(KINKED))
def test_dphi_pieces_describe_the_reference_dphi(name):
    act = get_activation(name)
    assert act.dphi_pieces is not None
    z = np.concatenate([np.linspace(-8, 8, 4001), [-1e-9, 1e-9]])
    z = z[z != 0]
    # against the hand-written reference (Klambauer constants to 30 digits for SELU)
    np.testing.assert_allclose(_pieces_value(act.dphi_pieces, z), REF_DPHI[name](z), rtol=1e-15, atol=1e-15)


def test_smooth_activations_have_no_pieces():
    for name in ALL:
        if name not in KINKED:
            assert get_activation(name).dphi_pieces is None, name


@pytest.mark.parametrize("name", sorted(KINKED))
def test_kink_jumps_vs_one_sided_differences(name):
    """J1 = phi'(0+) - phi'(0-), J2 = phi''(0+) - phi''(0-), from one-sided differences of the reference phi'."""
    f = REF_DPHI[name]
    h = 1e-6
    j1 = float(f(np.float64(1e-12)) - f(np.float64(-1e-12)))
    slope = lambda a, b: (float(f(np.float64(b))) - float(f(np.float64(a)))) / (b - a)  # noqa: E731
    j2 = slope(h, 2 * h) - slope(-2 * h, -h)  # one-sided slopes: error O(h)
    J1, J2 = get_activation(name).kink_jumps()
    assert J1 == pytest.approx(j1, abs=1e-9)
    assert J2 == pytest.approx(j2, abs=1e-5)
    assert get_activation("tanh").kink_jumps() == (0.0, 0.0)


@pytest.mark.parametrize("name", sorted(KINKED))
def test_pieces_second_moment_vs_quad(name):
    ref, err = quad_gauss(lambda z: float(REF_DPHI[name](np.float64(z))) ** 2)
    assert err < 1e-12
    assert get_activation(name).dphi_second_moment() == pytest.approx(ref, rel=1e-13, abs=1e-14)


def test_kink_jumps_of_a_kinked_activation_without_pieces_is_refused():
    act = A.Activation("myrelu", lambda z: torch.clamp(z, min=0), lambda z: (z > 0).to(z.dtype), A.JUMP_DPHI, kink=0.0)
    with pytest.raises(ValueError, match="myrelu"):
        act.kink_jumps()
