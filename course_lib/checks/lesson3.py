"""Public checks of lesson 3's exercises (recovering the teacher).

Expected values come from course_lib's closed-form population gradient (theory.relu_sum_loss, on well-conditioned
angles) or from direct implementations here (drift sums, cluster masses, balance drift), never from the learner's
function or the lesson's modules. Every allowance says why it is what it is, next to it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._common import EPS, as_array, as_float, close, diagnose, fail, pair

ANSWERED_BY = {
    "3.1": ("course_lib.theory.relu_sum_loss", "course_lib.lessons.teacher_student.loss_and_grad",
            "course_lib.lessons.teacher_student.core.loss_and_grad"),
    "3.2": (),  # no library function predicts a drift from gradients alone
    "3.3": ("course_lib.lessons.teacher_student.cluster_mass", "course_lib.lessons.teacher_student.core.cluster_mass"),
    "3.4": ("course_lib.lessons.teacher_student.balance", "course_lib.lessons.teacher_student.core.balance"),
}


def case(n: int, m: int, d: int, seed: int):
    """Output weights a (n,), students W (n, d), teacher a* (m,), W* (m, d)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal((n, d)), rng.uniform(0.5, 1.5, m), rng.standard_normal((m, d))


# ----------------------------------------------------------------------------------------------
# 3.1  the closed-form population gradient
# ----------------------------------------------------------------------------------------------
def expected_gradient(a, W, a_star, W_star):
    from course_lib import theory

    t = lambda v: torch.from_numpy(np.asarray(v, dtype=np.float64))  # noqa: E731
    _, (ga, gW) = theory.relu_sum_loss(t(a), t(W), t(a_star), t(W_star))
    return ga.numpy(), gW.numpy()


def gradient_allowance(a, W, a_star, W_star):
    """What a correct gradient may differ by, entry by entry.

    dL/da_j = 2 sum_q z_q k(w_j, Z_q) and dL/dw_j = 2 a_j sum_q z_q dk(w_j, Z_q)/dw_j over the stacked rows
    Z = [W; W*], z = [a; -a*]. Both k and dk/da are well-conditioned functions of each cosine (derivatives bounded by
    ||a|| ||b|| and ||b||, even near theta = 0 or pi, where arccos itself is not: the errors of (pi - t) and sin t
    cancel), so a cosine rounded by (d + 4) eps moves each term by that much times its scale; the sums add a few eps.
    32 (d + 4) eps times the sum of the terms' scales covers every correct float64 evaluation; each mistake below is
    off by 10% or more."""
    a, W, a_star, W_star = (np.array(v, dtype=float) for v in (a, W, a_star, W_star))
    Z = np.concatenate([W, W_star], axis=0)
    z = np.r_[a, -a_star]
    nz = np.linalg.norm(Z, axis=1)
    d = W.shape[1]
    unit = 32 * (d + 4) * EPS
    s = np.abs(z) @ nz  # sum_q |z_q| ||Z_q||
    ga = unit * 2 * np.linalg.norm(W, axis=1) * s
    gW = unit * 2 * np.abs(a)[:, None] * s * np.ones((1, d))
    return (ga, gW)


def _numpy_gradient(a, W, a_star, W_star, *, factor=2.0, teacher_sign=-1.0, no_sin=False, no_a=False, students=True):
    """The closed-form gradient with one of the common mistakes switched on (for the hints)."""
    a, W, a_star, W_star = (np.array(v, dtype=float) for v in (a, W, a_star, W_star))
    Z = np.concatenate([W, W_star], axis=0) if students else W_star
    z = np.concatenate([a, teacher_sign * a_star]) if students else teacher_sign * a_star
    len_w, len_z = np.linalg.norm(W, axis=1), np.linalg.norm(Z, axis=1)
    c = np.clip(W @ Z.T / np.outer(len_w, len_z), -1, 1)
    t, s = np.arccos(c), np.sqrt(1 - c * c)
    K = np.outer(len_w, len_z) * (s + (math.pi - t) * c) / (2 * math.pi)
    ga = factor * K @ z
    sin_term = 0.0 if no_sin else ((s * len_z[None, :]) @ z)[:, None] * W / len_w[:, None]
    dK = (((math.pi - t) * z[None, :]) @ Z + sin_term) / (2 * math.pi)
    gW = factor * (1.0 if no_a else a[:, None]) * dK
    return (ga, gW)


