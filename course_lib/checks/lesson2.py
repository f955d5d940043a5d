"""Public checks of lesson 2's exercises (identity mapping and the two phases).

Expected values come from course_lib's own closed forms (kernels.arccos1 and theory.identity_population_loss, both on
well-conditioned angles; theory.linearized_modes for the linear rate) or, for the phase rule, a direct
implementation here, never from the learner's function. Every allowance says why it is what it is, next to it.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._common import EPS, as_array, as_float, as_int, close, diagnose, fail, pair

ANSWERED_BY = {
    "2.1": ("course_lib.kernels.arccos1", "course_lib.lessons.identity_mapping.kernel_matrix",
            "course_lib.lessons.identity_mapping.core.kernel_matrix"),
    "2.2": ("course_lib.theory.identity_population_loss", "course_lib.theory.relu_sum_loss"),
    "2.3": ("course_lib.theory.linearized_modes", "course_lib.theory.linearized_residuals",
            "course_lib.theory.linearized_loss"),
    "2.4": ("course_lib.lessons.identity_mapping.phase_boundary", "course_lib.lessons.identity_mapping.core.phase_boundary",
            "course_lib.lessons.identity_mapping.core.stays_from"),
}

ARCCOS_NAN_HINT = ("arccos of a cosine that rounding pushed just outside [-1, 1] is NaN: clip the cosine to [-1, 1] "
                   "before arccos")


def mat(d: int, seed: int, scale: float = 0.5) -> np.ndarray:
    """A d x d Gaussian matrix rescaled to spectral norm ``scale``."""
    W = np.random.default_rng(seed).standard_normal((d, d))
    return scale * W / np.linalg.norm(W, 2)


# ----------------------------------------------------------------------------------------------
# 2.1  the kernel k(a, b) = E[relu(a.x) relu(b.x)]
# ----------------------------------------------------------------------------------------------
def expected_k(A, B) -> np.ndarray:
    from course_lib import kernels

    return kernels.arccos1(torch.from_numpy(np.asarray(A, dtype=np.float64)),
                           torch.from_numpy(np.asarray(B, dtype=np.float64))).numpy()


def k_allowance(A, B) -> np.ndarray:
    """What a correct k(a_i, b_j) may differ by: ||a|| ||b|| (d + 20) eps.

    k = ||a|| ||b|| (sin t + (pi - t) cos t) / (2 pi) is a well-conditioned function of the cosine c: its derivative
    is ||a|| ||b|| (pi - t) / (2 pi), bounded by ||a|| ||b|| / 2, even where arccos itself is not (near c = +-1 the
    errors of sin t and of (pi - t) cos t cancel). A cosine rounded by (d + 4) eps therefore moves k by at most
    ||a|| ||b|| (d + 4) eps / 2; the products and sums add a few eps more. A NaN, a missing term or factor is off by
    orders of magnitude more."""
    na = np.linalg.norm(np.asarray(A, dtype=np.float64), axis=1)
    nb = np.linalg.norm(np.asarray(B, dtype=np.float64), axis=1)
    return np.outer(na, nb) * (np.shape(A)[1] + 20) * EPS


def _k_mistakes(A, B, exp) -> list:
    A, B = (np.array(M, dtype=float) for M in (A, B))
    na, nb = (np.sqrt((M * M).sum(axis=1)) for M in (A, B))
    nn = np.outer(na, nb)
    c = np.clip(A @ B.T / nn, -1, 1)
    t = np.arccos(c)
    return [
        (exp * 2 * math.pi, "the factor 1/(2 pi) is missing"),
        (nn * (math.pi - t) * c / (2 * math.pi), "the sin(theta) term is missing: k = ||a|| ||b|| (sin t + (pi - t) cos t) / (2 pi)"),
        (nn * (np.sin(t) + math.pi * c) / (2 * math.pi), "the angle enters twice: (pi - theta) cos theta, not pi cos theta"),
        ((A @ B.T) * (math.pi - t) / (2 * math.pi), "that is H^inf's formula <a, b> (pi - t) / (2 pi); k is "
         "||a|| ||b|| (sin t + (pi - t) cos t) / (2 pi)"),
        ((A @ B.T) * (np.sin(t) + (math.pi - t) * c) / (2 * math.pi), "multiply by the product of the norms "
         "||a|| ||b||, not by the inner product <a, b>"),
        (nn * (c + (math.pi - t) * np.sin(t)) / (2 * math.pi), "sin and cos are swapped: sin t + (pi - t) cos t"),
    ]


def _check_k(fn, A, B, label: str) -> None:
    A, B = (np.array(M, dtype=float) for M in (A, B))
    p, q = A.shape[0], B.shape[0]
    got = as_array(fn(A.copy(), B.copy()), f"a ({p}, {q}) array", (p, q), name="K", nan_hint=ARCCOS_NAN_HINT,
                   shape_hint="one row per row of A, one column per row of B")
    exp = expected_k(A, B)
    close(got, exp, k_allowance(A, B), name="K", diagnoses=lambda: _k_mistakes(A, B, exp),
          hint=f"{label}: k(a, b) = ||a|| ||b|| (sin t + (pi - t) cos t) / (2 pi), t the angle between a and b")


def check_k_small(fn):
    """relu_kernel on 3 x 2 rows of different norms in R^4"""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 4)) * np.array([[0.5], [1.0], [2.0]])
    B = rng.standard_normal((2, 4)) * np.array([[1.5], [0.3]])
    _check_k(fn, A, B, "3 x 2 rows")


def check_k_special_angles(fn):
    """relu_kernel(a, [a, -a, 2a, a rotated by 90 degrees]): ||a||^2/2, 0, ||a||^2, ||a||^2/(2 pi)"""
    a = np.array([[0.6, 0.8, 0.0]])
    B = np.array([[0.6, 0.8, 0.0], [-0.6, -0.8, 0.0], [1.2, 1.6, 0.0], [-0.8, 0.6, 0.0]])
    _check_k(fn, np.vstack([a, 3.0 * a]), B, "parallel, antiparallel and orthogonal rows")


# ----------------------------------------------------------------------------------------------
# 2.2  the one-point ratio from the closed-form gradient
# ----------------------------------------------------------------------------------------------
def expected_grad(W, W_star) -> np.ndarray:
    from course_lib import theory

    _, g = theory.identity_population_loss(torch.from_numpy(np.asarray(W, dtype=np.float64)),
                                           torch.from_numpy(np.asarray(W_star, dtype=np.float64)))
    return g.numpy()


def ratio_of(grad, W, W_star) -> float:
    e = np.asarray(W, dtype=np.float64) - np.asarray(W_star, dtype=np.float64)
    return float((np.asarray(grad) * e).sum() / (e * e).sum())


def ratio_allowance(W, W_star) -> float:
    """What a correct rho may differ by.

    Each column of the gradient is a sum over 2d rows z_j of (pi - t) z_j + ||z_j|| sin(t) u_i/||u_i||, a
    well-conditioned function of each cosine (its derivative is bounded by ||z_j||, even near t = 0, where the errors
    of (pi - t) and sin t cancel: the student row u_i sits next to its teacher row v_i near W*). A float64 gradient is
    therefore within 32 (d + 4) eps sum_j ||z_j|| of the exact one, entry by entry; rho = <grad, e>/||e||^2 turns that
    into at most ||grad error||_F / ||e||_F (the cases keep ||e|| >= 0.04). Every mistake below moves rho by 10% or
    more."""
    W, W_star = np.asarray(W, dtype=np.float64), np.asarray(W_star, dtype=np.float64)
    d = len(W)
    eye = np.eye(d)
    scale = np.linalg.norm(eye + W, axis=0).sum() + np.linalg.norm(eye + W_star, axis=0).sum()
    entry = 32 * (d + 4) * EPS * scale
    return entry * d / float(np.linalg.norm(W - W_star)) + 4 * EPS


def _numpy_grad(W, W_star, *, rows=False, half=False, cross_only=False, no_sin=False) -> np.ndarray:
    """The closed-form gradient, with one of the common mistakes switched on (for the hints)."""
    W, W_star = np.asarray(W, dtype=np.float64), np.asarray(W_star, dtype=np.float64)
    d = len(W)
    U, V = (np.eye(d) + W), (np.eye(d) + W_star)
    U, V = (U, V) if rows else (U.T, V.T)

    def dk(A, B):
        na, nb = (np.sqrt((M * M).sum(axis=1)) for M in (A, B))
        c = np.clip(A @ B.T / np.outer(na, nb), -1, 1)
        t, s = np.arccos(c), np.sqrt(1 - c * c)
        sin_term = 0.0 if no_sin else (s * nb[None, :]).sum(1)[:, None] * A / na[:, None]
        return ((math.pi - t) @ B + sin_term) / (2 * math.pi)

    g = (-2 * dk(U, V)) if cross_only else (2 * dk(U, U) - 2 * dk(U, V))
    g = g / 2 if half else g
    return g if rows else g.T


def _ratio_mistakes(W, W_star, exp) -> list:
    e = np.asarray(W, dtype=np.float64) - np.asarray(W_star, dtype=np.float64)
    g = expected_grad(W, W_star)
    out = [
        (-exp, "the sign: rho = <-grad L, W* - W> / ||W - W*||^2 is positive where the gradient points toward W*"),
        (exp * float(np.linalg.norm(e)), "divide by the squared norm ||W - W*||_F^2, not by the norm"),
        (exp * float(np.linalg.norm(e)) / float(np.linalg.norm(g)), "that is the cosine between -grad L and W* - W; "
         "rho divides by ||W - W*||^2 only"),
        (ratio_of(_numpy_grad(W, W_star, half=True), W, W_star), "the gradient of sum_ij k(u_i, u_j) has a factor 2 "
         "(u_i appears in both slots): dL/du_i = 2 sum_j dk(u_i, u_j) - 2 sum_j dk(u_i, v_j)"),
        (ratio_of(_numpy_grad(W, W_star, rows=True), W, W_star), "u_i = e_i + w_i is COLUMN i of I + W (w_i is column i "
         "of W), and dL/dW's column i is dL/du_i"),
        (ratio_of(_numpy_grad(W, W_star, cross_only=True), W, W_star), "L has the term sum_ij k(u_i, u_j) too: its "
         "gradient 2 sum_j dk(u_i, u_j) is part of dL/du_i"),
        (ratio_of(_numpy_grad(W, W_star, no_sin=True), W, W_star), "dk(a, b)/da has two terms: [(pi - t) b + ||b|| "
         "sin(t) a/||a||] / (2 pi)"),
    ]
    return [(v, h) for v, h in out if abs(v - exp) > 1e-6 * max(1.0, abs(exp))]


def _check_ratio(fn, W, W_star, label: str) -> None:
    got = as_float(fn(np.array(W), np.array(W_star)), "a float (the one-point ratio)")
    exp = ratio_of(expected_grad(W, W_star), W, W_star)
    allow = ratio_allowance(W, W_star)
    if not math.isfinite(got) or abs(got - exp) > allow:
        fail(f"{label}: {pair(exp, got)} (allowed {allow:.2g})",
             diagnose(got, lambda: _ratio_mistakes(W, W_star, exp), allow) or
             "dL/du_i = 2 sum_j dk(u_i, u_j) - 2 sum_j dk(u_i, v_j) with dk(a, b)/da = [(pi - t) b + ||b|| sin(t) "
             "a/||a||] / (2 pi); rho = <-grad L, W* - W> / ||W - W*||_F^2")


def check_ratio_small(fn):
    """one_point_ratio at a 3 x 3 W, teacher of norm 0.5"""
    _check_ratio(fn, mat(3, 0, 0.4), mat(3, 1, 0.5), "d = 3")


def check_ratio_identity_teacher(fn):
    """one_point_ratio at a 4 x 4 W with the teacher W* = 0 (v_i = e_i)"""
    _check_ratio(fn, mat(4, 2, 0.3), np.zeros((4, 4)), "d = 4, W* = 0")


# ----------------------------------------------------------------------------------------------
# 2.3  the linear rate from the Hessian
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def hessian(d: int, seed: int, scale: float = 0.5) -> np.ndarray:
    """The Hessian of L at the teacher W* = mat(d, seed, scale), indexed like W.flatten() (row by row), by central
    differences of the library's closed-form gradient (h = 1e-6: accurate to ~1e-9, then symmetrized). The checks
    only need an exact symmetric input H, and this one is the lesson's."""
    W_star = mat(d, seed, scale)
    h = 1e-6
    cols = []
    for k in range(d * d):
        E = np.zeros(d * d)
        E[k] = h
        E = E.reshape(d, d)
        cols.append(((expected_grad(W_star + E, W_star) - expected_grad(W_star - E, W_star)) / (2 * h)).ravel())
    H = np.array(cols).T
    return 0.5 * (H + H.T)


