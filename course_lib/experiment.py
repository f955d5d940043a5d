"""The experiment protocol: what every lesson experiment provides, and what drives it.

A lesson experiment is a spec -> result computation plus the ways to look at the result:

* ``run(**settings, live=None) -> result``      train / compute (``live(partial)`` redraws long runs)
* ``draw(result) -> Figure``                    the figure, theory dashed on the measurement
* ``claims(result) -> list[Claim]``             every "What to notice" statement, decided by this run
* ``numbers(result) -> dict``                   key numbers (the "numbers behind the figure")
* ``state(ax, result) -> update(step)``         optional: the state panel at step k (time control)

:class:`Experiment` bundles them with declarative :class:`Control` s (the valid values of each
setting), so that one generic driver serves every lesson: the :class:`course_lib.widgets.Dashboard`,
``python -m course_lib reproduce``, the static site and the tests (defaults, the settings the text
invites, and a sweep over each control's range). A lesson module holds only its science.

    exp = tour.EXPERIMENT
    run = exp.execute(width=64)        # a Run: result, claims, settings, seconds
    run.claims[0].verdict              # "holds" / "fails" / "does not apply"
    run.figure(); run.report()         # the figure; the claims and numbers tables
    exp.dashboard(width=256)           # the widget, starting at width 256
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .claims import Claim, Report, claims_text

# ----------------------------------------------------------------------------------------------
# Controls: the valid values of one setting, as data (widgets and sweeps are made from them)
# ----------------------------------------------------------------------------------------------
KINDS = ("select", "dropdown", "int", "float", "toggle", "multi")


@dataclass(frozen=True)
class Control:
    """One setting a learner can change, with its valid values.

    kind : "select" (a slider over ``options``, e.g. powers of 2), "dropdown", "int", "float"
        (slider from ``lo`` to ``hi`` by ``step``), "toggle" (a checkbox), "multi" (a subset of ``options``)
    label : what the widget shows
    value : the default
    gpu : extra options ("select"/"dropdown") or a higher ``hi`` ("int"/"float") offered only when the course
        runs on a GPU, where larger settings answer within the budget (see :meth:`on`)
    """

    kind: str
    label: str
    value: Any
    options: tuple = ()
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    gpu: Any = None

    def on(self, device) -> "Control":
        """This control as offered on ``device``: with its GPU extension on a CUDA device, unchanged elsewhere."""
        import dataclasses

        import torch

        if self.gpu is None or torch.device(device).type != "cuda":
            return self
        if self.kind in ("select", "dropdown"):
            return dataclasses.replace(self, options=tuple(self.options) + tuple(self.gpu), gpu=None)
        return dataclasses.replace(self, hi=float(self.gpu), gpu=None)

    def gpu_note(self) -> str:
        """What a GPU adds to this control, in words ("" if nothing)."""
        if self.gpu is None:
            return ""
        more = f"up to {list(self.gpu)[-1]}" if self.kind in ("select", "dropdown") else f"up to {self.gpu}"
        return f"{self.label} {more}"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        if self.kind in ("int", "float"):
            if self.lo is None or self.hi is None or self.step is None or not self.lo < self.hi or self.step <= 0:
                raise ValueError(f"control {self.label!r}: needs lo < hi and step > 0; got {self.lo}, {self.hi}, {self.step}")
        object.__setattr__(self, "value", self.check(self.value))

    def values(self) -> list:
        """Every valid value, in order (for "multi": each single option and the default)."""
        if self.kind in ("select", "dropdown"):
            return list(self.options)
        if self.kind == "toggle":
            return [False, True]
        if self.kind == "multi":
            return [self.value] + [(o,) for o in self.options]
        count = int(round((self.hi - self.lo) / self.step))
        vals = [self.lo + i * self.step for i in range(count + 1)]
        return [int(round(v)) for v in vals] if self.kind == "int" else [round(v, 10) for v in vals]

    def positions(self) -> list:
        """The values a sweep visits: both ends, the middle and the default."""
        vals = self.values()
        if self.kind == "multi":
            return vals
        picks = [vals[0], vals[len(vals) // 2], vals[-1], self.value]
        out = []
        for v in picks:
            if v not in out:
                out.append(v)
        return out

    def check(self, value):
        """``value`` if valid; else ValueError naming the control and its valid values."""
        if self.kind in ("select", "dropdown"):
            if value not in self.options:
                raise ValueError(f"{self.label} must be one of {list(self.options)}; got {value!r}")
            return value
        if self.kind == "toggle":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{self.label} must be True or False; got {value!r}")
            return bool(value)
        if self.kind == "multi":
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            bad = [v for v in value if v not in self.options]
            if not value or bad:
                raise ValueError(f"{self.label} must be a non-empty selection from {list(self.options)}; got {value!r}")
            return value
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.label} must be a number in [{self.lo}, {self.hi}]; got {value!r}") from None
        if not (math.isfinite(v) and self.lo - 1e-9 <= v <= self.hi + 1e-9):
            raise ValueError(f"{self.label} must be in [{self.lo}, {self.hi}]; got {value!r}")
        return int(round(v)) if self.kind == "int" else v

    def widget(self, value=None):
        """The ipywidget for this control (training runs on release: ``continuous_update=False``)."""
        import ipywidgets as W

        value = self.value if value is None else self.check(value)
        style = {"description_width": "initial"}
        if self.kind == "select":
            return W.SelectionSlider(options=list(self.options), value=value, description=self.label,
                                     continuous_update=False, style=style)
        if self.kind == "dropdown":
            return W.Dropdown(options=list(self.options), value=value, description=self.label, style=style)
        if self.kind == "toggle":
            return W.Checkbox(value=value, description=self.label, indent=False)
        if self.kind == "multi":
            return W.SelectMultiple(options=list(self.options), value=tuple(value), description=self.label,
                                    rows=min(6, len(self.options)), style=style)
        if self.kind == "int":
            return W.IntSlider(value=value, min=int(self.lo), max=int(self.hi), step=int(self.step),
                               description=self.label, continuous_update=False, style=style)
        return W.FloatSlider(value=value, min=self.lo, max=self.hi, step=self.step, description=self.label,
                             continuous_update=False, readout_format=".3g", style=style)


def select(label: str, value, options, *, gpu=None) -> Control:
    """A slider over a fixed list of values (e.g. widths 8, 16, ..., 8192); ``gpu``: more values on a GPU."""
    return Control("select", label, value, tuple(options), gpu=tuple(gpu) if gpu is not None else None)


def dropdown(label: str, value, options) -> Control:
    return Control("dropdown", label, value, tuple(options))


def integer(label: str, value: int, lo: int, hi: int, step: int = 1, *, gpu: int | None = None) -> Control:
    return Control("int", label, value, lo=lo, hi=hi, step=step, gpu=gpu)


def real(label: str, value: float, lo: float, hi: float, step: float, *, gpu: float | None = None) -> Control:
    return Control("float", label, value, lo=lo, hi=hi, step=step, gpu=gpu)


def toggle(label: str, value: bool) -> Control:
    return Control("toggle", label, value)


def multi(label: str, value: Sequence, options) -> Control:
    return Control("multi", label, tuple(value), tuple(options))


def powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    """2**lo, ..., 2**hi (the usual width slider)."""
    return tuple(2**k for k in range(lo, hi + 1))


def log_frames(steps: Sequence[int], count: int = 60) -> list[int]:
    """About ``count`` of the recorded ``steps``, log-spaced (step 0 and the last step always included),
    so that a time slider gives frames to the fast early phase and to the slow late phase."""
    steps = np.unique(np.asarray(steps, dtype=np.int64))
    if len(steps) <= count:
        return steps.tolist()
    targets = np.unique(np.round(np.geomspace(1, steps[-1] + 1, count) - 1).astype(np.int64))
    idx = np.unique(np.clip(np.searchsorted(steps, targets), 0, len(steps) - 1))
    return sorted(set(steps[idx].tolist()) | {int(steps[0]), int(steps[-1])})


def log_record_steps(steps: int, count: int = 100) -> list[int]:
    """Steps to record for a run of ``steps`` steps: 0, ..., steps, log-spaced (for ``train(record_steps=...)``)."""
    if steps <= count:
        return list(range(steps + 1))
    pts = np.unique(np.round(np.geomspace(1, steps + 1, count) - 1).astype(np.int64))
    return sorted(set(pts.tolist()) | {0, steps})


# ----------------------------------------------------------------------------------------------
# Experiments and runs
# ----------------------------------------------------------------------------------------------
StateFn = Callable[[Any, Any], Callable[[int], Sequence[Any]]]


@dataclass(frozen=True)
class Experiment:
    """One experiment of a lesson: controls, computation, figure, claims (see the module docstring).

    id : "<lesson>.<number>", e.g. "1.1"; its claims' ids start with it
    run : fn(**settings, live=None) -> result
    draw : fn(result) -> matplotlib Figure (must also draw a partial result passed to ``live``)
    claims : fn(result) -> list of Claim; the same ids at every setting
    controls : {setting: Control}: what the dashboard offers, and the sweep's space
    fixed : settings passed to ``run`` that no control changes
    numbers : fn(result) -> {quantity: value}, the key numbers (plain floats, ints, strings, lists)
    floors : {quantity: floor} for :func:`course_lib.claims.fmt`
    headline : fn(result) -> str, a line above the claims in the status (plain text)
    state : fn(ax, result) -> update; update(step) draws the state at ``step`` on ax and returns the
        artists it changed (the time control's state panel); None for experiments without time
    frames : fn(result) -> steps the time control offers (recorded steps, log-spaced)
    key_steps : fn(result) -> the few steps drawn as small multiples when no one is scrubbing
    reproduce : {name: overrides} settings that ``reproduce`` draws (default: the defaults)
    paper : {name: overrides} the paper's own experiment (``reproduce N --paper``); settings may lie outside the
        controls' ranges (the paper's d, steps, seeds), so they are passed to ``run`` as they are
    paper_note : what ``paper`` is: "the paper's own setting (source)" or "the course's closest analogue: ..."
    alt : fn(result) -> a one-sentence description of the figure (its text alternative)
    """

    id: str
    title: str
    run: Callable[..., Any]
    draw: Callable[[Any], Any]
    claims: Callable[[Any], list[Claim]]
    controls: Mapping[str, Control] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    numbers: Callable[[Any], dict] | None = None
    floors: Mapping[str, float] = field(default_factory=dict)
    headline: Callable[[Any], str] | None = None
    state: StateFn | None = None
    frames: Callable[[Any], Sequence[int]] | None = None
    key_steps: Callable[[Any], Sequence[int]] | None = None
    reproduce: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"default": {}})
    paper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    paper_note: str = ""
    alt: Callable[[Any], str] | None = None

    @property
    def lesson(self) -> str:
        return self.id.split(".")[0]

    def on(self, device) -> "Experiment":
        """This experiment with its controls as offered on ``device`` (larger settings on a GPU)."""
        import dataclasses

        return dataclasses.replace(self, controls={k: c.on(device) for k, c in self.controls.items()})

    def gpu_note(self) -> str:
        """What a GPU adds to the controls, in words ("" if nothing)."""
        return "; ".join(n for n in (c.gpu_note() for c in self.controls.values()) if n)

    def defaults(self) -> dict:
        return {**{k: c.value for k, c in self.controls.items()}, **self.fixed}

    def settings(self, **overrides) -> dict:
        """The defaults with ``overrides``, each checked against its control's valid values."""
        unknown = set(overrides) - set(self.controls) - set(self.fixed)
        if unknown:
            raise ValueError(f"experiment {self.id}: unknown setting(s) {sorted(unknown)}; "
                             f"settings: {sorted(self.controls) + sorted(self.fixed)}")
        out = self.defaults()
        for k, v in overrides.items():
            out[k] = self.controls[k].check(v) if k in self.controls else v
        return out

    def execute(self, settings: Mapping[str, Any] | None = None, *, live=None, **overrides) -> "Run":
        """Run at ``settings`` (complete, e.g. from a dashboard) or at the defaults with ``overrides``."""
        spec = dict(settings) if settings is not None else self.settings(**overrides)
        t0 = time.perf_counter()
        result = self.run(**spec, live=live)
        claims = list(self.claims(result))
        return Run(self, spec, result, claims, time.perf_counter() - t0)

    def dashboard(self, **overrides):
        """The widget for this experiment, its controls starting at the defaults with ``overrides``."""
        from .widgets import Dashboard

        return Dashboard(self, overrides=overrides)

    @property
    def has_time(self) -> bool:
        return self.state is not None


