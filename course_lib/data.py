"""Data sets and teachers. Every function is deterministic given ``seed`` (or a ``torch.Generator``).

Tensors follow PyTorch conventions: samples are rows, ``X`` has shape (n, d).
Random draws are made on the CPU generator and then moved to ``device``, so the same seed gives the
same data everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._validate import check_bool, check_float, check_int, check_tensor
from .runtime import check_memory, make_generator, placement


def _out(t: torch.Tensor, device, dtype) -> torch.Tensor:
    # float64 data are made on the CPU where the device has no float64 (MPS): runtime.placement
    return t.to(device=placement(device, dtype), dtype=dtype)


def _check_size(what: str, count: int) -> None:
    """Refuse, before drawing, data whose float64 draws (and their copy) exceed the memory budget."""
    check_memory(16 * count, f"{what} ({count:.3g} numbers)", fix="use a smaller n or d")


def unit_sphere(n: int, d: int, *, seed: int | torch.Generator = 0, device=None, dtype=torch.float32) -> torch.Tensor:
    """n points uniform on the unit sphere of R^d (normalized Gaussians), shape (n, d)."""
    n = check_int("n", n, min_value=1)
    d = check_int("d", d, min_value=1)
    _check_size(f"unit_sphere(n={n}, d={d})", n * d)
    gen = make_generator(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return _out(x / x.norm(dim=1, keepdim=True), device, dtype)


def random_orthonormal(d: int, k: int, *, seed: int | torch.Generator = 0, dtype=torch.float64) -> torch.Tensor:
    """A random d x k matrix with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
    d = check_int("d", d, min_value=1)
    k = check_int("k", k, min_value=1, max_value=d)
    gen = make_generator(seed)
    q, r = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(k, dtype=torch.float64))
    return q.to(dtype)


def subspace_data(
    n: int, d: int, d_sub: int, *, seed: int | torch.Generator = 0, device=None, dtype=torch.float32
) -> torch.Tensor:
    """n unit-norm points of R^d that span a random ``d_sub``-dimensional subspace.

    The points are uniform on the unit sphere of that subspace. Low ``d_sub`` is where smooth
    activations give an exponentially small Gram eigenvalue (lesson 4).
    """
    n = check_int("n", n, min_value=1)
    d = check_int("d", d, min_value=1)
    d_sub = check_int("d_sub", d_sub, min_value=1, max_value=d)
    _check_size(f"subspace_data(n={n}, d={d})", n * d)
    gen = make_generator(seed)
    basis = random_orthonormal(d, d_sub, seed=gen)
    z = torch.randn(n, d_sub, generator=gen, dtype=torch.float64)
    x = (z / z.norm(dim=1, keepdim=True)) @ basis.T
    return _out(x, device, dtype)


def half_circle(
    n: int, delta: float | None = None, *, d: int = 2, seed: int | torch.Generator = 0, device=None, dtype=torch.float32
) -> torch.Tensor:
    """n unit points on a half circle with separation exactly ``delta`` (see :func:`separation`).

    Angles t_i = i * alpha with alpha = 2 arcsin(delta / 2); then min_i!=j ||x_i - x_j|| = delta and,
    because n * alpha <= pi, min ||x_i + x_j|| >= delta as well. ``delta=None`` spreads the points
    evenly over [0, pi) (the largest separation possible, 2 sin(pi / 2n)). For ``d > 2`` the circle is
    placed in a random 2-plane of R^d (drawn from ``seed``).
    """
    n = check_int("n", n, min_value=2)
    d = check_int("d", d, min_value=2)
    max_delta = 2 * math.sin(math.pi / (2 * n))
    if delta is None:
        alpha = math.pi / n
    else:
        delta = check_float("delta", delta, min_value=0.0, max_value=max_delta, min_inclusive=False)
        alpha = 2 * math.asin(delta / 2)
    t = alpha * torch.arange(n, dtype=torch.float64)
    x = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    if d > 2:
        x = x @ random_orthonormal(d, 2, seed=seed).T
    return _out(x, device, dtype)


def separation(X) -> float:
    """delta = min over i != j of min(||x_i - x_j||, ||x_i + x_j||), computed in float64."""
    X = check_tensor("X", X, ndim=2, dtype=torch.float64)
    if X.shape[0] < 2:
        raise ValueError(f"X must have at least 2 rows to have a separation; got shape {tuple(X.shape)}")
    # torch.cdist's default switches to the matmul formula
    # sqrt(|a|^2 + |b|^2 - 2 a.b) above 25 rows, which cancels catastrophically for close points
    # (absolute error ~1e-8: a relative error of 1e-4 at delta = 1e-6). Use the direct differences.
    mode = "donot_use_mm_for_euclid_dist"
    minus = torch.cdist(X, X, compute_mode=mode)
    plus = torch.cdist(X, -X, compute_mode=mode)
    eye = torch.eye(X.shape[0], dtype=torch.bool)
    both = torch.minimum(minus, plus).masked_fill(eye, float("inf"))
    return float(both.min())


def gaussian_batch(
    batch: int, d: int, *, generator: torch.Generator, device=None, dtype=torch.float32
) -> torch.Tensor:
    """A fresh mini-batch x ~ N(0, I_d), shape (batch, d), for SGD on the population loss."""
    batch = check_int("batch", batch, min_value=1)
    d = check_int("d", d, min_value=1)
    _check_size(f"gaussian_batch(batch={batch}, d={d})", batch * d)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (see course_lib.make_generator); got {type(generator).__name__}")
    return _out(torch.randn(batch, d, generator=generator), device, dtype)