def expected_rate(H, E0, lr, k1: int, k2: int) -> float:
    from course_lib import theory

    _, _, coef = theory.linearized_modes(torch.from_numpy(np.asarray(H, dtype=np.float64)),
                                         torch.from_numpy(np.asarray(E0, dtype=np.float64).ravel()), lr, [k1, k2])
    n1, n2 = np.linalg.norm(coef, axis=1)
    return float(np.exp((np.log(n2) - np.log(n1)) / (k2 - k1)))


# The rate is a k-th root of a ratio of norms of (1 - lr lam_i)^k c_i. eigh is backward stable: each eigenvalue is
# within ~n eps lam_max, which moves a factor (1 - lr lam)^k by k lr n eps lam_max / |1 - lr lam| relative (< 1e-12 for
# k <= 400 on the modes that carry the norm), and the root divides it by k2 - k1. 1e-9 relative leaves room for any
# correct evaluation (a matrix power, a loop of steps); every mistake below is off by more than 1e-3.
RATE_RTOL = 1e-9


def _rate_mistakes(H, E0, lr, k1, k2, exp) -> list:
    lam, V = np.linalg.eigh(H)
    e = np.asarray(E0, dtype=np.float64)

    def rate(c, q, a=k1, b=k2, power=1.0, root=True):
        n1 = np.sqrt(((q ** a * c) ** 2).sum())
        n2 = np.sqrt(((q ** b * c) ** 2).sum())
        r = (n2 / n1) ** power
        return float(r ** (1.0 / (b - a))) if root else float(r)

    q = 1 - lr * lam
    c = V.T @ e.ravel()
    out = [
        (float(np.abs(q).max()), "that is the worst case max |1 - lr lam_i| over H's spectrum; this error's norm mixes its "
         "modes: ||e(k)||^2 = sum_i (1 - lr lam_i)^(2k) c_i^2 with c_i = v_i . e(0)"),
        (rate(V.T @ e.T.ravel(), q), "flatten e row by row (e.flatten(), index r d + i for e[r, i]), as H is indexed"),
        (rate(c, q, power=2.0), "that is the loss's rate (its square): return the rate of ||e||"),
        (rate(c, q, root=False), "the per-step factor is the (k2 - k1)-th root of ||e(k2)|| / ||e(k1)||"),
        (rate(c, q, a=0, b=k2), "measure between k1 and k2, not from the start"),
        (rate(V @ e.ravel(), q), "the coefficients are c_i = v_i . e(0) with v_i the COLUMNS of eigh's eigenvector "
         "matrix (V.T @ e)"),
        (float(((np.sqrt(((q ** k2 * c) ** 2).sum()) / np.sqrt(((q ** k1 * c) ** 2).sum()))) ** (1.0 / (k2 - k1 + 1))),
         "off by one: between steps k1 and k2 there are k2 - k1 steps"),
    ]
    return [(v, h) for v, h in out if abs(v - exp) > 1e3 * RATE_RTOL * abs(exp)]


