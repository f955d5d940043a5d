"""Lesson 1's science that every experiment shares: data, the predicted Gram matrix, metrics, rate fits.

Setting (the course's own, small enough for a widget): n points uniform on the unit sphere of R^d
(d = 10), labels y_i = +-1 at random (Du et al.'s theorem holds for any bounded labels; random labels
put weight on every eigen-direction), the network f(x) = (1/sqrt m) sum_r a_r phi(w_r . x) with
w_r ~ N(0, I), a_r = +-1, trained by full-batch GD on (1/2)||u - y||^2 with step size
eta = ``lr_fraction`` x 2 / lambda_max(G), where G is the Gram matrix of the infinite-width limit:

* first layer only (the main theorem of Du et al.): G = G^inf (= H^inf for ReLU, the Hermite series
  otherwise, :func:`course_lib.kernels.gram_inf`);
* both layers trained: G = G^inf + K, K_ij = E_w[phi(w.x_i) phi(w.x_j)] (:func:`output_kernel`).

The prediction for a run is its own linearization: u(k) - y = (I - eta H(0))^k (u(0) - y) with the
network's own Gram matrix H(0) at initialization (:func:`course_lib.theory.linearized_modes`, each
eigen-direction's coefficient computed directly); G gives the infinite-width version.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ... import data, kernels
from ..._validate import PSD_RTOL
from ...activations import _quadrature_rule, get_activation
from ...claims import FLOAT32_FLOOR
from ...runtime import to_float64

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "softplus", "tanh", "swish", "erf", "sigmoid")
LAYERS = ("first layer only", "both layers")
MIN_WIDTH = 8
# A float32 run's residual ||u - y|| levels off near 1e-7..1e-6 x ||y|| (round-off in the sum over m
# neurons grows with m). Rates are fitted only where ||u - y|| is above FIT_FLOOR x ||u(0) - y||, a
# factor >= 30 above that floor at every width the lesson offers.
FIT_FLOOR = 1e-4
ROUNDOFF = FLOAT32_FLOOR


# ----------------------------------------------------------------------------------------------
# The Gram matrix of the infinite-width limit
# ----------------------------------------------------------------------------------------------
def output_kernel(X, activation="relu") -> torch.Tensor:
    """K_ij = E_w[phi(w.x_i) phi(w.x_j)], w ~ N(0, I): the output layer's part of the Gram matrix, float64.

    ReLU: the arc-cosine kernel :func:`course_lib.kernels.arccos1` (any norms). Otherwise (unit-norm rows):
    with b_p the Hermite coefficients of phi, E[phi(u) phi(v)] = sum_p b_p^2 rho^p for standard Gaussians
    with correlation rho, and Gaussian integration by parts gives b_{p+1} = c_p / sqrt(p + 1) from the
    coefficients c_p of phi'. So K = b_0^2 + sum_p c_p^2 / (p + 1) rho^(p+1), b_0 = E[phi(z)], with the
    truncated tail's mass E[phi^2] - b_0^2 - sum c_p^2 / (p + 1) put on the diagonal (as in
    :func:`course_lib.kernels.gram_hermite`).
    """
    act = get_activation(activation)
    X = to_float64(torch.as_tensor(X))
    if act.name == "relu":
        return kernels.arccos1(X)
    kernels._check_unit_rows(X)
    P = kernels.auto_num_coeffs(X)
    c2 = act.hermite_coeffs(P) ** 2 / np.arange(1, P + 1)
    nodes, weights = _quadrature_rule(act, 64)
    density = np.exp(-0.5 * nodes**2) / math.sqrt(2 * math.pi)
    phi = act.phi(torch.from_numpy(nodes)).numpy()
    b0 = float(np.sum(weights * density * phi))
    second = float(np.sum(weights * density * phi**2))
    R = X @ X.T
    power = torch.ones_like(R)
    K = torch.full_like(R, b0 * b0)
    for p in range(P):
        power = power * R
        if c2[p] != 0:
            K = K + float(c2[p]) * power
    K.diagonal().add_(max(second - b0 * b0 - float(c2.sum()), 0.0))
    return K


def predicted_gram(X, activation="relu", train_output: bool = False) -> torch.Tensor:
    """The Gram matrix GD follows at infinite width: G^inf, plus :func:`output_kernel` if both layers train."""
    G = kernels.gram_inf(to_float64(torch.as_tensor(X)), activation)
    return G + output_kernel(X, activation) if train_output else G


@functools.lru_cache(maxsize=32)
def problem(n: int, d: int, seed: int, activation: str, train_output: bool) -> dict:
    """Data, labels and the predicted Gram matrix with its eigen-decomposition (cached: sliders that do
    not change them cost nothing here)."""
    X = data.unit_sphere(n, d, seed=seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    y = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).float()
    G = predicted_gram(X, activation, train_output)
    lam, V = kernels.eigh(G)
    return {"X": X, "y": y, "G": G, "lam": lam, "V": V}


# ----------------------------------------------------------------------------------------------
# Metrics recorded during training (for course_lib.train.train)
# ----------------------------------------------------------------------------------------------
def neuron_movement(params, ctx) -> torch.Tensor:
    """max_r ||w_r - w_r(0)|| per network."""
    return (params["W"] - ctx.params0["W"]).norm(dim=-1).amax(dim=-1)


def residual(params, ctx) -> torch.Tensor:
    """u - y per network, shape (E, n)."""
    return ctx.model.apply(params, ctx.X) - ctx.y


_residual_metric = residual  # the name lesson 1 used before


def gram_metric(H0: torch.Tensor, steps):
    """A metric recording, at the steps in ``steps`` only, per network (H0: (E, n, n), float64 on the CPU):
    the drift ||H(k) - H(0)||_2, lambda_min(H(k)) and lambda_max(H(k)) (shape (E, 3); NaN elsewhere).
    H(k) is positive semi-definite: a lambda_min at rounding level (|lambda| below PSD_RTOL x lambda_max, either
    sign) is recorded as 0."""
    steps = set(int(k) for k in steps)

    def metric(params, ctx):
        E = ctx.params0["W"].shape[0]
        if ctx.step not in steps:
            return torch.full((E, 3), float("nan"))
        Hk = kernels.empirical_gram(ctx.model, params, ctx.X).cpu()
        ev = kernels.psd_spectrum(Hk)
        low = torch.where(ev[:, 0] <= PSD_RTOL * ev[:, -1], torch.zeros_like(ev[:, 0]), ev[:, 0])
        return torch.stack([torch.linalg.matrix_norm(Hk - H0, 2), low, ev[:, -1]], dim=1)

    return metric


# ----------------------------------------------------------------------------------------------
# Rates, fitted where they mean something
# ----------------------------------------------------------------------------------------------
def late_rate(steps, norms, fraction: float = 0.5) -> float:
    """Per-step contraction of ``norms`` (e.g. ||u - y||) fitted on the last ``fraction`` of the run:
    exp of the slope of log(norms) vs step (NaN if fewer than 3 usable points)."""
    steps, norms = np.asarray(steps, float), np.asarray(norms, float)
    keep = np.isfinite(norms) & (norms > 0)
    steps, norms = steps[keep], norms[keep]
    if len(steps) < 3:
        return float("nan")
    late = steps >= steps[-1] - fraction * (steps[-1] - steps[0])
    if late.sum() < 3:
        return float("nan")
    return float(np.exp(np.polyfit(steps[late], np.log(norms[late]), 1)[0]))


def fit_window(steps, norms, *, floor: float = FIT_FLOOR, min_length: int = 10) -> tuple[int, int] | None:
    """The late window [a, b] over which a rate is fitted: b = the last recorded step at which ``norms``
    is finite and above ``floor`` x norms[0] (above float32 round-off), a = b / 2. None when the window
    would hold fewer than ``min_length`` steps (the run is too short, or hit the floor too early)."""
    steps, norms = np.asarray(steps), np.asarray(norms, float)
    ok = np.isfinite(norms) & (norms > floor * norms[0])
    # the window ends before the first step that is not ok (a run that diverged or reached the floor)
    bad = np.flatnonzero(~ok)
    last = bad[0] - 1 if len(bad) else len(steps) - 1
    if last < 0:
        return None
    b = int(steps[last])
    a = b // 2
    if b - a < min_length:
        return None
    return a, b


def rate_over(steps, norms, window) -> float:
    """exp(slope of log norms vs step) over the steps in ``window`` = (a, b) (NaN if unusable)."""
    steps, norms = np.asarray(steps, float), np.asarray(norms, float)
    a, b = window
    k = (steps >= a) & (steps <= b) & np.isfinite(norms) & (norms > 0)
    if k.sum() < 3:
        return float("nan")
    return float(np.exp(np.polyfit(steps[k], np.log(norms[k]), 1)[0]))


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def comparison_widths(width: int) -> list[int]:
    """The slider's width and two narrower ones (m/64, m/8), trained one after another."""
    return sorted({max(MIN_WIDTH, width // 64), max(MIN_WIDTH, width // 8), width})


def mode_groups(n: int, size: int = 5) -> dict[str, np.ndarray]:
    """Index sets of eigen-directions (ascending eigenvalues): the ``size`` slowest, ``size`` around the
    median, and the ``size`` fastest."""
    size = max(1, min(size, n // 3))
    mid = n // 2 - size // 2
    return {"slowest": np.arange(size), "middle": np.arange(mid, mid + size), "fastest": np.arange(n - size, n)}


def activation_table(n: int = 50, d: int = 10, seed: int = 0, lr_fraction: float = 0.5):
    """For each activation: lambda_0 and lambda_max of G^inf on the lesson's data (first layer trained), their
    ratio, the steps per decade of the slowest direction at eta = lr_fraction x 2 / lambda_max,
    ln 10 / -ln(1 - eta lambda_0) (the long-run speed of the linearized dynamics), and the squared mean of phi',
    c_0^2 = E[phi'(z)]^2: the weight of the term c_0^2 X X^T of G^inf, which sets most of lambda_max."""
    from ...claims import Table

    rows = []
    for act in ACTIVATIONS:
        lam = problem(n, d, seed, act, False)["lam"].numpy()
        eta = lr_fraction * 2 / lam[-1]
        c0 = float(get_activation(act).hermite_coeffs(1)[0])
        rows.append((act, lam[0], lam[-1], lam[0] / lam[-1], math.log(10) / -math.log1p(-eta * lam[0]), c0 * c0))
    return Table(["activation", "λ₀ of G", "λmax of G", "λ₀ / λmax", f"steps per decade (η = {lr_fraction} × 2/λmax)",
                  "E[φ′(z)]²"],
                 rows, title=f"G∞ on the lesson's data (n = {n}, d = {d}, seed {seed}), first layer trained", sig=3)