def _gradient_mistakes(a, W, a_star, W_star):
    return [
        (_numpy_gradient(a, W, a_star, W_star, factor=1.0), "L is a square: both gradients carry a factor 2, "
         "dL/da_j = 2 sum_q z_q k(w_j, Z_q)"),
        (_numpy_gradient(a, W, a_star, W_star, teacher_sign=1.0), "the teacher enters with a minus sign: "
         "f - f* = sum_j a_j relu(w_j.x) - sum_i a*_i relu(w*_i.x), so z = [a, -a*]"),
        (_numpy_gradient(a, W, a_star, W_star, no_sin=True), "dk(a, b)/da has two terms: [(pi - t) b + ||b|| sin(t) "
         "a/||a||] / (2 pi)"),
        (_numpy_gradient(a, W, a_star, W_star, no_a=True), "dL/dw_j carries the factor a_j (the neuron's output "
         "weight): dL/dw_j = 2 a_j sum_q z_q dk(w_j, Z_q)/dw_j"),
        (_numpy_gradient(a, W, a_star, W_star, students=False), "the students interact with each other too: sum over "
         "all rows of [W; W*], not only over the teacher's"),
    ]


def _check_gradient(fn, a, W, a_star, W_star, label: str) -> None:
    n, d = np.shape(W)
    out = fn(np.array(a), np.array(W), np.array(a_star), np.array(W_star))
    if out is None:
        as_array(None, "a pair (dL/da, dL/dW)")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"expected a pair (dL/da of shape ({n},), dL/dW of shape ({n}, {d})); your function returned "
             f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
             "return the two arrays as a tuple (dL/da, dL/dW)")
    nan_hint = ("arccos and sqrt of a cosine that rounding pushed just past +-1 give NaN (a student can sit exactly on "
                "a teacher's direction): clip the cosines to [-1, 1]")
    ga = as_array(out[0], f"dL/da of shape ({n},)", (n,), name="dL/da", nan_hint=nan_hint,
                  shape_hint="return the pair in this order: (dL/da, dL/dW)")
    gW = as_array(out[1], f"dL/dW of shape ({n}, {d})", (n, d), name="dL/dW", nan_hint=nan_hint,
                  shape_hint="one row per student neuron, like W")
    ega, egW = expected_gradient(a, W, a_star, W_star)
    aga, agW = gradient_allowance(a, W, a_star, W_star)
    generic = (f"{label}: with Z = [W; W*], z = [a, -a*]: dL/da_j = 2 sum_q z_q k(w_j, Z_q), "
               "dL/dw_j = 2 a_j sum_q z_q [(pi - t_jq) Z_q + ||Z_q|| sin(t_jq) w_j/||w_j||] / (2 pi)")
    close(ga, ega, aga, name="dL/da", diagnoses=lambda: [(m[0], h) for m, h in _gradient_mistakes(a, W, a_star, W_star)],
          hint=generic)
    close(gW, egW, agW, name="dL/dW", diagnoses=lambda: [(m[1], h) for m, h in _gradient_mistakes(a, W, a_star, W_star)],
          hint=generic)


def check_gradient_small(fn):
    """population_gradient with 3 students and 2 teachers in R^3"""
    _check_gradient(fn, *case(3, 2, 3, 0), "n = 3, m = 2, d = 3")


def check_gradient_aligned(fn):
    """population_gradient where a student copies a teacher neuron and another points the opposite way"""
    a, W, a_star, W_star = case(4, 2, 3, 1)
    W[0] = 0.7 * W_star[1]  # angle 0 to teacher 1: arccos at its worst
    W[1] = -1.3 * W_star[0]  # angle pi to teacher 0
    _check_gradient(fn, a, W, a_star, W_star, "a student parallel and one antiparallel to a teacher")


# ----------------------------------------------------------------------------------------------
# 3.2  the per-step drift of a_j^2 - ||w_j||^2, predicted from the gradients
# ----------------------------------------------------------------------------------------------
def expected_drift(ga_hist, gW_hist, lr) -> np.ndarray:
    ga, gW = np.array(ga_hist, dtype=float), np.array(gW_hist, dtype=float)
    steps = lr * lr * (ga * ga - (gW * gW).sum(-1))
    return np.vstack([np.zeros((1, ga.shape[1])), np.cumsum(steps, axis=0)])