def _check_rate(fn, H, E0, lr, k1, k2, label):
    d = E0.shape[0]
    got = as_float(fn(H.copy(), E0.copy(), lr, k1, k2), "a float (the per-step factor)")
    exp = expected_rate(H, E0, lr, k1, k2)
    allow = RATE_RTOL * abs(exp)
    if not math.isfinite(got) or abs(got - exp) > allow:
        fail(f"{label} (d = {d}, lr = {lr:.4g}, steps {k1} to {k2}): {pair(exp, got)} (allowed {allow:.2g})",
             diagnose(got, lambda: _rate_mistakes(H, E0, lr, k1, k2, exp), allow) or
             "e(k) = (I - lr H)^k e(0) with e flattened row by row; per step: (||e(k2)|| / ||e(k1)||)^(1/(k2 - k1))")


def rate_case(d, seed, slow_weight, lr_frac, error_seed):
    """H at a teacher, lr = lr_frac / lambda_max, and an error with weight ``slow_weight`` on H's slowest mode."""
    H = hessian(d, seed)
    lam, V = np.linalg.eigh(H)
    lr = lr_frac / lam[-1]
    c = np.random.default_rng(error_seed).standard_normal(d * d)
    c[0] = slow_weight
    return H, (V @ c).reshape(d, d), lr


