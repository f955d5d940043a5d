"""Public checks of lesson 5's exercises (deep ReLU widths).

Expected values come from course_lib's library (models.DeepMLP for the features and the networks, train for gradient
descent, kernels.empirical_ntk for the step) and from direct float64 computations here (the singular values, the
guarantee's step count), never from the lesson's modules or the learner's function. Every allowance says why it is
what it is, next to it.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from ._common import EPS, as_array, as_float, as_int, close, diagnose, fail, pair, sphere

ANSWERED_BY = {
    # 5.1's library route is the method DeepMLP.features (after building a params dict); grading's hider can hide
    # methods, but tests/test_grading_library.py builds its cheating notebook from the first name as a module-level
    # function, so no name is listed here until that test resolves class attributes too.
    "5.1": (),
    "5.2": ("course_lib.lessons.deep_widths.sigma_min", "course_lib.lessons.deep_widths.core.sigma_min",
            "course_lib.lessons.deep_widths.lambda_F", "course_lib.lessons.deep_widths.core.lambda_F"),
    "5.3": ("course_lib.lessons.deep_widths.guarantee", "course_lib.lessons.deep_widths.core.guarantee"),
}


def weights(dims, seed, scheme="lecun") -> list[np.ndarray]:
    """Hidden weights W_1..W_{L-1} for dims = [d, n_1, ..., n_{L-1}], Gaussian with the scheme's variance."""
    generator = np.random.default_rng(seed)
    out = []
    for a, b in itertools.pairwise(dims):
        var = {"lecun": 1 / a, "he": 2 / a, "xavier": 2 / (a + b)}[scheme]
        out.append(generator.standard_normal((a, b)) * np.sqrt(var))
    return out


# ----------------------------------------------------------------------------------------------
# 5.1  the last hidden layer's features
# ----------------------------------------------------------------------------------------------
def expected_features(X, Ws) -> np.ndarray:
    from course_lib.models import DeepMLP

    model = DeepMLP([w.shape[1] for w in Ws], init="lecun")  # LeCun/He/Xavier: multiplier 1 in the forward pass
    params = {f"W{l + 1}": torch.from_numpy(np.asarray(w, dtype=np.float64))[None] for l, w in enumerate(Ws)}
    params[f"W{len(Ws) + 1}"] = torch.zeros(1, Ws[-1].shape[1], 1, dtype=torch.float64)
    return model.features(params, torch.from_numpy(np.asarray(X, dtype=np.float64)))[0].numpy()


def features_allowance(X, Ws) -> np.ndarray:
    """Each product F_{l-1} W_l is rounded by at most n_{l-1} eps |F_{l-1}| |W_l| entrywise (absolute values), and
    relu is 1-Lipschitz, so the errors reach the last layer through the absolute values of the later weights:
    entry by entry, 2 (sum of the fan-ins) eps x (|X| |W_1| ... |W_{L-1}|). Any order of summation is inside it."""
    A = np.abs(np.asarray(X, dtype=np.float64))
    fan = 0
    for W in Ws:
        fan += W.shape[0]
        A = A @ np.abs(np.asarray(W, dtype=np.float64))
    return 2 * (fan + 4) * EPS * A + 1e-300


def _features_mistakes(X, Ws) -> list:
    X = np.array(X, dtype=float)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731

    def run(step, first=None):
        F = X if first is None else first(X)
        for i, W in enumerate(Ws):
            F = step(F, W, i)
        return F

    last = len(Ws) - 1
    out = [
        (run(lambda F, W, i: F @ W if i == last else relu(F @ W)), "apply relu after EVERY hidden layer, the last one "
         "included: F_l = relu(F_{l-1} W_l)"),
        (relu(run(lambda F, W, i: F @ W)), "apply relu after each layer, not once at the end"),
        (run(lambda F, W, i: relu(F @ W) * math.sqrt(2 / W.shape[0])), "standard parameterization: no scaling factor "
         "in the forward pass (the initialization already set the scale)"),
        (run(lambda F, W, i: relu(F @ W), first=relu), "do not apply relu to the input X itself"),
        (run(lambda F, W, i: np.abs(F @ W)), "relu(v) = max(v, 0), not |v|"),
    ]
    return out


