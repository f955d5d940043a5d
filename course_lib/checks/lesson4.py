"""Public checks of lesson 4's exercises (activation and the Gram eigenvalue).

Expected values come from course_lib's library, never from the lesson's modules or the learner's function: the
Hermite coefficients from activations (a composite Gauss-Legendre rule split at the kink), Gram matrices from
kernels.gram_inf, data from course_lib.data, and direct implementations here (Horner's scheme for the series, an
eigendecomposition for the linearized losses, a least-squares fit for the decay). Every allowance says why it is
what it is, next to it.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._common import EPS, as_array, as_float, as_names, close, diagnose, fail, pair, sphere

ANSWERED_BY = {
    "4.1": ("course_lib.activations._hermite_coeffs", "course_lib.activations.Activation.hermite_coeffs"),
    "4.2": (),  # no library function takes arbitrary coefficients (gram_hermite needs the activation itself)
    "4.3": ("course_lib.theory.linearized_loss", "course_lib.theory.linearized_residuals",
            "course_lib.theory.linearized_modes"),
    "4.4": ("course_lib.lessons.activation_gram.parity_slopes", "course_lib.lessons.activation_gram.core.parity_slopes"),
}


# ----------------------------------------------------------------------------------------------
# 4.1  Hermite coefficients of phi' by quadrature
# ----------------------------------------------------------------------------------------------
def expected_coeffs(name: str, num: int) -> np.ndarray:
    from course_lib.activations import get_activation

    return np.asarray(get_activation(name).hermite_coeffs(num), dtype=np.float64)


# |c_p| <= sqrt(E[phi'^2]) ~ 1 and the reference is accurate to ~1e-14. A Gauss-Hermite rule with N nodes converges
# geometrically for these analytic phi'; tanh' (poles at +-i pi/2) is the slowest: for p < 20, 150 nodes give 6e-13 and
# 100 nodes 5e-10 (measured). 1e-9 accepts any rule of 100 nodes or more; every mistake below is off by 1e-2 or more.
COEFF_ALLOWANCE = 1e-9


@functools.lru_cache(maxsize=8)
def _rule(nodes: int, physicists: bool):
    return (np.polynomial.hermite.hermgauss if physicists else np.polynomial.hermite_e.hermegauss)(nodes)


def _quadrature(name, num, nodes=200, *, of_phi=False, physicists=False, unnormalized=False, weights_sum=1.0,
                shift=0, linear_recurrence=False):
    """c_p by Gauss-Hermite with one of the common mistakes switched on (for the hints)."""
    from course_lib.activations import get_activation

    act = get_activation(name)
    z, w = _rule(nodes, physicists)
    if not physicists:
        w = w / np.sqrt(2 * np.pi) * weights_sum
    f = w * (act.phi if of_phi else act.dphi)(torch.from_numpy(z)).numpy()
    out = np.empty(num + shift)
    prev, cur = 0 * z, 0 * z + 1
    for p in range(num + shift):
        out[p] = np.dot(cur, f)
        if unnormalized:
            prev, cur = cur, z * cur - p * prev
        elif linear_recurrence:
            prev, cur = cur, (z * cur - p * prev) / (p + 1)
        else:
            prev, cur = cur, (z * cur - np.sqrt(p) * prev) / np.sqrt(p + 1)
    return out[shift:]


def _coeff_mistakes(name, num) -> list:
    return [
        (_quadrature(name, num, weights_sum=math.sqrt(2 * math.pi)), "hermegauss's weights sum to sqrt(2 pi): divide "
         "them by sqrt(2 pi) to get the expectation over z ~ N(0, 1)"),
        (_quadrature(name, num, unnormalized=True), "use the orthonormal h_p = He_p / sqrt(p!), i.e. the recurrence "
         "h_{p+1} = (z h_p - sqrt(p) h_{p-1}) / sqrt(p + 1)"),
        (_quadrature(name, num, linear_recurrence=True), "the recurrence has square roots: h_{p+1} = (z h_p - sqrt(p) "
         "h_{p-1}) / sqrt(p + 1)"),
        (_quadrature(name, num, of_phi=True), "expand phi' (get_activation(name).dphi), not phi"),
        (_quadrature(name, num, physicists=True), "use the probabilists' rule (hermite_e.hermegauss, weight "
         "exp(-z^2/2)), not hermgauss (weight exp(-z^2))"),
        (_quadrature(name, num, shift=1), "off by one: return c_0, ..., c_{num-1} (c_0 = E[phi'(z)])"),
    ]


def coeff_case(fn, name: str, num: int) -> None:
    got = as_array(fn(name, num), f"an array of shape ({num},)", (num,), name="c")
    close(got, expected_coeffs(name, num), COEFF_ALLOWANCE, name="c", diagnoses=lambda: _coeff_mistakes(name, num),
          hint=f"{name}: c_p = E[phi'(z) h_p(z)], z ~ N(0, 1), h_p = He_p / sqrt(p!), by Gauss-Hermite quadrature "
               "(about 150 nodes)")


def check_coeffs_tanh(fn):
    """hermite_coeffs of tanh' (12 coefficients)"""
    coeff_case(fn, "tanh", 12)


