"""Plausible wrong answers to lesson 1's exercises (never shipped; see tests/hidden/mutants/__init__.py)."""
import math

import numpy as np
import torch

from tests.hidden.mutants import common


# ----------------------------------------------------------------------------------------------
# 1.1 h_inf
# ----------------------------------------------------------------------------------------------
def _cos(X):
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1)
    return X @ X.T, X @ X.T / np.outer(norms, norms), norms


@common("clip the cosine")
def mutant_h_no_clip(X):
    """arccos of the raw cosine: a cosine rounded above 1 gives NaN"""
    inner, cos, _ = _cos(X)
    with np.errstate(invalid="ignore"):
        return inner * (np.pi - np.arccos(cos)) / (2 * np.pi)


@common("1/(2 pi)")
def mutant_h_no_two_pi(X):
    """forgets the 1/(2 pi)"""
    inner, cos, _ = _cos(X)
    return inner * (np.pi - np.arccos(np.clip(cos, -1, 1)))


def mutant_h_over_pi(X):
    """divides by pi instead of 2 pi"""
    inner, cos, _ = _cos(X)
    return inner * (np.pi - np.arccos(np.clip(cos, -1, 1))) / np.pi


@common("not the cosine")
def mutant_h_cosine_factor(X):
    """multiplies by the cosine instead of the inner product (right only for unit rows)"""
    _, cos, _ = _cos(X)
    cos = np.clip(cos, -1, 1)
    return cos * (np.pi - np.arccos(cos)) / (2 * np.pi)


def mutant_h_no_inner(X):
    """forgets the inner product: (pi - theta) / (2 pi) alone"""
    _, cos, _ = _cos(X)
    return (np.pi - np.arccos(np.clip(cos, -1, 1))) / (2 * np.pi)


def mutant_h_unnormalized_angle(X):
    """takes arccos of the inner product without dividing by the norms"""
    inner, _, _ = _cos(X)
    return inner * (np.pi - np.arccos(np.clip(inner, -1, 1))) / (2 * np.pi)


def mutant_h_output_kernel(X):
    """writes the output layer's kernel ||x_i|| ||x_j|| (sin t + (pi - t) cos t) / (2 pi) instead"""
    _, cos, norms = _cos(X)
    cos = np.clip(cos, -1, 1)
    t = np.arccos(cos)
    return np.outer(norms, norms) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)


def mutant_h_transposed(X):
    """builds X^T X (d x d) instead of X X^T"""
    X = np.asarray(X, dtype=np.float64)
    inner = X.T @ X
    norms = np.linalg.norm(X, axis=0)
    cos = np.clip(inner / np.outer(norms, norms), -1, 1)
    return inner * (np.pi - np.arccos(cos)) / (2 * np.pi)


def mutant_h_monte_carlo(X):
    """estimates E_w[<x_i, x_j> 1[w.x_i >= 0] 1[w.x_j >= 0]] from 20000 random w"""
    X = np.asarray(X, dtype=np.float64)
    w = np.random.default_rng(0).standard_normal((20000, X.shape[1]))
    act = (X @ w.T >= 0).astype(float)
    return (X @ X.T) * (act @ act.T) / w.shape[0]


def mutant_h_library(X):
    """calls the library's answer, course_lib.kernels.relu_h_inf"""
    from course_lib import kernels

    return kernels.relu_h_inf(torch.as_tensor(np.asarray(X, dtype=np.float64))).numpy()


def mutant_h_returns_none(X):
    """computes H but forgets to return it"""
    inner, cos, _ = _cos(X)
    H = inner * (np.pi - np.arccos(np.clip(cos, -1, 1))) / (2 * np.pi)  # noqa: F841


# ----------------------------------------------------------------------------------------------
# 1.2 steps_to_reach
# ----------------------------------------------------------------------------------------------
def _modes(H, r0):
    lam, V = np.linalg.eigh(np.asarray(H, dtype=np.float64))
    return lam, V, np.asarray(r0, dtype=np.float64)


def _first(loss_of_k, target, cap=100_000):
    k = 0
    while loss_of_k(k) > target and k < cap:
        k += 1
    return k


@common("off by one")
def mutant_steps_plus_one(H, r0, lr, target):
    """counts the loss evaluations, not the steps (one too many)"""
    lam, V, r0 = _modes(H, r0)
    c2 = (V.T @ r0) ** 2
    return _first(lambda k: 0.5 * np.sum((1 - lr * lam) ** (2 * k) * c2), target) + 1


def mutant_steps_strictly_after(H, r0, lr, target):
    """starts counting at k = 1 (never returns 0)"""
    lam, V, r0 = _modes(H, r0)
    c2 = (V.T @ r0) ** 2
    return max(1, _first(lambda k: 0.5 * np.sum((1 - lr * lam) ** (2 * k) * c2), target))


@common("1/2")
def mutant_steps_no_half(H, r0, lr, target):
    """forgets the 1/2 of the loss"""
    lam, V, r0 = _modes(H, r0)
    c2 = (V.T @ r0) ** 2
    return _first(lambda k: np.sum((1 - lr * lam) ** (2 * k) * c2), target)