def _check_features(fn, X, Ws, label):
    X = np.array(X, dtype=float)
    shape = (X.shape[0], Ws[-1].shape[1])
    got = as_array(fn(X.copy(), [w.copy() for w in Ws]), f"an array of shape {shape} (N x n_(L-1))", shape, name="F",
                   shape_hint="F_l = relu(F_{l-1} W_l) with F_0 = X (N x d) and W_l (n_{l-1} x n_l): X @ W, not W @ X")
    close(got, expected_features(X, Ws), features_allowance(X, Ws), name="F",
          diagnoses=lambda: _features_mistakes(X, Ws),
          hint=f"{label}: F_0 = X, F_l = relu(F_{{l-1}} W_l) for every hidden layer; no bias, no output layer")


def check_features_two_hidden(fn):
    """last_hidden_features on 6 points in R^3, hidden widths 5 and 7"""
    _check_features(fn, sphere(6, 3, 0), weights([3, 5, 7], 1, "he"), "two hidden layers")


def check_features_one_layer(fn):
    """last_hidden_features with one hidden layer: relu(X W_1)"""
    _check_features(fn, sphere(4, 5, 2), weights([5, 9], 3, "he"), "one hidden layer")


# ----------------------------------------------------------------------------------------------
# 5.2  lambda_F = sigma_min(F)
# ----------------------------------------------------------------------------------------------
def expected_lambda(F) -> float:
    F = np.array(F, dtype=float)
    N, w = np.shape(F)
    return 0.0 if w < N else float(np.linalg.svd(F, compute_uv=False)[N - 1])


def lambda_allowance(F) -> float:
    """What a correct sigma_min may differ by. An SVD is backward stable: each singular value is within
    ~max(N, w) eps sigma_max of the exact one. Through eigvalsh(F F^T) (also accepted) lambda_min carries an error
    delta = max(N, w) eps sigma_max^2, and its square root moves by at most min(delta / (2 sigma_min), sqrt(delta)):
    near sigma_min = 0 (w < N, or repeated rows) that is sqrt(delta) ~ 1e-7 sigma_max. 4x both, for the
    cases here; returning the w-th singular value or sigma_max is off by orders of magnitude more."""
    F = np.array(F, dtype=float)
    N, w = np.shape(F)
    s = np.linalg.svd(F, compute_uv=False)
    smax, smin = float(s[0]), expected_lambda(F)
    delta = max(N, w) * EPS * smax * smax
    root = min(delta / (2 * smin), math.sqrt(delta)) if smin > 0 else math.sqrt(delta)
    return 4 * (max(N, w) * EPS * smax + root)


def _lambda_mistakes(F) -> list:
    F = np.array(F, dtype=float)
    N, w = np.shape(F)
    s = np.linalg.svd(F, compute_uv=False)
    lam = expected_lambda(F)
    out = [
        (float(s[-1]), "numpy's svd of an (N, w) matrix with w < N returns only w singular values: the N-th is 0"),
        (lam ** 2, "take the square root: lambda_F = sqrt(lambda_min(F F^T))"),
        (float(s[0]), "the SMALLEST singular value (the N-th largest), not the largest"),
        (float(np.sqrt(max(np.linalg.eigvalsh(F.T @ F)[0], 0.0))), "use F F^T (N x N), not F^T F (w x w): for w > N, "
         "F^T F always has w - N zero eigenvalues"),
        (lam / math.sqrt(w), "no normalization: lambda_F is sigma_min(F) itself"),
    ]
    return [(v, h) for v, h in out if abs(v - lam) > 10 * lambda_allowance(F)]


