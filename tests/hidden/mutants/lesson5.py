"""Plausible wrong answers to lesson 5's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""
import math

import numpy as np
import torch

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 5.1 last_hidden_features
# ----------------------------------------------------------------------------------------------
def _layers(X, weights, step, first=None):
    F = np.asarray(X, dtype=np.float64)
    F = first(F) if first else F
    Ws = [np.asarray(W, dtype=np.float64) for W in weights]
    for i, W in enumerate(Ws):
        F = step(F, W, i == len(Ws) - 1)
    return F


@common("EVERY hidden layer")
def mutant_features_no_last_relu(X, weights):
    """skips the relu after the last hidden layer"""
    return _layers(X, weights, lambda F, W, last: F @ W if last else np.maximum(F @ W, 0))


@common("not once at the end")
def mutant_features_relu_at_end(X, weights):
    """multiplies all the weights first and applies relu once"""
    return np.maximum(_layers(X, weights, lambda F, W, last: F @ W), 0)


def mutant_features_ntk_scaling(X, weights):
    """adds the NTK factor sqrt(2 / fan_in) in the forward pass"""
    return _layers(X, weights, lambda F, W, last: np.maximum(F @ W, 0) * math.sqrt(2 / W.shape[0]))


def mutant_features_relu_input(X, weights):
    """applies relu to the input too"""
    return _layers(X, weights, lambda F, W, last: np.maximum(F @ W, 0), first=lambda F: np.maximum(F, 0))


def mutant_features_abs(X, weights):
    """uses |v| for relu"""
    return _layers(X, weights, lambda F, W, last: np.abs(F @ W))


def mutant_features_transposed(X, weights):
    """returns F^T (n_(L-1) x N)"""
    return _layers(X, weights, lambda F, W, last: np.maximum(F @ W, 0)).T


def mutant_features_first_layer(X, weights):
    """returns the first hidden layer only"""
    return np.maximum(np.asarray(X, dtype=np.float64) @ np.asarray(weights[0], dtype=np.float64), 0)


# ----------------------------------------------------------------------------------------------
# 5.2 lambda_F
# ----------------------------------------------------------------------------------------------
@common("only w singular values")
def mutant_lambda_svd_last(F):
    """takes numpy's last singular value (the w-th when w < N)"""
    return float(np.linalg.svd(np.asarray(F, dtype=np.float64), compute_uv=False)[-1])


@common("square root")
def mutant_lambda_no_sqrt(F):
    """returns lambda_min(F F^T) without the square root"""
    F = np.asarray(F, dtype=np.float64)
    return float(max(np.linalg.eigvalsh(F @ F.T)[0], 0.0))


