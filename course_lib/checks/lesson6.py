"""Public checks of lesson 6's exercises (momentum: heavy ball vs Nesterov).

Expected values come from independent computations here (the companion-matrix iteration of the stacked state
(r_k, r_{k-1}), numpy's roots of the characteristic polynomials, a direct least-squares fit) or from course_lib's
theory.predicted_rate, never from the lesson's modules or the learner's function. Every allowance says why it is what it
is, next to it.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import EPS, as_array, as_float, close, diagnose, fail, pair

ANSWERED_BY = {
    "6.1": ("course_lib.lessons.momentum.linearized_residuals", "course_lib.lessons.momentum.core.linearized_residuals"),
    "6.2": ("course_lib.theory.predicted_rate", "course_lib.theory.mode_rate"),
    "6.3": (),
    "6.4": (),
}


# ----------------------------------------------------------------------------------------------
# 6.1  the residual under GD, heavy ball and Nesterov
# ----------------------------------------------------------------------------------------------
def expected_residuals(H, r0, lr, beta, method, steps) -> np.ndarray:
    """The companion-matrix iteration on the stacked state (r_k, r_{k-1}), starting from (r0, r0)."""
    H, r0 = np.asarray(H, dtype=np.float64), np.asarray(r0, dtype=np.float64)
    n = len(r0)
    eye = np.eye(n)
    b = beta if method != "gd" else 0.0
    if method == "nag":
        A = np.block([[(1 + b) * (eye - lr * H), -b * (eye - lr * H)], [eye, np.zeros((n, n))]])
    else:
        A = np.block([[(1 + b) * eye - lr * H, -b * eye], [eye, np.zeros((n, n))]])
    z = np.concatenate([r0, r0])
    out = [r0.copy()]
    for _ in range(steps):
        z = A @ z
        out.append(z[:n].copy())
    return np.array(out)


def residual_allowance(H, r0, lr, beta, method, steps) -> np.ndarray:
    """Each step of the recursion rounds by ~ (n + 4) eps x (||I - lr H|| + 2 beta) x the state's size, and the
    recursion carries earlier roundings with it: row k may differ by 4 (n + 4) eps sum_{j <= k} |r_j|_max x
    (1 + lr ||H|| + 2 beta), whichever correct order of operations is used (the direct loop, the companion matrix,
    an eigenbasis). Row 0 is r0 itself, exactly."""
    ref = expected_residuals(H, r0, lr, beta, method, steps)
    n = len(r0)
    scale = 1 + lr * float(np.linalg.norm(np.asarray(H), 2)) + 2 * beta
    running = np.cumsum(np.abs(ref).max(axis=1))
    return (4 * (n + 4) * EPS * scale * running)[:, None] * np.ones((1, n))


HINTS = {"gd": "r_{k+1} = r_k - lr H r_k",
         "hb": "r_{k+1} = r_k - lr H r_k + beta (r_k - r_{k-1}), with r_{-1} = r_0",
         "nag": "s = r_k + beta (r_k - r_{k-1}); r_{k+1} = s - lr H s (the gradient at the look-ahead point), with "
                "r_{-1} = r_0"}


def _residual_mistakes(H, r0, lr, beta, method, steps) -> list:
    H, r0 = np.asarray(H, dtype=np.float64), np.asarray(r0, dtype=np.float64)

    def loop(update, prev0=None):
        r, prev = r0.copy(), (r0.copy() if prev0 is None else prev0)
        out = [np.copy(r)]
        for _ in range(steps):
            r, prev = update(r, prev), r
            out.append(np.copy(r))
        return np.array(out)

    b = beta if method != "gd" else 0.0
    out = [
        (loop(lambda r, p: r - lr * H @ r + b * (r - p), prev0=np.zeros_like(r0)) if method == "hb" else
         loop(lambda r, p: (r + b * (r - p)) - lr * H @ (r + b * (r - p)), prev0=np.zeros_like(r0)),
         "start with r_{-1} = r_0 (no momentum on the first step), not with r_{-1} = 0"),
        (loop(lambda r, p: r - lr * H @ r + b * (r - p)), "Nesterov evaluates the gradient at the look-ahead point: "
         "s = r_k + beta (r_k - r_{k-1}), then r_{k+1} = s - lr H s (that was heavy ball)"),
        (loop(lambda r, p: r - lr * H @ r), "add the momentum term beta (r_k - r_{k-1})"),
        (loop(lambda r, p: r + lr * H @ r + b * (r - p)), "the gradient step subtracts: r - lr H r"),
        (loop(lambda r, p: r - lr * H @ r - b * (r - p)), "the momentum term adds beta (r_k - r_{k-1})"),
    ]
    return out


def _check_residuals(fn, H, r0, lr, beta, method, steps, label):
    n = len(r0)
    got = as_array(fn(np.array(H), np.array(r0), lr, beta, method, steps), f"an array of shape ({steps + 1}, {n})",
                   (steps + 1, n), name="r", shape_hint=f"row k is r_k for k = 0, ..., steps: {steps + 1} rows, row 0 "
                                                        "is r0")
    close(got, expected_residuals(H, r0, lr, beta, method, steps), residual_allowance(H, r0, lr, beta, method, steps),
          name="r", diagnoses=lambda: _residual_mistakes(H, r0, lr, beta, method, steps),
          hint=f"{label}: {HINTS[method]}")


def gram(n, seed):
    """A small symmetric positive definite matrix with spectrum in [0.1, 1], and a residual."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.linspace(0.1, 1.0, n)
    return (Q * lam) @ Q.T, rng.standard_normal(n)