def drift_allowance(ga_hist, gW_hist, lr) -> np.ndarray:
    """Row k sums k terms lr^2 (ga^2 - ||gW||^2): a float64 sum of k terms is within (k + d + 2) eps x the sum of
    their absolute values (the squares and the d-term norms add d + 2 roundings)."""
    ga, gW = np.array(ga_hist, dtype=float), np.array(gW_hist, dtype=float)
    mag = lr * lr * (ga * ga + (gW * gW).sum(-1))
    K, d = ga.shape[0], gW.shape[-1]
    cum = np.vstack([np.zeros((1, ga.shape[1])), np.cumsum(mag, axis=0)])
    return 4 * (K + d + 2) * EPS * cum + 1e-300


def _drift_mistakes(ga_hist, gW_hist, lr) -> list:
    ga, gW = np.array(ga_hist, dtype=float), np.array(gW_hist, dtype=float)
    z = np.zeros((1, ga.shape[1]))
    pad = lambda s: np.vstack([z, np.cumsum(s, axis=0)])  # noqa: E731
    gw2 = (gW * gW).sum(-1)
    return [
        (pad(lr * (ga * ga - gw2)), "one step changes a_j^2 - ||w_j||^2 by lr^2 ((dL/da_j)^2 - ||dL/dw_j||^2): lr "
         "squared (the first-order term -2 lr (a_j dL/da_j - w_j . dL/dw_j) is zero)"),
        (pad(2 * lr * lr * (ga * ga - gw2)), "expand (a - lr g_a)^2 - ||w - lr g_w||^2: the second-order term is lr^2 "
         "(g_a^2 - ||g_w||^2), without a factor 2"),
        (pad(lr * lr * (gw2 - ga * ga)), "the sign: c_j = a_j^2 - ||w_j||^2, so the a-part adds and the w-part subtracts"),
        (pad(lr * lr * (ga - gw2)), "square dL/da_j too: lr^2 ((dL/da_j)^2 - ||dL/dw_j||^2)"),
        (pad(lr * lr * (ga * ga - np.sqrt(gw2))), "||dL/dw_j||^2 is the sum of the squared entries (not the norm)"),
        (np.vstack([z, lr * lr * (ga * ga - gw2)]), "return the cumulative drift after k steps (a running sum), not each "
         "step's change"),
    ]


def _check_drift(fn, ga_hist, gW_hist, lr, label):
    K, n = np.shape(ga_hist)
    got = as_array(fn(np.array(ga_hist), np.array(gW_hist), lr), f"an array of shape ({K + 1}, {n})", (K + 1, n),
                   name="D", shape_hint=f"row k is the drift after k steps: row 0 (no step yet) is 0, and {K} steps "
                                        f"give {K + 1} rows")
    close(got, expected_drift(ga_hist, gW_hist, lr), drift_allowance(ga_hist, gW_hist, lr), name="D",
          diagnoses=lambda: _drift_mistakes(ga_hist, gW_hist, lr),
          hint=f"{label}: D[0] = 0 and D[k + 1] = D[k] + lr^2 ((dL/da_j)^2 - ||dL/dw_j||^2) at step k")


def check_drift_small(fn):
    """predicted_drift of 3 neurons over 5 steps of made-up gradients, lr = 0.1"""
    rng = np.random.default_rng(4)
    _check_drift(fn, rng.standard_normal((5, 3)), rng.standard_normal((5, 3, 2)), 0.1, "5 steps, lr = 0.1")


def check_drift_one_step(fn):
    """predicted_drift of one step: lr^2 ((dL/da)^2 - ||dL/dw||^2) for 2 neurons in R^3"""
    ga = np.array([[3.0, 0.5]])
    gW = np.array([[[1.0, 2.0, 2.0], [0.0, 0.0, 0.5]]])
    _check_drift(fn, ga, gW, 0.5, "one step, lr = 0.5")


# ----------------------------------------------------------------------------------------------
# 3.3  each teacher's cluster mass
# ----------------------------------------------------------------------------------------------
def expected_mass(a, W, W_star) -> np.ndarray:
    a, W, W_star = (np.array(v, dtype=float) for v in (a, W, W_star))
    lengths = np.sqrt((W * W).sum(axis=1))
    cosines = (W / lengths[:, None]) @ (W_star / np.linalg.norm(W_star, axis=1, keepdims=True)).T
    return np.bincount(cosines.argmax(axis=1), weights=a * lengths, minlength=len(W_star)).astype(float)


