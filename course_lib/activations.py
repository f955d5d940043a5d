"""Activation registry: phi, phi' in closed form, smoothness class, Hermite coefficients of phi'.

The Hermite coefficients are those of phi' in the orthonormal probabilists' Hermite basis
h_p = He_p / sqrt(p!):  c_p = E[phi'(z) h_p(z)], z ~ N(0, 1).  For unit-norm data they give the
infinite-width Gram matrix G = sum_p c_p^2 (X X^T)^(elementwise p+1) (see ``kernels``).

Quadrature (float64): composite Gauss-Legendre on [-L, s] and [s, L], split at the kink s of phi'
(s = 0 for smooth activations); a single rule across a discontinuity converges only slowly. The
Hermite polynomials are evaluated as Hermite *functions* h_p(z) exp(-z^2/4) (bounded by 1.09,
Cramer's inequality), so nothing overflows for large p and |z|.
Results are cached per (activation, number of coefficients).

Example: ``get_activation("relu").hermite_coeffs(4)`` gives c_0..c_3 of phi' = 1[z > 0], which are
1/2, phi(0), 0, -phi(0)/sqrt(6) (closed form: c_p = He_{p-1}(0) phi(0) / sqrt(p!) for p >= 1).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ._validate import check_int

# Smoothness classes, following Panigrahi et al. (2020): the order of the first derivative that jumps.
JUMP_DPHI = "phi' jumps"  # ReLU, leaky ReLU, SELU (phi has a kink)
JUMP_D2PHI = "phi'' jumps"  # ELU (phi' has a kink)
SMOOTH = "smooth"

_SELU_LAMBDA = 1.0507009873554805
_SELU_ALPHA = 1.6732632423543772
_MAX_POLY_DEGREE = 12


@dataclass(frozen=True)
class Activation:
    """One activation function. ``phi`` and ``dphi`` act elementwise on tensors of any dtype."""

    name: str
    phi: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    dphi: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    smoothness: str
    description: str = ""
    # where phi' (or phi'') is not smooth; the quadrature splits there
    kink: float | None = None
    # phi'(z) = sum_k c_k exp(t_k z) 1[side_k z > 0] (side 0: every z), as ((c_k, t_k, side_k), ...): the
    # exact description that gives kinked activations a closed-form Gram matrix (kernels.dphi_kernel).
    # None where phi' is not of that form.
    dphi_pieces: tuple | None = field(default=None, repr=False)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.phi(z)

    @property
    def is_smooth(self) -> bool:
        return self.smoothness == SMOOTH

    def hermite_coeffs(self, num: int = 64) -> np.ndarray:
        """The first ``num`` Hermite coefficients c_0..c_{num-1} of phi' (float64, cached)."""
        num = check_int("num", num, min_value=1, max_value=2000)
        return _hermite_coeffs(self, num).copy()

    def dphi_second_moment(self) -> float:
        """E[phi'(z)^2] for z ~ N(0, 1) = sum over all p of c_p^2 (the diagonal of G for unit data)."""
        if self.dphi_pieces is not None:
            return _pieces_second_moment(self.dphi_pieces)
        return _second_moment(self)

    def dphi_parity_moments(self) -> tuple[float, float]:
        """(E[phi'_e(z)^2], E[phi'_o(z)^2]) for the even and odd parts phi'_e(z) = (phi'(z) + phi'(-z)) / 2,
        phi'_o(z) = (phi'(z) - phi'(-z)) / 2: the total mass of the even and of the odd Hermite terms (their sum
        is E[phi'^2]). The series' tail is put back per parity, so that it is exact at rho = +1 and -1."""
        return _parity_moments(self)

    def kink_jumps(self) -> tuple[float, float]:
        """(J1, J2): the jumps phi'(0+) - phi'(0-) and phi''(0+) - phi''(0-) at the kink z = 0, exact from
        :attr:`dphi_pieces` (0.0, 0.0 for smooth activations). ReLU (1, 0), leaky ReLU (1 - 0.1, 0),
        ELU (0, -1): ELU's phi' is continuous, its phi'' jumps; SELU has both."""
        if self.dphi_pieces is None:
            if self.is_smooth:
                return 0.0, 0.0
            raise ValueError(f"activation {self.name!r}: its kink is known only where dphi_pieces describes phi'")
        j1 = sum(c * side for c, t, side in self.dphi_pieces)
        j2 = sum(c * t * side for c, t, side in self.dphi_pieces)
        return float(j1), float(j2)


def _relu(z):
    return torch.clamp(z, min=0)


def _drelu(z):
    return (z > 0).to(z.dtype)


def _leaky(alpha):
    return (lambda z: torch.where(z > 0, z, alpha * z), lambda z: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, alpha)))


def _elu(z):
    return torch.where(z > 0, z, torch.expm1(torch.clamp(z, max=0)))


def _delu(z):
    return torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0)))


def _selu(z):
    return _SELU_LAMBDA * torch.where(z > 0, z, _SELU_ALPHA * torch.expm1(torch.clamp(z, max=0)))


def _dselu(z):
    return _SELU_LAMBDA * torch.where(z > 0, torch.ones_like(z), _SELU_ALPHA * torch.exp(torch.clamp(z, max=0)))


