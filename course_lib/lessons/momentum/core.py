"""Lesson 6, the closed forms: data, the linearized HB / NAG dynamics mode by mode, rates, tunings.

Notation: step eta (``lr``), momentum beta, Gram matrix H with eigenvalues lambda (ascending) and
eigenvectors V. Linearized on H, the residual's coefficient c = v . (u - y) along one eigenvector follows

* GD:  c(k+1) = (1 - eta lambda) c(k)
* HB:  c(k+1) = (1 + beta - eta lambda) c(k) - beta c(k-1)
* NAG: c(k+1) = (1 - eta lambda) [(1 + beta) c(k) - beta c(k-1)]

from c(-1) = c(0) (the first step has no momentum, as in :func:`course_lib.train.train`). The per-step
contraction of a mode is the largest root modulus of its characteristic polynomial
(:func:`course_lib.theory.mode_rate`); the predicted rate of a run is the largest over the spectrum.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ... import data, kernels, theory
from ..._validate import check_choice, check_float, check_int
from ...runtime import get_device, to_float64

DATASETS = ("sphere", "digits 0 vs 1", "digits 3 vs 8")
METHODS = ("gd", "hb", "nag")
LABELS = {"gd": "GD", "hb": "heavy ball", "nag": "Nesterov"}
SHORT = {"gd": "GD", "hb": "HB", "nag": "NAG"}
# Okabe-Ito colours (plots.OKABE_ITO), each with its own marker: colour is never the only cue
COLORS = {"gd": "#009E73", "hb": "#0072B2", "nag": "#D55E00"}
MARKERS = {"gd": "o", "hb": "s", "nag": "^"}
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
# the measured rate is the slope of log||u - y|| over the records where ||u - y|| / ||u(0) - y|| lies in
# [FIT_LO, FIT_HI]: late enough that the fast modes are gone, and 30x or more above the float32 floor (below)
FIT_LO, FIT_HI = 1e-4, 1e-2
TOLERANCE = 1e-4  # "steps to reach 10^-4 of the start": ||u - y|| / ||u(0) - y|| < TOLERANCE
# float32 training: ||u - y|| stops falling near this fraction of ||y|| (round-off of u in float32, summed
# over n points; measured: NAG's curve levels off at 1e-7 to 3e-7 of ||u(0) - y||)
FLOAT32_FLOOR = 2e-7
# the (eta, beta) grid of the rate maps: eta in units of 1 / lambda_max, beta in [0, 0.99]
MAP_LR = np.linspace(0.02, 4.0, 100)
MAP_BETA = np.linspace(0.0, 0.99, 100)


def stability_limit(method: str, beta: float) -> float:
    """The largest eta * lambda for which a mode is stable: GD 2, HB 2 (1 + beta), NAG 2 (1 + beta) / (1 + 2 beta)."""
    method = check_choice("method", method, METHODS)
    if method == "gd":
        return 2.0
    if method == "hb":
        return 2.0 * (1 + beta)
    return 2.0 * (1 + beta) / (1 + 2 * beta)


def momentum_of(method: str, beta: float) -> float:
    """The momentum a method uses (GD: none)."""
    return 0.0 if method == "gd" else float(beta)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _problem_cpu(dataset: str, seed: int):
    if dataset == "sphere":
        X = data.unit_sphere(32, 10, seed=seed, device="cpu")
        y = data.two_layer_teacher(3, 10, seed=1000 + seed, device="cpu")(X)
    else:
        a, b = (int(c) for c in dataset.replace("digits ", "").split(" vs "))
        X, y = data.digits((a, b), n=40, targets="pm1", seed=seed, device="cpu")
    H = kernels.relu_h_inf(to_float64(X))
    lam = kernels.spectrum(H).cpu().numpy()
    return X, y, H.cpu(), lam


def problem(dataset: str = "sphere", seed: int = 0, device=None):
    """(X, y, H^inf, eigenvalues of H^inf ascending) for one of :data:`DATASETS` (cached); X, y on ``device``,
    H^inf (float64) and its spectrum on the CPU."""
    dataset = check_choice("dataset", dataset, DATASETS)
    seed = check_int("seed", seed, min_value=0)
    X, y, H, lam = _problem_cpu(dataset, seed)
    dev = get_device(device)
    return X.to(dev), y.to(dev), H, lam


def gram64(model, params, X) -> torch.Tensor:
    """The finite-width Gram matrix H of each network, float64 on the CPU, shape (E, n, n).

    Parameters and data are moved to the CPU before the float64 conversion (the course's rule for
    float64, :func:`course_lib.runtime.to_float64`: Apple's MPS holds no float64)."""
    p64 = {k: to_float64(v.detach().cpu()) for k, v in params.items()}
    return kernels.empirical_gram(model, p64, to_float64(X.detach().cpu()))


# ----------------------------------------------------------------------------------------------
# The linearized dynamics, mode by mode (float64, numpy)
# ----------------------------------------------------------------------------------------------
def mode_coefficients(lam, c0, lr: float, beta: float, method: str, steps: int) -> np.ndarray:
    """Coefficients c_i(k), k = 0..steps, of the linearized GD / HB / NAG dynamics, shape (steps + 1, n).

    Each mode runs its own scalar two-term recursion (module docstring), computed directly from its own
    coefficients: past a stability edge the unstable mode grows without spilling round-off onto the
    stable ones."""
    method = check_choice("method", method, METHODS)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    steps = check_int("steps", steps, min_value=0)
    lam = np.asarray(lam, dtype=np.float64)
    c = np.asarray(c0, dtype=np.float64)
    b = momentum_of(method, beta)
    q = 1.0 - lr * lam
    out = np.empty((steps + 1, len(lam)))
    prev, cur = c.copy(), c.copy()
    out[0] = cur
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps):
            if method == "nag":
                new = q * ((1 + b) * cur - b * prev)
            else:
                new = (1 + b - lr * lam) * cur - b * prev
            prev, cur = cur, new
            out[k + 1] = cur
    return out