def _check_lambda(fn, F, label):
    got = as_float(fn(np.array(F)), "a float (sigma_min of F)")
    exp, allow = expected_lambda(F), lambda_allowance(F)
    if not math.isfinite(got):
        fail(f"{label}: got {got}", "lambda_min(F F^T) can come out slightly negative by rounding (-1e-16 where it is 0): "
             "clip it at 0 before the square root, or use the singular values")
    if abs(got - exp) > allow:
        fail(f"{label}: {pair(exp, got)} (allowed {allow:.2g})", diagnose(got, lambda: _lambda_mistakes(F), allow) or
             "lambda_F = the N-th largest singular value of F (N = number of rows), 0 when F has fewer columns than rows")


def check_lambda_wide(fn):
    """lambda_F of a 6 x 20 feature matrix (w > N): the 6th singular value"""
    _check_lambda(fn, expected_features(sphere(6, 4, 4), weights([4, 20], 5, "he")), "N = 6, w = 20")


def check_lambda_narrow(fn):
    """lambda_F of a 10 x 4 feature matrix (w < N) is zero"""
    _check_lambda(fn, expected_features(sphere(10, 3, 6), weights([3, 4], 7, "he")), "N = 10, w = 4")


# ----------------------------------------------------------------------------------------------
# 5.3  steps to L(0)/100: the guarantee against gradient descent
# ----------------------------------------------------------------------------------------------
def guarantee_steps(lr: float, lam_F: float) -> int:
    """The smallest k with (1 - lr lam_F^2 / 4)^k <= 1/100; 1 if the factor is <= 0; -1 if lam_F = 0."""
    q = 1.0 - lr * lam_F * lam_F / 4.0
    if lam_F <= 0:
        return -1
    if q <= 0:
        return 1
    return int(math.ceil(math.log(0.01) / math.log(q)))


def net_problem(n: int, d: int, seed: int):
    X = sphere(n, d, seed)
    y = np.sign(np.random.default_rng(seed + 1).standard_normal(n))
    y[y == 0] = 1.0
    return X, y


@functools.lru_cache(maxsize=16)
def deep_run(n: int, d: int, seed: int, widths: tuple, lr_frac: float, steps: int, init: str = "lecun",
             steps_delta: int = 0) -> dict:
    """The exercise's recipe, run by the check: DeepMLP(widths, init), init(d, seed=seed, float64), lambda_F of the
    last hidden features, GD with record_every=1. lr = lr_frac / lambda_max of the network's NTK at initialization."""
    from course_lib import kernels
    from course_lib.models import DeepMLP
    from course_lib.runtime import torch_threads
    from course_lib.train import train

    X, y = net_problem(n, d, seed)
    with torch_threads(1):
        model = DeepMLP(widths=list(widths), init="lecun")
        params = model.init(d, seed=seed, dtype=torch.float64)
        ntk = kernels.empirical_ntk(model, params, torch.from_numpy(X))
        lr = lr_frac / float(torch.linalg.eigvalsh(ntk)[-1])
        if init != "lecun":
            model = DeepMLP(list(widths), init=init)
            params = model.init(d, seed=seed, dtype=torch.float64)
        F = model.features(params, torch.from_numpy(X))[0].numpy()
        hist = train(model, params, torch.from_numpy(X), torch.from_numpy(y), steps=steps + steps_delta, lr=lr,
                     record_every=1, progress=False)
    loss = hist["loss"][:, 0]
    hit = np.flatnonzero(loss <= 0.01 * loss[0])
    return {"X": X, "y": y, "lr": lr, "F": F, "loss": loss, "steps": hist.steps,
            "observed": int(hist.steps[hit[0]]) if len(hit) else -1}


