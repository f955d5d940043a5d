"""Lesson 4's closed forms: the activations, the G-matrix, its bounds, the dual activation (float64).

Two-layer net f(x) = (1/sqrt m) sum_r a_r phi(w_r . x), w_r ~ N(0, I), unit-norm inputs. Its
infinite-width Gram ("G-matrix") is

    G_ij = <x_i, x_j> E_w[phi'(w.x_i) phi'(w.x_j)] = sum_p c_p^2 rho_ij^(p+1),   rho_ij = <x_i, x_j>,

c_p the Hermite coefficients of phi' (orthonormal h_p = He_p / sqrt(p!)).

* :func:`gram_matrix`: G^inf, the library's exact :func:`course_lib.kernels.gram_inf` (kinked activations in
  closed form, smooth ones by a series with a rigorous truncation bound); :func:`gram_batch` for many data sets.
* :func:`kinked_coeffs`: c_p of the kinked activations in closed form, for any p (a recursion, exact).
* :func:`lower_bound` (Hermite + Schur + Gershgorin) and :func:`upper_bound` (dimension count): the
  course's derivations (the paper's theorems are stated up to constants and are not reproduced here).
* :func:`dual_correlation`, :func:`dual_slope`, :func:`deep_grams`, :func:`empirical_deep_grams`: depth.

Numerical floor: eigenvalues below ``FLOOR_REL`` x lambda_max are float64 rounding, not signal.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import torch

from ... import kernels
from ..._validate import check_float, check_int
from ...activations import JUMP_D2PHI, JUMP_DPHI, SMOOTH, get_activation
from ...runtime import make_generator

f64 = torch.float64
NUM_COEFFS = 512  # Hermite coefficients of the smooth activations used by the bounds and figure 4.1
FLOOR_REL = 1e-12  # eigenvalues below this fraction of lambda_max are float64 noise
COEFF_FLOOR = 1e-28  # activations.py zeroes |c_p| < 1e-14, so c_p^2 below this is not resolved
KINKED = ("relu", "leaky_relu", "selu", "elu")
SMOOTH_ACTS = ("gelu", "softplus", "tanh", "swish", "erf", "sigmoid")
ACTIVATIONS = KINKED + SMOOTH_ACTS
DEFAULT_ACTS = ("relu", "selu", "elu", "tanh", "swish")
#: the slower parity of c_p^2 decays like p^THEORY_SLOPE (a jump in phi': p^-3/2; only in phi'': p^-5/2)
THEORY_SLOPE = {JUMP_DPHI: -1.5, JUMP_D2PHI: -2.5}
#: lambda_min ~ delta^k on well-separated data (the tail of c_p^2 beyond p ~ 1/delta^2)
DELTA_POWER = {JUMP_DPHI: 1.0, JUMP_D2PHI: 3.0}

# One colour and one marker per activation, the same in every figure of the lesson (Okabe-Ito colours;
# colour is never the only cue: every (colour, marker) pair is distinct).
_EXTRA_COLORS = ("#6A3D9A", "#7F7F7F", "#8C510A", "#1B7837")  # purple, grey, brown, dark green
_ORDER = ("relu", "swish", "selu", "tanh", "elu", "leaky_relu", "gelu", "softplus", "erf", "sigmoid")


def style(name: str) -> dict:
    """matplotlib keywords (color, marker) of activation ``name`` (or ``polyK``) in this lesson."""
    from ... import plots

    i = int(name[4:]) - 1 if name.startswith("poly") else _ORDER.index(name)
    # six of the palette's colours (its yellow is too faint for lines on white), then four darker ones for the
    # activations past the sixth, so that no two activations share a colour when every one is selected;
    # each with its own marker
    return {"color": plots.color(i) if i < 6 else _EXTRA_COLORS[(i - 6) % len(_EXTRA_COLORS)], "marker": plots.marker(i)}


def check_acts(activations) -> tuple[str, ...]:
    """A non-empty tuple of activation names (ValueError naming the parameter otherwise)."""
    if isinstance(activations, str):
        activations = (activations,)
    acts = tuple(activations)
    if len(acts) == 0:
        raise ValueError("activations: choose at least one activation")
    return tuple(get_activation(a).name for a in acts)


def smoothness(name: str) -> str:
    return get_activation(name).smoothness


# ----------------------------------------------------------------------------------------------
# Hermite coefficients in closed form
# ----------------------------------------------------------------------------------------------
PDF0 = 1 / math.sqrt(2 * math.pi)


def _pieces(activation) -> tuple:
    """phi'(z) = sum_k c_k exp(t_k z) 1[side_k z > 0] (side 0: all z), from course_lib.activations."""
    act = get_activation(activation)
    if act.dphi_pieces is None:
        raise ValueError(f"activation {act.name!r} has no closed-form phi' (choose one of {list(KINKED)})")
    return tuple(act.dphi_pieces)


