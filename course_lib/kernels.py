"""Gram matrices and their spectra, always in float64.

* :func:`angles` : well-conditioned angles between rows (use it wherever an angle is needed).
* :func:`relu_h_inf` : H^inf_ij = <x_i, x_j> (pi - theta_ij) / (2 pi), the first-layer Gram matrix of
  a wide two-layer ReLU net (Du et al. 2019).
* :func:`arccos1` : k(a, b) = ||a|| ||b|| (sin theta + (pi - theta) cos theta) / (2 pi)
  = E_w[relu(w.a) relu(w.b)], w ~ N(0, I) (the order-1 arc-cosine kernel, halved).
* :func:`gram_inf` / :func:`gram_hermite` : G^inf = sum_p c_p^2 (X X^T)^(elementwise p+1) for any registered
  activation, exact: kinked activations in closed form (:func:`dphi_kernel`: the kink's jumps give
  arc-cosine and exponentially tilted bivariate-normal terms), smooth ones by the Hermite series with a
  rigorous truncation bound (:func:`series_terms`), every entry within GRAM_RTOL x E[phi'^2] or a ValueError.
* :func:`gram_from_correlation` : the same from a correlation matrix (deep nets' layers).
* :func:`empirical_gram` : H(t) of a finite two-layer net; :func:`empirical_ntk` for any model.
* :func:`spectrum`, :func:`psd_spectrum`, :func:`lambda_min`, :func:`eigh`.

Where the data live on a device without float64 (Apple's MPS), the float64 work happens on the CPU
(:func:`course_lib.runtime.float64_device`); results are on that device.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import PSD_RTOL, check_int, check_tensor
from .activations import Activation, get_activation
from .runtime import check_memory, float64_device, to_float64

f64 = torch.float64


def angles(A: torch.Tensor, B: torch.Tensor | None = None) -> torch.Tensor:
    """Angles theta_ij between the rows a_i of A (..., p, d) and b_j of B (..., q, d), shape (..., p, q).

    Well conditioned everywhere: arccos(cos) has an infinite slope at cos = +-1 (a cosine rounded to
    1 - 1e-16 becomes an angle of 1.5e-8), so pairs with |cos| > 0.9 use theta = 2 atan2(||a^ - b^||,
    ||a^ + b^||) on the unit vectors instead, computed from the differences themselves: accurate to rounding
    (~1e-16 absolute) near 0 and pi. Elsewhere arccos's slope is at most 2.3. A zero row has angle pi/2 to
    everything (its cosine is taken as 0). Use this wherever the course needs an angle. Differentiable.
    """
    return angles_cos_sin(A, B)[0]


def angles_cos_sin(A: torch.Tensor, B: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(theta, cos theta, sin theta) of :func:`angles`, each accurate to rounding: cos from the inner products
    of the unit rows, sin = sqrt(1 - cos^2) where |cos| <= 0.9 and ||a^ - b^|| ||a^ + b^|| / 2 on the
    near-(anti)parallel pairs (where sqrt(1 - cos^2) would lose half the digits). One pass, no cos/sin of
    the angles (transcendentals dominate the cost of the small kernels theory.py evaluates at every step)."""
    B = A if B is None else B
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(f"A and B must have the same number of columns; got {A.shape[-1]} and {B.shape[-1]}")
    Ah = A / A.norm(dim=-1, keepdim=True).clamp_min(1e-300)  # a zero row stays zero: cos 0, angle pi/2
    Bh = Ah if B is A else B / B.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    cos = (Ah @ Bh.transpose(-1, -2)).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    sin = torch.sqrt((1 - cos * cos).clamp_min(0.0))
    idx = (cos.abs() > 0.9).nonzero(as_tuple=True)
    if idx[0].numel():
        # gather the row pairs of the near-(anti)parallel entries and recompute them from their differences
        Ab = Ah.expand(*cos.shape[:-2], *Ah.shape[-2:])
        Bb = Bh.expand(*cos.shape[:-2], *Bh.shape[-2:])
        a = Ab[idx[:-1]]
        b = Bb[(*idx[:-2], idx[-1])]
        minus, plus = (a - b).norm(dim=-1), (a + b).norm(dim=-1)
        theta = theta.index_put(idx, 2 * torch.atan2(minus, plus))
        sin = sin.index_put(idx, 0.5 * minus * plus)
    return theta, cos, sin


