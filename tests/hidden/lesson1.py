"""Hidden tests of lesson 1's exercises: other sizes, nearly parallel rows, light slow modes, other seed counts.
Never shipped. Allowances are the public checks' (their reasons are stated there)."""
import numpy as np

from course_lib.checks._common import as_array, as_int, close, fail, sphere
from course_lib.checks.lesson1 import (expected_h, expected_steps, h_allowance, movement_case, safe_target,
                                       spectral_case)


def hidden_h_inf_sizes(fn):
    """h_inf on 30 points in R^7: values, symmetry, positive definite"""
    X = sphere(30, 7, 5)
    got = as_array(fn(X.copy()), "a (30, 30) array", (30, 30), name="H")
    close(got, expected_h(X), h_allowance(X), name="H")
    # H_ij and H_ji are each within their allowance of the same exact value, so they differ by at most twice that
    close(got, got.T, 2 * h_allowance(X), name="H - H^T: H", hint="H must be symmetric: H_ij = H_ji")
    if np.linalg.eigvalsh(0.5 * (got + got.T))[0] <= 0:
        fail("H^inf of distinct, non-parallel points is positive definite")


def hidden_h_inf_nearly_parallel(fn):
    """h_inf where rows are parallel, antiparallel, or a rounding away from it (arccos at its worst)"""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(4)
    X = np.vstack([x, x + 1e-9 * rng.standard_normal(4), -2.0 * x + 1e-8 * rng.standard_normal(4), 0.3 * x,
                   rng.standard_normal(4)])
    got = as_array(fn(X.copy()), "a (5, 5) array", (5, 5), name="H")
    close(got, expected_h(X), h_allowance(X), name="H")


def hidden_h_inf_antipodal(fn):
    """h_inf on x and -x (theta = pi: the entry is 0) and orthogonal rows"""
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]])
    got = as_array(fn(X.copy()), "a (3, 3) array", (3, 3), name="H")
    close(got, expected_h(X), h_allowance(X), name="H")


def hidden_steps_other(fn):
    """steps_to_reach on 12 points, steps 0.3 and 0.9 x 2/lambda_max, several targets"""
    for seed, frac in ((3, 0.15), (4, 0.45)):
        H, r0, lr = spectral_case(seed, n=12, frac=frac)
        for k in (2, 9, 60):
            target = safe_target(H, r0, lr, k)
            got = as_int(fn(H.copy(), r0.copy(), lr, target), "an int")
            if got != k:
                fail(f"seed {seed}, lr fraction {frac}, target between the losses at {k - 1} and {k}: expected {k}, got {got}")


def hidden_steps_light_slow_mode(fn):
    """steps_to_reach when r0 has almost no weight on the slowest mode (the slowest mode alone is far off)"""
    H, _, lr = spectral_case(6, n=10)
    lam, V = np.linalg.eigh(H)
    r0 = V[:, 1:] @ np.linspace(1.0, 2.0, 9) + 1e-3 * V[:, 0]
    target = safe_target(H, r0, lr, 25)
    got = as_int(fn(H.copy(), r0.copy(), lr, target), "an int")
    if got != expected_steps(H, r0, lr, target):
        fail(f"expected {expected_steps(H, r0, lr, target)}, got {got}")


def hidden_movement_two_seeds(fn):
    """movement_exponent with two networks per width, widths 8 to 512"""
    movement_case(fn, 10, 5, 4, 0.5, (8, 32, 128, 512), 30, 2, "widths 8 to 512, 2 networks")


def hidden_movement_four_seeds(fn):
    """movement_exponent with four networks per width and a smaller step"""
    movement_case(fn, 8, 6, 5, 0.3, (16, 64, 256), 40, 4, "widths 16, 64, 256, 4 networks")


def hidden_movement_one_seed(fn):
    """movement_exponent with one network per width"""
    movement_case(fn, 10, 3, 6, 0.5, (16, 128, 1024), 25, 1, "widths 16, 128, 1024, 1 network")


HIDDEN = {
    "1.1": [hidden_h_inf_sizes, hidden_h_inf_nearly_parallel, hidden_h_inf_antipodal],
    "1.2": [hidden_steps_other, hidden_steps_light_slow_mode],
    "1.3": [hidden_movement_two_seeds, hidden_movement_four_seeds, hidden_movement_one_seed],
}