@functools.lru_cache(maxsize=8)
def _hermite_at_zero(num: int) -> np.ndarray:
    """h_q(0) = He_q(0) / sqrt(q!): 1, 0, -1/sqrt 2, 0, sqrt(3/8), ... (h_{q+2}(0) = -h_q(0) sqrt((q+1)/(q+2)))."""
    t = np.zeros(num)
    t[0] = 1.0
    q = np.arange(0, num - 2, 2, dtype=float)
    t[2::2] = np.cumprod(-np.sqrt((q + 1) / (q + 2)))[: len(t[2::2])]
    return t


_RECURSE, _MEMORY = 1024, 24  # exact recursion up to p = 1024, then the last 24 terms of its unrolled sum


@functools.lru_cache(maxsize=64)
def _piece_coeffs(rate: float, side: int, num: int) -> np.ndarray:
    """Hermite coefficients of f(z) = exp(rate z) 1[side z > 0] (side 0: exp(rate z)), exact for every p.

    Gaussian integration by parts, E[f h_p] = E[f' h_{p-1}] / sqrt(p), with f' = rate f + side delta(z):
    e_p = (rate e_{p-1} + side phi(0) h_{p-1}(0)) / sqrt(p), e_0 = exp(rate^2 / 2) Phi(side rate).
    Errors shrink by rate / sqrt(p) each step: stable.
    """
    from scipy.special import ndtr

    t = _hermite_at_zero(num)
    e = np.empty(num)
    e[0] = math.exp(0.5 * rate * rate) * (1.0 if side == 0 else float(ndtr(side * rate)))
    jump = side * PDF0 * t
    inv = 1 / np.sqrt(np.arange(1, num, dtype=float))
    if rate == 0.0:  # a step: e_p = side phi(0) h_{p-1}(0) / sqrt(p), no recursion needed
        e[1:] = jump[:-1] * inv
        return e
    head = min(num, _RECURSE)
    prev = e[0]
    for p in range(1, head):
        prev = (rate * prev + jump[p - 1]) * inv[p - 1]
        e[p] = prev
    if num > head:
        # unrolled: e_p = sum_i jump_{i-1}/sqrt(i) prod_{l=i+1..p} rate/sqrt(l); beyond p = _RECURSE each factor
        # is below rate/32, so the last _MEMORY terms give e_p to rounding (vectorized over p)
        p = np.arange(head, num)
        acc, w = np.zeros(len(p)), np.ones(len(p))
        for s in range(_MEMORY):
            i = p - s
            acc += w * jump[i - 1] * inv[i - 1]
            w *= rate * inv[i - 1]
        e[head:] = acc
    return e


@functools.lru_cache(maxsize=16)
def _kinked_coeffs_cached(name: str, num: int) -> np.ndarray:
    total = np.zeros(num)
    for c, rate, side in _pieces(name):
        total += c * _piece_coeffs(float(rate), int(side), num)
    return total


def kinked_coeffs(activation, num: int) -> np.ndarray:
    """c_0 .. c_{num-1} of phi' for a kinked activation (relu, leaky_relu, elu, selu), exact for any p
    (up to 2^20): phi' is a sum of pieces c exp(t z) 1[side z > 0], each with a closed-form recursion.
    Agrees with the quadrature of :mod:`course_lib.activations` to ~1e-15 where both exist (tests)."""
    num = check_int("num", num, min_value=1, max_value=2**20)
    size = 1 << max(10, (num - 1).bit_length())  # computed once per power of two, then sliced
    return _kinked_coeffs_cached(get_activation(activation).name, size)[:num].copy()


