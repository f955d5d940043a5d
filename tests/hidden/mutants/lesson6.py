"""Plausible wrong answers to lesson 6's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""
import math

import numpy as np

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 6.1 momentum_residuals
# ----------------------------------------------------------------------------------------------
def _iterate(H, r0, steps, update, prev_zero=False, keep_first=True):
    H, r = np.asarray(H, dtype=float), np.asarray(r0, dtype=float).copy()
    prev = np.zeros_like(r) if prev_zero else r.copy()
    out = [r.copy()] if keep_first else []
    for _ in range(steps):
        r, prev = update(H, r, prev), r
        out.append(r.copy())
    return np.array(out).reshape(-1, len(r))


def _correct(lr, beta, method):
    b = 0.0 if method == "gd" else beta
    if method == "nag":
        return lambda H, r, p: (r + b * (r - p)) - lr * H @ (r + b * (r - p))
    return lambda H, r, p: r - lr * H @ r + b * (r - p)


@common("r_{-1} = r_0")
def mutant_res_prev_zero(H, r0, lr, beta, method, steps):
    """starts with r_{-1} = 0 (momentum on the first step)"""
    return _iterate(H, r0, steps, _correct(lr, beta, method), prev_zero=True)


@common("look-ahead")
def mutant_res_nag_as_hb(H, r0, lr, beta, method, steps):
    """evaluates Nesterov's gradient at r_k (which is heavy ball)"""
    return _iterate(H, r0, steps, _correct(lr, beta, "hb" if method == "nag" else method))


def mutant_res_no_momentum(H, r0, lr, beta, method, steps):
    """forgets the momentum term"""
    return _iterate(H, r0, steps, _correct(lr, 0.0, "gd"))


def mutant_res_gradient_sign(H, r0, lr, beta, method, steps):
    """adds the gradient step"""
    b = 0.0 if method == "gd" else beta
    return _iterate(H, r0, steps, lambda H, r, p: r + lr * H @ r + b * (r - p))


def mutant_res_momentum_sign(H, r0, lr, beta, method, steps):
    """subtracts the momentum term"""
    b = 0.0 if method == "gd" else beta
    return _iterate(H, r0, steps, lambda H, r, p: r - lr * H @ r - b * (r - p))


def mutant_res_nag_partial(H, r0, lr, beta, method, steps):
    """Nesterov as (I - lr H) r_k + beta (r_k - r_{k-1}) (the correction on r_k only)"""
    if method != "nag":
        return _iterate(H, r0, steps, _correct(lr, beta, method))
    return _iterate(H, r0, steps, lambda H, r, p: r - lr * H @ r + beta * (r - p) - lr * beta * H @ r)


@common("row 0")
def mutant_res_no_start_row(H, r0, lr, beta, method, steps):
    """returns r_1, ..., r_steps (drops row 0)"""
    return _iterate(H, r0, steps, _correct(lr, beta, method), keep_first=False)


def mutant_res_beta_for_gd(H, r0, lr, beta, method, steps):
    """applies beta for "gd" too"""
    b = beta
    return _iterate(H, r0, steps, lambda H, r, p: r - lr * H @ r + b * (r - p) if method != "nag" else
                    (r + b * (r - p)) - lr * H @ (r + b * (r - p)))


def mutant_res_library(H, r0, lr, beta, method, steps):
    """calls the lesson's own course_lib.lessons.momentum.linearized_residuals"""
    from course_lib.lessons.momentum import linearized_residuals

    return linearized_residuals(H, r0, lr, 0.0 if method == "gd" else beta, method, steps)


# ----------------------------------------------------------------------------------------------
# 6.2 predicted_rate
# ----------------------------------------------------------------------------------------------
def _coeffs(lam, lr, beta, method):
    lam = np.asarray(lam, dtype=float)
    q = 1 - lr * lam
    if method == "hb":
        return 1 + beta - lr * lam, np.full_like(lam, beta)
    return (1 + beta) * q, beta * q


def _moduli(b, c):
    root = np.sqrt((b * b - 4 * c).astype(complex))
    return np.abs((b + root) / 2), np.abs((b - root) / 2)


