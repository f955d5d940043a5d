"""Plausible wrong answers to lesson 4's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""
import math

import numpy as np
import torch

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 4.1 hermite_coeffs
# ----------------------------------------------------------------------------------------------
def _coeffs(activation, num, nodes=150, *, scale=1 / math.sqrt(2 * math.pi), recur="sqrt", of_phi=False,
            physicists=False, shift=0):
    from course_lib import get_activation

    act = get_activation(activation)
    if physicists:
        z, w = np.polynomial.hermite.hermgauss(nodes)
    else:
        z, w = np.polynomial.hermite_e.hermegauss(nodes)
        w = w * scale
    f = w * (act.phi if of_phi else act.dphi)(torch.from_numpy(z)).numpy()
    out = np.empty(num + shift)
    prev, cur = np.zeros_like(z), np.ones_like(z)
    for p in range(num + shift):
        out[p] = cur @ f
        if recur == "sqrt":
            prev, cur = cur, (z * cur - math.sqrt(p) * prev) / math.sqrt(p + 1)
        elif recur == "plain":
            prev, cur = cur, z * cur - p * prev
        else:
            prev, cur = cur, (z * cur - p * prev) / (p + 1)
    return out[shift:]


@common("sqrt(2 pi)")
def mutant_coeffs_unnormalized_weights(activation, num):
    """uses hermegauss's weights as they are (they sum to sqrt(2 pi), not 1)"""
    return _coeffs(activation, num, scale=1.0)


@common("orthonormal")
def mutant_coeffs_plain_hermite(activation, num):
    """uses He_p without the 1/sqrt(p!)"""
    return _coeffs(activation, num, recur="plain")


def mutant_coeffs_linear_recurrence(activation, num):
    """writes the recurrence with p and p + 1 instead of their square roots"""
    return _coeffs(activation, num, recur="linear")


@common("phi'")
def mutant_coeffs_of_phi(activation, num):
    """expands phi instead of phi'"""
    return _coeffs(activation, num, of_phi=True)


def mutant_coeffs_physicists(activation, num):
    """uses the physicists' rule hermgauss (weight exp(-z^2))"""
    return _coeffs(activation, num, physicists=True)


def mutant_coeffs_shifted(activation, num):
    """returns c_1, ..., c_num"""
    return _coeffs(activation, num, shift=1)


def mutant_coeffs_few_nodes(activation, num):
    """uses 20 quadrature nodes (not converged for tanh')"""
    return _coeffs(activation, num, nodes=20)


def mutant_coeffs_library(activation, num):
    """calls the library's answer, Activation.hermite_coeffs"""
    from course_lib import get_activation

    return get_activation(activation).hermite_coeffs(num)


# ----------------------------------------------------------------------------------------------
# 4.2 gram_from_coeffs
# ----------------------------------------------------------------------------------------------
def _R(X):
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


