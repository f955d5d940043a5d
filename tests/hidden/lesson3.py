"""Hidden tests of lesson 3's exercises: other sizes, real gradient-descent histories, mixed signs. Never shipped.
Allowances are the public checks' (their reasons are stated there), except where a test states its own."""
import functools

import numpy as np
import torch

from course_lib.checks._common import EPS, as_array, fail
from course_lib.checks.lesson3 import (_check_balance, _check_drift, _check_gradient, _check_mass, case,
                                       gradient_allowance)


@functools.lru_cache(maxsize=4)
def gd_history(n, m, d, seed, lr, steps):
    """Population gradient descent on both layers (the library's closed-form gradient), from a start near the
    teacher; every step's parameters and gradients."""
    from course_lib import theory

    a, W, a_star, W_star = case(n, m, d, seed)
    W = W_star[np.arange(n) % m] * 0.8 + 0.2 * W
    a = np.abs(a_star[np.arange(n) % m]) * 0.9
    t = lambda v: torch.from_numpy(np.asarray(v, dtype=np.float64))  # noqa: E731
    hist = {"a": [], "W": [], "ga": [], "gW": []}
    for _ in range(steps + 1):
        _, (ga, gW) = theory.relu_sum_loss(t(a), t(W), t(a_star), t(W_star))
        ga, gW = ga.numpy(), gW.numpy()
        for k, v in (("a", a), ("W", W), ("ga", ga), ("gW", gW)):
            hist[k].append(np.array(v))
        a, W = a - lr * ga, W - lr * gW
    out = {k: np.array(v) for k, v in hist.items()}
    out.update(a_star=a_star, W_star=W_star)
    return out


def hidden_gradient_sizes(fn):
    """population_gradient with 6 students and 3 teachers in R^5"""
    _check_gradient(fn, *case(6, 3, 5, 11), "n = 6, m = 3, d = 5")


def hidden_gradient_homogeneity(fn):
    """population_gradient satisfies a_j dL/da_j = w_j . dL/dw_j (relu is 1-homogeneous), near the teacher"""
    h = gd_history(5, 2, 4, 12, 0.05, 3)
    a, W, a_star, W_star = h["a"][-1], h["W"][-1], h["a_star"], h["W_star"]
    _check_gradient(fn, a, W, a_star, W_star, "near the teacher")
    ga, gW = fn(a.copy(), W.copy(), a_star.copy(), W_star.copy())
    ga, gW = as_array(ga, "dL/da", (5,)), as_array(gW, "dL/dW", (5, 4))
    aga, agW = gradient_allowance(a, W, a_star, W_star)
    gap = np.abs(a * ga - (W * gW).sum(1))
    allow = np.abs(a) * aga + (np.abs(W) * agW).sum(1)
    if (gap > allow).any():
        j = int(np.argmax(gap - allow))
        fail(f"neuron {j}: a_j dL/da_j - w_j . dL/dw_j = {gap[j]:.3g}, should be 0 (allowed {allow[j]:.2g})")


def hidden_drift_real_run(fn):
    """predicted_drift on 60 steps of a real run equals the measured drift of a_j^2 - ||w_j||^2"""
    h = gd_history(4, 2, 3, 13, 0.2, 60)
    ga, gW = h["ga"][:-1], h["gW"][:-1]
    _check_drift(fn, ga, gW, 0.2, "60 steps of gradient descent")
    got = as_array(fn(ga.copy(), gW.copy(), 0.2), "an array of shape (61, 4)", (61, 4))
    c = h["a"] ** 2 - (h["W"] ** 2).sum(-1)
    measured = c - c[0]
    # the identity a_j dL/da_j = w_j . dL/dw_j holds to rounding, so GD's first-order term is ~ lr eps x scale per
    # step; over 60 steps and with c's own rounding, 1e3 eps x the largest a_j^2 + ||w_j||^2 covers it
    allow = 1e3 * EPS * float((h["a"] ** 2 + (h["W"] ** 2).sum(-1)).max())
    if np.abs(got - measured).max() > allow:
        fail(f"the prediction differs from the run's measured drift by {np.abs(got - measured).max():.3g}")


def hidden_drift_long(fn):
    """predicted_drift over 300 made-up steps of 5 neurons in R^4, lr = 0.03"""
    rng = np.random.default_rng(14)
    _check_drift(fn, rng.standard_normal((300, 5)), rng.standard_normal((300, 5, 4)), 0.03, "300 steps")


def hidden_mass_signs(fn):
    """cluster_mass with mixed-sign output weights, 9 students, 3 teachers in R^4"""
    rng = np.random.default_rng(5)
    a, W, W_star = rng.standard_normal(9), rng.standard_normal((9, 4)), rng.standard_normal((3, 4)) * [[0.3], [1], [3]]
    _check_mass(fn, a, W, W_star, "9 students, 3 teachers")


def hidden_mass_trained(fn):
    """cluster_mass of a student trained by gradient descent (masses near a*_i ||w*_i||)"""
    h = gd_history(6, 3, 4, 15, 0.05, 40)
    _check_mass(fn, h["a"][-1], h["W"][-1], h["W_star"], "a trained student")


def hidden_balance_run(fn):
    """balance_drift of a real gradient-descent history"""
    h = gd_history(4, 2, 3, 13, 0.2, 60)
    _check_balance(fn, h["a"], h["W"], "60 steps of gradient descent")


def hidden_balance_random(fn):
    """balance_drift on random histories where the largest drift is negative and in the middle"""
    rng = np.random.default_rng(16)
    for trial in range(5):
        R, n, d = 6, 3, 2
        a = rng.standard_normal((R, n))
        W = rng.standard_normal((R, n, d))
        a[R // 2, 0] = 0.0
        W[R // 2, 0] = 5.0
        _check_balance(fn, a, W, f"random history {trial}")


HIDDEN = {
    "3.1": [hidden_gradient_sizes, hidden_gradient_homogeneity],
    "3.2": [hidden_drift_real_run, hidden_drift_long],
    "3.3": [hidden_mass_signs, hidden_mass_trained],
    "3.4": [hidden_balance_run, hidden_balance_random],
}