# ----------------------------------------------------------------------------------------------
# The G-matrix (course_lib.kernels: exact for the kinked activations, a bounded series for the smooth ones)
# ----------------------------------------------------------------------------------------------
def _as_unit_rows(X) -> torch.Tensor:
    X = torch.as_tensor(X).to(f64).cpu()
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n, d); got shape {tuple(X.shape)}")
    norms = X.norm(dim=1)
    if X.shape[0] and float((norms - 1).abs().max()) > 1e-5:
        raise ValueError("X must have unit-norm rows; normalize the rows first")
    return X / norms[:, None]


def gram_matrix(X, activation) -> torch.Tensor:
    """G^inf_ij = <x_i, x_j> E_w[phi'(w.x_i) phi'(w.x_j)] for the unit-norm rows of X (float64, CPU): a thin alias
    of :func:`course_lib.kernels.gram_inf` (kept for the exercises' checks and the shared cases)."""
    return kernels.gram_inf(_as_unit_rows(X), activation)


def gram_batch(Xs: Sequence, activation) -> torch.Tensor:
    """G^inf of several data sets of the same size at once, shape (len(Xs), n, n): <x_i, x_j> kappa(theta_ij)
    with the library's kernel :func:`course_lib.kernels.dphi_kernel` and well-conditioned angles."""
    X = torch.stack([_as_unit_rows(X) for X in Xs])
    R = (X @ X.transpose(1, 2)).clamp(-1.0, 1.0)
    R.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    return R * kernels.dphi_kernel(kernels.angles(X), activation)


def gram_from_correlation(R: torch.Tensor, activation) -> torch.Tensor:
    """sum_p c_p^2 R^(p+1) for a correlation matrix R (a deep net's layer): :func:`course_lib.kernels.gram_from_correlation`."""
    return kernels.gram_from_correlation(R, activation)


@functools.lru_cache(maxsize=1)
def _half_line_rule() -> tuple[np.ndarray, np.ndarray]:
    """Nodes on (0, 14] and weights including the N(0, 1) density: sum w f(z) ~ int_0^inf f(z) pdf(z) dz
    (the integrals of phi itself, split at the kink z = 0)."""
    x, w = np.polynomial.legendre.leggauss(50)
    edges = np.linspace(0.0, 14.0, 57)
    z = ((edges[:-1, None] + edges[1:, None]) / 2 + (edges[1:, None] - edges[:-1, None]) / 2 * x).ravel()
    wz = ((edges[1:, None] - edges[:-1, None]) / 2 * w).ravel() * np.exp(-0.5 * z * z) * PDF0
    return z, wz


def spectrum(G: torch.Tensor) -> np.ndarray:
    """Eigenvalues of G (or of a batch), ascending, float64 numpy."""
    return kernels.spectrum(G).numpy()


def floor_of(eigs: np.ndarray) -> float | np.ndarray:
    """The float64 floor: FLOOR_REL x lambda_max (per matrix for a batch of spectra)."""
    return FLOOR_REL * np.max(np.abs(np.asarray(eigs)), axis=-1)


def resolved(lam, floor):
    """lam where above the floor, else the floor itself (plotted hollow: 'at or below the floor')."""
    return np.maximum(np.asarray(lam, float), np.asarray(floor, float))


