"""What the theory predicts: linearized GD, momentum rates, the potential g, population losses.

All spectra and predictions are computed in float64 (on the CPU where the data's device has no float64,
:func:`course_lib.runtime.float64_device`). Angles come from :func:`course_lib.kernels.angles` (well
conditioned near 0 and pi). Eigenvalues of positive semi-definite matrices that are negative by rounding
(down to -PSD_RTOL x the scale, ``course_lib._validate.PSD_RTOL`` = 1e-12) are taken as 0; degenerate input
gets a ValueError naming the parameter and its valid range.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import PSD_RTOL, check_float, check_int, check_psd_eigenvalue, check_tensor

f64 = torch.float64


# ----------------------------------------------------------------------------------------------
# Kernel regime: GD on the linearized network
# ----------------------------------------------------------------------------------------------
def linearized_residuals(H, r0, lr: float, steps: int) -> torch.Tensor:
    """r(k) = (I - lr H)^k r0 for k = 0..steps, shape (steps + 1, n), float64.

    This is GD on the square loss (1/2)||u - y||^2 of a model linear in its parameters with Gram
    (NTK) matrix H: u(k+1) - y = (I - lr H)(u(k) - y).
    """
    H = check_tensor("H", H, ndim=2, dtype=f64)
    r0 = check_tensor("r0", r0, ndim=1, dtype=f64).to(H.device)
    if H.shape[0] != H.shape[1] or H.shape[0] != r0.shape[0]:
        raise ValueError(f"H must be n x n and r0 of length n; got H {tuple(H.shape)}, r0 {tuple(r0.shape)}")
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    steps = check_int("steps", steps, min_value=0)
    lam, V = torch.linalg.eigh(0.5 * (H + H.T))
    coef = V.T @ r0
    k = torch.arange(steps + 1, dtype=f64, device=H.device).unsqueeze(1)
    return ((1 - lr * lam).unsqueeze(0) ** k * coef.unsqueeze(0)) @ V.T


def linearized_modes(H, r0, lr: float, steps, *, eig=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linearized dynamics mode by mode: eigenvalues lam (n,) ascending, eigenvectors V (n, n) (columns)
    and the residual's coefficients c_i(k) = (1 - lr lam_i)^k (v_i . r0) at the requested steps, shape
    (len(steps), n) (``steps`` an int means 0..steps). float64.

    ``eig``: ``(lam, V)`` of H, already computed (ascending, eigenvectors as columns, numpy or torch), to evolve
    several residuals through the same H without decomposing it again (H may then be None).

    Each coefficient is computed directly from its own factor, never by re-projecting a reconstructed
    residual: past the stability edge the top mode grows like |1 - lr lam_max|^k, and re-projection
    would spread its round-off onto the stable modes (Du et al. 2019, section 4; COURSE_DESIGN.md s. 3).
    """
    if eig is None:
        H = check_tensor("H", H, ndim=2, dtype=f64)
        r0 = check_tensor("r0", r0, ndim=1, dtype=f64).to(H.device)
        if H.shape[0] != H.shape[1] or H.shape[0] != r0.shape[0]:
            raise ValueError(f"H must be n x n and r0 of length n; got H {tuple(H.shape)}, r0 {tuple(r0.shape)}")
        lam, V = torch.linalg.eigh(0.5 * (H + H.T))
        lam, V = lam.cpu().numpy(), V.cpu().numpy()
    else:
        lam, V = (np.asarray(torch.as_tensor(a).detach().cpu(), dtype=np.float64) for a in eig)
        r0 = check_tensor("r0", r0, ndim=1, dtype=f64)
        if V.ndim != 2 or V.shape != (len(lam), len(lam)) or r0.shape[0] != len(lam):
            raise ValueError(f"eig must be (lam (n,), V (n, n)) and r0 of length n; got lam {lam.shape}, V {V.shape}, "
                             f"r0 {tuple(r0.shape)}")
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    if np.ndim(steps) == 0:
        ks = np.arange(check_int("steps", steps, min_value=0) + 1)
    else:
        ks = np.asarray(steps, dtype=float).ravel()
        if not np.all(np.isfinite(ks)) or np.any(ks < 0):
            raise ValueError(f"steps must be an int >= 0 or a list of steps >= 0; got {np.asarray(steps).tolist()!r}")
    c0 = V.T @ r0.cpu().numpy()
    with np.errstate(over="ignore"):
        coef = (1 - lr * lam)[None, :] ** ks[:, None] * c0[None, :]
    return lam, V, coef


