"""Device choice, seeding, the fast mode, threads, memory: the only global knobs of the course.

* :func:`get_device` picks the best available device (cuda, then mps, then cpu). An explicit
  ``device=`` argument wins; otherwise the environment variable ``COURSE_DEVICE`` does.
* :func:`make_generator` is the one seeding helper: every random draw in ``course_lib`` takes an
  explicit ``torch.Generator`` (or a seed turned into one here), never the global RNG.
* :func:`fast_mode` / :func:`scaled_steps` shrink step counts when ``COURSE_FAST=1`` (CI) without
  changing which code runs.
* :func:`to_float64` / :func:`float64_device` / :func:`placement`: the one float64 rule (float64 work
  happens on the CPU or on a device that supports it; Apple's MPS does not).
* :func:`memory_budget` / :func:`check_memory`: runs estimate their memory before allocating and are
  refused, with the numbers, when they would not fit.

Environment knobs (:data:`ENV_KNOBS`) are read here and nowhere else: an empty or blank value means
"unset", and a bad value raises one ValueError that names the variable and its valid values.
docs/numerics.md says what each guarantees on which platform.
"""
from __future__ import annotations

import contextlib
import math
import os

import torch

from ._validate import check_int

_DEVICE_ENV = "COURSE_DEVICE"
_FAST_ENV = "COURSE_FAST"
_THREADS_ENV = "COURSE_THREADS"
_MEMORY_ENV = "COURSE_MEMORY_MB"

