"""Plausible wrong answers to lesson 2's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""

import numpy as np
import torch

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 2.1 relu_kernel
# ----------------------------------------------------------------------------------------------
def _parts(A, B, clip=True):
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    na, nb = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    c = A @ B.T / np.outer(na, nb)
    if clip:
        c = np.clip(c, -1, 1)
    with np.errstate(invalid="ignore"):
        t = np.arccos(c)
    return A, B, np.outer(na, nb), c, t


@common("clip the cosine")
def mutant_k_no_clip(A, B):
    """arccos of the raw cosine (NaN where rounding pushes it past +-1)"""
    _, _, nn, c, t = _parts(A, B, clip=False)
    with np.errstate(invalid="ignore"):
        return nn * (np.sqrt(1 - c * c) + (np.pi - t) * c) / (2 * np.pi)


@common("1/(2 pi)")
def mutant_k_no_two_pi(A, B):
    """forgets the 1/(2 pi)"""
    _, _, nn, c, t = _parts(A, B)
    return nn * (np.sin(t) + (np.pi - t) * c)


@common("sin(theta) term")
def mutant_k_no_sin(A, B):
    """drops the sin(theta) term"""
    _, _, nn, c, t = _parts(A, B)
    return nn * (np.pi - t) * c / (2 * np.pi)


def mutant_k_pi_cos(A, B):
    """writes pi cos(theta) for (pi - theta) cos(theta)"""
    _, _, nn, c, t = _parts(A, B)
    return nn * (np.sin(t) + np.pi * c) / (2 * np.pi)


def mutant_k_swapped(A, B):
    """swaps sin and cos: cos t + (pi - t) sin t"""
    _, _, nn, c, t = _parts(A, B)
    return nn * (c + (np.pi - t) * np.sin(t)) / (2 * np.pi)


def mutant_k_inner_factor(A, B):
    """multiplies by the inner product <a, b> instead of ||a|| ||b||"""
    A, B, _, c, t = _parts(A, B)
    return (A @ B.T) * (np.sin(t) + (np.pi - t) * c) / (2 * np.pi)


def mutant_k_h_inf_formula(A, B):
    """uses H^inf's formula <a, b> (pi - t) / (2 pi)"""
    A, B, _, _, t = _parts(A, B)
    return (A @ B.T) * (np.pi - t) / (2 * np.pi)


def mutant_k_transposed(A, B):
    """returns the (q, p) matrix k(b_j, a_i)"""
    _, _, nn, c, t = _parts(A, B)
    return (nn * (np.sin(t) + (np.pi - t) * c) / (2 * np.pi)).T


def mutant_k_monte_carlo(A, B):
    """estimates E[relu(a.x) relu(b.x)] from 20000 Gaussian samples"""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((20000, A.shape[1]))
    return np.maximum(A @ x.T, 0) @ np.maximum(B @ x.T, 0).T / x.shape[0]


def mutant_k_library(A, B):
    """calls the library's answer, course_lib.kernels.arccos1"""
    from course_lib import kernels

    return kernels.arccos1(torch.as_tensor(np.asarray(A, dtype=np.float64)),
                           torch.as_tensor(np.asarray(B, dtype=np.float64))).numpy()


# ----------------------------------------------------------------------------------------------
# 2.2 one_point_ratio
# ----------------------------------------------------------------------------------------------
def _grad(W, W_star, *, rows=False, factor=2.0, cross_only=False, no_sin=False, sin_uses_a_norm=False):
    W, W_star = np.asarray(W, dtype=np.float64), np.asarray(W_star, dtype=np.float64)
    d = W.shape[0]
    U, V = np.eye(d) + W, np.eye(d) + W_star
    U, V = (U, V) if rows else (U.T, V.T)

    def dk(P, Q):
        na, nb = np.linalg.norm(P, axis=1), np.linalg.norm(Q, axis=1)
        c = np.clip(P @ Q.T / np.outer(na, nb), -1, 1)
        t, s = np.arccos(c), np.sqrt(1 - c * c)
        scale = na[:, None] * np.ones_like(nb)[None, :] if sin_uses_a_norm else nb[None, :]
        sin_term = 0.0 if no_sin else (s * scale).sum(1)[:, None] * P / na[:, None]
        return ((np.pi - t) @ Q + sin_term) / (2 * np.pi)

    g = -factor * dk(U, V) if cross_only else factor * dk(U, U) - factor * dk(U, V)
    return g if rows else g.T


def _rho(g, W, W_star, *, power=2):
    e = np.asarray(W, dtype=np.float64) - np.asarray(W_star, dtype=np.float64)
    return float(np.sum(-g * (-e)) / np.linalg.norm(e) ** power)


@common("the sign")
def mutant_ratio_sign(W, W_star):
    """uses <grad L, W* - W> (the sign flipped)"""
    return -_rho(_grad(W, W_star), W, W_star)


@common("squared norm")
def mutant_ratio_norm_not_squared(W, W_star):
    """divides by ||W - W*|| instead of its square"""
    return _rho(_grad(W, W_star), W, W_star, power=1)