def check_rate_light_slow_mode(fn):
    """linear_rate at d = 3 for an error with little weight on H's slowest mode, steps 10 to 40"""
    H, E0, lr = rate_case(3, 4, 1e-3, 1.0, 0)
    _check_rate(fn, H, E0, lr, 10, 40, "light slowest mode")


def check_rate_generic(fn):
    """linear_rate at d = 3 for a random error, steps 0 to 25"""
    H, E0, lr = rate_case(3, 5, 0.7, 0.8, 1)
    _check_rate(fn, H, E0, lr, 0, 25, "random error")


# ----------------------------------------------------------------------------------------------
# 2.4  where phase II starts (the one-point rule on a recorded history)
# ----------------------------------------------------------------------------------------------
def expected_start(steps, ratio, c) -> int:
    """The first recorded step from which ratio >= c holds at every later record (nan counts as below); -1 if the
    last record is below c."""
    good = [(r == r) and r >= c for r in ratio]  # r == r is False for nan
    if len(good) == 0 or good[-1] is False:
        return -1
    below = [i for i, g in enumerate(good) if not g]
    return int(steps[below[-1] + 1]) if below else int(steps[0])


def _start_mistakes(steps, ratio, c, exp) -> list:
    steps = list(steps)
    ok = [(r == r) and r >= c for r in ratio]
    out = []
    if any(r != r for r in ratio):
        out.append((expected_start(steps, [1.0 if (r != r) else r for r in ratio], c),
                    "a nan counts as below c (the ratio is undefined there): `nan >= c` is False, keep it that way"))
    if exp in steps:
        out.append((steps.index(exp), "return the recorded STEP (steps[i]), not the record's index i"))
    first = next((s for s, o in zip(steps, ok, strict=True) if o), -1)
    out.append((first, "phase II starts where rho >= c holds at EVERY later record, not at the first record above c"))
    below = [i for i, g in enumerate(ok) if not g]
    if ok and ok[-1] and below:
        out.append((steps[below[-1]], "off by one: return the first record of the final run above c, not the last one "
                    "below it"))
    return [(v, h) for v, h in out if v != exp]