# ----------------------------------------------------------------------------------------------
# Bounds (the course's derivations)
# ----------------------------------------------------------------------------------------------
def lower_bound(activation, n: int, delta: float, *, slack: float = 1e-3) -> float:
    """sum_p c_p^2 max(0, 1 - (n-1)(1 - delta^2/2)^(p+1)) <= lambda_min(G^inf) for n unit points with
    separation delta (Schur: each rho^(p+1) is PSD; Gershgorin: its off-diagonal entries are at most
    q^(p+1), q = 1 - delta^2/2).

    Summed term by term up to the N with (n-1) q^(N+1) <= ``slack`` (the weights rise from 0 near
    p ~ 2 log(n)/delta^2 to 1), with the exact c_p of the kinked activations (:func:`kinked_coeffs`);
    the terms beyond add at least (1 - (n-1) q^(N+1)) x their total mass E[phi'^2] - sum_{p<N} c_p^2.
    Smooth activations: the quadrature's c_p (at most 512 terms), the rest of the mass likewise.
    """
    act = get_activation(activation)
    n = check_int("n", n, min_value=2)
    delta = check_float("delta", delta, min_value=0.0, max_value=math.sqrt(2), min_inclusive=False)
    q = 1.0 - 0.5 * delta * delta
    N = max(1, math.ceil(math.log((n - 1) / slack) / -math.log(q))) if q > 0 else 1
    if act.smoothness == SMOOTH:  # c_p^2 underflows long before p = 512 (the rest of the mass counts below)
        N = min(N, NUM_COEFFS)
        c2 = act.hermite_coeffs(NUM_COEFFS)[:N] ** 2
    else:
        N = min(N, 2**20)
        c2 = kinked_coeffs(act, N) ** 2
    weights = np.clip(1.0 - (n - 1) * np.exp(math.log(q) * np.arange(1, N + 1)), 0.0, None)
    tail = max(act.dphi_second_moment() - float(c2.sum()), 0.0)
    return float(c2 @ weights + tail * max(0.0, 1.0 - (n - 1) * q ** (N + 1)))


def poly_space_dim(degree: int, d_sub: int) -> int:
    """Dimension of the polynomials of degree <= ``degree`` restricted to the sphere S^(d_sub - 1)."""
    if d_sub == 1:
        return 2 if degree >= 1 else 1
    return math.comb(degree + d_sub - 1, d_sub - 1) + (math.comb(degree + d_sub - 2, d_sub - 1) if degree >= 1 else 0)


def upper_bound(activation, n: int, d_sub: int, num_coeffs: int = NUM_COEFFS) -> float:
    """n sum_{p >= P} c_p^2 >= lambda_min(G^inf), P the largest degree whose polynomial space on S^(d'-1)
    has dimension < n (inf where even degree 0 does not fit): the terms p < P span a space of dimension
    < n, so that part of G is singular; Weyl's inequality leaves the tail, whose norm is at most n x its
    diagonal."""
    act = get_activation(activation)
    c2 = act.hermite_coeffs(num_coeffs) ** 2
    P = 0
    while poly_space_dim(P + 1, d_sub) < n:
        P += 1
        if P >= num_coeffs:
            return 0.0
    if poly_space_dim(P, d_sub) >= n:
        return math.inf
    tail = float(np.sum(c2[P:])) + max(act.dphi_second_moment() - float(np.sum(c2)), 0.0)
    return n * tail


def fit_power(x, y) -> tuple[float, float]:
    """Least-squares fit y = C x^k on log-log axes: returns (k, C)."""
    k, logc = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(k), float(math.exp(logc))


def parity_slopes(c2: np.ndarray, lo: int = 16, hi: int | None = None) -> dict[int, float]:
    """Fitted exponent k of c_p^2 ~ p^k over lo <= p < hi, separately for even and odd p (nonzero terms
    above COEFF_FLOOR only): kinked activations' two parities decay at different rates."""
    p = np.arange(len(c2))
    hi = len(c2) if hi is None else hi
    out = {}
    for parity in (0, 1):
        keep = (p % 2 == parity) & (p >= lo) & (p < hi) & (c2 > COEFF_FLOOR)
        if keep.sum() >= 4:
            out[parity] = fit_power(p[keep], c2[keep])[0]
    return out


# ----------------------------------------------------------------------------------------------
# Depth: the dual activation
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def phi_hermite(activation, num: int = NUM_COEFFS) -> tuple[np.ndarray, float]:
    """Hermite coefficients a_p of phi itself and E[phi(z)^2]: a_0 = E[phi(z)], a_{p+1} = c_p / sqrt(p+1)."""
    act = get_activation(activation)
    c = act.hermite_coeffs(num - 1)
    z, wz = _half_line_rule()
    plus, minus = act.phi(torch.from_numpy(z)).numpy(), act.phi(torch.from_numpy(-z)).numpy()
    a = np.empty(num)
    a[0] = float(wz @ (plus + minus))  # E[phi], the integral split at the kink z = 0
    a[1:] = c / np.sqrt(np.arange(1, num))
    return a, float(wz @ (plus**2 + minus**2))


