"""Device choice, seeding and the fast mode: the only global knobs of the course.

* :func:`get_device` picks the best available device (cuda, then mps, then cpu). An explicit
  ``device=`` argument wins; otherwise the environment variable ``COURSE_DEVICE`` does.
* :func:`make_generator` is the one seeding helper: every random draw in ``course_lib`` takes an
  explicit ``torch.Generator`` (or a seed turned into one here), never the global RNG.
* :func:`fast_mode` / :func:`scaled_steps` shrink step counts when ``COURSE_FAST=1`` (CI) without
  changing which code runs.
"""
from __future__ import annotations

import contextlib
import os

import torch

from ._validate import check_int

_DEVICE_ENV = "COURSE_DEVICE"
_FAST_ENV = "COURSE_FAST"


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return False


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Resolve ``device`` (or ``$COURSE_DEVICE``, or the best available one) to a ``torch.device``.

    Raises ValueError, naming the devices that are available, when the requested one is not.
    """
    source = "device"
    if device is None:
        env = os.environ.get(_DEVICE_ENV, "").strip()
        if env:
            device, source = env, f"${_DEVICE_ENV}"
    if device is None:
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{source} must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}") from exc
    if not _available(dev.type):
        raise ValueError(f"{source}={str(device)!r} is not available on this machine; available: {', '.join(available_devices())}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{source}={str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


def supports_float64(device: str | torch.device) -> bool:
    """Whether ``device`` computes in float64 (Apple's MPS does not)."""
    return torch.device(device).type != "mps"


def float64_device(device: str | torch.device) -> torch.device:
    """Where float64 work (spectra, closed forms) happens for data on ``device``: the device itself if it
    supports float64, else the CPU. The course's one rule for float64 (COURSE_DESIGN.md section 4)."""
    device = torch.device(device)
    return device if supports_float64(device) else torch.device("cpu")


def to_float64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float64 on :func:`float64_device` of its device. Use this, never ``t.double()`` on a device
    tensor: moving first (``.cpu()``) is what keeps MPS working."""
    t = torch.as_tensor(t)
    dev = float64_device(t.device)
    if dev != t.device:
        t = t.to(dev)  # move first, then convert: MPS refuses to hold float64
    return t.to(torch.float64)


def available_devices() -> list[str]:
    return [k for k in ("cpu", "cuda", "mps") if _available(k)]


def make_generator(seed: int | torch.Generator, device: str | torch.device | None = None) -> torch.Generator:
    """The course's one seeding helper: a ``torch.Generator`` seeded with ``seed``.

    Draws are made on the CPU generator and then moved, so the same seed gives the same numbers on
    every device (CPU and GPU runs start from identical weights and data).
    A generator passed in is returned unchanged.
    """
    if isinstance(seed, torch.Generator):
        return seed
    seed = check_int("seed", seed, min_value=0, max_value=2**63 - 1)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen


def fast_mode() -> bool:
    """True when ``COURSE_FAST`` is set to a true value (CI): step counts shrink, code paths do not."""
    return os.environ.get(_FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def scaled_steps(steps: int, *, factor: int = 10, minimum: int = 10) -> int:
    """``steps`` normally; ``max(minimum, steps // factor)`` in fast mode."""
    steps = check_int("steps", steps, min_value=0)
    # factor=0 raised ZeroDivisionError (in fast mode only) and a
    # negative minimum went unchecked; validate both, whatever the mode.
    factor = check_int("factor", factor, min_value=1)
    minimum = check_int("minimum", minimum, min_value=0)
    if not fast_mode():
        return steps
    return min(steps, max(minimum, steps // factor))


@contextlib.contextmanager
def torch_threads(n: int | None = None):
    """Run a block with ``n`` torch threads (default ``$COURSE_THREADS`` or 1), then restore the setting.

    Why: the course's networks are small, so extra OpenMP threads gain little, and when other
    processes share the cores (JupyterLab, the browser, a classmate's kernel on a shared machine)
    busy-waiting threads made small operations 10-100x slower in our measurements. Dashboards use this.
    """
    n = check_int("n", n if n is not None else int(os.environ.get("COURSE_THREADS", "1")), min_value=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def info() -> dict[str, str]:
    """Versions and devices, as shown by ``python -m course_lib info`` and the tour lesson."""
    import platform

    import matplotlib
    import numpy

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(get_device()),
        "available devices": ", ".join(available_devices()),
        "torch threads": str(torch.get_num_threads()),
        "fast mode": str(fast_mode()),
    }
    if torch.cuda.is_available():
        out["cuda device"] = torch.cuda.get_device_name(0)
    try:
        import ipywidgets

        out["ipywidgets"] = ipywidgets.__version__
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        pass
    return out
