"""Plot helpers shared by the lessons.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state, so nothing leaks between
widget updates and nothing displays twice); :func:`to_png` renders one to PNG bytes for display or
for ``reproduce``. Conventions (COURSE_DESIGN.md section 8): measured is solid, theory is dashed,
everywhere; colours come from the colour-blind-safe Okabe-Ito palette and are never the only cue
(line style or marker too); log axes that span under two decades keep labelled ticks (1, 2, 5 x 10^k).

Time: :class:`Scene` redraws only a figure's moving parts (matplotlib blitting), so a time slider can
replay a run at a few hundredths of a second per frame; :func:`state_scene` and :func:`small_multiples`
draw an experiment's state panel at one step or at a few.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

THEORY_STYLE = dict(color="black", linestyle="--", linewidth=1.5)
BOUND_STYLE = dict(color="grey", linestyle=":", linewidth=1.5)
# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def color(i: int) -> str:
    """The i-th colour of the course's palette (Okabe-Ito, cycling)."""
    return OKABE_ITO[i % (len(OKABE_ITO) - 1)]  # black is kept for theory lines


def marker(i: int) -> str:
    """The i-th marker: pair it with :func:`color` so that colour is never the only cue."""
    return MARKERS[i % len(MARKERS)]


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.6, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    """A figure and a flat array of its axes, sized for a notebook cell."""
    # Fixed margins rather than layout="constrained": the layout engine costs ~0.2 s per draw,
    # a fifth of a widget's 1 s budget (measured on the 2-core course machine).
    import matplotlib

    fig = Figure(figsize=(width * ncols, height * nrows))
    # a fixed title position: matplotlib's automatic placement measures every tick label at each draw
    with matplotlib.rc_context({"axes.titley": 1.0}):
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    fig.subplots_adjust(left=0.1 / ncols + 0.02, right=0.98, bottom=0.14 / nrows + 0.01, top=1 - 0.09 / nrows,
                        wspace=0.3, hspace=0.4)
    return fig, axes


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow10_label(value, _pos=None) -> str:
    """10⁻⁴ and 2×10⁻⁴ in plain unicode (mathtext parsing of $10^{-4}$ labels was a third of a redraw)."""
    if value <= 0:
        return ""
    e = int(np.floor(np.log10(value) + 1e-9))
    mant = value / 10.0**e
    if abs(mant - round(mant)) > 1e-6 * mant:
        if 1 <= value < 1e6 and value == int(value):  # a tick placed at a count (a width 1024): the number itself
            return str(int(value))
        return f"{value:.3g}"
    mant = int(round(mant))
    if -2 <= e <= 3:  # 0.01 .. 9000 read better as plain numbers
        return f"{value:g}"
    power = "10" + str(e).translate(_SUPERSCRIPT)
    return power if mant == 1 else f"{mant}×{power}"


def fast_log_axes(fig: Figure) -> Figure:
    """Cheaper, readable log axes for every figure the course renders: unicode tick labels, no minor
    ticks (building ~200 minor tick objects per figure was another third of a redraw), and, on an axis
    spanning under two decades, labelled ticks at 1, 2 and 5 x 10^k so that it never shows one label
    or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(lim())
            span = np.log10(hi / lo) if lo > 0 and hi > 0 else np.inf
            if span < 2:
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span > 0.7 else
                                                  (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
            axis.set_major_formatter(FuncFormatter(_pow10_label))
            axis.set_minor_locator(NullLocator())
    return fig


def time_axis(ax):
    """Mark ``ax`` as drawn against the training step: the time control puts its cursor there."""
    ax.set_gid("course-time-axis")
    return ax


def to_png(fig: Figure, dpi: int = 96) -> bytes:
    """Render a figure to PNG bytes (dpi 96: legend text stays legible; the draw time barely depends on it)."""
    buf = io.BytesIO()
    fast_log_axes(fig).savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save(fig: Figure, path: str, dpi: int = 110) -> str:
    fast_log_axes(fig).savefig(path, dpi=dpi)
    return path


def finite_part(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop non-finite and non-positive values (diverged or exactly zero) before a log plot."""
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0)
    return np.asarray(steps)[keep], values[keep]