def mass_allowance(a, W) -> float:
    """A sum of n terms a_j ||w_j||, each a few eps off: (n + d + 4) eps x sum |a_j| ||w_j||. The cases keep every
    student's best cosine at least 1e-6 above its second best, so rounding cannot change an assignment."""
    a, W = np.asarray(a, dtype=np.float64), np.asarray(W, dtype=np.float64)
    return (len(a) + W.shape[1] + 4) * EPS * float(np.abs(a) @ np.linalg.norm(W, axis=1))


def _mass_mistakes(a, W, W_star) -> list:
    a, W, W_star = (np.array(v, dtype=float) for v in (a, W, W_star))
    nw, ns = np.linalg.norm(W, axis=1), np.linalg.norm(W_star, axis=1)
    cos = (W @ W_star.T) / np.outer(nw, ns)
    m = W_star.shape[0]

    def by(owner, mass):
        return np.array([mass[owner == i].sum() for i in range(m)])

    own = np.argmax(cos, axis=1)
    return [
        (by(own, np.abs(a) * nw), "keep the sign of a_j: a student with a negative output weight subtracts from the "
         "mass (sum of a_j ||w_j||, not |a_j| ||w_j||)"),
        (by(np.argmax(np.abs(cos), axis=1), a * nw), "assign by the largest cosine, not the largest |cosine|: a student "
         "pointing away from a teacher (cosine near -1) is not in its cluster"),
        (by(np.argmax(W @ W_star.T, axis=1), a * nw), "use cosines (divide the inner products by both norms): raw inner "
         "products favour the teachers of larger norm"),
        (by(own, a * nw * nw), "a student's mass is a_j ||w_j||, not a_j ||w_j||^2"),
        (by(own, a), "a student's mass is a_j ||w_j||: multiply by the norm of w_j"),
        (by(np.argmin(np.linalg.norm(W[:, None, :] - W_star[None], axis=-1), axis=1), a * nw),
         "assign by direction (largest cosine), not by Euclidean distance"),
    ]


def _check_mass(fn, a, W, W_star, label):
    m = np.shape(W_star)[0]
    got = as_array(fn(np.array(a), np.array(W), np.array(W_star)), f"an array of shape ({m},) (one mass per teacher)",
                   (m,), name="mass")
    close(got, expected_mass(a, W, W_star), mass_allowance(a, W), name="mass",
          diagnoses=lambda: _mass_mistakes(a, W, W_star), hint=f"{label}: assign student j to argmax_i cos(w_j, w*_i), then sum a_j ||w_j|| per teacher (0 for a "
               "teacher with no student)")


def mass_case():
    """Two teachers of norms 0.5 and 2 at 60 degrees; six students: near each teacher, one closer in angle to the
    short teacher but with a larger inner product with the long one, one pointing away from teacher 1, one with a
    negative output weight."""
    W_star = np.array([[0.5, 0.0, 0.0], [1.0, math.sqrt(3.0), 0.0]])
    W = np.array([[1.0, 0.1, 0.05],        # near teacher 0
                  [0.4, 1.1, 0.1],         # near teacher 1
                  [1.0, 0.45, 0.0],        # angle 24 deg to teacher 0, 36 deg to teacher 1; <w, w*_1> > <w, w*_0>
                  [-0.6, -1.2, 0.2],       # cosine -0.97 with teacher 1, -0.43 with teacher 0: belongs to teacher 0
                  [0.9, -0.2, 0.3],        # near teacher 0, negative output weight
                  [0.8, 1.6, -0.1]])       # near teacher 1
    a = np.array([0.8, 1.2, 0.6, 0.3, -0.5, 0.4])
    return a, W, W_star


def check_mass_small(fn):
    """cluster_mass of 6 students, 2 teachers of different norms, one negative output weight"""
    _check_mass(fn, *mass_case(), "6 students, 2 teachers")


def check_mass_empty_teacher(fn):
    """cluster_mass is 0 for a teacher that no student is closest to"""
    W_star = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    W = np.array([[1.0, 0.1], [2.0, -0.1], [0.2, 1.0]])
    _check_mass(fn, np.array([1.0, 0.5, 2.0]), W, W_star, "3 students, 3 teachers")