def _steps_mistakes(run, lam) -> list:
    lr, loss = run["lr"], run["loss"]
    s = np.linalg.svd(run["F"], compute_uv=False)
    hit = lambda frac: int(np.flatnonzero(loss <= loss[0] * frac)[0]) if (loss <= loss[0] * frac).any() else -1  # noqa
    g = guarantee_steps(lr, lam)
    q = 1 - lr * lam * lam / 4
    out = [
        (guarantee_steps(2 * lr, lam), "the guarantee's factor is 1 - lr lam_F^2 / 4 (the course's derivation), "
         "not 1 - lr lam_F^2 / 2"),
        (int(math.ceil(math.log(0.01) / math.log(1 - lr * lam / 4))) if lam > 0 else -1,
         "square lambda_F: the factor is 1 - lr lam_F^2 / 4"),
        (int(math.floor(math.log(0.01) / math.log(q))) if 0 < q < 1 else g, "round UP: the guarantee reaches L(0)/100 at "
         "the smallest k with q^k <= 1/100, k = ceil(ln(1/100) / ln q)"),
        (guarantee_steps(lr, float(s[0])), "lambda_F is the SMALLEST singular value of the last hidden features"),
    ]
    obs = run["observed"]
    out_obs = [(obs + 1, "off by one: step 0 is the start; return the first step k (hist.steps) with L(k) <= L(0)/100"),
               (hit(0.1), "the target is L(0)/100"), (obs - 1, "off by one: return the first step with L(k) <= L(0)/100")]
    return out, out_obs


def _check_steps(fn, n, d, seed, widths, lr_frac, steps, label):
    run = deep_run(n, d, seed, tuple(widths), lr_frac, steps)
    out = fn(run["X"].copy(), run["y"].copy(), list(widths), run["lr"], steps, seed)
    if out is None:
        as_int(None, "a pair (guaranteed steps, observed steps)")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"expected a pair (guaranteed steps, observed steps); your function returned {type(out).__name__}"
             + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""), "return k_guarantee, k_observed")
    k_g = as_int(out[0], "an int (the steps the guarantee needs)")
    k_o = as_int(out[1], "an int (the first step with L(k) <= L(0)/100, or -1)")
    lam = expected_lambda(run["F"])
    want_g = guarantee_steps(run["lr"], lam)
    mistakes_g, mistakes_o = _steps_mistakes(run, lam)
    if k_g != want_g:
        other = deep_run(n, d, seed, tuple(widths), lr_frac, steps, init="he")
        he = guarantee_steps(run["lr"], expected_lambda(other["F"]))
        fail(f"{label}: lambda_F = {lam:.6g}, lr = {run['lr']:.6g}: the guarantee needs {want_g} steps, got {k_g}",
             diagnose(k_g, [(he, "initialize with init=\"lecun\", as the exercise says (DeepMLP's default is He)")]
                      + [(v, h) for v, h in mistakes_g if v != want_g]) or
             "q = 1 - lr lam_F^2 / 4; the smallest k with q^k <= 1/100 (-1 if lam_F = 0)")
    if k_o != run["observed"]:
        other = deep_run(n, d, seed, tuple(widths), lr_frac, steps, init="he")
        fail(f"{label}: gradient descent first reaches L(0)/100 at step {run['observed']}, got {k_o}",
             diagnose(k_o, [(other["observed"], "initialize with init=\"lecun\", as the exercise says")]
                      + [(v, h) for v, h in mistakes_o if v != run["observed"]]) or
             "train(model, params, X, y, steps=steps, lr=lr, record_every=1); the first k with L(k) <= L(0)/100")


# The answer is two integers compared exactly. The guarantee's count is a ceiling of ln(100)/(-ln q); the cases keep
# that ratio at least 1e-6 from an integer (checked in tests/test_mutants.py), so any correct float64 evaluation rounds
# the same way. The observed step is the first k with L(k) <= L(0)/100 on a float64 run; the cases keep every L(k) at
# least 1e-6 (relative) away from L(0)/100, so reruns (any summation order, ~1e-13 relative) find the same step.
def check_steps_wide(fn):
    """guarantee_vs_observed: N = 16 points in R^8, hidden widths 32 and 64, 80 steps"""
    _check_steps(fn, 16, 8, 0, (32, 64), 0.5, 80, "widths 32, 64")


def check_steps_square(fn):
    """guarantee_vs_observed: N = 16 points in R^8, hidden widths 16 and 32, 100 steps"""
    _check_steps(fn, 16, 8, 1, (16, 32), 0.5, 100, "widths 16, 32")


CHECKS = {
    "5.1": [check_features_two_hidden, check_features_one_layer],
    "5.2": [check_lambda_wide, check_lambda_narrow],
    "5.3": [check_steps_wide, check_steps_square],
}
