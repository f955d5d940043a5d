"""Hidden tests of lesson 5's exercises: other depths and inputs, singular feature matrices, other networks.
Never shipped. Allowances are the public checks' (their reasons are stated there)."""
import numpy as np

from course_lib.checks._common import sphere
from course_lib.checks.lesson5 import _check_features, _check_lambda, _check_steps, expected_features, weights


def hidden_features_deep(fn):
    """last_hidden_features, 4 hidden layers, LeCun weights"""
    _check_features(fn, sphere(12, 6, 20), weights([6, 8, 8, 8, 30], 21, "lecun"), "four hidden layers")


def hidden_features_lists(fn):
    """last_hidden_features with X and the weights given as nested lists"""
    X, Ws = sphere(3, 2, 22), weights([2, 4, 3], 23, "xavier")
    want = expected_features(X, Ws)
    got = np.asarray(fn(X.tolist(), [w.tolist() for w in Ws]), dtype=np.float64)
    # two small layers of unit-scale numbers: float64 rounding is ~1e-15 (features_allowance's bound is ~1e-14)
    if got.shape != want.shape or np.abs(got - want).max() > 1e-12:
        from course_lib.checks._common import fail

        fail("lists must work like arrays (np.asarray them first)")


def hidden_lambda_square(fn):
    """lambda_F of a square 8 x 8 feature matrix"""
    _check_lambda(fn, expected_features(sphere(8, 5, 24), weights([5, 8], 25, "he")), "N = w = 8")


def hidden_lambda_singular(fn):
    """lambda_F of singular feature matrices: two equal samples (wide layer), and narrow layers (w < N)"""
    for seed in range(8):
        X = sphere(5, 4, 26 + seed)
        X[4] = X[0]
        _check_lambda(fn, expected_features(X, weights([4, 50], 27 + seed, "he")), f"repeated sample, seed {seed}")
        _check_lambda(fn, expected_features(sphere(10, 3, 6 + seed), weights([3, 4], 7 + seed, "he")),
                      f"N = 10, w = 4, seed {seed}")


def hidden_lambda_random_wide(fn):
    """lambda_F of a 20 x 300 Gaussian matrix"""
    _check_lambda(fn, np.random.default_rng(28).standard_normal((20, 300)), "N = 20, w = 300")


def hidden_steps_other(fn):
    """guarantee_vs_observed on another network: hidden widths 24 and 24, 120 steps"""
    _check_steps(fn, 16, 8, 2, (24, 24), 0.5, 120, "widths 24, 24")


def hidden_steps_narrow(fn):
    """guarantee_vs_observed with a last hidden width below N (lambda_F = 0: the guarantee promises nothing)"""
    _check_steps(fn, 16, 8, 3, (32, 8), 0.5, 60, "widths 32, 8")


HIDDEN = {
    "5.1": [hidden_features_deep, hidden_features_lists],
    "5.2": [hidden_lambda_square, hidden_lambda_singular, hidden_lambda_random_wide],
    "5.3": [hidden_steps_other, hidden_steps_narrow],
}
