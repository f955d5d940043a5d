"""What lesson 2's figures share: the rows' state panel (lengths against angles), the distance panel with each
network's own linearized prediction, stage shading, and the divergence note."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import LogLocator, NullLocator

from ... import plots
from ...experiment import log_frames
from .core import FLOOR32, rows

ANGLE_FLOOR = 1e-6  # radians; smaller angles are drawn on the axis' left edge
LENGTH_FLOOR = 1e-7  # |length ratio - 1| below this is drawn on the bottom edge


def fraction_text(res: dict) -> str:
    """η with its fraction of the GD stability limit 2/λ_max(H), when the Hessian is known."""
    if res.get("gd_limit"):
        return f"η = {res['lr']:.3g} ({res['lr'] / res['gd_limit']:.2g} × 2/λ_max(H))"
    return f"η = {res['lr']:.3g}"


def method_text(res: dict) -> str:
    if res["method"] == "gd":
        return "GD on the population loss"
    noise = f", label noise σ = {res['noise']:g}" if res.get("noise") else ""
    return f"SGD, batch {res['batch']}{noise}"


def divergence_note(ax, res: dict) -> None:
    """A short, complete note where a run diverged (the full message is in the status line)."""
    h = res["history"]
    if not h.diverged:
        return
    at = h.diverged_at[h.diverged_at >= 0]
    k, last = int(at.min()), int(at.max())
    n = len(at)
    if h.ensemble == 1:
        what = f"diverged at step {k}"
    elif k == last:
        what = f"{'all ' if n == h.ensemble else ''}{n} of {h.ensemble} networks diverged at step {k}"
    else:
        what = f"{n} of {h.ensemble} networks diverged, the first at step {k}, the last at step {last}"
    extra = ""
    if res.get("stable_step"):
        extra = f"\nη = {res['lr'] / res['stable_step']:.2g} × the stable step for {method_text(res)}"
    ax.text(0.03, 0.96, f"{what}{extra}", transform=ax.transAxes, fontsize=8,
            color="crimson", va="top", bbox=dict(facecolor="white", alpha=0.85, edgecolor="none"))


LOSS_FLOOR64 = 1e-16  # the closed-form loss is a difference of O(d^2) terms of size ~1: round-off from about here


def loss_floor(ax, values) -> None:
    """Mark float64's floor on a loss panel whose curves come near it (the loss below it is round-off)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.min() < 1e3 * LOSS_FLOOR64:
        ax.axhline(LOSS_FLOOR64, color="grey", lw=0.8, ls="-.", label="float64 round-off of L (about 10⁻¹⁶)")