def check_gd_residuals(fn):
    """6.1: "gd" on a 5 x 5 Gram matrix, lr = 0.9, 30 steps (beta = 0.5 is given and ignored)"""
    H, r0 = gram(5, 0)
    _check_residuals(fn, H, r0, 0.9, 0.5, "gd", 30, "gd (beta is ignored)")


def check_hb_residuals(fn):
    """6.1: "hb" with lr = 0.9, beta = 0.7, 30 steps"""
    H, r0 = gram(5, 0)
    _check_residuals(fn, H, r0, 0.9, 0.7, "hb", 30, "hb")


def check_nag_residuals(fn):
    """6.1: "nag" with lr = 0.9, beta = 0.7, 30 steps"""
    H, r0 = gram(5, 0)
    _check_residuals(fn, H, r0, 0.9, 0.7, "nag", 30, "nag")


# ----------------------------------------------------------------------------------------------
# 6.2  the predicted rate from a spectrum
# ----------------------------------------------------------------------------------------------
def expected_rate(lam, lr, beta, method) -> float:
    from course_lib import theory

    return float(theory.predicted_rate(np.asarray(lam, dtype=float), lr, beta, method))


def rate_allowance(lam, lr, beta, method) -> float:
    """The largest root modulus of z^2 - b z + c is continuous but not smooth where the two roots meet (critical
    damping): a rounding delta ~ 8 eps (b^2 + 4|c|) of the discriminant moves the moduli by at most
    min(delta / (4 sqrt|disc|), sqrt(delta) / 2) (~1e-8 at the meeting point, ~1e-16 away from it). That, per
    eigenvalue, plus 16 eps; the mistakes below are off by 1e-3 or more."""
    lam = np.asarray(lam, dtype=float)
    if method == "gd":
        return 16 * EPS * float(np.abs(1 - lr * lam).max() + 1)
    q = 1 - lr * lam
    b, c = ((1 + beta - lr * lam), np.full_like(lam, beta)) if method == "hb" else ((1 + beta) * q, beta * q)
    disc = b * b - 4 * c
    delta = 8 * EPS * (b * b + 4 * np.abs(c))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.minimum(np.where(disc != 0, delta / (4 * np.sqrt(np.abs(disc))), np.inf), np.sqrt(delta) / 2)
    return float(err.max() + 16 * EPS)


def _rate_mistakes(lam, lr, beta, method) -> list:
    lam = np.asarray(lam, dtype=float)
    q = 1 - lr * lam

    def largest(b, c, real_only=False):
        disc = b * b - 4 * c
        if real_only:
            root = np.sqrt(np.maximum(disc, 0))
            return float(np.max(np.maximum(np.abs(b + root), np.abs(b - root)) / 2))
        root = np.sqrt(disc.astype(complex))
        return float(np.max(np.maximum(np.abs(b + root), np.abs(b - root)) / 2))

    hb = (1 + beta - lr * lam, np.full_like(lam, beta))
    nag = ((1 + beta) * q, beta * q)
    b, c = hb if method == "hb" else nag
    out = [
        (largest(b, c, real_only=True), "the roots may be complex: take sqrt of the discriminant as a complex number "
         "(np.sqrt(disc.astype(complex))) or use np.roots"),
        (float(np.min(np.maximum(np.abs((b + np.sqrt((b * b - 4 * c).astype(complex))) / 2),
                                 np.abs((b - np.sqrt((b * b - 4 * c).astype(complex))) / 2)))),
         "the rate is the LARGEST root modulus over all the eigenvalues (the slowest mode), not the smallest"),
        (largest(*nag) if method == "hb" else largest(*hb), "heavy ball: z^2 - (1 + beta - lr lam) z + beta; "
         "Nesterov: z^2 - (1 + beta)(1 - lr lam) z + beta (1 - lr lam)"),
        (float(np.abs(q).max()), "that is GD's rate max |1 - lr lam|: with momentum each mode has two roots"),
        (float(np.max(np.abs((b - np.sqrt((b * b - 4 * c).astype(complex))) / 2))), "take the larger of the two roots' "
         "moduli for each eigenvalue"),
    ]
    exp = expected_rate(lam, lr, beta, method)
    return [(v, h) for v, h in out if abs(v - exp) > 1e-6]