@common("exponent is p + 1")
def mutant_gram_exponent_p(X, c):
    """uses rho^p instead of rho^(p+1)"""
    R = _R(X)
    return sum(cp * cp * R ** p for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


@common("square the coefficients")
def mutant_gram_unsquared(X, c):
    """uses c_p instead of c_p^2"""
    R = _R(X)
    return sum(cp * R ** (p + 1) for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


@common("elementwise")
def mutant_gram_matrix_power(X, c):
    """takes matrix powers instead of elementwise powers"""
    R = _R(X)
    return sum(cp * cp * np.linalg.matrix_power(R, p + 1) for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


def mutant_gram_skip_first(X, c):
    """starts the sum at p = 1"""
    R = _R(X)
    return sum(cp * cp * R ** (p + 1) for p, cp in enumerate(np.asarray(c, dtype=np.float64)) if p > 0)


def mutant_gram_exponent_p_plus_two(X, c):
    """uses rho^(p+2)"""
    R = _R(X)
    return sum(cp * cp * R ** (p + 2) for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


def mutant_gram_transposed(X, c):
    """builds the d x d matrix X^T X"""
    X = np.asarray(X, dtype=np.float64)
    R = X.T @ X
    return sum(cp * cp * R ** (p + 1) for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


def mutant_gram_abs_rho(X, c):
    """takes |rho| (loses the sign of odd powers)"""
    R = np.abs(_R(X))
    return sum(cp * cp * R ** (p + 1) for p, cp in enumerate(np.asarray(c, dtype=np.float64)))


def mutant_gram_last_term_dropped(X, c):
    """stops one term early (range(len(c) - 1))"""
    R = _R(X)
    c = np.asarray(c, dtype=np.float64)
    return sum(c[p] ** 2 * R ** (p + 1) for p in range(len(c) - 1)) + 0 * R


# ----------------------------------------------------------------------------------------------
# 4.3 rank_by_speed
# ----------------------------------------------------------------------------------------------
def _losses(grams, r0, lr, steps, *, power=2, rows=False):
    r0 = np.asarray(r0, dtype=np.float64)
    out = {}
    for name, G in grams.items():
        lam, V = np.linalg.eigh(np.asarray(G, dtype=np.float64))
        c = V @ r0 if rows else V.T @ r0
        out[name] = 0.5 * float(np.sum((1 - lr * lam) ** (power * steps) * c * c))
    return out


@common("lambda_min alone")
def mutant_rank_lambda_min(grams, r0, lr, steps):
    """ranks by lambda_min (largest first)"""
    return sorted(grams, key=lambda a: -np.linalg.eigvalsh(np.asarray(grams[a]))[0])


def mutant_rank_lambda_max(grams, r0, lr, steps):
    """ranks by lambda_max (largest first)"""
    return sorted(grams, key=lambda a: -np.linalg.eigvalsh(np.asarray(grams[a]))[-1])


def mutant_rank_trace(grams, r0, lr, steps):
    """ranks by the trace (largest first)"""
    return sorted(grams, key=lambda a: -np.trace(np.asarray(grams[a])))


def mutant_rank_descending(grams, r0, lr, steps):
    """sorts from the highest predicted loss"""
    loss = _losses(grams, r0, lr, steps)
    return sorted(loss, key=lambda a: -loss[a])


@common("off by one")
def mutant_rank_one_step_short(grams, r0, lr, steps):
    """predicts the loss after steps - 1 steps"""
    loss = _losses(grams, r0, lr, max(steps - 1, 0))
    return sorted(loss, key=loss.get)


def mutant_rank_one_step_long(grams, r0, lr, steps):
    """predicts the loss after steps + 1 steps"""
    loss = _losses(grams, r0, lr, steps + 1)
    return sorted(loss, key=loss.get)


def mutant_rank_unsquared(grams, r0, lr, steps):
    """multiplies c_i^2 by (1 - lr lam_i)^k instead of its square"""
    loss = _losses(grams, r0, lr, steps, power=1)
    return sorted(loss, key=loss.get)


def mutant_rank_rows(grams, r0, lr, steps):
    """projects r0 on the rows of eigh's eigenvector matrix"""
    loss = _losses(grams, r0, lr, steps, rows=True)
    return sorted(loss, key=loss.get)


def mutant_rank_worst_mode(grams, r0, lr, steps):
    """ignores r0: ranks by the slowest factor max |1 - lr lam|"""
    return sorted(grams, key=lambda a: float(np.abs(1 - lr * np.linalg.eigvalsh(np.asarray(grams[a]))).max()))


def mutant_rank_library(grams, r0, lr, steps):
    """predicts with the library's course_lib.theory.linearized_loss"""
    from course_lib import theory

    loss = {a: float(theory.linearized_loss(torch.as_tensor(np.asarray(G, dtype=np.float64)),
                                            torch.as_tensor(np.asarray(r0, dtype=np.float64)), lr, steps)[-1])
            for a, G in grams.items()}
    return sorted(loss, key=loss.get)


# ----------------------------------------------------------------------------------------------
# 4.4 delta_exponent
# ----------------------------------------------------------------------------------------------
def _slopes(c, lo, hi, *, inclusive=False, squared=True, pooled=False):
    c = np.asarray(c, dtype=np.float64)
    p = np.arange(len(c))
    top = (p <= hi) if inclusive else (p < hi)
    out = []
    for parity in ((None,) if pooled else (0, 1)):
        sel = (p >= lo) & top & (c != 0) & ((p % 2 == parity) if parity is not None else True)
        if sel.sum() >= 2:
            y = np.log(c[sel] ** 2) if squared else np.log(np.abs(c[sel]))
            out.append(float(np.polyfit(np.log(p[sel]), y, 1)[0]))
    return out


@common("1/delta^2")
def mutant_exponent_no_two(c, lo, hi):
    """returns s - 1 (terms p >~ 1/delta instead of 1/delta^2)"""
    return -max(_slopes(c, lo, hi)) - 1


@common("TAIL")
def mutant_exponent_s(c, lo, hi):
    """returns s, the decay of one term, instead of the tail's"""
    return -max(_slopes(c, lo, hi))


def mutant_exponent_two_s(c, lo, hi):
    """returns 2 s"""
    return -2 * max(_slopes(c, lo, hi))


@common("slower-decaying parity")
def mutant_exponent_fast_parity(c, lo, hi):
    """uses the faster-decaying parity"""
    return 2 * (-min(_slopes(c, lo, hi)) - 1)


def mutant_exponent_pooled(c, lo, hi):
    """fits both parities together"""
    return 2 * (-_slopes(c, lo, hi, pooled=True)[0] - 1)


def mutant_exponent_unsquared(c, lo, hi):
    """fits log|c_p| instead of log c_p^2"""
    return 2 * (-max(_slopes(c, lo, hi, squared=False)) - 1)


def mutant_exponent_inclusive(c, lo, hi):
    """fits over lo <= p <= hi (one point too many)"""
    return 2 * (-max(_slopes(c, lo, hi, inclusive=True)) - 1)


def mutant_exponent_sign(c, lo, hi):
    """returns the exponent with the wrong sign"""
    return -2 * (-max(_slopes(c, lo, hi)) - 1)


def mutant_exponent_from_zero(c, lo, hi):
    """ignores lo: fits from p = 1"""
    return 2 * (-max(_slopes(c, 1, hi)) - 1)


def mutant_exponent_library(c, lo, hi):
    """fits with the lesson's own course_lib.lessons.activation_gram.parity_slopes"""
    from course_lib.lessons.activation_gram import parity_slopes

    slopes = parity_slopes(np.asarray(c, dtype=np.float64) ** 2, lo, hi)
    return 2 * (-max(slopes.values()) - 1)


def mutant_exponent_theory_table(c, lo, hi):
    """answers 3 (ELU's value) whatever the coefficients"""
    return 3.0


MUTANTS = {
    "4.1": [mutant_coeffs_unnormalized_weights, mutant_coeffs_plain_hermite, mutant_coeffs_linear_recurrence,
            mutant_coeffs_of_phi, mutant_coeffs_physicists, mutant_coeffs_shifted, mutant_coeffs_few_nodes,
            mutant_coeffs_library],
    "4.2": [mutant_gram_exponent_p, mutant_gram_unsquared, mutant_gram_matrix_power, mutant_gram_skip_first,
            mutant_gram_exponent_p_plus_two, mutant_gram_transposed, mutant_gram_abs_rho, mutant_gram_last_term_dropped],
    "4.3": [mutant_rank_lambda_min, mutant_rank_lambda_max, mutant_rank_trace, mutant_rank_descending,
            mutant_rank_one_step_short, mutant_rank_one_step_long, mutant_rank_unsquared, mutant_rank_rows,
            mutant_rank_worst_mode, mutant_rank_library],
    "4.4": [mutant_exponent_no_two, mutant_exponent_s, mutant_exponent_two_s, mutant_exponent_fast_parity,
            mutant_exponent_pooled, mutant_exponent_unsquared, mutant_exponent_inclusive, mutant_exponent_sign,
            mutant_exponent_from_zero, mutant_exponent_theory_table, mutant_exponent_library],
}