@dataclass(frozen=True)
class TwoLayerTeacher:
    """Teacher f*(x) = sum_i a_i relu(w_i . x). ``W`` has shape (m, d), ``a`` shape (m,)."""

    W: torch.Tensor
    a: torch.Tensor

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        X = check_tensor("X", X, ndim=2)
        if X.shape[1] != self.W.shape[1]:
            raise ValueError(f"X must have {self.W.shape[1]} columns (the teacher's input dimension); got {X.shape[1]}")
        W = self.W.to(device=X.device, dtype=X.dtype)
        return torch.relu(X @ W.T) @ self.a.to(device=X.device, dtype=X.dtype)


def two_layer_teacher(
    m: int,
    d: int,
    *,
    seed: int | torch.Generator = 0,
    orthogonal: bool = True,
    output: str = "ones",
    device=None,
    dtype=torch.float32,
) -> TwoLayerTeacher:
    """A teacher of ``m`` unit-norm ReLU neurons in R^d.

    ``orthogonal=True`` (needs m <= d) makes the teacher directions orthonormal, the well-separated
    case of lesson 3; otherwise they are uniform on the sphere. ``output`` is ``"ones"`` (a_i = 1)
    or ``"signs"`` (a_i uniform in {-1, +1}).
    """
    m = check_int("m", m, min_value=1)
    d = check_int("d", d, min_value=1)
    orthogonal = check_bool("orthogonal", orthogonal)
    if output not in ("ones", "signs"):
        raise ValueError(f"output must be 'ones' or 'signs'; got {output!r}")
    gen = make_generator(seed)
    if orthogonal:
        if m > d:
            raise ValueError(f"m must be <= d for an orthogonal teacher; got m={m}, d={d} (use orthogonal=False)")
        W = random_orthonormal(d, m, seed=gen).T
    else:
        W = torch.randn(m, d, generator=gen, dtype=torch.float64)
        W = W / W.norm(dim=1, keepdim=True)
    a = (torch.ones(m, dtype=torch.float64) if output == "ones"
         else torch.randint(0, 2, (m,), generator=gen).to(torch.float64) * 2 - 1)  # a CPU tensor: no device rule needed
    dev = placement(device, dtype)
    return TwoLayerTeacher(W.to(dev, dtype), a.to(dev, dtype))


def identity_teacher(
    d: int, *, scale: float = 0.6, seed: int | torch.Generator = 0, device=None, dtype=torch.float32
) -> torch.Tensor:
    """A teacher W* (d x d) for the identity-mapping net, Gaussian and rescaled to ||W*||_2 = ``scale``."""
    d = check_int("d", d, min_value=1)
    scale = check_float("scale", scale, min_value=0.0)
    gen = make_generator(seed)
    W = torch.randn(d, d, generator=gen, dtype=torch.float64)
    W = W * (scale / torch.linalg.matrix_norm(W, ord=2))
    return _out(W, device, dtype)


def digits(
    classes=(0, 1),
    n: int | None = None,
    *,
    targets: str = "pm1",
    seed: int | torch.Generator = 0,
    device=None,
    dtype=torch.float32,
    _raw: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits, centered and unit-normalized: ``(X, y)``.

    ``classes`` picks the digits kept; ``n`` (optional) a random subset of that size (not
    stratified: a small ``n`` may under-represent a class), chosen by ``seed``. ``targets``: ``"pm1"`` (two classes only: first class -> -1, second ->
    +1), ``"onehot"`` (n x len(classes)), or ``"label"`` (the digit itself, as float).
    Centering uses the mean of the kept samples, then each row is scaled to unit norm.
    """
    # a bare int used to fail with "'int' object is not iterable", which
    # does not name the parameter.
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a list of distinct digits 0-9, e.g. (0, 1); got {classes!r}")
    classes = tuple(check_int("classes", c, min_value=0, max_value=9) for c in classes)
    if len(classes) == 0 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty list of distinct digits 0-9; got {classes}")
    if targets not in ("pm1", "onehot", "label"):
        raise ValueError(f"targets must be 'pm1', 'onehot' or 'label'; got {targets!r}")
    if targets == "pm1" and len(classes) != 2:
        raise ValueError(f"targets='pm1' needs exactly 2 classes; got {len(classes)} (use targets='onehot')")
    if _raw is None:
        from sklearn.datasets import load_digits

        raw = load_digits()
        images, labels = raw.data, raw.target
    else:  # tests pass small synthetic data through the same path
        images, labels = _raw
    keep = np.isin(labels, classes)
    Xn, labels = images[keep].astype(np.float64), labels[keep]
    gen = make_generator(seed)
    order = torch.randperm(len(labels), generator=gen).numpy()
    if n is not None:
        n = check_int("n", n, min_value=1, max_value=len(labels))
        order = order[:n]
    Xn, labels = Xn[order], labels[order]
    Xn = Xn - Xn.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(Xn, axis=1, keepdims=True)
    Xn = Xn / np.where(norms > 0, norms, 1.0)
    if targets == "pm1":
        y = np.where(labels == classes[1], 1.0, -1.0)
    elif targets == "onehot":
        y = (labels[:, None] == np.array(classes)[None, :]).astype(np.float64)
    else:
        y = labels.astype(np.float64)
    return _out(torch.from_numpy(Xn), device, dtype), _out(torch.from_numpy(y), device, dtype)