def distance_panel(ax, res: dict, *, members=None, worst_member: int | None = 0, labels=None) -> None:
    """||W - W*||_F of each network (solid), its own linearized prediction from the start of its linear regime
    (dashed), the worst case max|1 - eta lambda|^k from the same point (dotted, one network), the noise floor
    (dashed, label noise only) and the float32 floor where the curves come near it."""
    h = res["history"]
    s = h.steps
    members = range(h.ensemble) if members is None else members
    for j, e in enumerate(members):
        sv, v = plots.finite_part(s, h["dist"][:, e])
        ax.plot(sv, v, color=plots.color(e), marker=plots.marker(e), markevery=max(1, len(sv) // 8), markersize=4,
                lw=1.4, label=None if labels is None else labels[j])
    pred = res.get("prediction")
    if pred is not None and not res.get("partial"):
        first = True
        for e in members:
            k0 = res["linear_start"][e]
            if k0 is None:
                continue
            keep = s >= k0
            if keep.sum() < 2:  # stage 3 starts at the last record: nothing to draw
                continue
            style = {**plots.THEORY_STYLE, "color": plots.color(e)} if len(members) > 1 else plots.THEORY_STYLE
            ax.plot(s[keep], np.maximum(pred[keep, e], 1e-300), **style,
                    label=("prediction: linearized SGD at W*, from the run's\nown error where stage 3 starts, with label noise"
                           if res.get("noise") and res["method"] == "sgd" else
                           "prediction: GD linearized at W*, from\nthe run's own error where stage 3 starts")
                    if first else None)
            first = False
        noisy = bool(res.get("noise")) and res["method"] == "sgd"
        if (worst_member is not None and res["linear_start"][worst_member] is not None and not noisy
                and int(np.searchsorted(s, res["linear_start"][worst_member])) < len(s) - 1):
            k0 = res["linear_start"][worst_member]
            i0 = int(np.searchsorted(s, k0))
            ks = s[i0:]
            ax.plot(ks, h["dist"][i0, worst_member] * res["worst_rate"] ** (ks - k0), **plots.BOUND_STYLE,
                    label=f"worst case max|1−ηλ(H)|ᵏ = {res['worst_rate']:.5f}ᵏ")
        floor = res.get("noise_floor", (0.0, 0.0))[0]
        if floor and np.isfinite(floor):
            ax.axhline(floor, **{**plots.THEORY_STYLE, "linewidth": 1.0}, label=f"predicted noise floor {floor:.2g}")
    lo = np.nanmin(h["dist"][h["dist"] > 0]) if np.any(h["dist"] > 0) else 1.0
    if res["method"] == "sgd" and lo < 30 * FLOOR32:
        ax.axhline(FLOOR32, color="grey", lw=0.8, ls="-.", label="float32 precision floor")
    ax.set(yscale="log", ylabel="‖W − W*‖ (Frobenius)", xlabel="step")
    readable_log(ax)


def shade_stages(ax, res: dict, member: int = 0, *, labels: bool = False) -> None:
    """Stage 1 (until g is fixed), stage 2 (the plateau, until the linear regime) and stage 3 as shaded spans."""
    k1 = (res.get("g_fixed") or [None])[member]
    k3 = (res.get("linear_start") or [None])[member]
    end = int(res["history"].steps[-1])
    spans = []
    if k1 is not None:
        spans.append((0, k1, 0, "1"))
        if k3 is None or k3 > k1:
            spans.append((k1, end if k3 is None else k3, 1, "2"))
    if k3 is not None:
        spans.append((k3, end, 2, "3"))
    for a, b, c, name in spans:
        ax.axvspan(max(a, 0), b, color=plots.color(c + 4), alpha=0.16, lw=0, zorder=0)
        if labels:  # above the panel, where no curve runs
            mid = np.sqrt(max(a, 1) * max(b, 1)) if b > 10 else 0.5 * (a + b)
            ax.text(mid, 1.01, f"stage {name}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7.5, clip_on=False)


def symlog_steps(ax, res: dict) -> None:
    end = max(res["history"].steps[-1], 1) * 1.05  # a run in progress may be at step 0
    ax.set_xscale("symlog", linthresh=10, linscale=0.6)
    ax.set_xlim(0, end)
    last = int(res["history"].steps[-1])
    ticks = [t for t in (0, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= end]
    if last > 10 and last / ticks[-1] > 1.6:  # the run's last step, where no round tick is near it
        ticks.append(last)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("step (linear to 10, log after)")


def readable_log(ax, axis: str = "y") -> None:
    """Labelled ticks at 1, 2, 5 x 10^k (or 1, 3 x 10^k) on a log axis spanning 2 to 4 decades, where the shared
    formatter would label only the powers of ten (two labels). Call after the data are drawn."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    if lo <= 0 or hi <= 0:
        return
    span = np.log10(hi / lo)
    if 2 <= span < 3:
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    elif 3 <= span < 4.5:
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))


# ----------------------------------------------------------------------------------------------
# The state at step k: each row u_i against the teacher's v_i
# ----------------------------------------------------------------------------------------------
def series(res: dict, members=None, *, color_offset: int = 0, label=None, hollow: bool = False) -> list[dict]:
    """The networks of one result as series for :func:`rows_state` (colour and marker per network)."""
    members = list(range(res["history"].ensemble)) if members is None else list(members)
    out = []
    for j, e in enumerate(members):
        lab = label(e) if callable(label) else label if len(members) == 1 else None
        out.append(dict(res=res, member=e, color=plots.color(e + color_offset), marker=plots.marker(e + color_offset),
                        hollow=hollow, label=lab))
    return out


def rows_state(ax, items: list[dict], *, info=None, legend_cols: int = 2):
    """Each row u_i of a first layer against the teacher's row v_i at step k: the angle between them (x) and the
    error of its length, |‖u_i‖/‖v_i‖ − 1| (y), one marker per row, one marker series per network (``items`` from
    :func:`series`). The teacher sits at the bottom-left corner. ``info(k) -> str`` writes a line of numbers.
    Axis limits come from the whole run, so that the axes stay put while k moves."""
    data = []
    for it in items:
        rw = rows(it["res"])
        ang = np.clip(rw["angle"][:, it["member"]], ANGLE_FLOOR, None)
        lerr = np.clip(np.abs(rw["length"][:, it["member"]] - 1), LENGTH_FLOOR, None)
        data.append((it["res"]["history"].steps, ang, lerr))
    allx = np.concatenate([a[np.isfinite(a)].ravel() for _, a, _ in data])
    ally = np.concatenate([b[np.isfinite(b)].ravel() for _, _, b in data])
    xmin, xmax = (max(allx.min() / 2, ANGLE_FLOOR / 2), allx.max() * 2) if len(allx) else (ANGLE_FLOOR, 1.0)
    ymin, ymax = (max(ally.min() / 2, LENGTH_FLOOR / 2), ally.max() * 3) if len(ally) else (LENGTH_FLOOR, 1.0)
    dots = []
    for it in items:
        kw = dict(facecolors="white", edgecolors=it["color"]) if it["hollow"] else dict(color=it["color"])
        dots.append(ax.scatter([np.nan], [np.nan], s=16, marker=it["marker"], alpha=0.85, label=it["label"], **kw))
    # room above the data for the step's numbers and the legend (about a third of the panel): they never cover a marker
    headroom = max(np.log10(12.0), 0.6 * np.log10(ymax / ymin))
    ax.set(xscale="log", yscale="log", xlim=(xmin, xmax), ylim=(ymin, ymax * 10**headroom),
           xlabel="angle between uᵢ and the teacher's vᵢ (rad)", ylabel="length error |‖uᵢ‖/‖vᵢ‖ − 1|")
    if any(it["label"] for it in items):
        ax.legend(fontsize=6.5, loc="upper left", ncol=legend_cols, bbox_to_anchor=(0.0, 0.83), handletextpad=0.2,
                  columnspacing=0.6, borderaxespad=0.2)
    text = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=7.5, va="top")

    def update(k: int):
        for dot, (s, ang, lerr) in zip(dots, data):
            i = min(int(np.searchsorted(s, k)), len(s) - 1)
            dot.set_offsets(np.column_stack([ang[i], lerr[i]]))
        text.set_text(info(k) if info is not None else "")
        return [*dots, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["history"].steps, 40)


def nearest(res: dict, k) -> int:
    s = res["history"].steps
    return int(s[int(np.argmin(np.abs(s - k)))])