@common("complex")
def mutant_rate_real_sqrt(eigenvalues, lr, beta, method):
    """takes a real square root of the discriminant (clipped at 0)"""
    lam = np.asarray(eigenvalues, dtype=float)
    if method == "gd":
        return float(np.abs(1 - lr * lam).max())
    b, c = _coeffs(lam, lr, beta, method)
    root = np.sqrt(np.maximum(b * b - 4 * c, 0))
    return float(np.max(np.maximum(np.abs(b + root), np.abs(b - root)) / 2))


@common("LARGEST")
def mutant_rate_min_over_lambda(eigenvalues, lr, beta, method):
    """takes the smallest modulus over the eigenvalues"""
    lam = np.asarray(eigenvalues, dtype=float)
    if method == "gd":
        return float(np.abs(1 - lr * lam).min())
    return float(np.min(np.maximum(*_moduli(*_coeffs(lam, lr, beta, method)))))


def mutant_rate_swapped_methods(eigenvalues, lr, beta, method):
    """uses Nesterov's polynomial for heavy ball and vice versa"""
    lam = np.asarray(eigenvalues, dtype=float)
    if method == "gd":
        return float(np.abs(1 - lr * lam).max())
    other = "nag" if method == "hb" else "hb"
    return float(np.max(np.maximum(*_moduli(*_coeffs(lam, lr, beta, other)))))


def mutant_rate_gd_always(eigenvalues, lr, beta, method):
    """returns GD's max |1 - lr lam| for every method"""
    return float(np.abs(1 - lr * np.asarray(eigenvalues, dtype=float)).max())


def mutant_rate_smaller_root(eigenvalues, lr, beta, method):
    """takes the smaller root's modulus for each eigenvalue"""
    lam = np.asarray(eigenvalues, dtype=float)
    if method == "gd":
        return float(np.abs(1 - lr * lam).max())
    return float(np.max(np.minimum(*_moduli(*_coeffs(lam, lr, beta, method)))))


def mutant_rate_sqrt_beta(eigenvalues, lr, beta, method):
    """answers sqrt(beta) for heavy ball (true only when every mode is underdamped)"""
    lam = np.asarray(eigenvalues, dtype=float)
    if method == "hb":
        return math.sqrt(beta)
    if method == "gd":
        return float(np.abs(1 - lr * lam).max())
    return float(np.max(np.maximum(*_moduli(*_coeffs(lam, lr, beta, method)))))


def mutant_rate_library(eigenvalues, lr, beta, method):
    """calls the library's answer, course_lib.theory.predicted_rate"""
    from course_lib import theory

    return theory.predicted_rate(eigenvalues, lr, beta, method)


# ----------------------------------------------------------------------------------------------
# 6.3 hb_underdamped
# ----------------------------------------------------------------------------------------------
@common("sqrt(beta)")
def mutant_under_modulus_beta(lr, beta):
    """says the modulus is beta"""
    sb = math.sqrt(beta)
    return (1 - sb) ** 2 / lr, (1 + sb) ** 2 / lr, beta


@common("2 sqrt(beta)")
def mutant_under_bounds_no_sqrt(lr, beta):
    """writes (1 -+ beta)^2 / lr for the bounds"""
    return (1 - beta) ** 2 / lr, (1 + beta) ** 2 / lr, math.sqrt(beta)


def mutant_under_bounds_unsquared(lr, beta):
    """writes (1 -+ sqrt(beta)) / lr"""
    sb = math.sqrt(beta)
    return (1 - sb) / lr, (1 + sb) / lr, sb


@common("divide by lr")
def mutant_under_no_lr(lr, beta):
    """gives the bounds on lr lam instead of lam"""
    sb = math.sqrt(beta)
    return (1 - sb) ** 2, (1 + sb) ** 2, sb


def mutant_under_times_lr(lr, beta):
    """multiplies the bounds by lr instead of dividing"""
    sb = math.sqrt(beta)
    return (1 - sb) ** 2 * lr, (1 + sb) ** 2 * lr, sb


def mutant_under_swapped(lr, beta):
    """returns (upper, lower, modulus)"""
    sb = math.sqrt(beta)
    return (1 + sb) ** 2 / lr, (1 - sb) ** 2 / lr, sb


