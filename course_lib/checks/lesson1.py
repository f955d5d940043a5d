"""Public checks of lesson 1's exercises (kernel regime).

Expected values come from course_lib's own, well-conditioned code (kernels.relu_h_inf with kernels.angles, an
eigendecomposition of H for the linearized loss, course_lib.train for the movement), computed independently of the
learner's function. Every allowance says why it is what it is, next to it.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._common import EPS, arccos_allowance, as_array, as_float, as_int, close, diagnose, fail, pair, sphere, unit_cosines

# The library functions that ARE each exercise's answer (hidden while that exercise is graded; check() warns a
# learner who calls one). Every dotted path under which one is reachable is listed.
ANSWERED_BY = {
    "1.1": ("course_lib.kernels.relu_h_inf", "course_lib.kernels.gram_inf", "course_lib.kernels.gram_hermite",
            "course_lib.kernels.gram_from_correlation", "course_lib.kernels.dphi_kernel",
            "course_lib.lessons.kernel_regime.predicted_gram", "course_lib.lessons.kernel_regime.core.predicted_gram"),
    "1.2": ("course_lib.theory.linearized_loss", "course_lib.theory.linearized_residuals",
            "course_lib.theory.linearized_modes"),
    "1.3": ("course_lib.lessons.kernel_regime.neuron_movement", "course_lib.lessons.kernel_regime.core.neuron_movement",
            "course_lib.lessons.kernel_regime.loglog_slope", "course_lib.lessons.kernel_regime.core.loglog_slope"),
}


# ----------------------------------------------------------------------------------------------
# 1.1  H^inf
# ----------------------------------------------------------------------------------------------
def expected_h(X) -> np.ndarray:
    from course_lib import kernels

    return kernels.relu_h_inf(torch.from_numpy(np.asarray(X, dtype=np.float64))).numpy()


def h_allowance(X) -> np.ndarray:
    """What a correct H^inf may differ by, entry by entry.

    H_ij = <x_i, x_j> (pi - theta_ij) / (2 pi) with theta_ij = arccos(cosine). The cosine itself is rounded by a few
    ulp (|dc| <= (d + 4) eps), and arccos turns that into an angle error up to 1.5e-8 where the cosine is near +-1
    (on the diagonal, and for nearly parallel rows): :func:`arccos_allowance`. So entry (i, j) may be off by
    |<x_i, x_j>| x that angle error / (2 pi), plus 16 eps x ||x_i|| ||x_j|| for the products and sums. The
    reference uses well-conditioned angles (accurate to ~1e-16), so this is all the difference a correct answer can
    show; a missing factor, a cosine for the inner product or a NaN is off by far more.
    """
    X = np.array(X, dtype=float)
    norms = np.sqrt((X * X).sum(axis=1))
    inner = np.dot(X, X.T)
    cos = unit_cosines(X, X)
    return np.abs(inner) * arccos_allowance(cos, X.shape[1]) / (2 * math.pi) + 16 * EPS * np.outer(norms, norms)


def _h_mistakes(X, exp) -> list:
    """What the common wrong answers return on X, with the hint for each."""
    X = np.array(X, dtype=float)
    norms = np.sqrt((X * X).sum(axis=1))
    cos = unit_cosines(X, X)
    theta = np.arccos(np.clip(cos, -1, 1))
    return [
        (exp * 2 * math.pi, "the factor 1/(2 pi) is missing: H_ij = <x_i, x_j> (pi - theta_ij) / (2 pi)"),
        (exp * 2, "divide by 2 pi, not by pi"),
        ((math.pi - theta) / (2 * math.pi), "multiply by the inner product <x_i, x_j>: (pi - theta)/(2 pi) alone is "
         "E[1[w.x_i >= 0] 1[w.x_j >= 0]], not H"),
        (cos * (math.pi - theta) / (2 * math.pi), "the factor is the inner product <x_i, x_j>, not the cosine: rows "
         "need not have unit norm"),
        (np.outer(norms, norms) * (np.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi),
         "that is the output layer's kernel E[relu(w.x_i) relu(w.x_j)]; H^inf is <x_i, x_j> (pi - theta_ij) / (2 pi)"),
    ]


ARCCOS_NAN_HINT = ("arccos of a cosine that rounding pushed just above 1 (or below -1) is NaN: clip the cosine to "
                   "[-1, 1] before arccos")


def _check_h(fn, X, label: str) -> None:
    X = np.array(X, dtype=float)
    n = X.shape[0]
    got = as_array(fn(X.copy()), f"a ({n}, {n}) array", (n, n), name="H", nan_hint=ARCCOS_NAN_HINT,
                   shape_hint="one entry per pair of rows of X: X @ X.T is (n, n)")
    exp = expected_h(X)
    close(got, exp, h_allowance(X), name="H", diagnoses=lambda: _h_mistakes(X, exp),
          hint=f"{label}: H_ij = <x_i, x_j> (pi - theta_ij) / (2 pi), theta_ij in [0, pi] the angle between x_i and x_j")


def clip_case() -> np.ndarray:
    """5 unit rows in R^3 where rounding pushes computed cosines above 1: two parallel pairs (x and 3x, y and
    -0.5 y) and rows whose x.x / (||x|| ||x||) rounds to 1.0000000000000002."""
    base = sphere(40, 3, 11)
    inner = base @ base.T
    norms = np.linalg.norm(base, axis=1)
    over = np.flatnonzero(np.diag(inner / np.outer(norms, norms)) > 1.0)
    pick = list(over[:2]) + [i for i in range(40) if i not in over][:1]
    X = base[pick]
    return np.vstack([X, 3.0 * X[0], -0.5 * X[1]])


def check_h_inf_small(fn):
    """h_inf on 5 rows in R^3, two of them parallel to others"""
    _check_h(fn, clip_case(), "5 rows in R^3")


def check_h_inf_norms(fn):
    """h_inf on 4 rows of norms 0.5, 1, 2, 3 in R^6 (the diagonal is ||x_i||^2 / 2)"""
    X = sphere(4, 6, 1) * np.array([[0.5], [1.0], [2.0], [3.0]])
    _check_h(fn, X, "rows of norms 0.5 to 3")


# ----------------------------------------------------------------------------------------------
# 1.2  steps to a target loss under the linearized dynamics
# ----------------------------------------------------------------------------------------------
def linearized_losses(H, r0, lr, steps: int) -> np.ndarray:
    """(1/2) ||(I - lr H)^k r0||^2 for k = 0..steps, mode by mode (float64 eigendecomposition)."""
    lam, V = np.linalg.eigh(0.5 * (np.asarray(H, dtype=np.float64) + np.asarray(H, dtype=np.float64).T))
    weight = np.square(V.T @ np.array(r0, dtype=float))
    k = np.arange(steps + 1)[:, None]
    return 0.5 * ((1 - lr * lam)[None, :] ** (2 * k) * weight[None, :]).sum(axis=1)


def expected_steps(H, r0, lr, target, cap: int = 100_000) -> int:
    loss = linearized_losses(H, r0, lr, cap)
    hit = np.flatnonzero(loss <= target)
    return int(hit[0]) if len(hit) else -1


def spectral_case(seed: int, n: int = 8, frac: float = 0.5):
    """H = H^inf of n unit points in R^3, a random residual, lr = frac x 2 / lambda_max."""
    X = sphere(n, 3, seed)
    H = expected_h(X)
    r0 = np.random.default_rng(seed + 100).standard_normal(n)
    lr = frac * 2.0 / np.linalg.eigvalsh(H)[-1]
    return H, r0, lr


def safe_target(H, r0, lr, k: int) -> float:
    """A target between the losses at steps k - 1 and k (their geometric mean): the answer is k, and rounding in
    any correct computation of the losses (relative ~1e-13) cannot move it, because the target is a factor
    sqrt(L(k-1)/L(k)) (>= 1.0001 in these cases) away from both."""
    loss = linearized_losses(H, r0, lr, k)
    return float(math.sqrt(loss[k - 1] * loss[k])) if k > 0 else float(2 * loss[0])


def _step_mistakes(H, r0, lr, target) -> list:
    lam, V = np.linalg.eigh(H)
    L0 = 0.5 * float(r0 @ r0)
    first = lambda loss: int(np.flatnonzero(loss <= target)[0]) if (loss <= target).any() else -1  # noqa: E731
    k = np.arange(20001)[:, None]
    c2 = (V.T @ r0) ** 2
    out = []
    exp = expected_steps(H, r0, lr, target)
    out.append((exp + 1, "off by one: k = 0 is the start (loss (1/2)||r0||^2); return the first k with loss <= target"))
    out.append((exp - 1, "off by one: return the first k whose loss is <= target, counting the start as k = 0"))
    out.append((first(((1 - lr * lam)[None] ** (2 * k) * c2).sum(1)), "the loss is (1/2)||r(k)||^2: the 1/2 is missing"))
    out.append((first(0.5 * ((1 - lr * lam)[None] ** k * c2).sum(1)),
                "each coefficient is multiplied by (1 - lr lam_i) per step, so its square by (1 - lr lam_i)^2"))
    out.append((first(0.5 * ((1 - lr * lam)[None] ** (2 * k) * (V @ r0) ** 2).sum(1)),
                "the coefficients are c_i = v_i . r0 with v_i the COLUMNS of eigh's eigenvector matrix (V.T @ r0)"))
    out.append((first(L0 * (1 - lr * lam[0]) ** (2 * k[:, 0])), "the slowest mode alone gives a bound, not the "
                "loss: sum every mode, each with its own factor and its own coefficient"))
    return [(v, h) for v, h in out if v != exp]


def _check_steps(fn, H, r0, lr, target, label):
    got = as_int(fn(H.copy(), r0.copy(), lr, target), "an int (a number of steps)")
    exp = expected_steps(H, r0, lr, target)
    if got != exp:
        fail(f"{label}: expected {exp} steps, got {got}",
             diagnose(got, lambda: _step_mistakes(H, r0, lr, target)) or
             "loss(k) = 1/2 sum_i (1 - lr lam_i)^(2k) c_i^2 with c_i = v_i . r0; return the first k with loss(k) <= target")


def check_steps_basic(fn):
    """steps_to_reach on 8 points in R^3, a target reached after 37 steps"""
    H, r0, lr = spectral_case(0)
    _check_steps(fn, H, r0, lr, safe_target(H, r0, lr, 37), "8 points, lr = 1/lambda_max")


def check_steps_start_and_one(fn):
    """steps_to_reach is 0 when the start is below the target, 1 when the first step gets there"""
    H, r0, lr = spectral_case(1)
    got = as_int(fn(H.copy(), r0.copy(), lr, 0.5 * float(r0 @ r0) * 2.0), "an int (a number of steps)")
    if got != 0:
        fail(f"the loss at k = 0 is already below the target: expected 0, got {got}",
             "k = 0 (no step at all) counts: check the loss before the first step")
    _check_steps(fn, H, r0, lr, safe_target(H, r0, lr, 1), "a target just below the loss at k = 0")


# ----------------------------------------------------------------------------------------------
# 1.3  the movement exponent, measured by training
# ----------------------------------------------------------------------------------------------
def movement_problem(n: int, d: int, seed: int, frac: float = 0.5):
    """n unit points in R^d, labels +-1, lr = frac x 2 / lambda_max(H^inf)."""
    X = sphere(n, d, seed)
    y = np.sign(np.random.default_rng(seed + 1).standard_normal(n))
    y[y == 0] = 1.0
    lr = frac * 2.0 / float(np.linalg.eigvalsh(expected_h(X))[-1])
    return X, y, lr


@functools.lru_cache(maxsize=32)
def movements(n, d, seed, frac, widths: tuple, steps: int, seeds: int, dtype=torch.float64, train_output=False,
              init_seed: int = 0) -> dict:
    """Each width's networks trained as the exercise says; per network: the largest neuron movement, the whole
    matrix's movement (Frobenius), the largest squared movement and the largest single entry's movement."""
    from course_lib.models import TwoLayer
    from course_lib.runtime import torch_threads
    from course_lib.train import train

    X, y, lr = movement_problem(n, d, seed, frac)
    out = {"max": [], "fro": [], "sq": [], "entry": [], "axis": []}
    with torch_threads(1):
        for m in widths:
            model = TwoLayer(m, train_output=train_output)
            params = model.init(d, ensemble=seeds, seed=init_seed, dtype=dtype)
            hist = train(model, params, torch.as_tensor(X, dtype=dtype), torch.as_tensor(y, dtype=dtype),
                         steps=steps, lr=lr, progress=False)
            D = (hist.params["W"] - hist.params0["W"]).to(torch.float64)  # (seeds, m, d)
            out["max"].append(D.norm(dim=-1).amax(-1).numpy())
            out["fro"].append(D.norm(dim=(-2, -1)).numpy())
            out["sq"].append((D * D).sum(-1).amax(-1).numpy())
            out["entry"].append(D.abs().amax(dim=(-2, -1)).numpy())
            out["axis"].append(D.norm(dim=-2).amax(-1).numpy())
    return {k: np.array(v) for k, v in out.items()}  # each (widths, seeds)


def slope(widths, values) -> float:
    return float(np.polyfit(np.log(np.asarray(widths, dtype=float)), np.log(np.asarray(values, dtype=float)), 1)[0])


# A slope of log(movement) against log(width). Two correct trainings differ only by rounding: float64 runs (any
# summation order) by ~1e-13 relative, float32 runs (the library's default dtype, accepted) by ~1e-6 relative in each
# movement, measured ~3e-8 in the slope on these cases. 1e-6 accepts both; every plausible mistake (one seed, the
# median, a mean of logs, another norm, another seed or step count) moves the slope by 5e-4 or more here.
SLOPE_ALLOWANCE = 1e-6


def _movement_mistakes(widths, mv: dict, exp: float) -> list:
    w = np.asarray(widths, dtype=float)
    M = mv["max"]
    out = [
        (slope(w, M[:, 0]), "that is the first network's slope alone: average each width's movement over all its networks"),
        (slope(w, M[:, -1]), "that is the last network's slope alone: average each width's movement over all its networks"),
        (slope(w, np.median(M, axis=1)), "average with the mean over the networks, not the median"),
        (float(np.polyfit(np.log(w), np.log(M).mean(axis=1), 1)[0]),
         "take the mean of the movements, then its log (not the mean of the logs)"),
        (slope(w, mv["fro"].mean(1)), "a network's movement is the largest movement of one neuron, max_r ||w_r(T) - "
         "w_r(0)||, not the norm of the whole matrix W(T) - W(0)"),
        (slope(w, mv["sq"].mean(1)), "the movement is a norm ||w_r(T) - w_r(0)||, not its square"),
        (slope(w, mv["entry"].mean(1)), "take the norm of each neuron's change (a row of W), not the largest entry"),
        (slope(w, mv["axis"].mean(1)), "norm over each neuron's d weights (the last axis of W), then the largest "
         "over the neurons"),
        (-0.5, "measure the exponent from the runs: theory's -1/2 is what it should be close to, not the answer"),
    ]
    return [(v, h) for v, h in out if abs(v - exp) > 10 * SLOPE_ALLOWANCE]


def movement_case(fn, n, d, seed, frac, widths, steps, seeds, label):
    X, y, lr = movement_problem(n, d, seed, frac)
    got = as_float(fn(X.copy(), y.copy(), list(widths), steps, lr, seeds), "a float (the slope)")
    mv = movements(n, d, seed, frac, tuple(widths), steps, seeds)
    exp = slope(widths, mv["max"].mean(axis=1))
    if not math.isfinite(got) or abs(got - exp) > SLOPE_ALLOWANCE:
        fail(f"{label}: {pair(exp, got)} (allowed {SLOPE_ALLOWANCE:g})",
             diagnose(got, lambda: _movement_mistakes(widths, mv, exp), SLOPE_ALLOWANCE) or
             "per width: TwoLayer(m), init(d, ensemble=seeds, seed=0, dtype=torch.float64), train(..., steps=steps, "
             "lr=lr); per network max_r ||w_r(T) - w_r(0)||; mean over the networks; slope of log against log m")


def check_movement_three_widths(fn):
    """movement_exponent: widths 16, 64, 256, three networks each, 50 steps"""
    movement_case(fn, 10, 5, 0, 0.5, (16, 64, 256), 50, 3, "widths 16, 64, 256 (3 networks each)")


def check_movement_other_data(fn):
    """movement_exponent: other data, widths 32, 128, 512, three networks each, 40 steps"""
    movement_case(fn, 12, 4, 2, 0.4, (32, 128, 512), 40, 3, "widths 32, 128, 512 (3 networks each)")


CHECKS = {
    "1.1": [check_h_inf_small, check_h_inf_norms],
    "1.2": [check_steps_basic, check_steps_start_and_one],
    "1.3": [check_movement_three_widths, check_movement_other_data],
}