def mutant_steps_unsquared_factor(H, r0, lr, target):
    """multiplies c_i^2 by (1 - lr lam_i)^k instead of its square"""
    lam, V, r0 = _modes(H, r0)
    c2 = (V.T @ r0) ** 2
    return _first(lambda k: 0.5 * np.sum((1 - lr * lam) ** k * c2), target)


def mutant_steps_rows_as_eigenvectors(H, r0, lr, target):
    """projects r0 on the rows of eigh's eigenvector matrix (V @ r0) instead of its columns"""
    lam, V, r0 = _modes(H, r0)
    c2 = (V @ r0) ** 2
    return _first(lambda k: 0.5 * np.sum((1 - lr * lam) ** (2 * k) * c2), target)


def mutant_steps_slowest_mode(H, r0, lr, target):
    """uses only the slowest mode: (1 - lr lam_min)^(2k) L(0) <= target"""
    lam, V, r0 = _modes(H, r0)
    L0 = 0.5 * float(r0 @ r0)
    return _first(lambda k: (1 - lr * lam[0]) ** (2 * k) * L0, target)


def mutant_steps_du_bound(H, r0, lr, target):
    """uses Du et al.'s guarantee (1 - lr lam_min / 2)^k L(0) (a worst case, not the loss)"""
    lam, V, r0 = _modes(H, r0)
    L0 = 0.5 * float(r0 @ r0)
    return _first(lambda k: (1 - lr * lam[0] / 2) ** k * L0, target)


def mutant_steps_library(H, r0, lr, target):
    """reads the answer off the library's course_lib.theory.linearized_loss"""
    from course_lib import theory

    loss = theory.linearized_loss(torch.as_tensor(H, dtype=torch.float64), torch.as_tensor(r0, dtype=torch.float64),
                                  lr, 20000)
    return int(np.flatnonzero(loss <= target)[0])


# ----------------------------------------------------------------------------------------------
# 1.3 movement_exponent
# ----------------------------------------------------------------------------------------------
def _runs(X, y, widths, steps, lr, seeds, *, dtype=torch.float64, train_output=False, seed=0, steps_delta=0):
    from course_lib.models import TwoLayer
    from course_lib.train import train

    X = torch.as_tensor(np.asarray(X), dtype=dtype)
    y = torch.as_tensor(np.asarray(y), dtype=dtype)
    out = []
    for m in widths:
        model = TwoLayer(int(m), train_output=train_output)
        params = model.init(X.shape[1], ensemble=int(seeds), seed=seed, dtype=dtype)
        hist = train(model, params, X, y, steps=int(steps) + steps_delta, lr=lr, progress=False)
        out.append((hist.params["W"] - hist.params0["W"]).to(torch.float64))  # (seeds, m, d)
    return out


def _fit(widths, values):
    return float(np.polyfit(np.log(np.asarray(widths, dtype=float)), np.log(np.asarray(values, dtype=float)), 1)[0])


@common("first network")
def mutant_move_first_seed(X, y, widths, steps, lr, seeds):
    """uses the first network of each width only (column 0)"""
    return _fit(widths, [float(D[0].norm(dim=-1).max()) for D in _runs(X, y, widths, steps, lr, seeds)])


def mutant_move_last_seed(X, y, widths, steps, lr, seeds):
    """uses the last network of each width only"""
    return _fit(widths, [float(D[-1].norm(dim=-1).max()) for D in _runs(X, y, widths, steps, lr, seeds)])


@common("median")
def mutant_move_median(X, y, widths, steps, lr, seeds):
    """averages the networks with the median"""
    return _fit(widths, [float(D.norm(dim=-1).amax(-1).median()) for D in _runs(X, y, widths, steps, lr, seeds)])


@common("mean of the logs")
def mutant_move_mean_of_logs(X, y, widths, steps, lr, seeds):
    """averages the logs of the movements (a geometric mean)"""
    runs = _runs(X, y, widths, steps, lr, seeds)
    logs = [float(D.norm(dim=-1).amax(-1).log().mean()) for D in runs]
    return float(np.polyfit(np.log(np.asarray(widths, dtype=float)), logs, 1)[0])


def mutant_move_pooled_fit(X, y, widths, steps, lr, seeds):
    """fits every network's log movement as its own point (the same as a mean of the logs)"""
    runs = _runs(X, y, widths, steps, lr, seeds)
    xs = np.concatenate([[math.log(m)] * D.shape[0] for m, D in zip(widths, runs, strict=True)])
    ys = np.concatenate([D.norm(dim=-1).amax(-1).log().numpy() for D in runs])
    return float(np.polyfit(xs, ys, 1)[0])


@common("whole matrix")
def mutant_move_frobenius(X, y, widths, steps, lr, seeds):
    """measures ||W(T) - W(0)||_F (the whole layer) instead of the largest neuron's movement"""
    return _fit(widths, [float(D.norm(dim=(-2, -1)).mean()) for D in _runs(X, y, widths, steps, lr, seeds)])