def check_coeffs_swish(fn):
    """hermite_coeffs of swish' (16 coefficients)"""
    coeff_case(fn, "swish", 16)


# ----------------------------------------------------------------------------------------------
# 4.2  the G-matrix from the coefficients
# ----------------------------------------------------------------------------------------------
def expected_gram(X, c) -> np.ndarray:
    """sum_p c_p^2 rho^(p+1) by Horner's scheme in rho (an evaluation independent of a term-by-term sum)."""
    X = np.array(X, dtype=float)
    rho = X @ X.T
    acc = np.zeros_like(rho)
    for cp in np.asarray(c, dtype=np.float64)[::-1]:
        acc = acc * rho + cp * cp
    return acc * rho


def gram_allowance(X, c) -> np.ndarray:
    """Entry (i, j) is sum_p c_p^2 rho^(p+1) with |rho| <= 1. rho = <x_i, x_j> is rounded by (d + 4) eps, which moves
    rho^(p+1) by (p + 1)(d + 4) eps; forming the power and the sum adds (p + 3) eps per term. So the allowance is
    2 eps sum_p c_p^2 [(p + 1)(d + 4) + p + 3]: any correct evaluation (powers, a running product, Horner) is inside it;
    a wrong exponent or a missing square is off by far more."""
    c2 = np.asarray(c, dtype=np.float64) ** 2
    p = np.arange(len(c2))
    d = np.shape(X)[1]
    return 2 * EPS * float(np.sum(c2 * ((p + 1) * (d + 4) + p + 3)))


def _gram_mistakes(X, c) -> list:
    X, c = np.asarray(X, dtype=np.float64), np.asarray(c, dtype=np.float64)
    R = X @ X.T
    powers = lambda shift: sum(cp * cp * R ** (p + shift) for p, cp in enumerate(c))  # noqa: E731
    return [
        (powers(0), "the exponent is p + 1, not p: G = sum_p c_p^2 rho^(p+1) (the p = 0 term is c_0^2 rho)"),
        (sum(cp * R ** (p + 1) for p, cp in enumerate(c)), "square the coefficients: c_p^2"),
        (sum(cp * cp * np.linalg.matrix_power(R, p + 1) for p, cp in enumerate(c)), "the powers are elementwise "
         "(rho ** (p + 1)), not matrix powers"),
        (powers(1) - c[0] ** 2 * R, "include the p = 0 term c_0^2 rho"),
        (powers(2), "the exponent is p + 1: c_0^2 multiplies rho itself"),
    ]


def _check_gram(fn, X, c, label):
    X, c = np.asarray(X, dtype=np.float64), np.asarray(c, dtype=np.float64)
    n = X.shape[0]
    got = as_array(fn(X.copy(), c.copy()), f"an array of shape ({n}, {n})", (n, n), name="G",
                   shape_hint="G has one entry per pair of rows of X: X @ X.T is (n, n)")
    close(got, expected_gram(X, c), gram_allowance(X, c), name="G", diagnoses=lambda: _gram_mistakes(X, c),
          hint=f"{label}: G = sum_p c_p^2 (X X^T)^(p+1), the power taken entry by entry")


def check_gram_tanh(fn):
    """gram_from_coeffs with tanh's first 40 coefficients on 6 unit vectors in R^3"""
    _check_gram(fn, sphere(6, 3, 0), expected_coeffs("tanh", 40), "tanh, 40 terms")


def check_gram_two_terms(fn):
    """gram_from_coeffs with c = [1, 2] on 4 unit vectors in R^5 (G = rho + 4 rho^2)"""
    _check_gram(fn, sphere(4, 5, 2), np.array([1.0, 2.0]), "c = [1, 2]")


# ----------------------------------------------------------------------------------------------
# 4.3  which activation trains fastest: the predicted losses
# ----------------------------------------------------------------------------------------------
def predicted_losses(grams: dict, r0, lr, steps: int) -> dict:
    r0 = np.array(r0, dtype=float)
    out = {}
    for key, G in grams.items():
        lam, V = np.linalg.eigh(0.5 * (np.asarray(G) + np.asarray(G).T))
        out[key] = 0.5 * float(np.sum(((1 - lr * lam) ** steps * (V.T @ r0)) ** 2))
    return out


def expected_order(grams, r0, lr, steps) -> list:
    loss = predicted_losses(grams, r0, lr, steps)
    return sorted(loss, key=loss.get)