#: Every environment variable the course reads, with its valid values (empty or blank = unset).
ENV_KNOBS: dict[str, str] = {
    _DEVICE_ENV: "'cpu', 'cuda', 'cuda:N' or 'mps' (unset: the best available device)",
    _FAST_ENV: "1, true, yes or on (fast mode: shorter runs, for CI) or 0, false, no or off (unset: off)",
    _THREADS_ENV: "a whole number of torch threads >= 1 (unset: 1)",
    _MEMORY_ENV: "a memory budget in megabytes, a number > 0 (unset: half of the memory available)",
    "COURSE_GRADE_MEMORY_MB": "the grading worker's memory limit in megabytes, a whole number >= 1",
    "COURSE_GRADE_CPU_S": "the grading worker's CPU-time limit in seconds, a whole number >= 1",
    # read by the notebooks' setup cell (course_lib.links), which runs before the course is installed
    "COURSE_SOURCE": "a pip install spec for the course (a folder, a git URL), used where it is not installed",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bad_env(name: str, raw: str, valid: str | None = None) -> ValueError:
    valid = valid or ENV_KNOBS.get(name, "a valid value")
    return ValueError(f"${name}={raw!r} is not valid: {name} must be {valid}. Fix it, or unset it "
                      f"(in a shell: unset {name}; in a notebook: os.environ.pop({name!r}))")


def env_value(name: str) -> str | None:
    """The environment variable ``name`` stripped of blanks, or None when it is unset, empty or blank."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def env_flag(name: str, default: bool = False) -> bool:
    """A yes/no knob: 1/true/yes/on or 0/false/no/off (any case); unset or blank gives ``default``."""
    value = env_value(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad_env(name, os.environ[name])


def env_int(name: str, default: int | None, *, min_value: int = 1, max_value: int | None = None) -> int | None:
    """A whole-number knob (e.g. ``COURSE_THREADS``); unset or blank gives ``default``."""
    value = env_value(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad_env(name, os.environ[name]) from None
    if number < min_value or (max_value is not None and number > max_value):
        raise _bad_env(name, os.environ[name])
    return number


def env_float(name: str, default: float | None, *, min_value: float = 0.0) -> float | None:
    """A positive-number knob (e.g. ``COURSE_MEMORY_MB``); unset or blank gives ``default``."""
    value = env_value(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad_env(name, os.environ[name]) from None
    if not math.isfinite(number) or number <= min_value:
        raise _bad_env(name, os.environ[name])
    return number


def env_threads() -> int:
    """``$COURSE_THREADS`` (a whole number >= 1), default 1."""
    return env_int(_THREADS_ENV, 1, min_value=1)


def check_environment() -> dict[str, object]:
    """Parse every knob of :data:`ENV_KNOBS` that is set; raise on the first bad one. Returns the values."""
    out: dict[str, object] = {}
    for name in ENV_KNOBS:
        if env_value(name) is None:
            continue
        if name == "COURSE_SOURCE":
            continue  # free text, read by the notebooks' setup cell
        if name == _DEVICE_ENV:
            out[name] = str(get_device())
        elif name == _FAST_ENV:
            out[name] = env_flag(name)
        elif name == _MEMORY_ENV:
            out[name] = env_float(name, None)
        else:
            out[name] = env_int(name, None, min_value=1)
    return out


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
        env = env_value(_DEVICE_ENV)
        if env is not None:
            device, source = env, f"${_DEVICE_ENV}"
    if device is None:
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    from_env = source.startswith("$")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        if from_env:
            raise _bad_env(_DEVICE_ENV, os.environ[_DEVICE_ENV]) from None
        raise ValueError(f"{source} must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}") from exc
    if not _available(dev.type):
        if from_env:
            raise _bad_env(_DEVICE_ENV, os.environ[_DEVICE_ENV],
                           f"one of the devices of this machine: {', '.join(available_devices())} "
                           f"({device!r} is not available on this machine)")
        raise ValueError(f"{source}={str(device)!r} is not available on this machine; available: {', '.join(available_devices())}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        if from_env:
            raise _bad_env(_DEVICE_ENV, os.environ[_DEVICE_ENV],
                           f"'cuda:N' with N < {torch.cuda.device_count()} (the CUDA devices present)")
        raise ValueError(f"{source}={str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


def supports_float64(device: str | torch.device) -> bool:
    """Whether ``device`` computes in float64 (Apple's MPS does not)."""
    return torch.device(device).type != "mps"


def float64_device(device: str | torch.device | None) -> torch.device:
    """Where float64 work (spectra, closed forms) happens for data on ``device``: the device itself if it
    supports float64, else the CPU. The course's one rule for float64 (COURSE_DESIGN.md section 4).
    ``None`` means the default device (:func:`get_device`)."""
    device = get_device() if device is None else device
    return torch.device(device) if supports_float64(device) else torch.device("cpu")


def placement(device, dtype: torch.dtype) -> torch.device:
    """The device a new tensor of ``dtype`` is made on when ``device`` (None: the default) is asked for:
    that device, except float64 on a device without float64 (MPS), which lives on the CPU."""
    dev = get_device(device)
    return float64_device(dev) if dtype == torch.float64 else dev


def to_float64(t) -> torch.Tensor:
    """``t`` as float64 on :func:`float64_device` of its device. Use this, never ``t.double()`` /
    ``t.to(torch.float64)`` on a device tensor: it moves first (a same-dtype copy off MPS), then casts on a
    device that has float64 (``mps_tensor.to("cpu", torch.float64)`` fails too: that cast runs on the MPS
    side). Autograd flows through it, as through ``.to``."""
    t = torch.as_tensor(t)
    dev = float64_device(t.device)
    if dev != t.device:
        t = t.to(dev)  # move first (same dtype), then cast where float64 exists
    return t.to(device=dev, dtype=torch.float64)


def as_numpy(t) -> "numpy.ndarray":  # noqa: F821
    """A float64 numpy copy of ``t`` from any device (``.numpy()`` needs a CPU tensor; float64 after the move)."""
    return torch.as_tensor(t).detach().cpu().to(torch.float64).numpy()


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
    """True when ``COURSE_FAST`` is 1/true/yes/on (CI): step counts shrink, code paths do not.
    0/false/no/off or unset: False; any other value raises ValueError naming COURSE_FAST."""
    return env_flag(_FAST_ENV)


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
    ``$COURSE_THREADS`` empty or blank counts as unset; a value that is not a whole number >= 1 raises a
    ValueError naming COURSE_THREADS and its valid values (before any setting is changed).
    """
    n = env_threads() if n is None else check_int("n", n, min_value=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------
# Memory: estimate before allocating
# ----------------------------------------------------------------------------------------------
#: Without ``COURSE_MEMORY_MB``, a run may use this fraction of the memory available when it starts
#: (the rest is left to the notebook server, the browser, the figures and the estimate's error).
MEMORY_FRACTION = 0.5


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None  # "max" (cgroup v2: no limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """The container's memory limit minus its usage (cgroup v2, then v1), or None where there is no limit."""
    for limit_path, usage_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit = _read_int(limit_path)
        if limit is not None and limit < 1 << 60:  # v1 reports "no limit" as ~2^63
            usage = _read_int(usage_path) or 0
            return max(limit - usage, 0)
    return None


def available_memory() -> int | None:
    """Bytes of host memory this process can still allocate, or None where it cannot be told.

    Linux: MemAvailable from /proc/meminfo, capped by the container's cgroup limit minus its usage (a 2 GB
    Binder or JupyterHub pod: the host may have far more than the pod may use). Elsewhere psutil's
    ``virtual_memory().available`` when psutil is installed, else ``os.sysconf`` (free pages, or half of
    the physical memory where free pages are not reported, e.g. macOS).
    """
    candidates = [v for v in (_meminfo_available(), _cgroup_room()) if v is not None]
    if not candidates:
        try:
            import psutil  # optional: not a dependency of the course

            candidates.append(int(psutil.virtual_memory().available))
        except ImportError:
            try:
                page = os.sysconf("SC_PAGE_SIZE")
                try:
                    candidates.append(os.sysconf("SC_AVPHYS_PAGES") * page)
                except (ValueError, OSError):
                    candidates.append(os.sysconf("SC_PHYS_PAGES") * page // 2)
            except (ValueError, OSError, AttributeError):
                return None
    return min(candidates)


def memory_budget(device=None) -> tuple[int | None, str]:
    """(bytes a run may allocate, how that was decided). ``$COURSE_MEMORY_MB`` when set; else
    :data:`MEMORY_FRACTION` of :func:`available_memory` (of the free memory of the GPU for a CUDA device);
    (None, ...) when neither is known (no check is made then)."""
    mb = env_float(_MEMORY_ENV, None)
    if mb is not None:
        return int(mb * 2**20), f"${_MEMORY_ENV}={mb:g}"
    if device is not None and torch.device(device).type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(torch.device(device))
        except Exception:  # noqa: BLE001 - no driver: fall back to the host's memory
            pass
        else:
            return int(MEMORY_FRACTION * free), f"{MEMORY_FRACTION:.0%} of the {format_bytes(free)} free on {device}"
    avail = available_memory()
    if avail is None:
        return None, "unknown (set COURSE_MEMORY_MB to check)"
    return int(MEMORY_FRACTION * avail), f"{MEMORY_FRACTION:.0%} of the {format_bytes(avail)} available now"


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    n = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"  # pragma: no cover


def check_memory(need: float, what: str, *, device=None, fix: str = "") -> None:
    """Refuse, before allocating, a computation whose estimated need exceeds :func:`memory_budget`.

    ``what`` names the computation and its sizes (width, ensemble, n ...), ``fix`` what to reduce. Raises
    ValueError with the estimate, the budget and where the budget comes from; returns None if it fits or
    the budget is unknown.
    """
    budget, source = memory_budget(device)
    if budget is None or need <= budget:
        return
    hint = fix or "use smaller sizes"
    raise ValueError(f"{what} needs about {format_bytes(need)} of memory, more than the budget of "
                     f"{format_bytes(budget)} ({source}). {hint[0].upper() + hint[1:]}; or, if this machine "
                     f"really has the memory, raise the budget with {_MEMORY_ENV}.")


def info() -> dict[str, str]:
    """Versions and devices, as shown by ``python -m course_lib info`` and the tour lesson. A bad environment
    knob raises its ValueError here first (:func:`check_environment`)."""
    import platform

    import matplotlib
    import numpy

    check_environment()
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
    budget, source = memory_budget()
    out["memory budget"] = f"{format_bytes(budget) if budget is not None else 'none'} ({source})"
    if torch.cuda.is_available():
        out["cuda device"] = torch.cuda.get_device_name(0)
    try:
        import ipywidgets

        out["ipywidgets"] = ipywidgets.__version__
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        pass
    return out