def mutant_move_squared(X, y, widths, steps, lr, seeds):
    """uses the squared movement ||w_r(T) - w_r(0)||^2"""
    return _fit(widths, [float((D * D).sum(-1).amax(-1).mean()) for D in _runs(X, y, widths, steps, lr, seeds)])


def mutant_move_largest_entry(X, y, widths, steps, lr, seeds):
    """uses the largest single weight change instead of a neuron's norm"""
    return _fit(widths, [float(D.abs().amax(dim=(-2, -1)).mean()) for D in _runs(X, y, widths, steps, lr, seeds)])


def mutant_move_wrong_axis(X, y, widths, steps, lr, seeds):
    """takes the norm over the neurons (axis -2) instead of over each neuron's d weights"""
    return _fit(widths, [float(D.norm(dim=-2).amax(-1).mean()) for D in _runs(X, y, widths, steps, lr, seeds)])


def mutant_move_intercept(X, y, widths, steps, lr, seeds):
    """returns the fit's intercept instead of its slope"""
    runs = _runs(X, y, widths, steps, lr, seeds)
    vals = [float(D.norm(dim=-1).amax(-1).mean()) for D in runs]
    return float(np.polyfit(np.log(np.asarray(widths, dtype=float)), np.log(vals), 1)[1])


def mutant_move_inverse_fit(X, y, widths, steps, lr, seeds):
    """regresses log(width) on log(movement) and inverts the slope"""
    runs = _runs(X, y, widths, steps, lr, seeds)
    vals = [float(D.norm(dim=-1).amax(-1).mean()) for D in runs]
    return 1.0 / float(np.polyfit(np.log(vals), np.log(np.asarray(widths, dtype=float)), 1)[0])


def mutant_move_mixed_logs(X, y, widths, steps, lr, seeds):
    """log10 of the widths against the natural log of the movements"""
    runs = _runs(X, y, widths, steps, lr, seeds)
    vals = [float(D.norm(dim=-1).amax(-1).mean()) for D in runs]
    return float(np.polyfit(np.log10(np.asarray(widths, dtype=float)), np.log(vals), 1)[0])


def mutant_move_one_step_short(X, y, widths, steps, lr, seeds):
    """trains steps - 1 steps"""
    runs = _runs(X, y, widths, steps, lr, seeds, steps_delta=-1)
    return _fit(widths, [float(D.norm(dim=-1).amax(-1).mean()) for D in runs])


def mutant_move_other_seed(X, y, widths, steps, lr, seeds):
    """initializes with seed=1 instead of the stated seed=0"""
    runs = _runs(X, y, widths, steps, lr, seeds, seed=1)
    return _fit(widths, [float(D.norm(dim=-1).amax(-1).mean()) for D in runs])


def mutant_move_both_layers(X, y, widths, steps, lr, seeds):
    """trains both layers (TwoLayer(m, train_output=True)) instead of the first layer only"""
    runs = _runs(X, y, widths, steps, lr, seeds, train_output=True)
    return _fit(widths, [float(D.norm(dim=-1).amax(-1).mean()) for D in runs])


@common("theory")
def mutant_move_theory(X, y, widths, steps, lr, seeds):
    """returns theory's -1/2 without measuring"""
    return -0.5


def mutant_move_library_metric(X, y, widths, steps, lr, seeds):
    """measures with the lesson's own metric (course_lib.lessons.kernel_regime.neuron_movement)"""
    from course_lib.lessons import kernel_regime
    from course_lib.models import TwoLayer
    from course_lib.train import train

    vals = []
    for m in widths:
        model = TwoLayer(int(m))
        params = model.init(np.shape(X)[1], ensemble=int(seeds), seed=0, dtype=torch.float64)
        hist = train(model, params, torch.as_tensor(X), torch.as_tensor(y), steps=int(steps), lr=lr, progress=False,
                     metrics={"move": kernel_regime.neuron_movement})
        vals.append(float(np.mean(hist["move"][-1])))
    return _fit(widths, vals)


MUTANTS = {
    "1.1": [mutant_h_no_clip, mutant_h_no_two_pi, mutant_h_over_pi, mutant_h_cosine_factor, mutant_h_no_inner,
            mutant_h_unnormalized_angle, mutant_h_output_kernel, mutant_h_transposed, mutant_h_monte_carlo,
            mutant_h_library, mutant_h_returns_none],
    "1.2": [mutant_steps_plus_one, mutant_steps_strictly_after, mutant_steps_no_half, mutant_steps_unsquared_factor,
            mutant_steps_rows_as_eigenvectors, mutant_steps_slowest_mode, mutant_steps_du_bound, mutant_steps_library],
    "1.3": [mutant_move_first_seed, mutant_move_last_seed, mutant_move_median, mutant_move_mean_of_logs,
            mutant_move_pooled_fit, mutant_move_frobenius, mutant_move_squared, mutant_move_largest_entry,
            mutant_move_wrong_axis, mutant_move_intercept, mutant_move_inverse_fit, mutant_move_mixed_logs,
            mutant_move_one_step_short, mutant_move_other_seed, mutant_move_both_layers, mutant_move_theory,
            mutant_move_library_metric],
}