def _std_normal_cdf(z):
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _std_normal_pdf(z):
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _gelu(z):
    return z * _std_normal_cdf(z)


def _dgelu(z):
    return _std_normal_cdf(z) + z * _std_normal_pdf(z)


def _softplus(z):
    return torch.nn.functional.softplus(z)


def _dtanh(z):
    t = torch.tanh(z)
    return 1 - t * t


def _swish(z):
    return z * torch.sigmoid(z)


def _dswish(z):
    s = torch.sigmoid(z)
    return s + z * s * (1 - s)


def _derf(z):
    return (2 / math.sqrt(math.pi)) * torch.exp(-z * z)


def _dsigmoid(z):
    s = torch.sigmoid(z)
    return s * (1 - s)


def _double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def polynomial(degree: int) -> Activation:
    """phi(z) = z^k / (k sqrt((2k-3)!!)), scaled so that E[phi'(z)^2] = 1 for z ~ N(0, 1)."""
    k = check_int("degree", degree, min_value=1, max_value=_MAX_POLY_DEGREE)
    scale = 1.0 / (k * math.sqrt(_double_factorial(2 * k - 3)))
    return Activation(
        name=f"poly{k}",
        phi=lambda z: scale * z**k,
        dphi=(lambda z: scale * k * z ** (k - 1)) if k > 1 else (lambda z: torch.full_like(z, scale)),
        smoothness=SMOOTH,
        description=f"polynomial z^{k}, normalized so that E[phi'^2] = 1",
    )


_LEAKY_ALPHA = 0.1
_REGISTRY: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("relu", _relu, _drelu, JUMP_DPHI, "max(z, 0)", kink=0.0, dphi_pieces=((1.0, 0.0, 1),)),
        Activation("leaky_relu", *_leaky(_LEAKY_ALPHA), JUMP_DPHI, f"max(z, {_LEAKY_ALPHA} z)", kink=0.0,
                   dphi_pieces=((1.0, 0.0, 1), (_LEAKY_ALPHA, 0.0, -1))),
        Activation("elu", _elu, _delu, JUMP_D2PHI, "z for z > 0, exp(z) - 1 otherwise", kink=0.0,
                   dphi_pieces=((1.0, 0.0, 1), (1.0, 1.0, -1))),
        Activation("selu", _selu, _dselu, JUMP_DPHI, "lambda * elu_alpha(z), Klambauer et al. constants", kink=0.0,
                   dphi_pieces=((_SELU_LAMBDA, 0.0, 1), (_SELU_LAMBDA * _SELU_ALPHA, 1.0, -1))),
        Activation("gelu", _gelu, _dgelu, SMOOTH, "z Phi(z)"),
        Activation("softplus", _softplus, torch.sigmoid, SMOOTH, "log(1 + exp(z))"),
        Activation("tanh", torch.tanh, _dtanh, SMOOTH, "tanh(z)"),
        Activation("swish", _swish, _dswish, SMOOTH, "z sigmoid(z)"),
        Activation("erf", torch.erf, _derf, SMOOTH, "erf(z)"),
        Activation("sigmoid", torch.sigmoid, _dsigmoid, SMOOTH, "1 / (1 + exp(-z))"),
    ]
}


def available_activations() -> list[str]:
    """Names accepted by :func:`get_activation` (``polyK`` for any degree K from 1 to 12)."""
    return list(_REGISTRY) + [f"poly{k}" for k in (2, 3, 4)] + ["polyK (K = 1..12)"]


def get_activation(name: str | Activation) -> Activation:
    """Look an activation up by name; an :class:`Activation` passes through unchanged."""
    if isinstance(name, Activation):
        return name
    if isinstance(name, str):
        key = name.strip().lower()
        if key in _REGISTRY:
            return _REGISTRY[key]
        match = re.fullmatch(r"poly(\d+)", key)
        if match:
            return _poly_cached(int(match.group(1)))
    raise ValueError(f"activation must be one of {', '.join(available_activations())}; got {name!r}")


@functools.lru_cache(maxsize=None)
def _poly_cached(k: int) -> Activation:
    try:
        return polynomial(k)
    except ValueError:
        raise ValueError(f"activation 'poly{k}': the degree K must be between 1 and {_MAX_POLY_DEGREE}") from None


