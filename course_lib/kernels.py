"""Gram matrices and their spectra, always in float64.

* :func:`relu_h_inf` : H^inf_ij = <x_i, x_j> (pi - theta_ij) / (2 pi), the first-layer Gram matrix of
  a wide two-layer ReLU net (Du et al. 2019).
* :func:`arccos1` : k(a, b) = ||a|| ||b|| (sin theta + (pi - theta) cos theta) / (2 pi)
  = E_w[relu(w.a) relu(w.b)], w ~ N(0, I) (the order-1 arc-cosine kernel, halved).
* :func:`gram_hermite` : G^inf = sum_p c_p^2 (X X^T)^(elementwise p+1) for any registered activation;
  the truncated tail's mass is put back on the diagonal (see the function).
* :func:`gram_inf` : closed form for ReLU, the Hermite series otherwise.
* :func:`empirical_gram` : H(t) of a finite two-layer net; :func:`empirical_ntk` for any model.
* :func:`spectrum`, :func:`lambda_min`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import check_int, check_tensor
from .activations import Activation, get_activation

f64 = torch.float64


def angles(A: torch.Tensor, B: torch.Tensor | None = None) -> torch.Tensor:
    """Angles theta_ij between the rows a_i of A (..., p, d) and b_j of B (..., q, d), shape (..., p, q).

    Well conditioned everywhere: arccos(cos) has an infinite slope at cos = +-1 (a cosine rounded to
    1 - 1e-16 becomes an angle of 1.5e-8), so pairs with |cos| > 0.9 use theta = 2 atan2(||a^ - b^||,
    ||a^ + b^||) on the unit vectors instead, which is accurate to rounding near 0 and pi. A zero row
    has angle pi/2 to everything (its cosine is taken as 0). Use this wherever the course needs an angle.
    """
    B = A if B is None else B
    na, nb = A.norm(dim=-1, keepdim=True), B.norm(dim=-1, keepdim=True)
    Ah = torch.where(na > 0, A / na.clamp_min(1e-300), torch.zeros_like(A))
    Bh = torch.where(nb > 0, B / nb.clamp_min(1e-300), torch.zeros_like(B))
    cos = (Ah @ Bh.transpose(-1, -2)).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    near = cos.abs() > 0.9
    if bool(near.any()):
        idx = near.nonzero(as_tuple=True)
        # gather the row pairs of the near-(anti)parallel entries and recompute them directly
        Ab = Ah.expand(*cos.shape[:-2], *Ah.shape[-2:])
        Bb = Bh.expand(*cos.shape[:-2], *Bh.shape[-2:])
        a = Ab[idx[:-1]]
        b = Bb[(*idx[:-2], idx[-1])]
        theta[idx] = 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))
    return theta


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
    worst = float((norms - 1).abs().max())
    if worst > 1e-5:
        raise ValueError(f"{name} must have unit-norm rows for the Hermite series (max | ||x_i|| - 1 | = {worst:.2e}); "
                         "normalize the rows first")


def auto_num_coeffs(X: torch.Tensor, tol: float = 1e-3, lo: int = 64, hi: int = 2000) -> int:
    """Enough terms that the largest off-diagonal |rho|^P is below ``tol`` (clipped to [lo, hi])."""
    R = X @ X.T
    R.fill_diagonal_(0)
    rho = float(R.abs().max()) if R.numel() > 1 else 0.0
    if rho <= 0:
        return lo
    if rho >= 1:
        return hi
    return int(min(hi, max(lo, math.ceil(math.log(tol) / math.log(rho)))))


def gram_hermite(X, activation: str | Activation, num_coeffs: int | None = None, *, tail: str = "diagonal") -> torch.Tensor:
    """G^inf_ij = <x_i, x_j> E[phi'(w.x_i) phi'(w.x_j)] = sum_p c_p^2 rho_ij^(p+1), unit-norm rows.

    A truncated series drops a positive semi-definite tail and so underestimates lambda_min. For
    distinct unit vectors the tail's Hadamard powers tend to the identity, so with ``tail="diagonal"``
    (default) the missing mass E[phi'^2] - sum_{p<P} c_p^2 is added on the diagonal; the diagonal is
    then exact and the remaining error is the tail's off-diagonal part, below ``tol * mass`` when
    ``num_coeffs`` is chosen by :func:`auto_num_coeffs` (``None``). ``tail="drop"`` keeps the plain
    truncation.
    """
    X = check_tensor("X", X, ndim=2, dtype=f64)
    _check_unit_rows(X)
    act = get_activation(activation)
    if tail not in ("diagonal", "drop"):
        raise ValueError(f"tail must be 'diagonal' or 'drop'; got {tail!r}")
    P = auto_num_coeffs(X) if num_coeffs is None else check_int("num_coeffs", num_coeffs, min_value=1, max_value=2000)
    c2 = torch.from_numpy(act.hermite_coeffs(P) ** 2)
    R = X @ X.T
    power = R.clone()  # rho^(p+1), starting at p = 0
    G = c2[0] * power
    for p in range(1, P):
        power.mul_(R)
        if c2[p] != 0:
            G.add_(power, alpha=float(c2[p]))
    if tail == "diagonal":
        missing = max(act.dphi_second_moment() - float(c2.sum()), 0.0)
        G.diagonal().add_(missing)
    return G


def gram_inf(X, activation: str | Activation = "relu", num_coeffs: int | None = None) -> torch.Tensor:
    """G^inf: the closed form :func:`relu_h_inf` for ReLU, :func:`gram_hermite` otherwise."""
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
    """
    from .models import TwoLayer

    if not isinstance(model, TwoLayer):
        raise TypeError(f"model must be a TwoLayer (use empirical_ntk for other models); got {type(model).__name__}")
    include_output = model.train_output if include_output is None else include_output
    p64 = {k: v.to(f64) for k, v in params.items()}
    X = check_tensor("X", X, ndim=2, dtype=f64).to(p64["W"].device)
    pre = model.preactivations(p64, X)  # (E, n, m)
    m = model.width
    act = model.activation
    D = act.dphi(pre) * p64["a"].unsqueeze(1).abs()  # a_r^2 split over the two factors
    H = (D @ D.transpose(1, 2)) / m * (X @ X.T)
    if include_output:
        F = act.phi(pre)
        H = H + F @ F.transpose(1, 2) / m
    return H


def empirical_ntk(model, params, X, *, member: int = 0) -> torch.Tensor:
    """J J^T for network ``member`` of any model (autograd Jacobian of the outputs w.r.t. the
    trainable parameters), float64, shape (n, n) (or (n k, n k) for k outputs)."""
    from .models import select

    member = check_int("member", member, min_value=0)
    p = {k: v.to(f64) for k, v in select(params, member).items()}
    X = check_tensor("X", X, ndim=2, dtype=f64).to(next(iter(p.values())).device)
    names = list(model.trainable)

    def f(*trainables):
        q = dict(p)
        q.update(zip(names, trainables))
        return model.apply(q, X)[0].reshape(-1)

    jac = torch.autograd.functional.jacobian(f, tuple(p[k] for k in names))
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    return J @ J.T


def spectrum(G) -> torch.Tensor:
    """Eigenvalues of the symmetric matrix (or batch of matrices) G, ascending, in float64."""
    G = check_tensor("G", G, ndim=(2, 3), dtype=f64)
    if G.shape[-1] != G.shape[-2]:
        raise ValueError(f"G must be square; got shape {tuple(G.shape)}")
    return torch.linalg.eigvalsh(0.5 * (G + G.transpose(-1, -2)))


def lambda_min(G) -> float | torch.Tensor:
    """Smallest eigenvalue of G (a float for one matrix, a tensor for a batch)."""
    ev = spectrum(G)[..., 0]
    return float(ev) if ev.ndim == 0 else ev


def eigh(G) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of G, float64."""
    G = check_tensor("G", G, ndim=2, dtype=f64)
    return torch.linalg.eigh(0.5 * (G + G.T))


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