def mutant_ratio_cosine(W, W_star):
    """returns the cosine between -grad L and W* - W"""
    g = _grad(W, W_star)
    e = np.asarray(W, dtype=np.float64) - np.asarray(W_star, dtype=np.float64)
    return float(np.sum(g * e) / (np.linalg.norm(g) * np.linalg.norm(e)))


@common("factor 2")
def mutant_ratio_half_gradient(W, W_star):
    """forgets that u_i appears in both slots of k(u_i, u_j) (gradient halved)"""
    return _rho(_grad(W, W_star, factor=1.0), W, W_star)


@common("COLUMN")
def mutant_ratio_rows(W, W_star):
    """takes u_i as the ROWS of I + W"""
    return _rho(_grad(W, W_star, rows=True), W, W_star)


def mutant_ratio_cross_only(W, W_star):
    """forgets the sum_ij k(u_i, u_j) term of L"""
    return _rho(_grad(W, W_star, cross_only=True), W, W_star)


def mutant_ratio_no_sin(W, W_star):
    """drops the ||b|| sin(t) a/||a|| term of dk/da"""
    return _rho(_grad(W, W_star, no_sin=True), W, W_star)


def mutant_ratio_wrong_norm_in_sin(W, W_star):
    """uses ||a|| instead of ||b|| in the sin term of dk(a, b)/da"""
    return _rho(_grad(W, W_star, sin_uses_a_norm=True), W, W_star)


def mutant_ratio_finite_difference(W, W_star):
    """differentiates a Monte Carlo loss (2000 samples) by finite differences"""
    W, W_star = np.asarray(W, dtype=np.float64), np.asarray(W_star, dtype=np.float64)
    d = W.shape[0]
    x = np.random.default_rng(0).standard_normal((2000, d))

    def loss(M):
        f = np.maximum(x @ (np.eye(d) + M), 0).sum(1)
        f0 = np.maximum(x @ (np.eye(d) + W_star), 0).sum(1)
        return float(np.mean((f - f0) ** 2))

    g = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        E = np.zeros_like(W)
        E[idx] = 1e-5
        g[idx] = (loss(W + E) - loss(W - E)) / 2e-5
    return _rho(g, W, W_star)


def mutant_ratio_library(W, W_star):
    """takes the gradient from the library's course_lib.theory.identity_population_loss"""
    from course_lib import theory

    _, g = theory.identity_population_loss(torch.as_tensor(np.asarray(W, dtype=np.float64)),
                                           torch.as_tensor(np.asarray(W_star, dtype=np.float64)))
    return _rho(g.numpy(), W, W_star)


# ----------------------------------------------------------------------------------------------
# 2.3 linear_rate
# ----------------------------------------------------------------------------------------------
def _norms(H, E0, lr, ks, *, flat="C", project="columns"):
    lam, V = np.linalg.eigh(np.asarray(H, dtype=np.float64))
    e = np.asarray(E0, dtype=np.float64).ravel(order=flat)
    c = V.T @ e if project == "columns" else V @ e
    q = 1 - lr * lam
    return [float(np.linalg.norm(q ** k * c)) for k in ks]


@common("worst case")
def mutant_rate_worst_case(H, E0, lr, k1, k2):
    """returns the worst case max |1 - lr lam| instead of this error's rate"""
    lam = np.linalg.eigvalsh(np.asarray(H, dtype=np.float64))
    return float(np.abs(1 - lr * lam).max())


def mutant_rate_slowest_eigenvalue(H, E0, lr, k1, k2):
    """returns 1 - lr lam_min"""
    lam = np.linalg.eigvalsh(np.asarray(H, dtype=np.float64))
    return float(1 - lr * lam[0])


@common("row by row")
def mutant_rate_column_major(H, E0, lr, k1, k2):
    """flattens e column by column (the transposed order)"""
    n1, n2 = _norms(H, E0, lr, (k1, k2), flat="F")
    return (n2 / n1) ** (1 / (k2 - k1))


def mutant_rate_loss(H, E0, lr, k1, k2):
    """returns the rate of the loss (the square of the norm's)"""
    n1, n2 = _norms(H, E0, lr, (k1, k2))
    return (n2 / n1) ** (2 / (k2 - k1))


def mutant_rate_no_root(H, E0, lr, k1, k2):
    """returns ||e(k2)|| / ||e(k1)|| without the (k2 - k1)-th root"""
    n1, n2 = _norms(H, E0, lr, (k1, k2))
    return n2 / n1


def mutant_rate_from_start(H, E0, lr, k1, k2):
    """measures from step 0 to k2, ignoring k1"""
    n0, n2 = _norms(H, E0, lr, (0, k2))
    return (n2 / n0) ** (1 / k2)


def mutant_rate_off_by_one(H, E0, lr, k1, k2):
    """takes the (k2 - k1 + 1)-th root"""
    n1, n2 = _norms(H, E0, lr, (k1, k2))
    return (n2 / n1) ** (1 / (k2 - k1 + 1))