# ----------------------------------------------------------------------------------------------
# Quadrature
# ----------------------------------------------------------------------------------------------
def hermite_functions(z: np.ndarray, num: int) -> np.ndarray:
    """Orthonormal probabilists' Hermite polynomials h_0..h_{num-1} at ``z``, shape (num, len(z)).

    Three-term recurrence h_{p+1} = (z h_p - sqrt(p) h_{p-1}) / sqrt(p + 1), stable in float64.
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty((num,) + z.shape)
    out[0] = 1.0
    if num > 1:
        out[1] = z
    for p in range(1, num - 1):
        out[p + 1] = (z * out[p] - math.sqrt(p) * out[p - 1]) / math.sqrt(p + 1)
    return out


# Why not plain Gauss-Hermite: numpy's hermegauss returns zero/NaN weights beyond ~400 nodes
# (~175 coefficients), unscaled h_p(z) overflows for p >~ 650, and one big leggauss(n) costs O(n^3).
# So: panels of a fixed-order Gauss-Legendre rule, split at the kink, and the scaled Hermite
# functions h_p(z) exp(-z^2/4), accumulated one degree at a time.
_PANEL_ORDER = 50


def _quadrature_rule(act: Activation, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and plain (Lebesgue) weights of a composite Gauss-Legendre rule on [s - L, s + L],
    split at s = the kink of phi' (0 for smooth activations), with panels on each side.

    L = 12 + 2 sqrt(num) covers the oscillatory region |z| <= 2 sqrt(p) of h_p; 400 + 4 num nodes per
    side give at least ~10 nodes per oscillation of h_{num-1}.
    """
    split = 0.0 if act.kink is None else float(act.kink)
    length = 12.0 + 2.0 * math.sqrt(num)
    panels = math.ceil((400 + 4 * num) / _PANEL_ORDER)
    x, w = np.polynomial.legendre.leggauss(_PANEL_ORDER)
    width = length / panels
    left = width * np.arange(panels)[:, None]
    half_nodes = (left + 0.5 * width * (x + 1)).ravel()  # (0, L), ascending
    half_weights = np.tile(0.5 * width * w, panels)
    nodes = np.concatenate([split - half_nodes[::-1], split + half_nodes])
    weights = np.concatenate([half_weights[::-1], half_weights])
    return nodes, weights


def _dphi_numpy(act: Activation, z: np.ndarray) -> np.ndarray:
    out = act.dphi(torch.from_numpy(z)).numpy()
    if act.kink is not None:
        # the value exactly at the kink is convention; nodes never sit on it, but be explicit
        out = np.where(z == act.kink, np.nan, out)
    return out


@functools.lru_cache(maxsize=128)
def _hermite_coeffs(act: Activation, num: int) -> np.ndarray:
    nodes, weights = _quadrature_rule(act, num)
    quarter = np.exp(-0.25 * nodes**2)
    # Nodes with e^{-z^2/4} < 1e-75 (|z| > 26.3) add less than 1e-75 x |phi'| x weight to any c_p (the scaled
    # Hermite functions are bounded by 1.09): drop them. Keeping them made the products below underflow into
    # denormal numbers, which made 2000 coefficients take 10-30 s instead of ~0.3 s.
    keep = quarter > 1e-75
    nodes, weights, quarter = nodes[keep], weights[keep], quarter[keep]
    # c_p = sum_k [h_p(z_k) e^{-z_k^2/4}] * [w_k e^{-z_k^2/4} phi'(z_k) / sqrt(2 pi)]
    wv = weights * quarter * _dphi_numpy(act, nodes) / math.sqrt(2 * math.pi)
    coeffs = np.empty(num)
    prev, cur = np.zeros_like(nodes), quarter  # h_{-1}, h_0 (times e^{-z^2/4})
    for p in range(num):
        coeffs[p] = cur @ wv
        prev, cur = cur, (nodes * cur - math.sqrt(p) * prev) / math.sqrt(p + 1)
    # exact zeros where symmetry or a polynomial's degree makes them zero, instead of 1e-17 noise
    coeffs[np.abs(coeffs) < 1e-14] = 0.0
    return coeffs


@functools.lru_cache(maxsize=128)
def _parity_moments(act: Activation) -> tuple[float, float]:
    if act.kink not in (None, 0.0):
        raise ValueError(f"activation {act.name!r}: parity moments need the kink at 0; got {act.kink}")
    nodes, weights = _quadrature_rule(act, 64)  # symmetric about 0, split there
    plus, minus = _dphi_numpy(act, nodes), _dphi_numpy(act, -nodes)
    density = weights * np.exp(-0.5 * nodes**2) / math.sqrt(2 * math.pi)
    return float(density @ ((plus + minus) / 2) ** 2), float(density @ ((plus - minus) / 2) ** 2)


@functools.lru_cache(maxsize=128)
def _second_moment(act: Activation) -> float:
    nodes, weights = _quadrature_rule(act, 64)
    values = _dphi_numpy(act, nodes)
    density = np.exp(-0.5 * nodes**2) / math.sqrt(2 * math.pi)
    return float(np.sum(weights * density * values**2))


def _pieces_second_moment(pieces) -> float:
    """E[phi'(z)^2] in closed form for phi' = sum_k c_k e^(t_k z) 1[side_k z > 0]: a product of two pieces is
    c c' e^((t + t') z) on the intersection of their sides, and E[e^(s z) 1[side z > 0]] = e^(s^2/2) Phi(side s)."""
    total = 0.0
    for c1, t1, s1 in pieces:
        for c2, t2, s2 in pieces:
            if s1 and s2 and s1 != s2:
                continue  # disjoint half-lines
            side, rate = (s1 or s2), t1 + t2
            prob = 1.0 if side == 0 else 0.5 * math.erfc(-side * rate / math.sqrt(2))
            total += c1 * c2 * math.exp(0.5 * rate * rate) * prob
    return float(total)