def _check_rate(fn, lam, lr, beta, method, label):
    got = as_float(fn(np.asarray(lam, dtype=float), lr, beta, method), "a float (the predicted per-step factor)")
    exp = expected_rate(lam, lr, beta, method)
    allow = rate_allowance(lam, lr, beta, method)
    if not math.isfinite(got) or abs(got - exp) > allow:
        fail(f"{label} ({method}, lr = {lr}, beta = {beta}, eigenvalues {np.round(lam, 3).tolist()}): {pair(exp, got)} "
             f"(allowed {allow:.2g})", diagnose(got, lambda: _rate_mistakes(lam, lr, beta, method), allow) or
             "the largest |root| of each eigenvalue's 2x2 characteristic polynomial, over every eigenvalue (roots "
             "may be complex)")


def check_rate_gd(fn):
    """6.2: GD on eigenvalues 0.1..2 with lr = 0.8"""
    _check_rate(fn, np.linspace(0.1, 2.0, 7), 0.8, 0.0, "gd", "GD")


def check_rate_hb_underdamped(fn):
    """6.2: heavy ball with beta = 0.8: every mode underdamped"""
    _check_rate(fn, np.linspace(0.1, 2.0, 7), 0.5, 0.8, "hb", "heavy ball, complex roots")


def check_rate_nag_and_overdamped_hb(fn):
    """6.2: Nesterov with beta = 0.4, and heavy ball with small beta and a step past 2/lambda_max"""
    _check_rate(fn, np.array([0.05, 0.3, 1.0, 1.7]), 0.9, 0.4, "nag", "Nesterov")
    _check_rate(fn, np.array([0.02, 0.5, 1.0]), 2.2, 0.3, "hb", "heavy ball, real roots")


# ----------------------------------------------------------------------------------------------
# 6.3  why heavy ball's rate does not depend on lambda when underdamped
# ----------------------------------------------------------------------------------------------
def expected_underdamped(lr, beta) -> tuple[float, float, float]:
    sb = beta ** 0.5
    return ((1 - sb) ** 2) / lr, ((1 + sb) ** 2) / lr, sb


# Three closed-form numbers, each a handful of float64 operations: relative error below 16 eps. 1e-12 relative; every
# mistake below is off by 1e-3 or more.
UNDERDAMPED_RTOL = 1e-12


def _underdamped_mistakes(lr, beta) -> list:
    sb = beta ** 0.5
    lo, hi, mod = expected_underdamped(lr, beta)
    return [
        ((lo, hi, beta), "the product of two complex-conjugate roots is |z|^2 = beta, so |z| = sqrt(beta)"),
        (((1 - beta) ** 2 / lr, (1 + beta) ** 2 / lr, sb), "complex roots need (1 + beta - lr lam)^2 < 4 beta, i.e. "
         "|1 + beta - lr lam| < 2 sqrt(beta): lr lam between (1 - sqrt(beta))^2 and (1 + sqrt(beta))^2"),
        (((1 - sb) / lr, (1 + sb) / lr, sb), "square the bounds: lr lam between (1 - sqrt(beta))^2 and "
         "(1 + sqrt(beta))^2"),
        (((1 - sb) ** 2, (1 + sb) ** 2, sb), "the bounds are on lr lam: divide by lr to get lam"),
        ((hi, lo, mod), "return (lower bound, upper bound, modulus)"),
        (((1 + beta - sb) / lr, (1 + beta + sb) / lr, sb), "|1 + beta - lr lam| < 2 sqrt(beta): the factor 2 is missing"),
    ]


def _check_underdamped(fn, lr, beta, label):
    out = fn(lr, beta)
    if out is None or not isinstance(out, (tuple, list)) or len(out) != 3:
        if out is None:
            as_float(None, "a triple (lam_lo, lam_hi, modulus)")
        fail(f"expected a triple (lam_lo, lam_hi, modulus); your function returned {type(out).__name__}",
             "return lam_lo, lam_hi, modulus")
    got = np.array([as_float(v, "a float") for v in out])
    exp = np.array(expected_underdamped(lr, beta))
    close(got, exp, UNDERDAMPED_RTOL * np.abs(exp) + 1e-300, name="(lam_lo, lam_hi, modulus)",
          diagnoses=lambda: [(np.array(v), h) for v, h in _underdamped_mistakes(lr, beta)],
          hint=f"{label}: complex roots of z^2 - (1 + beta - lr lam) z + beta where (1 + beta - lr lam)^2 < 4 beta; "
               "their product is beta")