# ----------------------------------------------------------------------------------------------
# 3.4  the largest drift of a_j^2 - ||w_j||^2 on a recorded history
# ----------------------------------------------------------------------------------------------
def expected_balance_drift(a_hist, W_hist) -> float:
    a, W = np.asarray(a_hist, dtype=np.float64), np.asarray(W_hist, dtype=np.float64)
    c = a * a - (W * W).sum(-1)
    return float(np.max(np.abs(c - c[:1])))


def _balance_mistakes(a_hist, W_hist) -> list:
    a, W = np.asarray(a_hist, dtype=np.float64), np.asarray(W_hist, dtype=np.float64)
    c = a * a - (W * W).sum(-1)
    D = c - c[0]
    return [
        (float(D.max()), "take the absolute value: a decrease of a_j^2 - ||w_j||^2 is a drift too"),
        (float(np.abs(D[-1]).max()), "look at every record, not only the last: the drift can be largest in between"),
        (float(np.abs(np.diff(c, axis=0)).max()), "compare each record with the start c_j(0), not with the previous record"),
        (float(np.abs(c - c[-1]).max()), "compare with the start c_j(0), not with the last record"),
        (float(np.abs((a * a + (W * W).sum(-1)) - (a[0] * a[0] + (W[0] * W[0]).sum(-1))).max()),
         "the conserved quantity is a_j^2 MINUS ||w_j||^2"),
        (float(np.abs((a * a - np.linalg.norm(W, axis=-1)) - (a[0] * a[0] - np.linalg.norm(W[0], axis=-1))).max()),
         "square the norm: c_j = a_j^2 - ||w_j||^2"),
        (float(np.abs(D.sum(axis=1)).max()), "the largest over the neurons j, not the drift of their sum"),
    ]


# The drift is a difference of c_j(t) and c_j(0), each a sum of d + 1 squares: float64 rounding is at most
# (d + 4) eps x (a_j^2 + ||w_j||^2) at each record, so 2 (d + 4) eps x the largest such scale.
def _balance_allowance(a_hist, W_hist) -> float:
    a, W = np.asarray(a_hist, dtype=np.float64), np.asarray(W_hist, dtype=np.float64)
    return 2 * (W.shape[-1] + 4) * EPS * float((a * a + (W * W).sum(-1)).max())


def _check_balance(fn, a_hist, W_hist, label):
    got = as_float(fn(np.array(a_hist), np.array(W_hist)), "a float (the largest |c_j(t) - c_j(0)|)")
    exp = expected_balance_drift(a_hist, W_hist)
    allow = _balance_allowance(a_hist, W_hist)
    if not math.isfinite(got) or abs(got - exp) > allow:
        fail(f"{label}: {pair(exp, got)} (allowed {allow:.2g})",
             diagnose(got, lambda: _balance_mistakes(a_hist, W_hist), allow) or "c_j(t) = a_j(t)^2 - ||w_j(t)||^2; return the largest |c_j(t) - c_j(0)| over the records t and neurons j")


def check_balance_history(fn):
    """balance_drift on a 4-record history of 2 neurons (largest drift negative, and not at the last record)"""
    a = np.array([[1.0, 0.5], [1.2, 0.5], [0.7, 0.45], [0.95, 0.5]])
    W = np.array([[[1.0, 0.0], [0.0, 0.5]], [[1.1, 0.0], [0.0, 0.5]], [[1.0, 0.1], [0.1, 0.5]], [[0.9, 0.0], [0.0, 0.5]]])
    _check_balance(fn, a, W, "4 records, 2 neurons")


def check_balance_conserved(fn):
    """balance_drift is 0 for a rescaling that keeps a_j^2 - ||w_j||^2"""
    a = np.array([[2.0], [4.0]])
    W = np.array([[[3.0, 0.0]], [[math.sqrt(12.0), 3.0]]])
    _check_balance(fn, a, W, "a^2 - ||w||^2 = 4 - 9 = 16 - 21 at both records")


CHECKS = {
    "3.1": [check_gradient_small, check_gradient_aligned],
    "3.2": [check_drift_small, check_drift_one_step],
    "3.3": [check_mass_small, check_mass_empty_teacher],
    "3.4": [check_balance_history, check_balance_conserved],
}
