"""Hidden tests of lesson 2's exercises: other sizes, nearly parallel rows, errors near the teacher, random histories.
Never shipped. Allowances are the public checks' (their reasons are stated there)."""
import numpy as np

from course_lib.checks._common import fail
from course_lib.checks.lesson2 import (_check_k, _check_rate, _check_ratio, _check_start, hessian, mat,
                                       rate_case)


def hidden_k_random(fn):
    """relu_kernel on 20 x 15 rows of norms 0.1 to 5 in R^6"""
    rng = np.random.default_rng(7)
    A = rng.standard_normal((20, 6)) * rng.uniform(0.1, 5, (20, 1))
    B = rng.standard_normal((15, 6)) * rng.uniform(0.1, 5, (15, 1))
    _check_k(fn, A, B, "20 x 15 rows")


def hidden_k_nearly_parallel(fn):
    """relu_kernel on rows a rounding away from parallel and antiparallel, in R^30"""
    rng = np.random.default_rng(8)
    a = rng.standard_normal(30)
    A = np.vstack([a, -a + 1e-9 * rng.standard_normal(30)])
    B = np.vstack([2 * a + 1e-10 * rng.standard_normal(30), a, -0.5 * a])
    _check_k(fn, A, B, "nearly parallel rows")


def hidden_ratio_sizes(fn):
    """one_point_ratio at d = 1 and d = 8"""
    _check_ratio(fn, np.array([[0.3]]), np.array([[-0.2]]), "d = 1")
    _check_ratio(fn, mat(8, 10, 0.6), mat(8, 11, 0.6), "d = 8")


def hidden_ratio_near_teacher(fn):
    """one_point_ratio at d = 6, ||W - W*|| = 0.05 (student rows nearly parallel to the teacher's)"""
    W_star = mat(6, 12, 0.5)
    E = np.random.default_rng(13).standard_normal((6, 6))
    _check_ratio(fn, W_star + 0.05 * E / np.linalg.norm(E), W_star, "near the teacher")


def hidden_rate_long_window(fn):
    """linear_rate at d = 4, steps 50 to 200, lr = 0.5 / lambda_max"""
    H, E0, lr = rate_case(4, 6, 0.3, 0.5, 2)
    _check_rate(fn, H, E0, lr, 50, 200, "long window")


def hidden_rate_one_mode(fn):
    """linear_rate for an error along one eigenvector: the rate is exactly |1 - lr lam|"""
    H = hessian(3, 7)
    lam, V = np.linalg.eigh(H)
    E0 = V[:, 4].reshape(3, 3)
    lr = 1.5 / lam[-1]
    got = fn(H.copy(), E0.copy(), lr, 3, 13)
    want = abs(1 - lr * lam[4])
    # |1 - lr lam| from float64 eigenvalues (backward stable: ~n eps lam_max) and the public check's RATE_RTOL
    if not abs(float(got) - want) <= 1e-9 * want:
        fail(f"an error along the eigenvector of lambda = {lam[4]:.6g}: expected |1 - lr lam| = {want:.12g}, got {got}")
    _check_rate(fn, H, E0, lr, 3, 13, "one mode")


def hidden_start_random(fn):
    """phase_two_start on random histories with nan entries, several thresholds"""
    rng = np.random.default_rng(5)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        steps = (np.cumsum(rng.integers(1, 5, n)) + int(rng.integers(0, 3))).tolist()
        ratio = rng.uniform(-0.2, 0.4, n)
        ratio[rng.uniform(size=n) < 0.15] = np.nan
        for c in (0.01, 0.1):
            _check_start(fn, steps, ratio.tolist(), c, f"random history {trial}, c = {c}")


def hidden_start_single_record(fn):
    """phase_two_start with a single record, and with rho exactly equal to c"""
    _check_start(fn, [7], [0.5], 0.1, "one record above c")
    _check_start(fn, [7], [0.05], 0.1, "one record below c")
    _check_start(fn, [0, 4, 8], [0.01, 0.1, 0.1], 0.1, "rho equal to c (counts as above: rho >= c)")


HIDDEN = {
    "2.1": [hidden_k_random, hidden_k_nearly_parallel],
    "2.2": [hidden_ratio_sizes, hidden_ratio_near_teacher],
    "2.3": [hidden_rate_long_window, hidden_rate_one_mode],
    "2.4": [hidden_start_random, hidden_start_single_record],
}