def _cos_theta(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inner products, norm products and (well-conditioned) angles between the rows of A and of B (float64)."""
    inner = A @ B.T
    norms = A.norm(dim=1, keepdim=True) * B.norm(dim=1, keepdim=True).T
    return inner, norms, angles(A, B)


def relu_h_inf(X) -> torch.Tensor:
    """H^inf for ReLU: E_w[<x_i, x_j> 1[w.x_i >= 0] 1[w.x_j >= 0]], shape (n, n), float64."""
    X = check_tensor("X", X, ndim=2, dtype=f64)
    inner, _, theta = _cos_theta(X, X)  # exact 0 on the diagonal: angles() is well conditioned there
    return inner * (math.pi - theta) / (2 * math.pi)


def arccos1(A, B=None) -> torch.Tensor:
    """k(a_i, b_j) = E_w[relu(w.a_i) relu(w.b_j)] for the rows of A and B (B defaults to A), float64."""
    A = check_tensor("A", A, ndim=2, dtype=f64)
    B = A if B is None else check_tensor("B", B, ndim=2, dtype=f64)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A and B must have the same number of columns; got {A.shape[1]} and {B.shape[1]}")
    _, norms, theta = _cos_theta(A, B)
    return norms * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi)


def _check_unit_rows(X: torch.Tensor, name: str = "X") -> None:
    norms = X.norm(dim=1)
    worst = float((norms - 1).abs().max()) if norms.numel() else 0.0
    if worst > 1e-5:
        raise ValueError(f"{name} must have unit-norm rows for the Hermite series (max | ||x_i|| - 1 | = {worst:.2e}); "
                         "normalize the rows first")


def auto_num_coeffs(X: torch.Tensor, tol: float = 1e-3, lo: int = 64, hi: int = 2000) -> int:
    """Enough terms that the largest off-diagonal |rho|^P is below ``tol`` (clipped to [lo, hi]).

    A heuristic kept for callers that sum their own series; :func:`gram_hermite` now chooses its number of
    terms from a rigorous bound (:func:`series_terms`)."""
    R = X @ X.T
    R.fill_diagonal_(0)
    rho = float(R.abs().max()) if R.numel() > 1 else 0.0
    if rho <= 0:
        return lo
    if rho >= 1:
        return hi
    return int(min(hi, max(lo, math.ceil(math.log(tol) / math.log(rho)))))


# ----------------------------------------------------------------------------------------------
# E[phi'(u) phi'(v)]: closed form for kinked activations, Hermite series for smooth ones
# ----------------------------------------------------------------------------------------------
#: Every entry of :func:`gram_inf` / :func:`gram_hermite` (auto terms) / :func:`dphi_kernel` is within
#: GRAM_RTOL x E[phi'(z)^2] of the exact value, or the function refuses (ValueError).
GRAM_RTOL = 1e-12
_SERIES_TERMS = (64, 128, 256, 512, 1024, 2000)


def _tilted(a: float, b: float, sig: int, tau: int, rho: np.ndarray, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """E[exp(a u + b v) 1[sig u > 0] 1[tau v > 0]] for standard normals u, v with correlation rho = cos theta
    (s = sin theta); sig, tau in {+1, -1, 0}, 0 meaning no condition.

    Tilting by exp(a u + b v) multiplies by exp((a^2 + 2 rho a b + b^2) / 2) and shifts the means to
    (a + rho b, rho a + b), so the rest is a bivariate normal probability Phi2(h, k; r), h = sig (a + rho b),
    k = tau (rho a + b), r = sig tau rho, written with Owen's T function:
    Phi2 = Phi(h)/2 + Phi(k)/2 - T(h, (k - r h)/(h s)) - T(k, (h - r k)/(k s)) - beta. Here k - r h = tau b s^2
    and h - r k = sig a s^2 exactly, so both arguments (tau b s / h, sig a s / k) are free of cancellation
    for close points (s -> 0), and h = k = 0 is the arc-cosine value 1/4 + sig tau (pi/2 - theta) / (2 pi).
    """
    from scipy.special import ndtr, owens_t

    # a + rho b and rho a + b without cancellation near rho = +-1: 1 - rho = 2 sin^2(theta/2), 1 + rho = 2 cos^2(theta/2)
    near_one = theta <= math.pi / 2
    omc, opc = 2 * np.sin(0.5 * theta) ** 2, 2 * np.cos(0.5 * theta) ** 2
    m1 = np.where(near_one, (a + b) - b * omc, (a - b) + b * opc)
    m2 = np.where(near_one, (a + b) - a * omc, (b - a) + a * opc)
    scale = np.exp(0.5 * np.where(near_one, (a + b) ** 2 - 2 * a * b * omc, (a - b) ** 2 + 2 * a * b * opc))
    if sig == 0 and tau == 0:
        return scale
    if sig == 0:
        return scale * ndtr(tau * m2)
    if tau == 0:
        return scale * ndtr(sig * m1)
    h, k = sig * m1, tau * m2
    if a == 0 and b == 0:  # h = k = 0: the arc-cosine value Phi2(0, 0; r) = 1/4 + arcsin(r) / (2 pi)
        return np.broadcast_to(0.25 + sig * tau * (math.pi / 2 - theta) / (2 * math.pi), theta.shape).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ah = np.where(h != 0, tau * b * s / h, np.sign(tau * b) * np.inf)  # h -> 0+: T(0, +-inf) = +-1/4
        ak = np.where(k != 0, sig * a * s / k, np.sign(sig * a) * np.inf)
    beta = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    prob = 0.5 * ndtr(h) + 0.5 * ndtr(k) - beta
    if b != 0:  # T(h, 0) = 0
        prob -= owens_t(h, np.nan_to_num(ah, nan=0.0))
    if a != 0:
        prob -= owens_t(k, np.nan_to_num(ak, nan=0.0))
    both_zero = (h == 0) & (k == 0)
    if np.any(both_zero):
        prob = np.where(both_zero, 0.25 + sig * tau * (math.pi / 2 - theta) / (2 * math.pi), prob)
    return scale * np.clip(prob, 0.0, 1.0)


def _pieces_kernel(pieces, theta: np.ndarray) -> np.ndarray:
    """E[phi'(u) phi'(v)] for phi'(z) = sum_k c_k exp(t_k z) 1[side_k z > 0], correlation cos(theta): exact.

    Every product of two pieces is one :func:`_tilted` expectation. In the course's terms: phi' is a smooth
    part (the pieces valid for every z, and each left piece c e^(t z) 1[z < 0] = c e^(t z) - c e^(t z) 1[z > 0])
    plus a kink part 1[z > 0] h(z); a jump J1 of phi' gives the arc-cosine term J1^2 (pi - theta) / (2 pi), a
    jump of phi'' an exponentially tilted one, and the smooth remainder is a sum of exponentials whose
    kernel is closed form too, so no series is needed at all.
    """
    theta = np.asarray(theta, dtype=np.float64)
    rho, s = np.cos(theta), np.sin(theta)
    total = np.zeros_like(theta)
    for c1, t1, s1 in pieces:
        for c2, t2, s2 in pieces:
            total += (c1 * c2) * _tilted(float(t1), float(t2), int(s1), int(s2), rho, s, theta)
    return total


def series_terms(activation: str | Activation, rho_max: float, *, rtol: float = GRAM_RTOL) -> int:
    """The fewest Hermite terms P (from 64, 128, ..., 2000) with tail(P) |rho_max|^(P+1) <= rtol E[phi'^2].

    tail(P) = E[phi'^2] - sum_{p<P} c_p^2 is the mass the truncated series misses; since every c_p^2 >= 0,
    an entry with |rho| <= rho_max misses at most tail(P) |rho|^(P+1): a rigorous bound. Raises ValueError
    (naming the activation and rho_max) when even 2000 terms do not reach it: a kinked phi' has
    c_p^2 ~ p^-3/2, far too slow for close points, and needs its closed form (:attr:`Activation.dphi_pieces`).
    """
    act = get_activation(activation)
    rho_max = min(abs(float(rho_max)), 1.0)
    m2 = act.dphi_second_moment()
    tail = m2
    for P in _SERIES_TERMS:
        tail = abs(m2 - float(np.sum(act.hermite_coeffs(P) ** 2)))
        if tail * rho_max ** (P + 1) <= rtol * m2:
            return P
    raise ValueError(
        f"activation {act.name!r}: the Hermite series cannot resolve these points: with {_SERIES_TERMS[-1]} terms "
        f"it still misses up to {tail * rho_max ** (_SERIES_TERMS[-1] + 1):.2g} per entry at the closest pair "
        f"(|cos| = {rho_max:.12g}), more than {rtol:g} x E[phi'^2] = {rtol * m2:.2g}. "
        + ("Its phi' has a kink: give the Activation dphi_pieces (phi' as a sum of c exp(t z) 1[side z > 0]) for "
           "the closed form, " if not act.is_smooth else "")
        + "or pass num_coeffs=... to gram_hermite to accept a truncated series.")


def _series(R: torch.Tensor, act: Activation, P: int, tail: str, power: int) -> torch.Tensor:
    """sum_{p<P} c_p^2 R^(p + power) (elementwise), plus the truncated tail's mass as ``tail`` says:
    "parity": M_even R^(P_e + power) + M_odd R^(P_o + power), P_e / P_o the first even / odd index >= P, with
    M_even, M_odd the missing mass of each parity (exact where |R| = 1: the diagonal, repeated and antipodal
    points; elsewhere off by at most the missing mass times |R|^(P + power)); "diagonal": the whole missing mass
    on the diagonal; "drop": nothing."""
    c2 = act.hermite_coeffs(P) ** 2
    out = torch.zeros_like(R)
    for cp2 in c2[::-1]:  # Horner: sum_p c_p^2 R^p
        out = out * R + float(cp2)
    out = out * R ** power if power else out
    if tail == "parity":
        even, odd = act.dphi_parity_moments()
        for parity, total in ((0, even), (1, odd)):
            missing = total - float(c2[parity::2].sum())
            first = P + ((parity - P) % 2)
            if missing > 0:
                out = out + missing * R ** (first + power)
    elif tail == "diagonal":
        missing = max(act.dphi_second_moment() - float(c2.sum()), 0.0)
        out.diagonal().add_(missing)
    return out


def dphi_kernel(theta, activation: str | Activation, num_coeffs: int | None = None) -> torch.Tensor:
    """kappa(theta) = E[phi'(u) phi'(v)] for standard normals u, v with correlation cos(theta), elementwise,
    float64 (so that G^inf_ij = <x_i, x_j> kappa(theta_ij) for unit-norm rows).

    Pass well-conditioned angles (:func:`angles`), not arccos of a rounded cosine. Kinked activations with
    :attr:`~course_lib.activations.Activation.dphi_pieces` (relu, leaky_relu, elu, selu): exact closed form
    (:func:`_pieces_kernel`). Others: sum_p c_p^2 cos(theta)^p with ``num_coeffs`` terms, or (None) with enough
    terms that every entry is within GRAM_RTOL x E[phi'^2] (:func:`series_terms`; ValueError if impossible), the
    tail's mass put back per parity (exact at theta = 0 and pi).
    """
    act = get_activation(activation)
    theta = check_tensor("theta", theta, dtype=f64)
    dev = theta.device
    if act.dphi_pieces is not None:
        return torch.from_numpy(_pieces_kernel(act.dphi_pieces, theta.cpu().numpy())).to(dev)
    rho = torch.cos(theta)
    P = (series_terms(act, float(rho.abs().max()) if rho.numel() else 0.0) if num_coeffs is None
         else check_int("num_coeffs", num_coeffs, min_value=1, max_value=2000))
    return _series(rho, act, P, "parity", 0)


def gram_from_correlation(R, activation: str | Activation, num_coeffs: int | None = None, *, theta=None) -> torch.Tensor:
    """R_ij kappa(theta_ij) for a correlation matrix R (unit diagonal), e.g. the next layer's correlations of a
    deep net: the G-matrix sum_p c_p^2 R^(p+1). ``theta`` (default arccos R, ill-conditioned where R_ij is
    within ~1e-8 of +-1) should come from :func:`angles` when the points are known. float64."""
    R = check_tensor("R", R, ndim=2, dtype=f64)
    if R.numel() and float(R.abs().max()) > 1 + 1e-12:
        raise ValueError(f"R must be a correlation matrix (entries in [-1, 1]); got max |R_ij| = {float(R.abs().max()):.6g}")
    R = R.clamp(-1.0, 1.0)
    theta = torch.arccos(R) if theta is None else check_tensor("theta", theta, ndim=2, dtype=f64).to(R.device)
    if theta.shape != R.shape:
        raise ValueError(f"theta must have the shape of R {tuple(R.shape)}; got {tuple(theta.shape)}")
    return R * dphi_kernel(theta, activation, num_coeffs)


def _symmetric(M: torch.Tensor) -> torch.Tensor:
    """(M + M^T) / 2: exactly symmetric (floating-point addition commutes)."""
    return 0.5 * (M + M.T)


def _pieces_gram_kernel(pieces, theta: torch.Tensor) -> torch.Tensor:
    """:func:`_pieces_kernel` of a symmetric angle matrix, evaluated once per pair (upper triangle)."""
    th = theta.cpu().numpy()
    n = th.shape[0]
    iu = np.triu_indices(n)
    out = np.empty((n, n))
    vals = _pieces_kernel(pieces, th[iu])
    out[iu] = vals
    out[iu[1], iu[0]] = vals
    return torch.from_numpy(out).to(theta.device)


def gram_hermite(X, activation: str | Activation, num_coeffs: int | None = None, *, tail: str = "parity") -> torch.Tensor:
    """G^inf_ij = <x_i, x_j> E[phi'(w.x_i) phi'(w.x_j)] = sum_p c_p^2 rho_ij^(p+1), unit-norm rows, float64.

    * Kinked activations with a closed form (relu, leaky_relu, elu, selu: ``Activation.dphi_pieces``): the
      series' exact value, in closed form (:func:`dphi_kernel`; ``num_coeffs`` is not needed). A truncated
      series would need ~1/theta^2 terms for points at angle theta and underestimate lambda_min badly.
    * Other activations, ``num_coeffs=None``: as many terms as :func:`series_terms` needs for every entry to
      be within GRAM_RTOL x E[phi'^2] (a rigorous bound), or ValueError where 2000 terms do not suffice.
    * ``num_coeffs=P``: exactly P terms (a truncation you asked for).

    The truncated tail's mass: ``tail="parity"`` (default) puts back the missing mass of the even and of the
    odd terms as M_even rho^(P_e+1) + M_odd rho^(P_o+1): exact on the diagonal and for repeated or antipodal
    points (a repeated point gives an exactly singular G), off by at most the missing mass times |rho|^(P+1)
    elsewhere. ``"diagonal"``: the whole missing mass on the diagonal (exact diagonal; a repeated point then
    looks distinct by that mass). ``"drop"``: the plain truncated series sum_{p<P} c_p^2 rho^(p+1), for every
    activation (kinked ones included), which underestimates lambda_min: for teaching the truncation itself.
    """
    X = check_tensor("X", X, ndim=2, dtype=f64)
    _check_unit_rows(X)
    act = get_activation(activation)
    if tail not in ("parity", "diagonal", "drop"):
        raise ValueError(f"tail must be 'parity', 'diagonal' or 'drop'; got {tail!r}")
    if num_coeffs is not None:
        num_coeffs = check_int("num_coeffs", num_coeffs, min_value=1, max_value=2000)
    R = _symmetric(X @ X.T)
    if tail != "drop" and act.dphi_pieces is not None:
        return R * _pieces_gram_kernel(act.dphi_pieces, _symmetric(angles(X)))
    if num_coeffs is None:
        off = R - torch.diag_embed(torch.diagonal(R))
        P = series_terms(act, float(off.abs().max()) if off.numel() else 0.0)
    else:
        P = num_coeffs
    return _series(R, act, P, tail, 1)


def gram_inf(X, activation: str | Activation = "relu", num_coeffs: int | None = None) -> torch.Tensor:
    """G^inf, exact: :func:`relu_h_inf` for ReLU (any row norms), the closed form of :func:`gram_hermite` for
    the other kinked activations, its Hermite series (within GRAM_RTOL, or a ValueError) for smooth ones."""
    act = get_activation(activation)
    if act.name == "relu":
        return relu_h_inf(X)
    return gram_hermite(X, act, num_coeffs)


def empirical_gram(model, params, X, *, include_output: bool | None = None) -> torch.Tensor:
    """The finite-width Gram matrix of each network of a two-layer ensemble, shape (E, n, n), float64.

    H_ij = <x_i, x_j> (1/m) sum_r a_r^2 phi'(w_r.x_i) phi'(w_r.x_j)  (first layer), plus, when the
    output layer is trained, (1/m) sum_r phi(w_r.x_i) phi(w_r.x_j). This is J J^T of the network's
    Jacobian, the matrix that drives GD on the square loss. For ReLU with a_r = +-1 the first part is
    <x_i, x_j> (1/m) sum_r 1[w_r.x_i >= 0] 1[w_r.x_j >= 0].

    Computed in float64 on :func:`course_lib.runtime.float64_device` of the parameters' device (the CPU
    for MPS); the memory it needs (E x n x width float64 numbers, three times) is checked first.
    """
    from .models import TwoLayer, check_params

    if not isinstance(model, TwoLayer):
        raise TypeError(f"model must be a TwoLayer (use empirical_ntk for other models); got {type(model).__name__}")
    include_output = model.train_output if include_output is None else include_output
    E = check_params(params, model.names)
    X = check_tensor("X", X, ndim=2, dtype=f64)
    n, m = X.shape[0], model.width
    dev = float64_device(params["W"].device)
    check_memory(8 * E * (3 * n * m + 2 * n * n + m * (X.shape[1] + 1)),
                 f"empirical_gram(width={m}, ensemble={E}, n={n})", device=dev,
                 fix="use a smaller width, ensemble or n (or one network at a time: models.select)")
    p64 = {k: to_float64(v.detach()) for k, v in params.items()}
    X = X.to(p64["W"].device)
    pre = model.preactivations(p64, X)  # (E, n, m)
    act = model.activation
    D = act.dphi(pre) * p64["a"].unsqueeze(1).abs()  # a_r^2 split over the two factors
    H = (D @ D.transpose(1, 2)) / m * (X @ X.T)
    if include_output:
        F = act.phi(pre)
        H = H + F @ F.transpose(1, 2) / m
    return H


def empirical_ntk(model, params, X, *, member: int = 0) -> torch.Tensor:
    """J J^T for network ``member`` of any model (autograd Jacobian of the outputs w.r.t. the
    trainable parameters), float64 on the float64 device of the parameters, shape (n, n) (or (n k, n k) for
    k outputs)."""
    from .models import select

    member = check_int("member", member, min_value=0)
    sub = select(params, member)
    p = {k: to_float64(v.detach()) for k, v in sub.items()}
    X = check_tensor("X", X, ndim=2, dtype=f64).to(next(iter(p.values())).device)
    names = list(model.trainable)
    count = sum(int(p[k].numel()) for k in names)
    outputs = X.shape[0] * max(1, getattr(model, "out_dim", 1))
    check_memory(8 * (2 * outputs * count + outputs * outputs), f"empirical_ntk(n={X.shape[0]}, {count} parameters)",
                 device=X.device, fix="use fewer samples n or a narrower model")

    def f(*trainables):
        q = dict(p)
        q.update(zip(names, trainables))
        return model.apply(q, X)[0].reshape(-1)

    jac = torch.autograd.functional.jacobian(f, tuple(p[k] for k in names))
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    return J @ J.T


def _check_square(name: str, G, ndim=(2,)) -> torch.Tensor:
    G = check_tensor(name, G, ndim=ndim, dtype=f64)
    if G.shape[-1] != G.shape[-2]:
        raise ValueError(f"{name} must be square; got shape {tuple(G.shape)}")
    if G.shape[-1] == 0:
        raise ValueError(f"{name} must be at least 1 x 1; got shape {tuple(G.shape)}")
    return G


def spectrum(G) -> torch.Tensor:
    """Eigenvalues of the symmetric matrix (or batch of matrices) G, ascending, in float64.

    Of a positive semi-definite G, the smallest ones may come out slightly negative (a singular Gram matrix
    gives -1e-16, not 0): :func:`psd_spectrum` takes such rounding as 0."""
    G = _check_square("G", G, ndim=(2, 3))
    return torch.linalg.eigvalsh(0.5 * (G + G.transpose(-1, -2)))


def psd_spectrum(G) -> torch.Tensor:
    """:func:`spectrum` of a positive semi-definite G, with eigenvalues in [-PSD_RTOL lambda_max, 0) (float64
    rounding; ``course_lib._validate.PSD_RTOL`` = 1e-12) set to 0. An eigenvalue below that raises ValueError:
    G is not positive semi-definite."""
    ev = spectrum(G)
    scale = ev.abs().amax(dim=-1, keepdim=True)
    tol = PSD_RTOL * scale
    if bool((ev < -tol).any()):
        worst = float((ev / scale.clamp_min(1e-300)).min())
        raise ValueError(f"G must be positive semi-definite; it has an eigenvalue {worst:.3g} x lambda_max, below the "
                         f"rounding level -{PSD_RTOL:g} x lambda_max")
    return torch.where(ev < 0, torch.zeros_like(ev), ev)


def lambda_min(G, *, psd: bool = False) -> float | torch.Tensor:
    """Smallest eigenvalue of G (a float for one matrix, a tensor for a batch). ``psd=True``: G is positive
    semi-definite, so a rounding-level negative value is returned as 0 (:func:`psd_spectrum`)."""
    ev = (psd_spectrum(G) if psd else spectrum(G))[..., 0]
    return float(ev) if ev.ndim == 0 else ev


def eigh(G) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of G, float64."""
    G = _check_square("G", G)
    return torch.linalg.eigh(0.5 * (G + G.T))


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