def linearized_loss(H, r0, lr: float, steps: int) -> np.ndarray:
    """(1/2)||r(k)||^2 of :func:`linearized_residuals`, k = 0..steps (numpy float64)."""
    r = linearized_residuals(H, r0, lr, steps)
    return (0.5 * (r * r).sum(dim=1)).cpu().numpy()


def du_bound(loss0: float, lambda0: float, lr: float, steps: int, *, scale: float | None = None) -> np.ndarray:
    """Du et al.'s bound on the loss: (1 - lr lambda0 / 2)^k loss0, k = 0..steps.

    ``lambda0`` is lambda_min of a positive semi-definite Gram matrix: a singular one (a repeated data point)
    computes to about -1e-16, which is taken as 0. The rounding tolerance is PSD_RTOL (1e-12) x ``scale``, the
    matrix's scale (its lambda_max, if you pass it); by default 1 / lr, i.e. |lr lambda0| <= 1e-12, which
    changes no factor of the bound by more than 5e-13.
    """
    loss0 = check_float("loss0", loss0, min_value=0.0)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    if scale is None:
        scale, text = 1.0 / lr, "1/lr"
    else:
        scale, text = check_float("scale", scale, min_value=0.0), "scale"
    lambda0 = check_psd_eigenvalue("lambda0", lambda0, scale=scale, scale_text=text)
    steps = check_int("steps", steps, min_value=0)
    return loss0 * (1 - lr * lambda0 / 2) ** np.arange(steps + 1)


def stability_limit(H) -> float:
    """2 / lambda_max(H): GD on the linearized model diverges for step sizes above it.

    H must be a square, positive semi-definite matrix with lambda_max > 0 (ValueError otherwise, naming H:
    a zero H, e.g. from all-zero inputs, has no finite limit)."""
    H = check_tensor("H", H, ndim=2, dtype=f64)
    if H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"H must be a non-empty square matrix; got shape {tuple(H.shape)}")
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T))
    lam_max, scale = float(ev[-1]), float(ev.abs().max())
    if not lam_max > PSD_RTOL * scale or scale == 0.0:
        what = "H is zero (e.g. every input is 0)" if scale == 0.0 else f"lambda_max(H) = {lam_max:.3g}"
        raise ValueError(f"H must be positive semi-definite with lambda_max > 0; {what}, so GD never leaves its start "
                         "and there is no finite stability limit 2/lambda_max")
    return 2.0 / lam_max


