"""Lesson dashboards: an experiment's controls, its claims in the status line, its figure, and time.

A :class:`Dashboard` drives one :class:`course_lib.experiment.Experiment`: its controls (made from the
experiment's :class:`~course_lib.experiment.Control` s), a status line listing the experiment's claims
(holds / fails / does not apply here, and why), the figure, and, for experiments that record a state
through time, a time control (Play linked to a step slider) with the state panel at step k and a
cursor at k on every curve panel.

The figure and the state panel are display outputs with a fixed display id (PNG, updated in place), so

* executed headless (nbclient, CI, ``jupyter nbconvert --execute``), the default setting runs once and
  its figure, and the state panel as small multiples at a few steps, are in the cell's output;
* in JupyterLab a control change (on release) or the Run button retrains and replaces the figure; long
  runs redraw a live curve every ``live_interval`` seconds; scrubbing the time slider replays recorded
  states (it never retrains) at a few hundredths of a second per frame;
* a dashboard displayed in several cells updates every copy (all outputs share the display id);
* an exception in a callback is shown in the notebook (status line in red, traceback in an Output
  widget), never only in a hidden log;
* tests drive it without a browser: ``dash.set(width=256)`` (or set a control's ``.value``),
  ``dash.show_step(k)``, and inspect ``dash.result``, ``dash.claims``, ``dash.png``, ``dash.state_png``,
  ``dash.error``, ``dash.timings``.
"""
from __future__ import annotations

import html
import time
import traceback
import uuid
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from . import plots
from .claims import status_html
from .plots import to_png
from .runtime import torch_threads


def log_slider(description: str, value: int, lo_exp: int, hi_exp: int, *, base: int = 2) -> W.SelectionSlider:
    """A slider over the powers base**lo_exp .. base**hi_exp (only valid widths are offered)."""
    options = [base**k for k in range(lo_exp, hi_exp + 1)]
    if value not in options:
        raise ValueError(f"value must be one of {options}; got {value}")
    return W.SelectionSlider(options=options, value=value, description=description, continuous_update=False,
                             style={"description_width": "initial"})


def int_slider(description: str, value: int, lo: int, hi: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
                       style={"description_width": "initial"})


def float_slider(description: str, value: float, lo: float, hi: float, step: float) -> W.FloatSlider:
    return W.FloatSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
                         readout_format=".3g", style={"description_width": "initial"})


def dropdown(description: str, value: str, options) -> W.Dropdown:
    return W.Dropdown(value=value, options=list(options), description=description, style={"description_width": "initial"})


FRAME_INTERVAL_MS = 150  # Play's pace: a frame redraws in ~0.04-0.1 s, so 150 ms keeps up