def mutant_rate_rows_as_eigenvectors(H, E0, lr, k1, k2):
    """projects e on the rows of eigh's eigenvector matrix"""
    n1, n2 = _norms(H, E0, lr, (k1, k2), project="rows")
    return (n2 / n1) ** (1 / (k2 - k1))


def mutant_rate_half_hessian(H, E0, lr, k1, k2):
    """steps with (I - lr H / 2), as if H were the Hessian of L / 2"""
    n1, n2 = _norms(0.5 * np.asarray(H), E0, lr, (k1, k2))
    return (n2 / n1) ** (1 / (k2 - k1))


def mutant_rate_library(H, E0, lr, k1, k2):
    """evolves the modes with the library's course_lib.theory.linearized_modes"""
    from course_lib import theory

    _, _, coef = theory.linearized_modes(torch.as_tensor(np.asarray(H, dtype=np.float64)),
                                         torch.as_tensor(np.asarray(E0, dtype=np.float64).ravel()), lr, [k1, k2])
    n1, n2 = np.linalg.norm(coef, axis=1)
    return float((n2 / n1) ** (1 / (k2 - k1)))


# ----------------------------------------------------------------------------------------------
# 2.4 phase_two_start
# ----------------------------------------------------------------------------------------------
def _ok(ratio, c, nan_above=False, strict=False):
    out = []
    for r in ratio:
        if r != r:
            out.append(nan_above)
        else:
            out.append(r > c if strict else r >= c)
    return out


def _start_index(ok):
    if not ok or not ok[-1]:
        return None
    i = len(ok) - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    return i


@common("STEP")
def mutant_start_index(steps, ratio, c):
    """returns the record's index instead of its step"""
    i = _start_index(_ok(ratio, c))
    return -1 if i is None else i


@common("nan counts as below")
def mutant_start_nan_above(steps, ratio, c):
    """counts a nan ratio as above c (tests `not ratio < c`)"""
    i = _start_index(_ok(ratio, c, nan_above=True))
    return -1 if i is None else int(steps[i])


@common("EVERY later record")
def mutant_start_first_above(steps, ratio, c):
    """returns the first record above c, whatever follows"""
    ok = _ok(ratio, c)
    if not ok or not ok[-1]:
        return -1
    return int(steps[ok.index(True)])


def mutant_start_first_above_anyway(steps, ratio, c):
    """returns the first record above c even when the history ends below c"""
    ok = _ok(ratio, c)
    return int(steps[ok.index(True)]) if True in ok else -1


def mutant_start_strict(steps, ratio, c):
    """uses rho > c instead of rho >= c"""
    i = _start_index(_ok(ratio, c, strict=True))
    return -1 if i is None else int(steps[i])


def mutant_start_last_below(steps, ratio, c):
    """returns the step of the last record below c instead of the next one"""
    i = _start_index(_ok(ratio, c))
    if i is None:
        return -1
    return int(steps[max(i - 1, 0)])


def mutant_start_zero_when_all_above(steps, ratio, c):
    """returns 0 (not the first recorded step) when every record is above c"""
    i = _start_index(_ok(ratio, c))
    if i is None:
        return -1
    return 0 if i == 0 else int(steps[i])


def mutant_start_ignores_end(steps, ratio, c):
    """returns the start of the last run above c even when the history ends below c"""
    ok = _ok(ratio, c)
    runs = [i for i in range(len(ok)) if ok[i] and (i == 0 or not ok[i - 1])]
    return int(steps[runs[-1]]) if runs else -1


def mutant_start_library(steps, ratio, c):
    """calls the lesson's own rule, course_lib.lessons.identity_mapping.phase_boundary"""
    from course_lib.lessons.identity_mapping import phase_boundary

    out = phase_boundary(steps, ratio, c)
    return -1 if out is None else int(out)


MUTANTS = {
    "2.1": [mutant_k_no_clip, mutant_k_no_two_pi, mutant_k_no_sin, mutant_k_pi_cos, mutant_k_swapped,
            mutant_k_inner_factor, mutant_k_h_inf_formula, mutant_k_transposed, mutant_k_monte_carlo, mutant_k_library],
    "2.2": [mutant_ratio_sign, mutant_ratio_norm_not_squared, mutant_ratio_cosine, mutant_ratio_half_gradient,
            mutant_ratio_rows, mutant_ratio_cross_only, mutant_ratio_no_sin, mutant_ratio_wrong_norm_in_sin,
            mutant_ratio_finite_difference, mutant_ratio_library],
    "2.3": [mutant_rate_worst_case, mutant_rate_slowest_eigenvalue, mutant_rate_column_major, mutant_rate_loss,
            mutant_rate_no_root, mutant_rate_from_start, mutant_rate_off_by_one, mutant_rate_rows_as_eigenvectors,
            mutant_rate_half_hessian, mutant_rate_library],
    "2.4": [mutant_start_index, mutant_start_nan_above, mutant_start_first_above, mutant_start_first_above_anyway,
            mutant_start_strict, mutant_start_last_below, mutant_start_zero_when_all_above, mutant_start_ignores_end,
            mutant_start_library],
}