# ----------------------------------------------------------------------------------------------
# Momentum (lesson 6): per-eigenvalue contraction factors
# ----------------------------------------------------------------------------------------------
def _largest_root_modulus(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """max |z| over the roots of z^2 - b z + c = 0 (elementwise)."""
    disc = np.sqrt((b * b - 4 * c).astype(np.complex128))
    return np.maximum(np.abs((b + disc) / 2), np.abs((b - disc) / 2))


def _check_rate_args(lam, lr, beta):
    lam = np.asarray(lam, dtype=np.float64)
    if lam.size == 0:
        raise ValueError("eigenvalues must contain at least one value; got an empty array")
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be finite")
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    return lam, lr, beta


def mode_rate(lam, lr: float, beta: float = 0.0, method: str = "gd") -> np.ndarray:
    """Per-step contraction of an error component along an eigenvalue ``lam`` of the Gram matrix.

    * gd:  |1 - lr lam|
    * hb:  largest |z| with z^2 - (1 + beta - lr lam) z + beta = 0
    * nag: largest |z| with z^2 - (1 + beta)(1 - lr lam) z + beta (1 - lr lam) = 0
    """
    lam, lr, beta = _check_rate_args(lam, lr, beta)
    if method == "gd":
        return np.abs(1 - lr * lam)
    if method == "hb":
        return _largest_root_modulus(1 + beta - lr * lam, np.full_like(lam, beta))
    if method == "nag":
        q = 1 - lr * lam
        return _largest_root_modulus((1 + beta) * q, beta * q)
    raise ValueError(f"method must be 'gd', 'hb' or 'nag'; got {method!r}")


def predicted_rate(eigenvalues, lr: float, beta: float = 0.0, method: str = "gd") -> float:
    """The predicted per-step contraction: the largest :func:`mode_rate` over the spectrum."""
    return float(np.max(mode_rate(eigenvalues, lr, beta, method)))


# ----------------------------------------------------------------------------------------------
# Sums of ReLUs under Gaussian input: closed-form population loss and gradient (lessons 2, 3)
# ----------------------------------------------------------------------------------------------
def _pair(A: torch.Tensor, B: torch.Tensor):
    """k(a_i, b_j) and the pieces of its gradient, batched over leading dimensions. Angles from
    :func:`course_lib.kernels.angles` (arccos of the cosine lost 8 digits for nearly parallel rows)."""
    from .kernels import angles_cos_sin

    na = A.norm(dim=-1, keepdim=True)  # (..., p, 1)
    nb = B.norm(dim=-1, keepdim=True)  # (..., q, 1)
    norms = na * nb.transpose(-1, -2)
    theta, cos, sin = angles_cos_sin(A, B)
    k = norms * (sin + (math.pi - theta) * cos) / (2 * math.pi)
    return k, theta, sin, na, nb


def _weighted_partial(A, B, theta, sin, na, nb, w):
    """sum_j w_ij d/da_i k(a_i, b_j), with d/da k(a, b) = [(pi - theta) b + ||b|| sin(theta) a/||a||] / (2 pi)."""
    term1 = ((math.pi - theta) * w) @ B
    term2 = ((sin * nb.transpose(-1, -2)) * w).sum(dim=-1, keepdim=True) * A / na.clamp_min(1e-30)
    return (term1 + term2) / (2 * math.pi)


def relu_sum_loss(c, U, c_star, V, *, grad: bool = True):
    """E_x[(f(x) - f*(x))^2], x ~ N(0, I), for f(x) = sum_i c_i relu(u_i . x), f*(x) = sum_j c*_j relu(v_j . x).

    U: (..., p, d) rows u_i; c: (..., p); V: (..., q, d); c_star: (..., q). Leading dimensions batch.
    With k(a, b) = E[relu(a.x) relu(b.x)] (:func:`course_lib.kernels.arccos1`):
    L = c^T K(U, U) c - 2 c^T K(U, V) c* + c*^T K(V, V) c*.
    Returns ``loss`` (...,) and, if ``grad``, ``(dL/dc, dL/dU)`` in closed form.
    """
    U = torch.as_tensor(U)
    V = torch.as_tensor(V, dtype=U.dtype, device=U.device)
    c = torch.as_tensor(c, dtype=U.dtype, device=U.device)
    c_star = torch.as_tensor(c_star, dtype=U.dtype, device=U.device)
    for name, t in (("U", U), ("V", V), ("c", c), ("c_star", c_star)):
        if t.ndim == 0 or (name in ("U", "V") and t.ndim < 2):
            want = "(..., p, d)" if name in ("U", "V") else "(..., p)"
            raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}")
        if not bool(torch.isfinite(t.detach()).all()):
            raise ValueError(f"{name} contains NaN or infinite entries; all entries must be finite")
    if U.shape[-1] != V.shape[-1] or c.shape[-1] != U.shape[-2] or c_star.shape[-1] != V.shape[-2]:
        raise ValueError(f"shapes do not match: c {tuple(c.shape)}, U {tuple(U.shape)}, c_star {tuple(c_star.shape)}, V {tuple(V.shape)}")
    kuu, tuu, suu, nu, _ = _pair(U, U)
    kuv, tuv, suv, _, nv = _pair(U, V)
    kvv = _pair(V, V)[0]
    cu, cv = c.unsqueeze(-1), c_star.unsqueeze(-1)
    quad = lambda a, K, b: (a.transpose(-1, -2) @ K @ b).squeeze(-1).squeeze(-1)  # noqa: E731
    loss = quad(cu, kuu, cu) - 2 * quad(cu, kuv, cv) + quad(cv, kvv, cv)
    if not grad:
        return loss
    dc = 2 * (kuu @ cu).squeeze(-1) - 2 * (kuv @ cv).squeeze(-1)
    w_uu = cu * cu.transpose(-1, -2)  # c_i c_j
    w_uv = cu * cv.transpose(-1, -2)  # c_i c*_j
    dU = 2 * _weighted_partial(U, U, tuu, suu, nu, nu, w_uu) - 2 * _weighted_partial(U, V, tuv, suv, nu, nv, w_uv)
    return loss, (dc, dU)