@functools.lru_cache(maxsize=8)
def activation_case(seed: int, names: tuple = ("relu", "tanh", "swish"), n: int = 8, d_sub: int = 2):
    """G^inf of each activation on n points of a d_sub-dimensional subspace of R^10, a +-1 residual, and
    lr = 1 / (the largest lambda_max)."""
    from course_lib import data, kernels

    X = data.subspace_data(n, 10, d_sub, seed=seed, dtype=torch.float64)
    grams = {a: kernels.gram_inf(X, a).numpy() for a in names}
    r0 = np.sign(np.random.default_rng(seed).standard_normal(n))
    lr = 1.0 / max(np.linalg.eigvalsh(G)[-1] for G in grams.values())
    return grams, r0, lr


def crossing_case():
    """Two Gram matrices whose predicted losses cross: "fast" drops quickly but keeps a slow mode, "steady" has one
    middle mode. Returns (grams, r0, lr, K) with K the first step at which "fast" is below "steady"."""
    grams = {"steady": np.diag([0.05, 0.05]), "fast": np.diag([0.5, 0.01])}
    r0 = np.array([2.0, 0.3])
    lr = 1.0
    k = 1
    while True:
        loss = predicted_losses(grams, r0, lr, k)
        if loss["fast"] < loss["steady"]:
            return grams, r0, lr, k
        k += 1