@dataclass
class Run:
    """One execution of an experiment: its settings, result, claims and wall time."""

    experiment: Experiment
    settings: dict
    result: Any
    claims: list[Claim]
    seconds: float

    def claim(self, id: str) -> Claim:
        for c in self.claims:
            if c.id == id:
                return c
        raise KeyError(f"no claim {id!r} in experiment {self.experiment.id}; claims: {[c.id for c in self.claims]}")

    def numbers(self) -> dict:
        return dict(self.experiment.numbers(self.result)) if self.experiment.numbers else {}

    def figure(self):
        return self.experiment.draw(self.result)

    def report(self) -> Report:
        """The claims table and the key numbers table (what a notebook's numbers cell shows)."""
        return Report(self.claims, self.numbers(), floors=dict(self.experiment.floors))

    def alt_text(self) -> str:
        what = self.experiment.alt(self.result) if self.experiment.alt else self.experiment.title
        return f"{what}\n{claims_text(self.claims)}"

    def key_numbers(self) -> dict:
        """JSON-friendly: the settings, key numbers and claims (what ``reproduce`` writes)."""
        return {"experiment": self.experiment.id, "title": self.experiment.title, "settings": _plain(self.settings),
                "seconds": round(self.seconds, 3), "numbers": _plain(self.numbers()),
                "claims": [c.to_dict() for c in self.claims]}


def _plain(x):
    """Numbers, strings, lists and dicts only (numpy scalars/arrays converted, NaN -> None)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def claim_ids(experiments: Sequence[Experiment]) -> set[str]:
    """The ids the experiments' claims carry at their defaults (the same at every setting)."""
    return {c.id for e in experiments for c in e.execute().claims}