def identity_population_loss(W, W_star, *, identity: bool = True, grad: bool = True):
    """L(W) = E[(f(x, W) - f(x, W*))^2] for f(x, W) = ||relu((I + W)^T x)||_1 (or ||relu(W^T x)||_1).

    W, W_star: (..., d, d); their columns are the w_i. Returns ``loss`` and, if ``grad``, dL/dW.
    """
    W = torch.as_tensor(W)
    W_star = torch.as_tensor(W_star, dtype=W.dtype, device=W.device)
    _check_square_weights(W, W_star)
    d = W.shape[-1]
    eye = torch.eye(d, dtype=W.dtype, device=W.device)
    U = (eye + W if identity else W).transpose(-1, -2)  # rows u_i = e_i + w_i (vanilla: w_i)
    V = (eye + W_star if identity else W_star).transpose(-1, -2)
    # One kernel matrix over z = [u; v] with signs c = [+1; -1]: L = c^T K(Z, Z) c, the same sum as
    # relu_sum_loss's three blocks in a third of the small tensor operations (this runs at every step of
    # population GD, where operation overhead, not arithmetic, is the cost).
    Z = torch.cat(torch.broadcast_tensors(U, V), dim=-2)  # (..., 2d, d)
    c = torch.cat([torch.ones(d, dtype=W.dtype, device=W.device), -torch.ones(d, dtype=W.dtype, device=W.device)])
    cc = c.unsqueeze(-1) * c.unsqueeze(-2)
    K, theta, sin, nz, _ = _pair(Z, Z)
    loss = (K * cc).sum((-1, -2))
    if not grad:
        return loss
    dU = 2 * _weighted_partial(Z[..., :d, :], Z, theta[..., :d, :], sin[..., :d, :], nz[..., :d, :], nz, cc[:d])
    return loss, dU.transpose(-1, -2)


def _check_square_weights(W: torch.Tensor, W_star: torch.Tensor) -> None:
    for name, t in (("W", W), ("W_star", W_star)):
        if t.ndim < 2 or t.shape[-1] != t.shape[-2] or t.shape[-1] == 0:
            raise ValueError(f"{name} must be a d x d matrix (or a batch (..., d, d)); got shape {tuple(t.shape)}")
    if W.shape[-1] != W_star.shape[-1]:
        raise ValueError(f"W and W_star must have the same d; got {W.shape[-1]} and {W_star.shape[-1]}")


def potential_g(W, W_star) -> torch.Tensor:
    """Li & Yuan's potential g(W) = sum_i (||e_i + w*_i|| - ||e_i + w_i||) (columns w_i), batched."""
    W = torch.as_tensor(W)
    W_star = torch.as_tensor(W_star, dtype=W.dtype, device=W.device)
    _check_square_weights(W, W_star)
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (eye + W_star).norm(dim=-2).sum(-1) - (eye + W).norm(dim=-2).sum(-1)