def dual_slope(activation) -> float:
    """phi-hat'(1) = E[phi'(z)^2] / E[phi(z)^2]: the dual activation's slope at 1, the factor by which
    one layer multiplies 1 - rho for close points (sum_p p a_p^2 = E[phi'^2] by the Hermite identity;
    both moments by quadrature here, independently of the composed series)."""
    act = get_activation(activation)
    z, wz = _half_line_rule()
    zt = torch.from_numpy(np.concatenate([z, -z]))
    w = np.concatenate([wz, wz])
    return float(w @ act.dphi(zt).numpy() ** 2) / float(w @ act.phi(zt).numpy() ** 2)


def dual_correlation(R: torch.Tensor, activation, num: int = NUM_COEFFS) -> torch.Tensor:
    """Correlation of the next layer's pre-activations, variance kept at 1:
    K' = sum_p a_p^2 R^p / E[phi^2]  (a_p the Hermite coefficients of phi, unit-variance inputs)."""
    a, m2 = phi_hermite(activation, num)
    a2 = a * a
    nonzero = np.flatnonzero(a2)
    last = int(nonzero[-1]) + 1 if nonzero.size else 1
    K = torch.zeros_like(R)
    for p in range(last - 1, -1, -1):  # Horner
        K = K * R + float(a2[p])
    K = K + torch.eye(R.shape[-1], dtype=R.dtype) * max(m2 - float(a2.sum()), 0.0)
    return K / m2


def deep_grams(X, activation, max_depth: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(G, K)] for depth 1..max_depth: K = correlation of the last hidden layer's inputs (X X^T at depth 1,
    else the dual activation composed depth - 1 times: the NNGP correlation), G = sum_p c_p^2 K^(p+1), the
    G-matrix of training the last hidden layer's weights (depth 1: the two-layer G^inf)."""
    max_depth = check_int("max_depth", max_depth, min_value=1, max_value=64)
    X = _as_unit_rows(X)
    K = (X @ X.T).clamp(-1, 1)
    K.fill_diagonal_(1.0)
    out = [(gram_matrix(X, activation), K)]
    for _ in range(max_depth - 1):
        K = dual_correlation(K, activation).clamp(-1, 1)
        K.fill_diagonal_(1.0)
        out.append((gram_from_correlation(K, activation), K))
    return out


def deep_gram(X, activation, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, K) of :func:`deep_grams` at one depth."""
    return deep_grams(X, activation, check_int("depth", depth, min_value=1, max_value=64))[-1]


def empirical_deep_grams(X, activation, max_depth: int, width: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same two matrices, depth 1..max_depth, from one random finite-width net (float64):
    pre-activations h_1 = X W_1 (W ~ N(0, 1), unit-norm x), h_l = phi(h_{l-1}) W_l / sqrt(width E[phi^2]);
    K from the inputs of layer L, G_ij = K_ij (1/width) sum_r phi'(h_ir) phi'(h_jr) at layer L."""
    act = get_activation(activation)
    X = _as_unit_rows(X)
    gen = make_generator(seed)
    _, m2 = phi_hermite(act.name)
    K = X @ X.T
    h = X @ torch.randn(X.shape[1], width, generator=gen, dtype=f64)
    out = []
    for L in range(1, max_depth + 1):
        if L > 1:
            F = act.phi(h) / math.sqrt(width * m2)
            K = F @ F.T
            h = F @ torch.randn(width, width, generator=gen, dtype=f64)
        D = act.dphi(h)
        out.append((K * (D @ D.T) / width, K))
    return out


def correlation(M: torch.Tensor) -> torch.Tensor:
    """M_ij / sqrt(M_ii M_jj): a kernel with its scale divided out (a finite net's layer norms drift)."""
    d = torch.sqrt(torch.diagonal(M, dim1=-2, dim2=-1).clamp_min(1e-300))
    return M / (d[..., :, None] * d[..., None, :])
