"""Runs too large for the learner's memory are refused before anything is allocated (issue 16).

A width that needs terabytes must be refused at once, with a ValueError naming the sizes and giving the
estimate and the budget; the sizes the lessons use must fit the budget of a 2 GB Binder.
"""
from __future__ import annotations

import re
import time

import pytest
import torch

from course_lib import kernels, runtime
from course_lib.models import DeepMLP, IdentityNet, TwoLayer, step_bytes
from course_lib.train import train

BINDER_MB = 750  # half of the ~1.5 GB a 2 GB Binder pod has free once the kernel and torch are loaded


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.delenv("COURSE_MEMORY_MB", raising=False)


def _refused(call) -> tuple[str, float]:
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        call()
    return str(err.value), time.perf_counter() - t0


def _need_bytes(msg: str) -> float:
    m = re.search(r"needs about ([\d.e+]+) (bytes|KB|MB|GB|TB|PB)", msg)
    assert m, msg
    return float(m.group(1)) * 1024 ** ("bytes KB MB GB TB PB".split().index(m.group(2)))


@pytest.mark.parametrize("budget", [None, "2048"])
def test_a_width_needing_terabytes_is_refused_at_once(monkeypatch, budget):
    if budget is not None:
        monkeypatch.setenv("COURSE_MEMORY_MB", budget)
    msg, seconds = _refused(lambda: TwoLayer(10**12).init(10))
    assert seconds < 1.0  # nothing was allocated
    assert msg.startswith("TwoLayer(width=1000000000000).init(d=10, ensemble=1)")
    assert "more than the budget of" in msg and "COURSE_MEMORY_MB" in msg and "smaller width or ensemble" in msg
    # the estimate: 1e12 x 11 parameters, float32 draws = 4 bytes each (same dtype: no second copy)
    assert _need_bytes(msg) == pytest.approx(4 * 11e12, rel=5e-3)
    assert " TB " in msg


def test_ensembles_and_other_models_are_checked_too():
    msg, seconds = _refused(lambda: TwoLayer(4096).init(100, ensemble=10**7))
    assert "ensemble=10000000" in msg and seconds < 1.0
    msg, _ = _refused(lambda: TwoLayer(1000).init(10, ensemble=10**5, dtype=torch.float64))
    # float32 draws, then a float64 copy: 12 bytes per parameter
    assert _need_bytes(msg) == pytest.approx(12 * 10**5 * 1000 * 11, rel=5e-3)
    msg, _ = _refused(lambda: DeepMLP([10**6, 10**6]).init(10))
    assert msg.startswith("DeepMLP(widths=[1000000, 1000000]).init(d=10, ensemble=1)")
    msg, _ = _refused(lambda: IdentityNet(10**6).init())
    assert msg.startswith("IdentityNet(d=1000000).init(ensemble=1)")


def test_training_working_set_is_checked_before_allocating():
    model = TwoLayer(100_000)
    params = model.init(2, seed=0)  # 1.2 MB of parameters: fine
    X = torch.zeros(1_000_000, 2)  # 8 MB of data: fine
    y = torch.zeros(1_000_000)
    msg, seconds = _refused(lambda: train(model, params, X, y, steps=1, lr=0.1))
    assert seconds < 1.0
    # n x width x ensemble activations: 2 x 1e6 x 1e5 float32 numbers for one evaluation of all networks
    assert msg.startswith("train(TwoLayer, width=100000, ensemble=1, n=1000000, method='gd')")
    assert _need_bytes(msg) >= 4 * 2 * 1e6 * 1e5
    msg, _ = _refused(lambda: kernels.empirical_gram(model, params, torch.zeros(20_000, 2)))
    assert msg.startswith("empirical_gram(width=100000, ensemble=1, n=20000)")


def test_data_of_impossible_size_is_refused():
    from course_lib import data

    msg, seconds = _refused(lambda: data.unit_sphere(10**9, 10**4))
    assert msg.startswith("unit_sphere(n=1000000000, d=10000)") and seconds < 1.0


def test_estimates_of_the_course_sizes_fit_a_binder(monkeypatch):
    """The largest sizes the lessons offer (widths up to 8192, ensembles of seeds, n up to a few hundred) fit
    the budget of a 2 GB Binder; and the estimate of a small run is of the size of its arrays."""
    monkeypatch.setenv("COURSE_MEMORY_MB", str(BINDER_MB))
    model = TwoLayer(8192)
    params = model.init(10, ensemble=16, seed=0)  # not refused
    assert step_bytes(model, params, 64) < BINDER_MB * 2**20 / 4
    X, y = torch.randn(64, 10), torch.randn(64)
    train(model, params, X, y, steps=0, lr=0.01, method="nag", momentum=0.9, progress=False)  # not refused
    deep = DeepMLP([512, 512, 512])
    p = deep.init(64, ensemble=8, seed=0)
    assert step_bytes(deep, p, 300) < BINDER_MB * 2**20 / 4
    train(deep, p, torch.randn(300, 64), torch.randn(300), steps=0, lr=0.01, progress=False)
    # the estimate counts what a step allocates: the chunked training step (pre-activations, activations and
    # phi' r: 3 x n x m per network, plus the W gradient) or evaluating all networks at once (2 x E x n x m)
    small = TwoLayer(100)
    ps = small.init(3, ensemble=2, seed=0)
    assert step_bytes(small, ps, 50) == 4 * (max(2 * 100 * (3 * 50 + 3), 2 * 2 * 50 * 100) + 2 * 2 * 50)


def test_unknown_budget_means_no_check(monkeypatch):
    monkeypatch.setattr(runtime, "available_memory", lambda: None)
    assert runtime.memory_budget() == (None, "unknown (set COURSE_MEMORY_MB to check)")
    TwoLayer(16).init(3)  # still works
