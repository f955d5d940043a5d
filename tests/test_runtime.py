"""Tests of course_lib.runtime: device choice, seeding, fast mode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import fast_mode, get_device, make_generator, runtime, scaled_steps
from course_lib.models import TwoLayer


def best_available() -> str:
    """The documented priority: cuda, then mps, then cpu (queried from torch directly)."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def test_default_device_is_best_available(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = get_device()
    assert isinstance(dev, torch.device)
    assert dev.type == best_available()  # "cpu" on the course's CPU-only machine
    monkeypatch.setenv("COURSE_DEVICE", "   ")  # blank means unset
    assert get_device().type == best_available()


def test_default_device_prefers_cuda(monkeypatch):
    # priority cuda > mps > cpu: pretend CUDA is there (a torch.device object needs no driver)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


def test_explicit_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_environment_override_and_explicit_wins(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    # an explicit argument wins over the environment, even when the environment names a bad device
    monkeypatch.setenv("COURSE_DEVICE", "not-a-device")
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"\$COURSE_DEVICE"):
        get_device()


def test_models_follow_the_device_choice(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    p = TwoLayer(4).init(3)
    assert p["W"].device.type == "cpu" and p["a"].device.type == "cpu"


def test_available_devices_lists_cpu():
    devs = runtime.available_devices()
    assert devs[0] == "cpu"
    assert ("cuda" in devs) == torch.cuda.is_available()


def test_make_generator_determinism():
    a = torch.randn(5, generator=make_generator(123))
    b = torch.randn(5, generator=make_generator(123))
    c = torch.randn(5, generator=make_generator(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the same stream as a plain CPU generator seeded with the same value (reproducible across devices)
    ref = torch.randn(5, generator=torch.Generator(device="cpu").manual_seed(123))
    assert torch.equal(a, ref)
    g = make_generator(123)
    assert g.device.type == "cpu"


def test_make_generator_passes_generators_through():
    g = torch.Generator().manual_seed(7)
    assert make_generator(g) is g
    first = torch.randn(3, generator=make_generator(g))
    second = torch.randn(3, generator=make_generator(g))
    assert not torch.equal(first, second)  # the state is shared, not reset


def test_make_generator_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.randn(4)
    torch.manual_seed(0)
    make_generator(5)
    TwoLayer(8).init(3, seed=5)
    assert torch.equal(torch.randn(4), expected)


@pytest.mark.parametrize("value,expected", [
    ("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("", False), ("  ", False), ("no", False), ("false", False), ("off", False),
])
def test_fast_mode_values(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_FAST", value)
    assert fast_mode() is expected


@pytest.mark.parametrize("value", ["2", "abc", "fast", "1.0"])
def test_fast_mode_bad_value_names_the_variable(monkeypatch, value):
    # a value that is neither yes nor no used to read as "no" silently
    monkeypatch.setenv("COURSE_FAST", value)
    with pytest.raises(ValueError, match=r"^\$COURSE_FAST=.*COURSE_FAST must be 1, true, yes or on"):
        fast_mode()


def test_fast_mode_unset(monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    assert fast_mode() is False


@pytest.mark.parametrize("steps", [0, 5, 10, 50, 99, 100, 1000, 12345])
@pytest.mark.parametrize("factor,minimum", [(10, 10), (4, 3), (1, 0)])
def test_scaled_steps(monkeypatch, steps, factor, minimum):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    assert scaled_steps(steps, factor=factor, minimum=minimum) == steps  # normal mode: unchanged
    monkeypatch.setenv("COURSE_FAST", "1")
    fast = scaled_steps(steps, factor=factor, minimum=minimum)
    # documented rule: max(minimum, steps // factor), never more than the full run
    assert fast == min(steps, max(minimum, steps // factor))
    assert isinstance(fast, int)
    assert fast <= steps
    assert fast >= min(steps, minimum)


def test_scaled_steps_defaults(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert scaled_steps(1000) == 1000 // 10  # factor 10 by default
    assert scaled_steps(30) == 10  # minimum 10 by default
    monkeypatch.setenv("COURSE_FAST", "0")
    assert scaled_steps(1000) == 1000


def test_info_reports_device_and_fast_mode(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setenv("COURSE_FAST", "1")
    info = runtime.info()
    assert info["device"] == str(get_device())
    assert info["fast mode"] == "True"
    assert info["torch"] == torch.__version__


def test_torch_threads_sets_and_restores(monkeypatch):
    import torch

    from course_lib.runtime import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv("COURSE_THREADS", "2")
    with torch_threads():
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with torch_threads(0):
            pass


@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_torch_threads_blank_env_means_unset(monkeypatch, value):
    # like an empty COURSE_DEVICE: blank is "not set", the default is one thread
    before = torch.get_num_threads()
    monkeypatch.setenv("COURSE_THREADS", value)
    with runtime.torch_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "2 threads"])
def test_torch_threads_bad_env_names_the_variable_and_restores(monkeypatch, value):
    before = torch.get_num_threads()
    monkeypatch.setenv("COURSE_THREADS", value)
    with pytest.raises(ValueError) as err:
        with runtime.torch_threads():
            pass  # pragma: no cover - never entered
    msg = str(err.value)
    # one message: the variable, its value and its valid values, early enough to survive truncation
    assert msg.startswith(f"$COURSE_THREADS={value!r} is not valid")
    assert "whole number of torch threads >= 1" in msg
    assert torch.get_num_threads() == before  # nothing was changed


def test_every_environment_read_goes_through_runtime(root):
    # one place parses the knobs: no other course_lib module reads os.environ / os.getenv for a COURSE_ knob
    import pathlib
    import re

    offenders = []
    for path in pathlib.Path(root, "course_lib").rglob("*.py"):
        if path.name in ("runtime.py",):
            continue
        text = path.read_text()
        for m in re.finditer(r"os\.(environ\.get|getenv|environ\[)\(?\s*[\"']COURSE_\w+", text):
            offenders.append(f"{path.relative_to(root)}: {m.group(0)}")
    # allowed: the grading worker's two limits (grading files; runtime.env_int parses them the same way), and
    # COURSE_SOURCE, read by the text of the notebooks' setup cell, which runs where course_lib is not installed
    allowed = ("course_lib/_grade_worker.py", 'course_lib/links.py: os.environ.get("COURSE_SOURCE')
    offenders = [o for o in offenders if not o.startswith(allowed)]
    assert offenders == []


def test_env_knobs_are_documented(root):
    import pathlib

    doc = pathlib.Path(root, "docs", "numerics.md").read_text()
    for name in runtime.ENV_KNOBS:
        assert name in doc, name


@pytest.mark.parametrize("name,value", [("COURSE_MEMORY_MB", "lots"), ("COURSE_MEMORY_MB", "0"),
                                        ("COURSE_MEMORY_MB", "-5"), ("COURSE_MEMORY_MB", "nan"),
                                        ("COURSE_DEVICE", "gpu0"), ("COURSE_FAST", "maybe"), ("COURSE_THREADS", "x")])
def test_check_environment_reports_each_bad_knob(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=rf"\${name}="):
        runtime.check_environment()


def test_info_reports_a_bad_knob_first(monkeypatch):
    monkeypatch.setenv("COURSE_MEMORY_MB", "lots")
    with pytest.raises(ValueError, match=r"^\$COURSE_MEMORY_MB='lots' is not valid: COURSE_MEMORY_MB must be a memory budget"):
        runtime.info()


def test_check_environment_values(monkeypatch):
    for name in runtime.ENV_KNOBS:
        monkeypatch.delenv(name, raising=False)
    assert runtime.check_environment() == {}
    monkeypatch.setenv("COURSE_MEMORY_MB", " 512 ")
    monkeypatch.setenv("COURSE_THREADS", "3")
    monkeypatch.setenv("COURSE_FAST", "off")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.check_environment() == {"COURSE_DEVICE": "cpu", "COURSE_FAST": False, "COURSE_THREADS": 3,
                                           "COURSE_MEMORY_MB": 512.0}
    assert runtime.env_int("COURSE_GRADE_CPU_S", 120) == 120  # unset: the default


# ----------------------------------------------------------------------------------------------
# The float64 rule
# ----------------------------------------------------------------------------------------------
def test_float64_rule_moves_off_devices_without_float64(monkeypatch):
    assert runtime.supports_float64("cpu") and runtime.supports_float64("cuda")
    assert not runtime.supports_float64("mps")
    assert runtime.float64_device("mps") == torch.device("cpu")
    assert runtime.float64_device("cuda:1") == torch.device("cuda:1")  # a torch.device needs no driver
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.float64_device(None) == torch.device("cpu")
    assert runtime.placement(None, torch.float32) == torch.device("cpu")
    monkeypatch.setattr(runtime, "get_device", lambda device=None: torch.device("mps"))
    assert runtime.placement(None, torch.float64) == torch.device("cpu")  # float64 never goes to MPS
    assert runtime.placement(None, torch.float32) == torch.device("mps")


def test_to_float64_and_as_numpy():
    t = torch.arange(3, dtype=torch.float32, requires_grad=True)
    d = runtime.to_float64(t)
    assert d.dtype == torch.float64 and d.device.type == "cpu"
    d.sum().backward()  # autograd flows through, as through .to
    assert torch.equal(t.grad, torch.ones(3))
    same = torch.ones(2, dtype=torch.float64)
    assert runtime.to_float64(same) is same  # no copy when there is nothing to do
    a = runtime.as_numpy(t)
    assert a.dtype == np.float64 and a.tolist() == [0.0, 1.0, 2.0]


# ----------------------------------------------------------------------------------------------
# Memory budget
# ----------------------------------------------------------------------------------------------
def test_memory_budget_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_MEMORY_MB", "100")
    budget, source = runtime.memory_budget()
    assert budget == 100 * 2**20 and "COURSE_MEMORY_MB=100" in source
    runtime.check_memory(99 * 2**20, "a small run")  # fits: no error
    with pytest.raises(ValueError, match=r"^a big run needs about 200 MB of memory, more than the budget of 100 MB "
                                         r"\(\$COURSE_MEMORY_MB=100\)\. Use less; or"):
        runtime.check_memory(200 * 2**20, "a big run", fix="use less")


def test_memory_budget_default_is_a_fraction_of_what_is_available(monkeypatch):
    monkeypatch.delenv("COURSE_MEMORY_MB", raising=False)
    monkeypatch.setattr(runtime, "available_memory", lambda: 2 * 2**30)  # a 2 GB Binder
    budget, source = runtime.memory_budget()
    assert budget == int(runtime.MEMORY_FRACTION * 2 * 2**30) == 2**30
    assert "of the 2 GB available" in source
    monkeypatch.setattr(runtime, "available_memory", lambda: None)
    assert runtime.memory_budget()[0] is None
    runtime.check_memory(10**18, "anything")  # unknown budget: no check


def test_available_memory_reads_meminfo_and_cgroup(monkeypatch):
    # the container's limit wins over the host's free memory (Binder: 2 GB pod on a big host)
    monkeypatch.setattr(runtime, "_meminfo_available", lambda: 64 * 2**30)
    monkeypatch.setattr(runtime, "_cgroup_room", lambda: 2**30)
    assert runtime.available_memory() == 2**30
    monkeypatch.setattr(runtime, "_cgroup_room", lambda: None)
    assert runtime.available_memory() == 64 * 2**30


def test_cgroup_room(tmp_path, monkeypatch):
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("2147483648\n")
    usage.write_text("536870912\n")
    reads = {"/sys/fs/cgroup/memory.max": limit, "/sys/fs/cgroup/memory.current": usage}
    monkeypatch.setattr(runtime, "_read_int", lambda path: (int(reads[path].read_text().split()[0])
                                                            if path in reads and reads[path].read_text().strip() != "max"
                                                            else None))
    assert runtime._cgroup_room() == 2**31 - 2**29
    limit.write_text("max\n")  # cgroup v2 without a limit
    assert runtime._cgroup_room() is None


def test_format_bytes():
    assert runtime.format_bytes(512) == "512 bytes"
    assert runtime.format_bytes(1536) == "1.5 KB"
    assert runtime.format_bytes(2 * 2**30) == "2 GB"
    assert runtime.format_bytes(4.4e13) == "40 TB"