def plot_curves(ax, steps, values, *, labels=None, logy: bool = True, cmap: str | None = "viridis", **kw):
    """One line per network (column of ``values``, shape (records, E)), NaN-safe on log axes.
    ``cmap=None``: the course's palette (Okabe-Ito) instead of a colour map."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    E = values.shape[1]
    colors = [color(e) for e in range(E)] if cmap is None else _colors(E, cmap)
    for e in range(E):
        s, v = finite_part(steps, values[:, e]) if logy else (np.asarray(steps), values[:, e])
        ax.plot(s, v, color=colors[e], label=None if labels is None else labels[e], **kw)
    if logy:
        ax.set_yscale("log")


def plot_theory(ax, steps, values, label: str = "theory", style=None):
    s, v = finite_part(steps, values)
    ax.plot(s, v, label=label, **(style or THEORY_STYLE))


def mark_divergence(ax, history) -> None:
    """Write the divergence message on the axes (instead of drawing NaNs)."""
    if history.diverged:
        ax.text(0.02, 0.02, "diverged: " + history.message.split(";")[0].replace("Training diverged: ", ""),
                transform=ax.transAxes, fontsize=8, color="crimson", wrap=True, va="bottom")


def _colors(n: int, cmap: str):
    import matplotlib

    cm = matplotlib.colormaps[cmap]
    return [cm(x) for x in np.linspace(0.1, 0.85, max(n, 1))]


# ----------------------------------------------------------------------------------------------
# Time: replaying a run frame by frame
# ----------------------------------------------------------------------------------------------
class Scene:
    """A figure rendered once, whose moving artists are redrawn per frame (blitting).

    ``update(step)`` sets the moving artists' data for ``step`` and returns them; they are marked
    animated, the rest of the figure is drawn once as a background, and :meth:`png` restores the
    background and draws only them: about 0.04 s a frame where a full redraw takes 0.3-0.5 s.
    The figure's axis limits must not depend on the step (set them from the whole run).
    """

    def __init__(self, fig: Figure, update, *, dpi: int = 96, first=None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.fig, self.update = fig, update
        fig.set_dpi(dpi)
        fast_log_axes(fig)
        self.canvas = FigureCanvasAgg(fig)
        self.artists = list(update(first)) if first is not None else []
        for a in self.artists:
            a.set_animated(True)
        self.canvas.draw()  # animated artists are left out of the background
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        self.step = first

    def png(self, step) -> bytes:
        """The figure at ``step`` as PNG bytes (``step=None``: the background alone, no moving parts)."""
        from PIL import Image

        arts = list(self.update(step)) if step is not None else []
        for a in arts:
            if not a.get_animated():
                a.set_animated(True)
        self.canvas.restore_region(self.background)
        for a in arts:
            self.fig.draw_artist(a)
        self.step = step
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        return buf.getvalue()


def with_cursor(fig: Figure, first_step=None) -> Scene:
    """A :class:`Scene` of ``fig`` with a vertical cursor on every axis marked by :func:`time_axis`."""
    axes = [ax for ax in fig.axes if ax.get_gid() == "course-time-axis"]
    # vermillion and thick enough to stay visible on the axis spine at the first and last step
    lines = [ax.axvline(0, color="#D55E00", linewidth=2.0, alpha=0.8, linestyle="-", zorder=10) for ax in axes]
    for ln in lines:  # never part of the background: without a step (a static figure) there is no cursor
        ln.set_animated(True)

    def update(step):
        for ln in lines:
            x = step
            if step <= 0 and ln.axes.get_xscale() == "log":  # step 0 has no place on a log axis: its left edge
                x = min(ln.axes.get_xlim())
            ln.set_xdata([x, x])
        return lines

    return Scene(fig, update, first=first_step if lines else None)


STATE_SIZE = (4.8, 3.4)


def state_scene(state, result, first_step) -> Scene:
    """The state panel of an experiment (``state(ax, result) -> update``) as a Scene, with the step shown."""
    fig, (ax,) = new_figure(1, width=STATE_SIZE[0], height=STATE_SIZE[1])
    fig.subplots_adjust(left=0.16, bottom=0.15, right=0.96, top=0.86)
    inner = state(ax, result)
    label = fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=10, fontweight="bold", color="black")

    def update(step):
        label.set_text(f"step {step}")
        return [*inner(step), label]

    return Scene(fig, update, first=first_step)


def small_multiples(state, result, steps, *, title: str = "") -> Figure:
    """The state panel drawn at each of ``steps`` side by side (how the static course shows motion)."""
    steps = list(steps)
    fig, axes = new_figure(len(steps), width=STATE_SIZE[0] * 0.85, height=STATE_SIZE[1])
    fig.subplots_adjust(left=0.08 / len(steps) + 0.04, right=0.98, bottom=0.15, top=0.86, wspace=0.4)
    for i, (ax, k) in enumerate(zip(axes, steps)):
        state(ax, result)(k)
        ax.set_title(f"step {k}", fontsize=9)
        if i > 0 and ax.get_legend() is not None:  # one legend is enough for a row of the same panel
            ax.get_legend().remove()
    if title:
        fig.suptitle(title, fontsize=10, y=0.99)
    return fig