def mutant_lambda_no_clip(F):
    """sqrt of eigvalsh(F F^T)[0] without clipping (NaN when rounding makes it negative)"""
    F = np.asarray(F, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return float(np.sqrt(np.linalg.eigvalsh(F @ F.T)[0]))


def mutant_lambda_largest(F):
    """returns the largest singular value"""
    return float(np.linalg.svd(np.asarray(F, dtype=np.float64), compute_uv=False)[0])


def mutant_lambda_gram_wrong_side(F):
    """uses F^T F (w x w)"""
    F = np.asarray(F, dtype=np.float64)
    return float(np.sqrt(max(np.linalg.eigvalsh(F.T @ F)[0], 0.0)))


def mutant_lambda_normalized(F):
    """divides by sqrt(w)"""
    F = np.asarray(F, dtype=np.float64)
    N, w = F.shape
    s = 0.0 if w < N else np.linalg.svd(F, compute_uv=False)[N - 1]
    return float(s / math.sqrt(w))


def mutant_lambda_min_entry(F):
    """returns the smallest row norm of F"""
    return float(np.linalg.norm(np.asarray(F, dtype=np.float64), axis=1).min())


def mutant_lambda_library(F):
    """calls the lesson's own course_lib.lessons.deep_widths.sigma_min"""
    from course_lib.lessons.deep_widths import sigma_min

    value, _ = sigma_min(torch.as_tensor(np.asarray(F, dtype=np.float64))[None])
    return float(value[0])


# ----------------------------------------------------------------------------------------------
# 5.3 guarantee_vs_observed
# ----------------------------------------------------------------------------------------------
def _run(X, y, widths, lr, steps, seed, *, init="lecun", steps_delta=0):
    from course_lib.models import DeepMLP
    from course_lib.train import train

    X, y = torch.as_tensor(np.asarray(X, dtype=np.float64)), torch.as_tensor(np.asarray(y, dtype=np.float64))
    model = DeepMLP(list(widths)) if init is None else DeepMLP(list(widths), init=init)
    params = model.init(X.shape[1], seed=seed, dtype=torch.float64)
    F = model.features(params, X)[0].numpy()
    hist = train(model, params, X, y, steps=steps + steps_delta, lr=lr, record_every=1, progress=False)
    return F, hist.steps, hist["loss"][:, 0]


def _sigma_min(F):
    N, w = F.shape
    return 0.0 if w < N else float(np.linalg.svd(F, compute_uv=False)[N - 1])


def _first(steps, loss, frac=0.01):
    hit = np.flatnonzero(loss <= frac * loss[0])
    return int(steps[hit[0]]) if len(hit) else -1


def _guarantee(lr, lam, c=4.0, square=True, rounding=math.ceil):
    if lam <= 0:
        return -1
    q = 1 - lr * (lam * lam if square else lam) / c
    return 1 if q <= 0 else int(rounding(math.log(0.01) / math.log(q)))


@common("1 - lr lam_F^2 / 2")
def mutant_steps_factor_two(X, y, widths, lr, steps, seed):
    """uses the factor 1 - lr lam_F^2 / 2"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, _sigma_min(F), c=2.0), _first(k, L)


@common("square lambda_F")
def mutant_steps_unsquared(X, y, widths, lr, steps, seed):
    """uses lam_F instead of lam_F^2"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, _sigma_min(F), square=False), _first(k, L)


@common("round UP")
def mutant_steps_floor(X, y, widths, lr, steps, seed):
    """rounds the guarantee's count down"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, _sigma_min(F), rounding=math.floor), _first(k, L)


def mutant_steps_sigma_max(X, y, widths, lr, steps, seed):
    """uses the largest singular value of the features"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, float(np.linalg.svd(F, compute_uv=False)[0])), _first(k, L)


@common("init=\"lecun\"")
def mutant_steps_default_init(X, y, widths, lr, steps, seed):
    """forgets init="lecun" (DeepMLP's default is He)"""
    F, k, L = _run(X, y, widths, lr, steps, seed, init=None)
    return _guarantee(lr, _sigma_min(F)), _first(k, L)


@common("off by one")
def mutant_steps_observed_plus_one(X, y, widths, lr, steps, seed):
    """counts the observed steps from 1"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    obs = _first(k, L)
    return _guarantee(lr, _sigma_min(F)), obs + 1 if obs >= 0 else -1


def mutant_steps_target_tenth(X, y, widths, lr, steps, seed):
    """looks for L(0)/10"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, _sigma_min(F)), _first(k, L, 0.1)


def mutant_steps_svd_trap(X, y, widths, lr, steps, seed):
    """takes numpy's last singular value as lambda_F (wrong when the last width is below N)"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _guarantee(lr, float(np.linalg.svd(F, compute_uv=False)[-1])), _first(k, L)


def mutant_steps_library(X, y, widths, lr, steps, seed):
    """reads the guarantee off the lesson's own course_lib.lessons.deep_widths.guarantee"""
    from course_lib.lessons.deep_widths import guarantee

    F, k, L = _run(X, y, widths, lr, steps, seed)
    lam = _sigma_min(F)
    if lam <= 0:
        return -1, _first(k, L)
    curve = guarantee(1.0, lr, lam, 10**6)
    return int(np.flatnonzero(curve <= 0.01)[0]), _first(k, L)


def mutant_steps_swapped(X, y, widths, lr, steps, seed):
    """returns (observed, guaranteed)"""
    F, k, L = _run(X, y, widths, lr, steps, seed)
    return _first(k, L), _guarantee(lr, _sigma_min(F))


MUTANTS = {
    "5.1": [mutant_features_no_last_relu, mutant_features_relu_at_end, mutant_features_ntk_scaling,
            mutant_features_relu_input, mutant_features_abs, mutant_features_transposed, mutant_features_first_layer],
    "5.2": [mutant_lambda_svd_last, mutant_lambda_no_sqrt, mutant_lambda_no_clip, mutant_lambda_largest,
            mutant_lambda_gram_wrong_side, mutant_lambda_normalized, mutant_lambda_min_entry, mutant_lambda_library],
    "5.3": [mutant_steps_factor_two, mutant_steps_unsquared, mutant_steps_floor, mutant_steps_sigma_max,
            mutant_steps_default_init, mutant_steps_observed_plus_one, mutant_steps_target_tenth,
            mutant_steps_svd_trap, mutant_steps_swapped, mutant_steps_library],
}