def _check_start(fn, steps, ratio, c, label):
    got = as_int(fn(list(steps), list(ratio), c), "an int (a recorded step, or -1)")
    exp = expected_start(steps, ratio, c)
    if got != exp:
        fail(f"{label}: expected {exp}, got {got}",
             diagnose(got, lambda: _start_mistakes(steps, ratio, c, exp)) or
             "find the last record below c (or nan); phase II starts at the next recorded step; -1 if the last record "
             "is below c")


def check_start_basic(fn):
    """phase_two_start on a short history with a dip and irregular steps"""
    steps = [0, 1, 2, 3, 4, 5, 10, 20, 40]
    ratio = [0.5, 0.01, 0.06, -0.2, 0.03, 0.06, 0.07, 0.2, 0.3]
    _check_start(fn, steps, ratio, 0.05, "steps 0..40, c = 0.05")


def check_start_nan_and_edges(fn):
    """phase_two_start with a nan record, a history that ends below c, and one that is above c throughout"""
    _check_start(fn, [2, 4, 6, 8, 10], [0.2, 0.2, float("nan"), 0.1, 0.2], 0.05, "a nan at step 6")
    _check_start(fn, [0, 10, 20], [0.3, 0.3, 0.01], 0.05, "the last record below c")
    _check_start(fn, [5, 10, 20], [0.3, 0.3, 0.3], 0.05, "above c at every record")


CHECKS = {
    "2.1": [check_k_small, check_k_special_angles],
    "2.2": [check_ratio_small, check_ratio_identity_teacher],
    "2.3": [check_rate_light_slow_mode, check_rate_generic],
    "2.4": [check_start_basic, check_start_nan_and_edges],
}