def linearized_residuals(H, r0, lr: float, beta: float, method: str, steps: int) -> np.ndarray:
    """Residuals r(k), k = 0..steps, of the linearized GD / HB / NAG dynamics, shape (steps + 1, n).

    Computed in the eigenbasis of H (:func:`mode_coefficients`), starting from r(-1) = r(0)."""
    method = check_choice("method", method, METHODS)
    H = np.asarray(to_float64(torch.as_tensor(H)).cpu(), dtype=np.float64)
    r0 = np.asarray(to_float64(torch.as_tensor(r0)).cpu(), dtype=np.float64)
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    return mode_coefficients(lam, V.T @ r0, lr, beta, method, steps) @ V.T


def measured_rate(steps, norms, lo: float = FIT_LO, hi: float = FIT_HI) -> tuple[float, np.ndarray]:
    """Per-step contraction exp(slope) of log ``norms`` against ``steps`` (least squares).

    The fit uses the contiguous records from the first one with norms / norms[0] <= hi (the fast
    modes are gone) up to the first one below lo or the run's minimum, whichever comes first (the
    round-off floor is never fitted). With fewer than 8 such records the last half of the finite
    records is used instead. Returns (rate, boolean mask of the records used).
    """
    steps = np.asarray(steps, dtype=float)
    norms = np.asarray(norms, dtype=float)
    finite = np.isfinite(norms) & (norms > 0)
    if finite.sum() < 2:
        return float("nan"), finite
    rel = np.where(finite, norms / norms[0], np.inf)
    use = np.zeros(len(norms), dtype=bool)
    below_hi = np.flatnonzero(rel <= hi)
    if len(below_hi):
        start = below_hi[0]
        below_lo = np.flatnonzero(rel < lo)
        end = min(below_lo[0] if len(below_lo) else len(rel) - 1, int(np.argmin(rel)))
        use[start:end + 1] = True
        use &= finite
    if use.sum() < 8:
        idx = np.flatnonzero(finite)
        use = np.zeros(len(norms), dtype=bool)
        use[idx[len(idx) // 2:]] = True
    slope = np.polyfit(steps[use], np.log(norms[use]), 1)[0]
    return float(math.exp(slope)), use


def window_rate(steps, norms, use) -> float:
    """exp(slope) of log ``norms`` over exactly the records ``use`` (the window of another fit)."""
    steps, norms = np.asarray(steps, dtype=float), np.asarray(norms, dtype=float)
    use = np.asarray(use, dtype=bool) & np.isfinite(norms) & (norms > 0)
    if use.sum() < 2:
        return float("nan")
    with np.errstate(over="ignore"):
        return float(math.exp(min(np.polyfit(steps[use], np.log(norms[use]), 1)[0], 700.0)))


def steps_to_tolerance(steps, norms, tol: float = TOLERANCE) -> int | None:
    """First recorded step with norms / norms[0] < tol (None if never reached)."""
    norms = np.asarray(norms, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit = np.flatnonzero(np.isfinite(norms) & (norms / norms[0] < tol))
    return int(np.asarray(steps)[hit[0]]) if len(hit) else None


def envelope(values, steps=None, half_width: int = 15) -> np.ndarray:
    """Running maximum over the records within +-``half_width`` steps: the envelope of an oscillating decay (heavy
    ball's slowest modes turn with a period of ~30 steps at the defaults, so a pointwise ratio would compare phases)."""
    v = np.asarray(values, dtype=float)
    k = np.arange(len(v)) if steps is None else np.asarray(steps)
    lo = np.searchsorted(k, k - half_width, side="left")
    hi = np.searchsorted(k, k + half_width, side="right")
    return np.array([np.nanmax(v[a:b]) for a, b in zip(lo, hi)])


# ----------------------------------------------------------------------------------------------
# Tunings on a quadratic with curvatures in [mu, L]
# ----------------------------------------------------------------------------------------------
def classical_parameters(lam_min: float, lam_max: float) -> dict:
    """The tunings for a quadratic with curvatures in [mu, L], kappa = L / mu (rates are per step).

    * ``hb``: Polyak's heavy ball, eta = 4 / (sqrt L + sqrt mu)^2, beta = ((sqrt kappa - 1)/(sqrt kappa + 1))^2,
      rate (sqrt kappa - 1)/(sqrt kappa + 1): every mode sits on the circle |z| = sqrt(beta). The best HB.
    * ``nag``: Nesterov's standard tuning, eta = 1 / L, beta = (sqrt kappa - 1)/(sqrt kappa + 1),
      rate 1 - 1/sqrt(kappa) (the slowest mode is a double root). Not NAG's best.
    * ``nag_best``: the best NAG on a quadratic (Lessard, Recht & Packard 2016), eta = 4 / (3 L + mu),
      beta = (sqrt(3 kappa + 1) - 2)/(sqrt(3 kappa + 1) + 2), rate 1 - 2 / sqrt(3 kappa + 1).
    * ``gd``: eta = 2 / (L + mu), rate (kappa - 1)/(kappa + 1).
    """
    mu = check_float("lam_min", lam_min, min_value=0.0, min_inclusive=False)
    L = check_float("lam_max", lam_max, min_value=mu)
    sk = math.sqrt(L / mu)
    s3 = math.sqrt(3 * L / mu + 1)
    return {
        "hb": {"lr": 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, "beta": ((sk - 1) / (sk + 1)) ** 2,
               "rate": (sk - 1) / (sk + 1)},
        "nag": {"lr": 1.0 / L, "beta": (sk - 1) / (sk + 1), "rate": 1 - 1 / sk},
        "nag_best": {"lr": 4.0 / (3 * L + mu), "beta": (s3 - 2) / (s3 + 2), "rate": 1 - 2 / s3},
        "gd": {"lr": 2.0 / (L + mu), "beta": 0.0, "rate": (L / mu - 1) / (L / mu + 1)},
    }


def best_tuning(eigenvalues, method: str) -> dict:
    """The (eta, beta) that minimize the predicted rate over the spectrum, found numerically: for each beta the best
    eta by a bounded scalar search (the rate is unimodal in eta), then the best beta the same way, started from the
    best cell of the rate map. A minimax of root moduli is not smooth (simplex methods stall in its valley), and
    nothing here uses the closed forms: an independent check of :func:`classical_parameters`.
    Returns {"lr", "beta", "rate"}."""
    method = check_choice("method", method, ("hb", "nag"))
    lam = np.ascontiguousarray(np.sort(np.asarray(eigenvalues, dtype=np.float64)))
    return dict(_best_tuning_cached(lam.tobytes(), len(lam), method))


@functools.lru_cache(maxsize=16)
def _best_tuning_cached(key: bytes, n: int, method: str) -> tuple:
    from scipy.optimize import minimize_scalar

    lam = np.frombuffer(key, dtype=np.float64, count=n)
    L = float(lam[-1])
    opts = {"xatol": 1e-11, "maxiter": 500}

    def rate(f, b):
        return theory.predicted_rate(lam, f / L, b, method)

    def best_step(b):
        limit = stability_limit(method, b)
        r = minimize_scalar(lambda f: rate(f, b), bounds=(1e-6, limit), method="bounded", options=opts)
        return r.x, r.fun

    grid = rate_maps(lam)[method]
    i, _ = np.unravel_index(np.argmin(grid), grid.shape)
    db = MAP_BETA[1] - MAP_BETA[0]
    r = minimize_scalar(lambda b: best_step(b)[1], bounds=(max(MAP_BETA[i] - 3 * db, 0.0), min(MAP_BETA[i] + 3 * db, 0.999)),
                        method="bounded", options=opts)
    f, _ = best_step(r.x)
    return tuple({"lr": f / L, "beta": float(r.x), "rate": rate(f, float(r.x))}.items())


def high_resolution_beta(lr, lam_min: float):
    """beta = (1 - sqrt(mu s)) / (1 + sqrt(mu s)), the momentum tied to the step s = lr in the
    high-resolution ODE analysis of HB and NAG (Shi, Du, Jordan & Su), mu = lambda_min."""
    r = np.sqrt(np.asarray(lr, dtype=float) * lam_min)
    return (1 - r) / (1 + r)


@functools.lru_cache(maxsize=8)
def _rate_maps_cached(key: bytes, n: int) -> dict:
    lam = np.frombuffer(key, dtype=np.float64, count=n)
    # mode_rate depends on lr and lambda only through lr * lambda: one call per beta covers the whole
    # (step, spectrum) grid at once (lr = 1, "eigenvalues" = step fraction x lambda / lambda_max)
    scaled = np.outer(MAP_LR, lam / lam[-1])
    maps = {}
    for method in ("hb", "nag"):
        maps[method] = np.stack([theory.mode_rate(scaled, 1.0, float(b), method).max(axis=1) for b in MAP_BETA])
    return maps


def rate_maps(eigenvalues) -> dict:
    """Predicted rates of HB and NAG over the grid MAP_BETA x MAP_LR (lr in units of 1/lambda_max),
    {"hb": (len(MAP_BETA), len(MAP_LR)), "nag": ...}; cached per spectrum."""
    lam = np.ascontiguousarray(np.sort(np.asarray(eigenvalues, dtype=np.float64)))
    return _rate_maps_cached(lam.tobytes(), len(lam))


# ----------------------------------------------------------------------------------------------
# The 2-D quadratic
# ----------------------------------------------------------------------------------------------
def quadratic_paths(lam, lr: float, beta: float, steps: int, start=(1.0, 1.0)) -> dict:
    """GD, HB and NAG on f(x) = sum_j lam_j x_j^2 / 2 from ``start``: {method: (steps + 1, 2)} (float64).

    The iteration in coordinates (the methods' own update rules, not the modes' recursion)."""
    lam = np.asarray(lam, dtype=float)
    out = {}
    for m in METHODS:
        b = momentum_of(m, beta)
        x_prev = x = np.array(start, dtype=float)
        path = [x]
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(steps):
                if m == "nag":
                    v = x + b * (x - x_prev)
                    x_new = v - lr * lam * v  # the gradient at the look-ahead point
                else:
                    x_new = x - lr * lam * x + b * (x - x_prev)
                x_prev, x = x, x_new
                path.append(x)
        out[m] = np.array(path)
    return out


def peak_rate(values, *, skip: int = 2, floor: float = 1e-250) -> float:
    """Per-step rate of an oscillating geometric sequence: exp(slope) of log |x_k| fitted through its
    local maxima (the envelope), after ``skip`` steps, above ``floor``. NaN if fewer than 2 points."""
    a = np.abs(np.asarray(values, dtype=float))[skip:]
    k = np.arange(skip, skip + len(a))
    ok = np.isfinite(a) & (a > floor)
    a, k = a[ok], k[ok]
    if len(a) < 3:
        return float("nan")
    peak = np.r_[a[0] >= a[1], (a[1:-1] >= a[:-2]) & (a[1:-1] >= a[2:]), a[-1] >= a[-2]]
    if peak.sum() < 3:
        peak = np.ones(len(a), dtype=bool)
    with np.errstate(over="ignore"):
        return float(math.exp(min(np.polyfit(k[peak], np.log(a[peak]), 1)[0], 700.0)))


# ----------------------------------------------------------------------------------------------
# Where training ends: the linearized model's minimum-norm move
# ----------------------------------------------------------------------------------------------
def min_norm_move(model, params, X, y) -> dict:
    """The move Delta W = -J^T H^-1 r0 that fits the linearized model with the least ||Delta W||_F, for
    each network of ``params``: {"distance": ||Delta W||_F = sqrt(r0' H^-1 r0), "per_neuron": max_r
    ||Delta w_r||, "W0_norm": ||W0||_F} (float64 arrays of length E). J is built here from the activation
    patterns: d u_i / d w_r = a_r 1[w_r . x_i >= 0] x_i / sqrt(m)."""
    W = to_float64(params["W"].detach().cpu())  # (E, m, d)
    a = to_float64(params["a"].detach().cpu())  # (E, m)
    X64 = to_float64(X.detach().cpu())
    y64 = to_float64(y.detach().cpu())
    m = W.shape[1]
    act = (torch.einsum("nd,emd->enm", X64, W) >= 0).to(W.dtype)  # (E, n, m), float64 on the CPU
    H = (act @ act.transpose(1, 2)) / m * (X64 @ X64.T)
    u0 = torch.einsum("enm,em->en", torch.relu(torch.einsum("nd,emd->enm", X64, W)), a) / math.sqrt(m)
    r0 = u0 - y64
    alpha = torch.linalg.solve(H, r0.unsqueeze(-1)).squeeze(-1)  # (E, n)
    dW = torch.einsum("enm,en,nd->emd", act, alpha, X64) * (a / math.sqrt(m)).unsqueeze(-1)
    return {"distance": torch.sqrt((r0 * alpha).sum(1)).numpy(), "per_neuron": dW.norm(dim=2).max(dim=1).values.numpy(),
            "W0_norm": W.flatten(1).norm(dim=1).numpy()}
