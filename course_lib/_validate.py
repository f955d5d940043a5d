"""Parameter validation at the public boundary.

Every public function checks its arguments with these helpers so that bad input fails early with a
message that names the parameter and the valid range (in the spirit of scikit-learn's validation),
instead of a deep traceback or a silent NaN.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np
import torch


def check_int(name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` as an int, or raise TypeError/ValueError naming ``name`` and the range."""
    rng = _range_text(min_value, max_value, "integer")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer() and not isinstance(value, bool):
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer ({rng}); got {value!r} of type {type(value).__name__}")
    value = int(value)
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        raise ValueError(f"{name} must be an integer {rng}; got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float inside the given interval, or raise naming ``name``."""
    lo = "[" if min_inclusive else "("
    hi = "]" if max_inclusive else ")"
    interval = f"{lo}{'-inf' if min_value is None else min_value}, {'inf' if max_value is None else max_value}{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number in {interval}; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {interval}; got {value}")
    bad_lo = min_value is not None and (value < min_value or (not min_inclusive and value == min_value))
    bad_hi = max_value is not None and (value > max_value or (not max_inclusive and value == max_value))
    if bad_lo or bad_hi:
        raise ValueError(f"{name} must be in {interval}; got {value}")
    return value


#: Eigenvalues of a positive semi-definite matrix computed in float64 carry a rounding error of a few
#: n eps ||A||: a singular Gram matrix (a repeated data point) gives lambda_min = -1e-16, not 0. Values in
#: [-PSD_RTOL * scale, 0) are that rounding and are taken as 0; "scale" is the matrix's largest |eigenvalue|
#: (or, where only a step size is known, 1 / lr). 1e-12 covers n up to ~10^3 with a margin, and is the
#: float64 floor the course draws on its spectra.
PSD_RTOL = 1e-12


def check_psd_eigenvalue(name: str, value: Any, *, scale: float, scale_text: str = "the matrix's scale") -> float:
    """``value`` as a float >= 0: an eigenvalue of a positive semi-definite matrix whose scale is ``scale``.

    A negative value down to -PSD_RTOL * scale is float64 rounding of 0 and is returned as 0.0; below that
    a ValueError names ``name``, the value and the tolerance.
    """
    value = check_float(name, value)
    if value >= 0:
        return value
    tol = PSD_RTOL * abs(float(scale))
    if value >= -tol:
        return 0.0
    raise ValueError(f"{name} must be >= 0 (an eigenvalue of a positive semi-definite matrix); got {value:.3g}, "
                     f"below the rounding level -{PSD_RTOL:g} x {scale_text} = {-tol:.3g}")


def check_positive(name: str, value: Any) -> float:
    return check_float(name, value, min_value=0.0, min_inclusive=False)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Convert array-likes to a tensor and check its rank and that every entry is finite."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    elif not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception as exc:  # noqa: BLE001 - re-raised with the parameter's name
            raise TypeError(f"{name} must be a tensor or array of numbers; got {type(value).__name__}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions; got shape {tuple(value.shape)}")
    if not (value.dtype.is_floating_point or value.dtype.is_complex):
        value = value.to(torch.get_default_dtype())
    if dtype == torch.float64:
        # the one float64 rule (runtime.to_float64): off MPS first; runtime imports this module
        from .runtime import float64_device, to_float64

        if device is not None:
            device = float64_device(device)
            value = value.to(device)
        value = to_float64(value)
    elif dtype is not None:
        value = value.to(dtype)
    if device is not None:
        value = value.to(device)
    if finite and value.numel() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite entries; all entries must be finite")
    return value


def check_same_rows(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of rows (samples); "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def _range_text(lo: int | None, hi: int | None, kind: str) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return f"any {kind}"