def check_underdamped_basic(fn):
    """6.3: hb_underdamped(lr = 1, beta = 0.81)"""
    _check_underdamped(fn, 1.0, 0.81, "lr = 1, beta = 0.81")


def check_underdamped_other(fn):
    """6.3: hb_underdamped(lr = 0.25, beta = 0.5)"""
    _check_underdamped(fn, 0.25, 0.5, "lr = 0.25, beta = 0.5")


# ----------------------------------------------------------------------------------------------
# 6.4  the measured rate from a history
# ----------------------------------------------------------------------------------------------
def expected_measured(steps, norms, lo, hi) -> float:
    """exp(slope) of the least-squares line through log(norms) against steps, over lo <= norms/norms[0] <= hi, by the
    normal equations (independent of how a solution fits)."""
    k, v = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    sel = np.flatnonzero((v / v[0] >= lo) & (v / v[0] <= hi))
    kk, yy = k[sel], np.log(v[sel])
    return float(np.exp(((kk - kk.mean()) * (yy - yy.mean())).sum() / ((kk - kk.mean()) ** 2).sum()))


# The input is exact and the slope a least-squares fit of <= 400 points: float64 gets it to ~1e-13 relative by any
# method (polyfit, lstsq, the normal equations); exp keeps that. 1e-9 absolute on a rate near 1; the mistakes below are
# off by 1e-3 or more.
MEASURED_ALLOWANCE = 1e-9


def _measured_mistakes(steps, norms, lo, hi) -> list:
    k, v = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    rel = v / v[0]

    def fit(sel, y=None):
        y = np.log(v[sel]) if y is None else y[sel]
        return float(np.exp(np.polyfit(k[sel], y, 1)[0]))

    every = np.ones(len(v), dtype=bool)
    win = (rel >= lo) & (rel <= hi)
    out = [(fit(every), "fit only the records with lo <= norms / norms[0] <= hi: the start and the floor must be left out"),
           (float(np.polyfit(k[win], np.log(v[win]), 1)[0]), "return the per-step factor exp(slope), not the slope"),
           (fit(win, np.log10(v)), "fit the natural log: the factor is exp(slope) of log(norms), not of log10(norms)")]
    idx = np.arange(len(v), dtype=float)
    out.append((float(np.exp(np.polyfit(idx[win], np.log(v[win]), 1)[0])), "fit against the recorded steps, not the "
                "record index: records can be several steps apart"))
    return out


def _check_measured(fn, steps, norms, lo, hi, label):
    got = as_float(fn(np.array(steps), np.array(norms), lo, hi), "a float (the per-step factor)")
    exp = expected_measured(steps, norms, lo, hi)
    if not math.isfinite(got) or abs(got - exp) > MEASURED_ALLOWANCE:
        fail(f"{label}: {pair(exp, got)} (allowed {MEASURED_ALLOWANCE:g})",
             diagnose(got, lambda: _measured_mistakes(steps, norms, lo, hi), MEASURED_ALLOWANCE) or
             "keep lo <= norms/norms[0] <= hi, fit log(norms) = a + b steps by least squares, return exp(b)")


def check_measured_geometric(fn):
    """6.4: an exact geometric sequence 3 * 0.9^k"""
    k = np.arange(200)
    _check_measured(fn, k, 3.0 * 0.9**k, 1e-6, 1e-1, "3 * 0.9^k")


def check_measured_window(fn):
    """6.4: records every 2 steps, a slow start and a floor: only the records inside [lo, hi] are fitted"""
    k = np.arange(0, 300, 2)
    norms = np.where(k < 40, 0.97**k, 0.97**40 * 0.8 ** ((k - 40) / 2))
    _check_measured(fn, k, np.maximum(norms, 1e-7), 1e-5, 1e-1, "slow start, then 0.8 per 2 steps, then a floor")


CHECKS = {
    "6.1": [check_gd_residuals, check_hb_residuals, check_nag_residuals],
    "6.2": [check_rate_gd, check_rate_hb_underdamped, check_rate_nag_and_overdamped_hb],
    "6.3": [check_underdamped_basic, check_underdamped_other],
    "6.4": [check_measured_geometric, check_measured_window],
}
