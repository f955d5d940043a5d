"""Plausible wrong answers to lesson 3's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""
import math

import numpy as np
import torch

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 3.1 population_gradient
# ----------------------------------------------------------------------------------------------
def _grad(a, W, a_star, W_star, *, factor=2.0, teacher_sign=-1.0, no_sin=False, no_a=False, students=True,
          clip=True, sin_norm_of_w=False, square_a=False):
    a, W, a_star, W_star = (np.asarray(v, dtype=np.float64) for v in (a, W, a_star, W_star))
    Z = np.vstack([W, W_star]) if students else W_star
    z = np.concatenate([a, teacher_sign * a_star]) if students else teacher_sign * a_star
    nw, nz = np.linalg.norm(W, axis=1), np.linalg.norm(Z, axis=1)
    c = W @ Z.T / np.outer(nw, nz)
    if clip:
        c = np.clip(c, -1, 1)
    with np.errstate(invalid="ignore"):
        t, s = np.arccos(c), np.sqrt(1 - c * c)
    K = np.outer(nw, nz) * (s + (math.pi - t) * c) / (2 * math.pi)
    ga = factor * K @ z
    scale = nw[:, None] * np.ones_like(nz)[None, :] if sin_norm_of_w else nz[None, :]
    sin_term = 0.0 if no_sin else ((s * scale) @ z)[:, None] * W / nw[:, None]
    dK = (((math.pi - t) * z[None, :]) @ Z + sin_term) / (2 * math.pi)
    mult = 1.0 if no_a else (a * a if square_a else a)[:, None]
    return ga, factor * mult * dK


@common("factor 2")
def mutant_grad_no_two(a, W, a_star, W_star):
    """forgets the factor 2 of the square"""
    return _grad(a, W, a_star, W_star, factor=1.0)


@common("minus sign")
def mutant_grad_teacher_sign(a, W, a_star, W_star):
    """adds the teacher instead of subtracting it (z = [a, +a*])"""
    return _grad(a, W, a_star, W_star, teacher_sign=1.0)


@common("two terms")
def mutant_grad_no_sin(a, W, a_star, W_star):
    """drops the ||b|| sin(t) a/||a|| term of dk/da"""
    return _grad(a, W, a_star, W_star, no_sin=True)


@common("factor a_j")
def mutant_grad_no_a(a, W, a_star, W_star):
    """forgets the output weight a_j in dL/dw_j"""
    return _grad(a, W, a_star, W_star, no_a=True)


def mutant_grad_a_squared(a, W, a_star, W_star):
    """multiplies dL/dw_j by a_j^2"""
    return _grad(a, W, a_star, W_star, square_a=True)


def mutant_grad_teachers_only(a, W, a_star, W_star):
    """sums over the teacher rows only (forgets the students' interaction)"""
    return _grad(a, W, a_star, W_star, students=False)


@common("clip the cosines")
def mutant_grad_no_clip(a, W, a_star, W_star):
    """arccos and sqrt of an unclipped cosine (NaN for a student parallel to a teacher)"""
    return _grad(a, W, a_star, W_star, clip=False)


def mutant_grad_sin_norm(a, W, a_star, W_star):
    """uses ||w_j|| instead of ||Z_q|| in the sin term"""
    return _grad(a, W, a_star, W_star, sin_norm_of_w=True)


def mutant_grad_swapped(a, W, a_star, W_star):
    """returns (dL/dW, dL/da) in the wrong order"""
    ga, gW = _grad(a, W, a_star, W_star)
    return gW, ga


def mutant_grad_monte_carlo(a, W, a_star, W_star):
    """estimates the gradient from 20000 Gaussian samples"""
    a, W, a_star, W_star = (np.asarray(v, dtype=np.float64) for v in (a, W, a_star, W_star))
    x = np.random.default_rng(0).standard_normal((20000, W.shape[1]))
    pre = x @ W.T
    r = np.maximum(pre, 0) @ a - np.maximum(x @ W_star.T, 0) @ a_star
    ga = 2 * np.maximum(pre, 0).T @ r / len(x)
    gW = 2 * a[:, None] * (((pre > 0) * r[:, None]).T @ x) / len(x)
    return ga, gW


def mutant_grad_library(a, W, a_star, W_star):
    """takes the gradient from the library's course_lib.theory.relu_sum_loss"""
    from course_lib import theory

    t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64))  # noqa: E731
    _, (ga, gW) = theory.relu_sum_loss(t(a), t(W), t(a_star), t(W_star))
    return ga.numpy(), gW.numpy()


# ----------------------------------------------------------------------------------------------
# 3.2 predicted_drift
# ----------------------------------------------------------------------------------------------
def _pad(steps):
    return np.vstack([np.zeros((1, steps.shape[1])), np.cumsum(steps, axis=0)])