def mutant_under_missing_two(lr, beta):
    """solves |1 + beta - lr lam| < sqrt(beta) (the factor 2 lost)"""
    sb = math.sqrt(beta)
    return (1 + beta - sb) / lr, (1 + beta + sb) / lr, sb


def mutant_under_nag_modulus(lr, beta):
    """gives Nesterov's modulus at the middle of the interval"""
    sb = math.sqrt(beta)
    lo, hi = (1 - sb) ** 2 / lr, (1 + sb) ** 2 / lr
    return lo, hi, math.sqrt(abs(beta * (1 - lr * (lo + hi) / 2)))


# ----------------------------------------------------------------------------------------------
# 6.4 measured_rate
# ----------------------------------------------------------------------------------------------
def _window(steps, norms, lo, hi):
    k, v = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    keep = (v / v[0] >= lo) & (v / v[0] <= hi)
    if keep.sum() < 2:
        raise ValueError("fewer than two records in the window")
    return k, v, keep


@common("start and the floor")
def mutant_measured_all_records(steps, norms, lo, hi):
    """fits every record (the start and the floor too)"""
    k, v, _ = _window(steps, norms, lo, hi)
    return float(np.exp(np.polyfit(k, np.log(v), 1)[0]))


@common("exp(slope)")
def mutant_measured_slope(steps, norms, lo, hi):
    """returns the slope instead of exp(slope)"""
    k, v, keep = _window(steps, norms, lo, hi)
    return float(np.polyfit(k[keep], np.log(v[keep]), 1)[0])


def mutant_measured_log10(steps, norms, lo, hi):
    """fits log10 and returns exp(slope)"""
    k, v, keep = _window(steps, norms, lo, hi)
    return float(np.exp(np.polyfit(k[keep], np.log10(v[keep]), 1)[0]))


@common("record index")
def mutant_measured_index(steps, norms, lo, hi):
    """fits against the record index instead of the step"""
    k, v, keep = _window(steps, norms, lo, hi)
    return float(np.exp(np.polyfit(np.arange(len(v))[keep], np.log(v[keep]), 1)[0]))


def mutant_measured_endpoints(steps, norms, lo, hi):
    """uses the first and last record of the window only (exact only for a clean geometric sequence)"""
    k, v, keep = _window(steps, norms, lo, hi)
    idx = np.flatnonzero(keep)
    return float((v[idx[-1]] / v[idx[0]]) ** (1 / (k[idx[-1]] - k[idx[0]])))


def mutant_measured_no_error(steps, norms, lo, hi):
    """returns nan instead of raising ValueError when the window is too small"""
    k, v = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    keep = (v / v[0] >= lo) & (v / v[0] <= hi)
    if keep.sum() < 2:
        return float("nan")
    return float(np.exp(np.polyfit(k[keep], np.log(v[keep]), 1)[0]))


def mutant_measured_absolute_window(steps, norms, lo, hi):
    """applies [lo, hi] to the norms themselves, not to norms / norms[0]"""
    k, v = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    keep = (v >= lo) & (v <= hi)
    if keep.sum() < 2:
        raise ValueError("fewer than two records in the window")
    return float(np.exp(np.polyfit(k[keep], np.log(v[keep]), 1)[0]))


MUTANTS = {
    "6.1": [mutant_res_prev_zero, mutant_res_nag_as_hb, mutant_res_no_momentum, mutant_res_gradient_sign,
            mutant_res_momentum_sign, mutant_res_nag_partial, mutant_res_no_start_row, mutant_res_beta_for_gd,
            mutant_res_library],
    "6.2": [mutant_rate_real_sqrt, mutant_rate_min_over_lambda, mutant_rate_swapped_methods, mutant_rate_gd_always,
            mutant_rate_smaller_root, mutant_rate_sqrt_beta, mutant_rate_library],
    "6.3": [mutant_under_modulus_beta, mutant_under_bounds_no_sqrt, mutant_under_bounds_unsquared, mutant_under_no_lr,
            mutant_under_times_lr, mutant_under_swapped, mutant_under_missing_two, mutant_under_nag_modulus],
    "6.4": [mutant_measured_all_records, mutant_measured_slope, mutant_measured_log10, mutant_measured_index,
            mutant_measured_endpoints, mutant_measured_no_error, mutant_measured_absolute_window],
}