def _order_mistakes(grams, r0, lr, steps) -> list:
    r0 = np.array(r0, dtype=float)
    by = lambda key: sorted(grams, key=key)  # noqa: E731
    lam_min = {a: np.linalg.eigvalsh(G)[0] for a, G in grams.items()}
    lam_max = {a: np.linalg.eigvalsh(G)[-1] for a, G in grams.items()}
    half = predicted_losses(grams, r0, lr, steps // 2) if steps % 2 == 0 else None

    def loss_rows(a):  # eigenvectors as rows
        lam, V = np.linalg.eigh(grams[a])
        return 0.5 * float(np.sum(((1 - lr * lam) ** steps * (V @ r0)) ** 2))

    out = [
        (by(lambda a: -lam_min[a]), "lambda_min alone does not decide: the loss after k steps depends on every mode "
         "and on how much of r0 lies on it, 1/2 sum_i (1 - lr lam_i)^(2k) c_i^2"),
        (by(lambda a: -lam_max[a]), "rank by the predicted loss after `steps` steps, not by lambda_max"),
        (by(lambda a: -predicted_losses(grams, r0, lr, steps)[a]), "lowest predicted loss first (the fastest)"),
        (by(lambda a: predicted_losses(grams, r0, lr, max(steps - 1, 0))[a]), "off by one: the loss after `steps` steps "
         "is (I - lr G)^steps r0"),
        (by(lambda a: predicted_losses(grams, r0, lr, steps + 1)[a]), "off by one: the loss after `steps` steps is "
         "(I - lr G)^steps r0"),
        (by(loss_rows), "the coefficients are c_i = v_i . r0 with v_i the COLUMNS of eigh's eigenvector matrix"),
    ]
    if half is not None:
        out.append((sorted(half, key=half.get), "each coefficient shrinks by (1 - lr lam_i) per step, so the loss by "
                    "(1 - lr lam_i)^2: the exponent of the loss is 2k"))
    exp = expected_order(grams, r0, lr, steps)
    return [(v, h) for v, h in out if v != exp]


def _check_order(fn, grams, r0, lr, steps, label, hint=None):
    got = as_names(fn({a: np.array(G) for a, G in grams.items()}, np.array(r0), lr, steps),
                   "a list of the activation names", list(grams))
    exp = expected_order(grams, r0, lr, steps)
    if got != exp:
        loss = predicted_losses(grams, r0, lr, steps)
        hint = hint or next((h for v, h in _order_mistakes(grams, r0, lr, steps) if v == got), None)
        fail(f"{label}: expected the order {exp} (predicted losses " + ", ".join(f"{a} {loss[a]:.4g}" for a in exp)
             + f"), got {got}", hint or "predict 1/2 ||(I - lr G)^steps r0||^2 for each G (eigenbasis: each "
             "coefficient times (1 - lr lam_i)^steps) and sort from the lowest")


def check_rank_activations(fn):
    """rank_by_speed for relu, tanh, swish on 8 points of a plane, 200 steps (tanh has the larger lambda_min)"""
    grams, r0, lr = activation_case(0)
    _check_order(fn, grams, r0, lr, 200, "relu, tanh, swish after 200 steps")


def check_rank_crossing(fn):
    """rank_by_speed for two Gram matrices whose losses cross, asked at the crossing step"""
    grams, r0, lr, K = crossing_case()
    _check_order(fn, grams, r0, lr, K, f"two curves that cross at step {K}",
                 hint=f"the two predicted losses cross between steps {K - 1} and {K}, so an off by one in the number "
                      "of steps, or a factor (1 - lr lam)^k where the loss needs (1 - lr lam)^(2k), gives the other order")


# ----------------------------------------------------------------------------------------------
# 4.4  lambda_min's exponent in delta, predicted from the Hermite decay
# ----------------------------------------------------------------------------------------------
def expected_exponent(c, lo: int, hi: int) -> float:
    c = np.array(c, dtype=float)
    slopes = {}
    for parity in (0, 1):
        p = np.arange(c.size)
        sel = (c != 0) & (p % 2 == parity) & (p >= lo) & (p < hi)
        if np.count_nonzero(sel) >= 2:
            slopes[parity] = float(np.polyfit(np.log(p[sel]), np.log(c[sel] ** 2), 1)[0])
    s = -max(slopes.values())
    return 2.0 * (s - 1.0)


# The input is exact (the same array for the check and the learner); a least-squares slope of <= 1000 points in float64
# is accurate to ~1e-12 relative whatever the method (polyfit, lstsq, the normal equations). 1e-9 absolute is far below
# every mistake below (0.1 or more).
EXPONENT_ALLOWANCE = 1e-9


def _exponent_mistakes(c, lo, hi) -> list:
    c = np.array(c, dtype=float)
    p = np.arange(c.size)
    fits = {}
    for parity in (0, 1):
        sel = (c != 0) & (p % 2 == parity) & (p >= lo) & (p < hi)
        if np.count_nonzero(sel) >= 2:
            fits[parity] = (float(np.polyfit(np.log(p[sel]), np.log(c[sel] ** 2), 1)[0]),
                            float(np.polyfit(np.log(p[sel]), np.log(np.abs(c[sel])), 1)[0]))
    s = -max(v[0] for v in fits.values())
    out = [
        (s - 1, "the terms that tell points at distance delta apart have p >~ 1/delta^2 (not 1/delta): the tail "
         "sum_{p >= 1/delta^2} p^(-s) ~ delta^(2(s - 1))"),
        (s, "lambda_min follows the TAIL sum_{p >= P} c_p^2 ~ P^(1 - s), not c_P^2 ~ P^(-s)"),
        (2 * s, "lambda_min follows the tail sum_{p >= P} c_p^2 ~ P^(1 - s): one power less than the terms"),
        (-2 * (s - 1), "the exponent is positive: lambda_min shrinks like delta^(2(s - 1)) as delta -> 0"),
    ]
    if len(fits) == 2:
        s_fast = -min(v[0] for v in fits.values())
        out.append((2 * (s_fast - 1), "the slower-decaying parity sets the tail (the larger of the two fitted slopes)"))
        sel = (p >= lo) & (p < hi) & (c != 0)
        s_all = -float(np.polyfit(np.log(p[sel]), np.log(c[sel] ** 2), 1)[0])
        out.append((2 * (s_all - 1), "fit each parity on its own: the even and odd terms lie on two different lines"))
    slow = max(fits, key=lambda k: fits[k][0])
    out.append((2 * (-fits[slow][1] - 1), "fit log(c_p^2), not log|c_p|: c_p^2 ~ p^(-s)"))
    return [(v, h) for v, h in out if abs(v - expected_exponent(c, lo, hi)) > 1e-6]


def exponent_case(fn, c, lo, hi, label):
    got = as_float(fn(np.array(c), lo, hi), "a float (the exponent of delta)")
    exp = expected_exponent(c, lo, hi)
    if not math.isfinite(got) or abs(got - exp) > EXPONENT_ALLOWANCE:
        fail(f"{label}: {pair(exp, got)} (allowed {EXPONENT_ALLOWANCE:g})",
             diagnose(got, lambda: _exponent_mistakes(c, lo, hi), EXPONENT_ALLOWANCE) or
             "per parity, fit log(c_p^2) against log(p) over lo <= p < hi (c_p != 0); s = -(the larger slope); "
             "return 2 (s - 1)")


def check_exponent_elu(fn):
    """delta_exponent of ELU's coefficients (512 terms, fitted over 32 <= p < 400)"""
    exponent_case(fn, expected_coeffs("elu", 512), 32, 400, "ELU")


def check_exponent_relu(fn):
    """delta_exponent of ReLU's coefficients (odd terms only; 400 terms, 20 <= p < 300)"""
    exponent_case(fn, expected_coeffs("relu", 400), 20, 300, "ReLU")


CHECKS = {
    "4.1": [check_coeffs_tanh, check_coeffs_swish],
    "4.2": [check_gram_tanh, check_gram_two_terms],
    "4.3": [check_rank_activations, check_rank_crossing],
    "4.4": [check_exponent_elu, check_exponent_relu],
}