def _terms(ga_hist, gW_hist):
    ga, gW = np.asarray(ga_hist, dtype=np.float64), np.asarray(gW_hist, dtype=np.float64)
    return ga, (gW * gW).sum(-1)


@common("lr squared")
def mutant_drift_lr_not_squared(ga_hist, gW_hist, lr):
    """multiplies by lr instead of lr^2"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(lr * (ga * ga - gw2))


def mutant_drift_factor_two(ga_hist, gW_hist, lr):
    """keeps a factor 2 on the second-order term"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(2 * lr * lr * (ga * ga - gw2))


@common("the sign")
def mutant_drift_sign(ga_hist, gW_hist, lr):
    """subtracts the a-part and adds the w-part"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(lr * lr * (gw2 - ga * ga))


def mutant_drift_unsquared_ga(ga_hist, gW_hist, lr):
    """forgets to square dL/da_j"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(lr * lr * (ga - gw2))


def mutant_drift_norm_not_squared(ga_hist, gW_hist, lr):
    """uses ||dL/dw_j|| instead of its square"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(lr * lr * (ga * ga - np.sqrt(gw2)))


@common("row 0")
def mutant_drift_no_start_row(ga_hist, gW_hist, lr):
    """returns the running sum without the start row (K rows instead of K + 1)"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return np.cumsum(lr * lr * (ga * ga - gw2), axis=0)


def mutant_drift_shifted(ga_hist, gW_hist, lr):
    """puts the first step's change in row 0 and drops the last"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    c = np.cumsum(lr * lr * (ga * ga - gw2), axis=0)
    return np.vstack([c, c[-1:]])


@common("running sum")
def mutant_drift_per_step(ga_hist, gW_hist, lr):
    """returns each step's change instead of the cumulative drift"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return np.vstack([np.zeros((1, ga.shape[1])), lr * lr * (ga * ga - gw2)])


def mutant_drift_first_order(ga_hist, gW_hist, lr):
    """keeps a first-order term -2 lr (dL/da_j)^2 (as if w_j . dL/dw_j were 0)"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    return _pad(-2 * lr * ga * ga + lr * lr * (ga * ga - gw2))


def mutant_drift_mean_neurons(ga_hist, gW_hist, lr):
    """averages over the neurons (one column repeated)"""
    ga, gw2 = _terms(ga_hist, gW_hist)
    D = _pad(lr * lr * (ga * ga - gw2))
    return np.repeat(D.mean(axis=1, keepdims=True), D.shape[1], axis=1)


# ----------------------------------------------------------------------------------------------
# 3.3 cluster_mass
# ----------------------------------------------------------------------------------------------
def _mass(a, W, W_star, *, owner="cos", weight="a_norm"):
    a, W, W_star = (np.asarray(v, dtype=np.float64) for v in (a, W, W_star))
    nw, ns = np.linalg.norm(W, axis=1), np.linalg.norm(W_star, axis=1)
    cos = W @ W_star.T / np.outer(nw, ns)
    own = {"cos": lambda: np.argmax(cos, axis=1), "abs": lambda: np.argmax(np.abs(cos), axis=1),
           "inner": lambda: np.argmax(W @ W_star.T, axis=1), "min": lambda: np.argmin(cos, axis=1),
           "dist": lambda: np.argmin(np.linalg.norm(W[:, None] - W_star[None], axis=-1), axis=1)}[owner]()
    mass = {"a_norm": a * nw, "abs": np.abs(a) * nw, "sq": a * nw * nw, "a": a, "one": np.ones_like(a)}[weight]
    return np.array([mass[own == i].sum() for i in range(W_star.shape[0])])


@common("keep the sign of a_j")
def mutant_mass_abs_a(a, W, W_star):
    """uses |a_j| for a_j"""
    return _mass(a, W, W_star, weight="abs")


@common("largest |cosine|")
def mutant_mass_abs_cos(a, W, W_star):
    """assigns by the largest |cosine|"""
    return _mass(a, W, W_star, owner="abs")


@common("raw inner")
def mutant_mass_inner_products(a, W, W_star):
    """assigns by the raw inner products instead of the cosines"""
    return _mass(a, W, W_star, owner="inner")


def mutant_mass_norm_squared(a, W, W_star):
    """sums a_j ||w_j||^2"""
    return _mass(a, W, W_star, weight="sq")


def mutant_mass_no_norm(a, W, W_star):
    """sums a_j only"""
    return _mass(a, W, W_star, weight="a")


def mutant_mass_counts(a, W, W_star):
    """counts the students per teacher"""
    return _mass(a, W, W_star, weight="one")


def mutant_mass_argmin(a, W, W_star):
    """assigns by the smallest cosine"""
    return _mass(a, W, W_star, owner="min")


def mutant_mass_distance(a, W, W_star):
    """assigns by Euclidean distance"""
    return _mass(a, W, W_star, owner="dist")


def mutant_mass_per_student(a, W, W_star):
    """returns each student's a_j ||w_j|| (length n) instead of the sums per teacher"""
    return np.asarray(a, dtype=np.float64) * np.linalg.norm(np.asarray(W, dtype=np.float64), axis=1)