class Dashboard:
    """Wire an experiment's controls to its run, figure, claims and time control.

    Parameters
    ----------
    experiment : :class:`course_lib.experiment.Experiment`
    overrides : {setting: value}: where the controls start (validated against the controls)
    auto : rerun when a control changes (on release); the Run button always reruns
    live_interval : seconds between live redraws of a long run
    title : the header (default "Experiment <id>: <title>")

    TypeError if ``experiment`` is not an :class:`~course_lib.experiment.Experiment`.
    """

    def __init__(self, experiment, *, overrides: dict | None = None, title: str = "", auto: bool = True,
                 live_interval: float = 1.0):
        from .experiment import Experiment
        from .runtime import get_device

        if not isinstance(experiment, Experiment):
            raise TypeError(f"experiment must be a course_lib.experiment.Experiment; got {type(experiment).__name__}")
        device = get_device()
        note = experiment.gpu_note()
        experiment = experiment.on(device)  # on a GPU, larger settings are offered
        self.experiment = experiment
        start = experiment.settings(**(overrides or {}))
        self.controls = {k: c.widget(start[k]) for k, c in experiment.controls.items()}
        self._fixed = {k: start[k] for k in experiment.fixed}
        title = title or f"Experiment {experiment.id}: {experiment.title}"
        if note and device.type == "cuda":
            title += f"  (on this GPU, {note} are offered)"
        self.live_interval = live_interval
        self.result: Any = None
        self.run_record = None  # the latest course_lib.experiment.Run
        self.png: bytes | None = None
        self.state_png: bytes | None = None
        self.error: BaseException | None = None
        self.timings: list[dict[str, float]] = []
        self.frame_timings: list[float] = []
        self._ids = {"figure": f"course-fig-{uuid.uuid4().hex}", "state": f"course-state-{uuid.uuid4().hex}"}
        self._displayed = False
        self._last_live = 0.0
        self._busy = False
        self._scene = None
        self._state_scene = None
        self._alt = ""
        self.button = W.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run())
        self.status = W.HTML(value="")
        self.errors = W.Output(layout={"border": "0px"})
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = [W.HBox(list(self.controls.values())[i:i + 3]) for i in range(0, len(self.controls), 3)]
        self.widget = W.VBox(header + rows + [W.HBox([self.button]), self.status, self.errors])
        self.time_box = None
        if self.experiment.has_time:
            self.play = W.Play(value=0, min=0, max=1, step=1, interval=FRAME_INTERVAL_MS, description="play")
            self.time_slider = W.SelectionSlider(options=[0, 1], value=1, description="step k",
                                                 continuous_update=True, style={"description_width": "initial"},
                                                 layout={"width": "420px"})
            W.jslink((self.play, "value"), (self.time_slider, "index"))
            self.time_slider.observe(self._on_step, names="value")
            self.time_box = W.HBox([self.play, self.time_slider])
        if auto:
            for c in self.controls.values():
                c.observe(lambda change: self.run(), names="value")

    # -- the data flow --------------------------------------------------------------------------
    def spec(self) -> dict:
        return {**{name: c.value for name, c in self.controls.items()}, **self._fixed}

    def set(self, **values) -> Any:
        """Set controls without triggering a run per control, then run once. Returns the result."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; controls: {sorted(self.controls)}")
        self._busy = True
        try:
            for k, v in values.items():
                self.controls[k].value = v
        finally:
            self._busy = False
        return self.run()

    @property
    def claims(self) -> list:
        return list(self.run_record.claims) if self.run_record is not None else []

    def report(self):
        """The claims and key numbers of the figure on screen (the "numbers behind the figure")."""
        if self.run_record is None:
            raise RuntimeError("the dashboard has not run yet" + (f": {self.error}" if self.error else ""))
        return self.run_record.report()

    def run(self) -> Any:
        """Compute and redraw for the current controls; errors are shown, not raised."""
        if self._busy:
            return self.result
        self._busy = True
        spec = self.spec()
        self.button.disabled = True
        self.status.value = "<i>running...</i>"
        t0 = time.perf_counter()
        try:
            self._last_live = t0
            with torch_threads():  # small networks: one thread, immune to oversubscription
                record = self.experiment.execute(spec, live=self._live)
                result = record.result
            t1 = time.perf_counter()
            fig = self.experiment.draw(result)
            self.result, self.run_record, self.error = result, record, None
            self._alt = record.alt_text()
            self._scene = None
            if self.experiment.has_time:
                self._scene = plots.with_cursor(fig)
                self.png = self._scene.png(None)
            else:
                self.png = to_png(fig)
            self._update("figure", self.png, self._alt)
            if self.time_box is not None:
                self._reset_time()
            t2 = time.perf_counter()
            self.timings.append({"compute_s": t1 - t0, "draw_s": t2 - t1, "total_s": t2 - t0})
            head = self.experiment.headline(result) if self.experiment.headline else ""
            text = status_html(record.claims, html.escape(head) if head else "")
            self.status.value = f"{text} <span style='color:grey'>({t2 - t0:.2f} s)</span>"
            self.errors.clear_output()
        except Exception as exc:  # noqa: BLE001 - a lesson must show its errors, not die silently
            self.error = exc
            msg = str(exc) if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:crimson'><b>Error:</b> {html.escape(msg)}</span>"
            self.errors.clear_output()
            with self.errors:
                print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)))
        finally:
            self.button.disabled = False
            self._busy = False
        return self.result

    def _live(self, partial) -> None:
        now = time.perf_counter()
        if now - self._last_live >= self.live_interval and self._displayed:
            self._last_live = now
            fig = self.experiment.draw(partial)
            self._update("figure", to_png(fig), "training...")

    # -- time -------------------------------------------------------------------------------------
    def frames(self) -> list[int]:
        exp = self.experiment
        if exp is None or not exp.has_time or self.result is None:
            return []
        if exp.frames is not None:
            return [int(k) for k in exp.frames(self.result)]
        raise ValueError(f"experiment {exp.id} has a state panel but no frames function")

    def _reset_time(self) -> None:
        """After a run: the slider offers the new run's recorded steps and rests on the last one."""
        frames = self.frames()
        self._state_scene = None
        self._busy_time = True
        try:
            self.time_slider.options = frames
            self.time_slider.value = frames[-1]
            self.play.max = len(frames) - 1
            self.play.value = len(frames) - 1
        finally:
            self._busy_time = False
        self.show_step(frames[-1], cursor=False)

    def _on_step(self, change) -> None:
        if getattr(self, "_busy_time", False) or self.result is None:
            return
        try:
            self.show_step(change["new"])
        except Exception as exc:  # noqa: BLE001 - shown, like a run's errors
            self.error = exc
            self.status.value = f"<span style='color:crimson'><b>Error:</b> {html.escape(str(exc))}</span>"

    def show_step(self, step: int, *, cursor: bool = True) -> bytes:
        """Draw the state panel at the recorded step nearest to ``step`` (and the cursor there); returns its PNG."""
        frames = self.frames()
        if not frames:
            raise ValueError("this dashboard has no recorded run to replay yet")
        if not frames[0] <= step <= frames[-1]:
            raise ValueError(f"step must be between {frames[0]} and {frames[-1]} (the run's recorded steps); got {step}")
        step = min(frames, key=lambda k: abs(k - step))
        t0 = time.perf_counter()
        if self._state_scene is None:
            self._state_scene = plots.state_scene(self.experiment.state, self.result, step)
        self.state_png = self._state_scene.png(step)
        self._update("state", self.state_png, f"{self.experiment.title}: the state panel at step {step}")
        if cursor and self._scene is not None:
            self.png = self._scene.png(step)
            self._update("figure", self.png, self._alt)
        if self.time_slider.value != step:
            self._busy_time = True
            try:
                self.time_slider.value = step
            finally:
                self._busy_time = False
        self.frame_timings.append(time.perf_counter() - t0)
        return self.state_png

    def small_multiples_png(self) -> bytes | None:
        """The state panel at the experiment's key steps, side by side (the static view of the motion)."""
        exp = self.experiment
        if exp is None or not exp.has_time or self.result is None:
            return None
        steps = exp.key_steps(self.result) if exp.key_steps else self.frames()[:: max(1, len(self.frames()) // 3)]
        return to_png(plots.small_multiples(exp.state, self.result, steps))

    # -- display ----------------------------------------------------------------------------------
    def _metadata(self) -> dict:
        """The claims of the figure on screen, carried in the output's metadata (the static site's index reads them)."""
        if self.run_record is None:
            return {}
        return {"course": {"experiment": self.experiment.id, "title": self.experiment.title,
                           "claims": [c.to_dict() for c in self.run_record.claims]}}

    def _update(self, which: str, png: bytes, alt: str) -> None:
        if not self._displayed:
            return
        from IPython.display import Image, update_display

        meta = self._metadata() if which == "figure" else {}
        update_display(Image(data=png, format="png", alt=alt), display_id=self._ids[which], metadata=meta)

    def _ipython_display_(self):
        from IPython.display import Image, display

        display(self.widget)
        if self.result is None and self.error is None:
            self.run()
        fig = Image(data=self.png, format="png", alt=self._alt) if self.png is not None else W.HTML("")
        display(fig, display_id=self._ids["figure"], metadata=self._metadata())
        if self.time_box is not None:
            display(self.time_box)
            multiples = self.small_multiples_png() if self.result is not None else None
            state = W.HTML("")
            if multiples is not None:
                steps = list(self.experiment.key_steps(self.result)) if self.experiment.key_steps else "a few steps"
                state = Image(data=multiples, format="png",
                              alt=f"{self.experiment.title}: the state panel at steps {steps} of the run, side by side")
            display(state, display_id=self._ids["state"])
        self._displayed = True
