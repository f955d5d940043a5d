"""What every public check shares: reading what the learner's function returned, comparing it with a
well-conditioned reference under a stated allowance, and saying what is wrong in plain words.

* :func:`as_array`, :func:`as_float`, :func:`as_int`, :func:`as_names` turn a returned value into what the check
  compares, or fail with a plain message (``None``: "did you forget `return`?"; a string, a dict, a wrong shape, a
  NaN) instead of a TypeError raised inside the check.
* :func:`close` compares entry by entry against an allowance (a number or one per entry) and reports the worst
  entry: its index, the expected and the returned value with enough digits to see the difference, and by how much it
  exceeds what is allowed. Every allowance in the checks states its reason next to it (the conditioning of what is
  checked); the helpers below compute the common ones.
* :func:`diagnose` picks the hint aimed at the mistake actually seen: the check computes what each common wrong
  answer would return, and the hint of the one that matches is shown (a generic hint otherwise).

Messages put the facts on the first line and the hint on its own line, ``hint: ...`` (the class report groups
students by that line).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # 2.2e-16: float64's unit roundoff x 2


class CheckFailure(AssertionError):
    """A check's verdict: what is wrong, with the hint that applies (``hint: ...`` on its own line)."""


def fail(message: str, hint: str | None = None):
    raise CheckFailure(message if not hint else f"{message}\nhint: {hint}")


# ----------------------------------------------------------------------------------------------
# reading what was returned
# ----------------------------------------------------------------------------------------------
def _kind(value) -> str:
    if value is None:
        return "None"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__} ({str(value)[:40]})"


def _none(what: str):
    fail(f"your function returned None instead of {what}",
         "did you forget the `return` line (printing a value does not return it)?")