def mutant_mass_library(a, W, W_star):
    """calls the lesson's own course_lib.lessons.teacher_student.cluster_mass"""
    from course_lib.lessons.teacher_student import cluster_mass

    return cluster_mass(a, W, W_star)


# ----------------------------------------------------------------------------------------------
# 3.4 balance_drift
# ----------------------------------------------------------------------------------------------
def _c(a_hist, W_hist):
    a, W = np.asarray(a_hist, dtype=np.float64), np.asarray(W_hist, dtype=np.float64)
    return a, W, a * a - (W * W).sum(-1)


@common("absolute value")
def mutant_balance_no_abs(a_hist, W_hist):
    """takes the largest signed drift (no absolute value)"""
    _, _, c = _c(a_hist, W_hist)
    return float((c - c[0]).max())


@common("every record")
def mutant_balance_last_record(a_hist, W_hist):
    """looks at the last record only"""
    _, _, c = _c(a_hist, W_hist)
    return float(np.abs(c[-1] - c[0]).max())


def mutant_balance_consecutive(a_hist, W_hist):
    """compares consecutive records"""
    _, _, c = _c(a_hist, W_hist)
    return float(np.abs(np.diff(c, axis=0)).max())


def mutant_balance_vs_last(a_hist, W_hist):
    """compares with the last record instead of the first"""
    _, _, c = _c(a_hist, W_hist)
    return float(np.abs(c - c[-1]).max())


def mutant_balance_plus(a_hist, W_hist):
    """tracks a_j^2 + ||w_j||^2"""
    a, W, _ = _c(a_hist, W_hist)
    s = a * a + (W * W).sum(-1)
    return float(np.abs(s - s[0]).max())


def mutant_balance_norm_not_squared(a_hist, W_hist):
    """tracks a_j^2 - ||w_j||"""
    a, W, _ = _c(a_hist, W_hist)
    s = a * a - np.linalg.norm(W, axis=-1)
    return float(np.abs(s - s[0]).max())


def mutant_balance_sum_neurons(a_hist, W_hist):
    """tracks the sum over the neurons"""
    _, _, c = _c(a_hist, W_hist)
    return float(np.abs((c - c[0]).sum(axis=1)).max())


def mutant_balance_mean(a_hist, W_hist):
    """averages |c_j(t) - c_j(0)| instead of taking the largest"""
    _, _, c = _c(a_hist, W_hist)
    return float(np.abs(c - c[0]).mean())


def mutant_balance_library(a_hist, W_hist):
    """uses the lesson's own course_lib.lessons.teacher_student.balance"""
    from course_lib.lessons.teacher_student import balance

    b = balance(a_hist, W_hist)
    return float(np.abs(b - b[0]).max())


MUTANTS = {
    "3.1": [mutant_grad_no_two, mutant_grad_teacher_sign, mutant_grad_no_sin, mutant_grad_no_a, mutant_grad_a_squared,
            mutant_grad_teachers_only, mutant_grad_no_clip, mutant_grad_sin_norm, mutant_grad_swapped,
            mutant_grad_monte_carlo, mutant_grad_library],
    "3.2": [mutant_drift_lr_not_squared, mutant_drift_factor_two, mutant_drift_sign, mutant_drift_unsquared_ga,
            mutant_drift_norm_not_squared, mutant_drift_no_start_row, mutant_drift_shifted, mutant_drift_per_step,
            mutant_drift_first_order, mutant_drift_mean_neurons],
    "3.3": [mutant_mass_abs_a, mutant_mass_abs_cos, mutant_mass_inner_products, mutant_mass_norm_squared,
            mutant_mass_no_norm, mutant_mass_counts, mutant_mass_argmin, mutant_mass_distance, mutant_mass_per_student,
            mutant_mass_library],
    "3.4": [mutant_balance_no_abs, mutant_balance_last_record, mutant_balance_consecutive, mutant_balance_vs_last,
            mutant_balance_plus, mutant_balance_norm_not_squared, mutant_balance_sum_neurons, mutant_balance_mean,
            mutant_balance_library],
}
