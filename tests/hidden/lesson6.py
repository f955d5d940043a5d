"""Hidden tests of lesson 6's exercises: random Gram matrices, edge cases, other tunings, noisy histories.
Never shipped. Allowances are the public checks' (their reasons are stated there)."""
from __future__ import annotations

import math

import numpy as np

from course_lib.checks._common import fail
from course_lib.checks.lesson6 import (_check_measured, _check_rate, _check_residuals, _check_underdamped,
                                       expected_underdamped)


def _random_gram(n, seed):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return B @ B.T / n + 0.05 * np.eye(n), rng.standard_normal(n)


def hidden_residuals_random(fn):
    """6.1: random Gram matrices, each method"""
    for seed, method in enumerate(["gd", "hb", "nag", "hb", "nag"]):
        n = int(np.random.default_rng(100 + seed).integers(2, 9))
        H, r0 = _random_gram(n, 100 + seed)
        _check_residuals(fn, H, r0, 0.3 + 0.2 * seed, 0.15 * seed if method != "gd" else 0.0, method, 25,
                         f"{method}, n = {n}")


def hidden_residuals_edges(fn):
    """6.1: steps = 0 returns [r0]; beta = 0 makes heavy ball and Nesterov equal to GD; Nesterov past its limit"""
    H = np.array([[2.0, 0.3], [0.3, 0.5]])
    r0 = np.array([1.0, -2.0])
    _check_residuals(fn, H, r0, 0.4, 0.5, "nag", 0, "steps = 0")
    for m in ("hb", "nag"):
        _check_residuals(fn, H, r0, 0.4, 0.0, m, 10, f"{m} with beta = 0")
    _check_residuals(fn, np.diag([1.0, 0.2]), np.array([1.0, 1.0]), 1.6, 0.8, "nag", 40, "Nesterov past its limit")


def hidden_rate_random(fn):
    """6.2: random spectra and parameters, each method"""
    rng = np.random.default_rng(7)
    for i in range(30):
        lam = np.sort(rng.uniform(0.01, 3.0, size=int(rng.integers(1, 20))))
        lr, beta = float(rng.uniform(0.05, 1.5)), float(rng.uniform(0, 0.95))
        method = ["gd", "hb", "nag"][i % 3]
        _check_rate(fn, lam, lr, 0.0 if method == "gd" else beta, method, f"random case {i}")


def hidden_rate_classical_tunings(fn):
    """6.2: Polyak's heavy ball (critically damped at both ends) and Nesterov's standard tuning; a plain list"""
    mu, L = 0.04, 1.0
    sk = math.sqrt(L / mu)
    lam = np.linspace(mu, L, 9)
    _check_rate(fn, lam, 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, ((sk - 1) / (sk + 1)) ** 2, "hb", "Polyak")
    _check_rate(fn, lam, 1 / L, (sk - 1) / (sk + 1), "nag", "Nesterov's tuning")
    got = float(fn([0.5], 0.5, 0.25, "hb"))  # a double root at sqrt(beta) = 0.5
    # at a double root a rounding delta of the discriminant moves the moduli by sqrt(delta)/2 ~ 1e-8 (rate_allowance)
    if abs(got - 0.5) > 1e-7:
        fail(f"critically damped heavy ball (a double root at 0.5): got {got}")


def hidden_underdamped_many(fn):
    """6.3: several (lr, beta); inside the interval every root has modulus sqrt(beta), outside one is larger"""
    for lr, beta in ((0.1, 0.9), (2.0, 0.3), (1.0, 0.01), (0.5, 0.99)):
        _check_underdamped(fn, lr, beta, f"lr = {lr}, beta = {beta}")
        lo, hi, mod = (float(v) for v in fn(lr, beta))
        for lam in np.linspace(lo, hi, 7)[1:-1]:
            roots = np.roots([1.0, -(1 + beta - lr * lam), beta])
            # inside the interval the roots are complex and well separated: np.roots is accurate to ~1e-15 there
            if abs(np.abs(roots).max() - mod) > 1e-9:
                fail(f"lr = {lr}, beta = {beta}, lam = {lam:.4g}: the roots' modulus is {np.abs(roots).max():.6g}, "
                     f"you said {mod:.6g}")
    lo, hi, mod = expected_underdamped(1.0, 0.0)
    _check_underdamped(fn, 1.0, 0.0, "beta = 0 (no momentum: the interval is a single point)")


def hidden_measured_random(fn):
    """6.4: noisy geometric decays with a floor, records 1 to 3 steps apart"""
    rng = np.random.default_rng(3)
    for i in range(10):
        rho = float(rng.uniform(0.5, 0.99))
        k = np.arange(0, 400, int(rng.integers(1, 4)))
        norms = np.maximum(2.0 * rho**k * np.exp(0.01 * rng.standard_normal(len(k))), 1e-9)
        rel = norms / norms[0]
        if ((rel >= 1e-6) & (rel <= 1e-1)).sum() < 2:
            continue
        _check_measured(fn, k, norms, 1e-6, 1e-1, f"noisy decay {i}")


def hidden_measured_too_few(fn):
    """6.4: fewer than two records in the window raises ValueError"""
    k = np.arange(5)
    try:
        fn(k, 0.5**k, 1e-9, 1e-8)
    except ValueError:
        return
    fail("expected ValueError when fewer than two records are in [lo, hi]")


HIDDEN = {
    "6.1": [hidden_residuals_random, hidden_residuals_edges],
    "6.2": [hidden_rate_random, hidden_rate_classical_tunings],
    "6.3": [hidden_underdamped_many],
    "6.4": [hidden_measured_random, hidden_measured_too_few],
}
