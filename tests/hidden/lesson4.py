"""Hidden tests of lesson 4's exercises: other activations and sizes, antipodal points, other crossings, synthetic
power laws. Never shipped. Allowances are the public checks' (their reasons are stated there)."""
import math

import numpy as np

from course_lib.checks._common import as_array, fail, sphere
from course_lib.checks.lesson4 import (_check_gram, _check_order, activation_case, coeff_case, crossing_case,
                                       expected_coeffs, exponent_case)


def hidden_coeffs_erf(fn):
    """hermite_coeffs of erf' (only even p; c_0 = 2/sqrt(3 pi))"""
    coeff_case(fn, "erf", 20)
    got = as_array(fn("erf", 1), "an array of shape (1,)", (1,))
    if abs(got[0] - 2 / math.sqrt(3 * math.pi)) > 1e-9:  # COEFF_ALLOWANCE: a converged quadrature (reason there)
        fail(f"c_0 of erf' should be 2/sqrt(3 pi) = {2 / math.sqrt(3 * math.pi):.12f}; got {got[0]:.12f}")


def hidden_coeffs_poly_and_gelu(fn):
    """hermite_coeffs of poly3 (phi' = z^2/sqrt(3): c = (1, 0, sqrt 2, 0, ...)/sqrt 3) and of gelu'"""
    got = as_array(fn("poly3", 6), "an array of shape (6,)", (6,))
    want = np.array([1.0, 0.0, math.sqrt(2), 0.0, 0.0, 0.0]) / math.sqrt(3)
    # phi' = z^2/sqrt(3) is a polynomial: Gauss-Hermite with >= 2 nodes is exact, so only rounding (~1e-15) remains;
    # 1e-10 is far below the mistakes (a missing normalization is off by 0.1 or more)
    if np.abs(got - want).max() > 1e-10:
        fail(f"poly3: expected {np.round(want, 12)}, got {np.round(got, 12)}")
    coeff_case(fn, "gelu", 10)


def hidden_gram_sizes(fn):
    """gram_from_coeffs on 25 points in R^4 with 30 random coefficients"""
    _check_gram(fn, sphere(25, 4, 7), np.random.default_rng(3).standard_normal(30) / np.arange(1, 31), "30 terms")


def hidden_gram_antipodal(fn):
    """gram_from_coeffs with x and -x (rho = -1: odd and even powers differ in sign) and one point alone"""
    x = sphere(1, 3, 8)[0]
    _check_gram(fn, np.vstack([x, -x, sphere(1, 3, 9)[0]]), np.array([0.5, -0.7, 0.3, 0.2]), "antipodal rows")
    _check_gram(fn, np.array([[0.6, 0.8]]), np.array([0.5, 0.25, 0.1]), "one point")


def hidden_rank_five(fn):
    """rank_by_speed with five activations on 10 points of a plane, 500 steps"""
    grams, r0, lr = activation_case(5, ("relu", "elu", "selu", "tanh", "gelu"), 10)
    _check_order(fn, grams, r0, lr, 500, "five activations after 500 steps")


def hidden_rank_before_crossing(fn):
    """rank_by_speed one step before two loss curves cross, and at a few steps"""
    grams, r0, lr, K = crossing_case()
    _check_order(fn, grams, r0, lr, K - 1, f"one step before the crossing at {K}")
    _check_order(fn, grams, r0, lr, 3, "after 3 steps")


def hidden_exponent_synthetic(fn):
    """delta_exponent of exact power laws c_p^2 = p^(-s) (odd p only, even p only, both parities)"""
    p = np.arange(300)
    for s, parity in ((1.5, 1), (2.5, 0), (3.7, 1)):
        c = np.where((p % 2 == parity) & (p > 0), np.maximum(p, 1) ** (-s / 2), 0.0)
        c[0] = 0.5
        exponent_case(fn, c, 10, 250, f"c_p^2 = p^-{s} on the {'odd' if parity else 'even'} p")
        got = float(fn(c.copy(), 10, 250))
        if abs(got - 2 * (s - 1)) > 1e-9:  # EXPONENT_ALLOWANCE: an exact power law fits exactly, to rounding
            fail(f"an exact power law p^-{s} gives 2(s - 1) = {2 * (s - 1)}; got {got}")
    c = np.where(p % 2 == 1, np.maximum(p, 1) ** -1.25, np.maximum(p, 1) ** -2.0)
    exponent_case(fn, c, 8, 200, "two parities, the odd one slower")


def hidden_exponent_selu(fn):
    """delta_exponent of SELU (its odd half decays like ReLU's, its even half like ELU's)"""
    exponent_case(fn, expected_coeffs("selu", 512), 32, 480, "SELU")


HIDDEN = {
    "4.1": [hidden_coeffs_erf, hidden_coeffs_poly_and_gelu],
    "4.2": [hidden_gram_sizes, hidden_gram_antipodal],
    "4.3": [hidden_rank_five, hidden_rank_before_crossing],
    "4.4": [hidden_exponent_synthetic, hidden_exponent_selu],
}