def as_array(value, what: str, shape=None, *, finite: bool = True, name: str = "the result", nan_hint: str | None = None,
             shape_hint: str | None = None) -> np.ndarray:
    """``value`` as a float64 numpy array of ``shape`` (None: any), or a plain failure saying what was returned
    (``nan_hint``/``shape_hint``: the hint for a NaN or a wrong shape in this exercise)."""
    if value is None:
        _none(what)
    if hasattr(value, "detach"):  # a torch tensor (any device)
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, dict, set)) or callable(value):
        fail(f"expected {what}; your function returned {_kind(value)}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged lists and the like
        fail(f"expected {what}; your function returned {_kind(value)}, which is not an array of numbers")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        fail(f"expected {what}; your function returned {_kind(value)}, which is not an array of numbers")
    if np.iscomplexobj(arr):
        if np.abs(arr.imag).max(initial=0.0) > 0:
            fail(f"expected {what} (real numbers); your function returned complex numbers",
                 "take the modulus (np.abs) or the real part where the formula asks for it")
        arr = arr.real
    arr = arr.astype(np.float64)
    if shape is not None and arr.shape != tuple(shape):
        hint = None
        if arr.ndim == 2 and len(shape) == 2 and arr.shape == tuple(shape)[::-1]:
            hint = "the shape is transposed: check which axis is which"
        elif arr.size == int(np.prod(shape)):
            hint = "the right number of entries in the wrong shape: reshape or check the order of the axes"
        fail(f"expected {what} of shape {tuple(shape)}; {name} has shape {arr.shape}", hint or shape_hint)
    if finite and arr.size and not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        fail(f"{name} has a non-finite entry: {name}{list(bad) if bad else ''} = {arr[bad] if bad else arr.item()}",
             nan_hint or "NaN or inf usually comes from arccos/sqrt/log of a value just outside its domain (clip it) "
             "or from a division by zero")
    return arr


def as_float(value, what: str = "a float") -> float:
    """A real number (Python, numpy or a one-element array/tensor), or a plain failure."""
    if value is None:
        _none(what)
    if isinstance(value, bool):
        fail(f"expected {what}; your function returned the boolean {value}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numbers.Complex):
        if value.imag != 0:
            fail(f"expected {what} (a real number); your function returned the complex number {value}",
                 "take the modulus (abs) where the formula asks for it")
        return float(value.real)
    arr = as_array(value, what, finite=False)
    if arr.size != 1:
        fail(f"expected {what} (one number); your function returned {arr.size} numbers, shape {arr.shape}")
    return float(arr.reshape(()))


def as_int(value, what: str = "an int") -> int:
    """An integer (int, numpy integer, or a float with an integer value), or a plain failure."""
    x = as_float(value, what)
    if not math.isfinite(x) or x != int(x):
        fail(f"expected {what} (a whole number of steps); your function returned {value!r}")
    return int(x)


def as_names(value, what: str, names) -> list[str]:
    """A list of the strings ``names``, each once, or a plain failure."""
    if value is None:
        _none(what)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or isinstance(value, dict):
        fail(f"expected {what}; your function returned {_kind(value)}")
    got = list(value)
    if not all(isinstance(v, str) for v in got):
        fail(f"expected {what} (the names, as strings); got {got!r}")
    if sorted(got) != sorted(names):
        fail(f"expected each of {sorted(names)} exactly once; got {got}")
    return got


# ----------------------------------------------------------------------------------------------
# numbers a learner can compare
# ----------------------------------------------------------------------------------------------
def digits_to_differ(a: float, b: float, lo: int = 6) -> int:
    """Significant digits that show a and b as different numbers (at least ``lo``, at most 17)."""
    if not (math.isfinite(a) and math.isfinite(b)) or a == b:
        return lo
    scale = max(abs(a), abs(b))
    k = math.ceil(-math.log10(abs(a - b) / scale)) + 2 if scale > 0 else lo
    k = min(17, max(lo, k))
    while k < 17 and f"{a:.{k}g}" == f"{b:.{k}g}":
        k += 1
    return k


def pair(expected: float, got: float) -> str:
    """'expected X, got Y' with enough digits to see the difference."""
    k = digits_to_differ(expected, got)
    return f"expected {expected:.{k}g}, got {got:.{k}g}"


def _index_text(name: str, idx: tuple) -> str:
    return f"{name}[{', '.join(str(i) for i in idx)}]" if idx else name


def close(got: np.ndarray, expected: np.ndarray, allow, *, name: str, hint: str | None = None,
          diagnoses=None) -> None:
    """Fail unless |got - expected| <= allow entry by entry (``allow``: scalar or array of expected's shape).

    The message names the worst entry (the largest excess over its allowance), both values with enough digits,
    the difference and the allowance. ``diagnoses``: [(what that mistake returns, its hint), ...] or a function
    returning that list (called only on a failure); the first whose values match ``got`` within ``allow`` gives the
    hint, else ``hint``.
    """
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    allow = np.broadcast_to(np.asarray(allow, dtype=np.float64), expected.shape)
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - expected)
        excess = np.where(np.isfinite(diff), diff - allow, np.inf)
    if not (excess > 0).any():
        return
    flat = int(np.argmax(excess))
    idx = tuple(int(i) for i in np.unravel_index(flat, expected.shape)) if expected.ndim else ()
    e, g, a, dv = float(expected[idx]), float(got[idx]), float(allow[idx]), float(diff[idx])
    bad = int((excess > 0).sum())
    where = _index_text(name, idx)
    msg = (f"{where}: {pair(e, g)} (off by {dv:.2g}; allowed {a:.2g})"
           + (f"; {bad} of {expected.size} entries are outside their allowance" if expected.size > 1 else ""))
    fail(msg, diagnose(got, diagnoses, allow) or hint)


def diagnose(got, diagnoses, allow=0.0) -> str | None:
    """The hint of the first wrong answer in ``diagnoses`` [(its values, hint)] (or a function returning that list,
    called only now) that ``got`` matches."""
    if callable(diagnoses):
        diagnoses = diagnoses()
    for values, text in diagnoses or ():
        try:
            v = np.asarray(values, dtype=np.float64)
            g = np.asarray(got, dtype=np.float64)
            if v.shape != g.shape:
                continue
            a = np.broadcast_to(np.asarray(allow, dtype=np.float64), v.shape)
            # a diagnosis, not a verdict: the wrong answers differ from the right one by O(1), so a match within
            # 10 x the allowance or 1e-6 of the values' scale is that mistake (whatever rounding it carries)
            tol = 10 * a + 1e-6 * max(float(np.abs(v).max(initial=0.0)), 1e-300)
            with np.errstate(invalid="ignore"):
                if np.all(np.abs(g - v) <= tol):
                    return text
        except (TypeError, ValueError):
            continue
    return None


# ----------------------------------------------------------------------------------------------
# allowances, each with its reason
# ----------------------------------------------------------------------------------------------
def cosine_rounding(d: int) -> float:
    """How far a cosine <a, b> / (||a|| ||b||) computed in float64 can be from the exact one: the inner product of
    d terms and two norms each carry a relative rounding of about d eps, so |dc| <= (d + 4) eps."""
    return (int(d) + 4) * EPS


def arccos_allowance(cos, d: int) -> np.ndarray:
    """The error that arccos of a float64-rounded cosine can carry, entry by entry.

    With |dc| <= (d + 4) eps (:func:`cosine_rounding`), |arccos(c + dc) - arccos(c)| is at most |dc| / sqrt(1 - c'^2)
    (the mean value theorem, c' the larger of |c| and |c + dc|) and at most 1.01 sqrt(2 |dc|) (near c = +-1, where
    arccos's slope is infinite: a rounding of 1e-16 there becomes an angle error of 1.5e-8). The smaller of the two
    bounds holds; plus the angle's own rounding (4 eps).
    """
    c = np.abs(np.asarray(cos, dtype=np.float64))
    dc = cosine_rounding(d)
    top = np.minimum(c + dc, 1.0)
    with np.errstate(divide="ignore"):
        slope_bound = np.where(top < 1.0, dc / np.sqrt(np.maximum(1.0 - top * top, 1e-300)), np.inf)
    return np.minimum(slope_bound, 1.01 * math.sqrt(2 * dc)) + 4 * EPS


def unit_cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosines between the rows of A and of B from the well-conditioned angles (course_lib.kernels.angles)."""
    import torch

    from course_lib import kernels

    return np.cos(kernels.angles(torch.from_numpy(np.asarray(A, dtype=np.float64)),
                                 torch.from_numpy(np.asarray(B, dtype=np.float64))).numpy())


def sphere(n: int, d: int, seed: int) -> np.ndarray:
    """n random unit vectors in R^d (rows), float64."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)
