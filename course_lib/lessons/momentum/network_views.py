"""Experiments 6.1 and 6.5, the figures: the residual against its linearized prediction, the rates, the Gram
matrix's drift and top eigenvalue; the state panel (the residual's modes at step k)."""
from __future__ import annotations

import numpy as np

from ... import plots
from ...claims import fmt
from ...experiment import log_frames
from .core import COLORS, FLOAT32_FLOOR, LABELS, MARKERS, METHODS, SHORT, TOLERANCE
from .network import floor_level


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _title(ax, text: str) -> None:
    ax.set_title(text, y=1.01, fontsize=9)


def _method_handles():
    from matplotlib.lines import Line2D

    hs = [Line2D([], [], color=COLORS[m], marker=MARKERS[m], ms=4, lw=1.6, label=LABELS[m]) for m in METHODS]
    return hs


def draw(res: dict):
    fig, axes = plots.new_figure(2, 2, width=4.7, height=3.3)
    ax1, ax2, ax3, ax4 = axes
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.93, wspace=0.28, hspace=0.42)
    params = (f"η = {fmt(res['lr_fraction'])}/λmax(H∞) (ηλmax(H(0)) = {fmt(res['lr'] * float(res['lam0'][-1]))}), "
              f"β = {fmt(res['beta'])}, m = {res['width']}, {res['dataset']}")
    if res.get("partial"):
        for m, h in res["histories"].items():
            for i in range(h.ensemble):
                v = np.sqrt(2 * h["loss"][:, i])
                s, v = plots.finite_part(h.steps, v / v[0])
                ax1.plot(s, v, color="grey")
        ax1.set(yscale="log", xlabel="step k", ylabel="‖u − y‖ / ‖u(0) − y‖")
        _title(ax1, "training...")
        for ax in (ax2, ax3, ax4):
            ax.set_axis_off()
        return fig
    from matplotlib.lines import Line2D

    n0 = res["norm0"]
    floor = FLOAT32_FLOOR * res["y_norm"] / n0
    for m, r in res["runs"].items():
        s, v = plots.finite_part(r["steps"], r["norms"] / n0)
        ax1.plot(s, v, color=COLORS[m], lw=1.6, marker=MARKERS[m], markevery=max(1, len(s) // 10), ms=4)
        ax1.plot(r["steps"][r["fit_mask"]], r["norms"][r["fit_mask"]] / n0, color=COLORS[m], lw=6, alpha=0.22,
                 solid_capstyle="butt")
        k = np.arange(len(r["linearized"]))
        s, v = plots.finite_part(k, r["linearized"] / n0)
        ax1.plot(s, v, color=COLORS[m], lw=1.1, ls="--")
        if r["diverged"]:
            ax1.text(0.98, 0.98, f"{LABELS[m]} diverged", transform=ax1.transAxes, ha="right", va="top",
                     color="crimson", fontsize=8)
    levels = {m: floor_level(res, m) for m in res["runs"]}
    at_floor = [m for m, v in levels.items() if v is not None]
    top_floor = max([floor] + [levels[m] for m in at_floor])
    ax1.axhspan(1e-9, top_floor * 1.5, color="grey", alpha=0.18, lw=0)
    for m in at_floor:  # each method levels off at its own height: a tick in its colour at the right edge
        ax1.plot([res["steps"] * 0.97, res["steps"]], [levels[m]] * 2, color=COLORS[m], lw=3, solid_capstyle="butt")
    who = f"\nlevels off: {', '.join(f'{SHORT[m]} {fmt(levels[m], 2)}' for m in at_floor)}" if at_floor else ""
    ylo = max(1e-9, floor / 20)
    ax1.text(res["steps"] * 0.02, ylo * 1.5, "float32 round-off" + who, fontsize=7, color="dimgrey", va="bottom",
             bbox=dict(facecolor="white", alpha=0.6, lw=0, pad=1))
    ax1.set(yscale="log", ylim=(ylo, 30), xlim=(0, res["steps"]), xlabel="step k",
            ylabel="‖u − y‖ / ‖u(0) − y‖")
    hs = [h for h in _method_handles() if h.get_label() in [LABELS[m] for m in res["runs"]]]
    hs += [Line2D([], [], color="black", lw=1.1, ls="--", label="linearized on H(0)"),
           Line2D([], [], color="grey", lw=6, alpha=0.3, label="fitted window")]
    ax1.legend(handles=hs, fontsize=7, loc="upper right", ncol=2)
    _title(ax1, "residual: measured (solid) vs linearized on H(0) (dashed)")
    plots.time_axis(ax1)
    _draw_rates(ax2, res)
    # the Gram matrix during training: its drift and its top eigenvalue
    quarter = res["lambda0_inf"] / 4
    hi = [quarter]
    for m, r in res["runs"].items():
        s, v = plots.finite_part(r["gram_steps"], r["gram_drift"])
        ax3.plot(s, v, color=COLORS[m], marker=MARKERS[m], ms=3, lw=1.4)
        hi.extend(v.tolist())
    ax3.axhline(quarter, **plots.THEORY_STYLE)
    ax3.legend(handles=[Line2D([], [], **plots.THEORY_STYLE, label="λ₀/4, λ₀ = λmin(H∞): lesson 1's sufficient margin")],
               fontsize=7, loc="upper right")
    ax3.set(yscale="log", xlim=(0, res["steps"]), ylim=(min(hi) / 3 if min(hi) > 0 else 1e-4, max(hi) * 8),
            xlabel="step k", ylabel="‖H(k) − H(0)‖₂")
    _title(ax3, f"how far the Gram matrix moved (m = {res['width']})")
    plots.time_axis(ax3)
    tops = []
    for m, r in res["runs"].items():
        ax4.plot(r["gram_steps"], res["lr"] * r["gram_lambda_max"], color=COLORS[m], marker=MARKERS[m], ms=3, lw=1.4,
                 label=f"{SHORT[m]}: ηλmax(H(k))")
        tops.extend((res["lr"] * r["gram_lambda_max"]).tolist())
    lims = sorted({(round(r["limit"], 6), m) for m, r in res["runs"].items()})
    shown, handles = set(), []
    for lim, m in lims:
        if lim in shown:
            continue
        shown.add(lim)
        who = "/".join(SHORT[k] for k, r in res["runs"].items() if round(r["limit"], 6) == lim)
        ax4.axhline(lim, color=COLORS[m], ls="--", lw=1.2)
        handles.append((lim, Line2D([], [], color=COLORS[m], ls="--", lw=1.2, label=f"{who}: {lim:.3g}")))
    finite_tops = [t for t in tops if np.isfinite(t)] or [1.0]
    top = max(max(finite_tops), min(lim for lim, _ in lims)) * 1.35  # limits far above the curves: in the legend only
    for lim, h in handles:
        if lim > top:
            h.set_label(h.get_label() + " (above the axes)")
    handles = [h for _, h in handles]
    ax4.set(xlim=(0, res["steps"]), ylim=(min(finite_tops) * 0.6, top), xlabel="step k", ylabel="η λmax(H(k))  (solid)")
    ax4.legend(handles=handles, fontsize=7, loc="upper left", ncol=2, title="stability limits (dashed)",
               title_fontsize=7)
    _title(ax4, "η × the top eigenvalue of H(k), against each limit")
    plots.time_axis(ax4)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax3, ax4):  # fewer ticks: building tick labels was half of this figure's drawing time
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax4.yaxis.set_major_locator(MaxNLocator(5))
    fig.suptitle(params, fontsize=9, y=0.995)
    return fig


def _draw_rates(ax, res: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    ms = list(res["runs"])
    x = np.arange(len(ms))
    vals = []
    for i, m in enumerate(ms):
        r = res["runs"][m]
        ax.scatter([i], [r["measured_rate"]], s=70, color=COLORS[m], marker=MARKERS[m], zorder=4,
                   label="measured (fitted window)" if i == 0 else None)
        ax.scatter([i + 0.18], [r["linearized_rate"]], marker="x", s=45, color="black", zorder=5,
                   label="linearized on H(0), same window" if i == 0 else None)
        ax.hlines(r["predicted_rate_H0"], i - 0.3, i + 0.3, colors="black", lw=2, linestyles="--", zorder=3,
                  label="ρ on H(0) (k → ∞)" if i == 0 else None)
        ax.scatter([i - 0.18], [r["predicted_rate_HT"]], marker="D", s=30, facecolors="white", edgecolors="dimgrey",
                   zorder=4, label="ρ on H(T), the final Gram matrix" if i == 0 else None)
        vals += [r["measured_rate"], r["linearized_rate"], r["predicted_rate_H0"], r["predicted_rate_HT"]]
    finite = [v for v in vals if np.isfinite(v)]
    lo = min(finite) if finite else 0.5
    top = 1.06
    ax.set_ylim(lo - 0.8 * (top - lo), top)  # the lower part holds the legend
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_yticks([t for t in ax.get_yticks() if lo - 0.8 * (top - lo) <= t <= 1.0 + 1e-9])  # no tick above 1
    for i, m in enumerate(ms):
        r = res["runs"][m]
        n_tol = r["steps_to_tol"]
        txt = f"{fmt(r['measured_rate'], 4)}\n" + (f"not in {res['steps']} steps" if n_tol is None else f"{n_tol} steps")
        if r["diverged"]:
            txt = "diverged"
        ax.annotate(txt, (i, min(r["measured_rate"], top) if np.isfinite(r["measured_rate"]) else lo),
                    textcoords="offset points", xytext=(0, -9), fontsize=7, va="top", ha="center")
        if r["predicted_rate_H0"] > top:
            ax.annotate(f"ρ on H(0) = {r['predicted_rate_H0']:.3g}: unstable", (i, top), textcoords="offset points",
                        xytext=(0, -3), ha="center", va="top", fontsize=7, color="crimson")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.annotate("1: no contraction", (len(ms) - 0.25, 1.0), textcoords="offset points", xytext=(0, 1), ha="right",
                va="bottom", fontsize=6.5, color="dimgrey")
    ax.set_xticks(x, [LABELS[m] for m in ms])
    ax.set_xlim(-0.5, len(ms) - 0.2)
    ax.set(ylabel="per-step contraction of ‖u − y‖")
    ax.legend(fontsize=6.5, loc="lower center", ncol=2)
    _title(ax, f"per-step rates, and steps to {TOLERANCE:g}·‖u(0) − y‖")


def state(ax, res: dict):
    """The residual's coefficients on the eigenvectors of H(0) at step k, against each eigenvalue (slowest mode on
    the left, stiffest on the right): measured (markers) and the linearized dynamics (dashed), one colour per method."""
    lam = res["lam0"]
    V = res["V0"]
    n0 = res["norm0"]
    floor = 1e-8
    arts = {}
    top = floor
    for m, r in res["runs"].items():
        coef = np.abs(r["residual"] @ V) / n0  # (records, n)
        pred = np.abs(r["lin_coef"]) / n0
        top = max(top, np.nanmax(coef))  # the measured data set the axes; a dashed mode past its limit leaves the top
        line, = ax.plot(lam, np.full(len(lam), floor), color=COLORS[m], ls="--", lw=1.0)
        dots = ax.scatter(lam, np.full(len(lam), floor), s=16, color=COLORS[m], marker=MARKERS[m], label=LABELS[m],
                          zorder=3)
        arts[m] = (coef, pred, line, dots, r["steps"])
    fl = FLOAT32_FLOOR * res["y_norm"] / n0
    ax.axhspan(floor, fl, color="grey", alpha=0.18, lw=0)
    ax.set(xscale="log", yscale="log", ylim=(floor, max(top, 1.0) * 30), xlim=(lam[0] / 1.3, lam[-1] * 1.3),
           xlabel="eigenvalue λᵢ of H(0)", ylabel="|vᵢ · (u − y)| / ‖u(0) − y‖")
    ax.annotate("slowest", (lam[0], floor), textcoords="offset points", xytext=(0, 3), fontsize=7, ha="left")
    ax.annotate("stiffest", (lam[-1], floor), textcoords="offset points", xytext=(0, 3), fontsize=7, ha="right")
    from matplotlib.lines import Line2D

    ax.legend(handles=[*[Line2D([], [], color=COLORS[m], marker=MARKERS[m], ls="", label=f"{LABELS[m]} measured")
                         for m in res["runs"]], Line2D([], [], color="black", ls="--", lw=1, label="linearized")],
              fontsize=7, loc="upper left", ncol=2)

    def update(k: int):
        out = []
        for coef, pred, line, dots, steps in arts.values():
            i = min(int(np.searchsorted(steps, k)), len(steps) - 1)
            c = np.clip(np.nan_to_num(coef[i], nan=floor), floor, None)
            p = np.clip(np.nan_to_num(pred[min(k, len(pred) - 1)], nan=floor, posinf=1e30), floor, None)
            line.set_data(lam, p)
            dots.set_offsets(np.column_stack([lam, c]))
            out += [line, dots]
        return out

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], 40)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    pick = lambda t: min(fr, key=lambda k: abs(k - t))
    return sorted({0, pick(10), pick(res["steps"] // 4), fr[-1]})


def alt(res: dict) -> str:
    return (f"Four panels for {res['dataset']} at width {res['width']}, η = {fmt(res['lr_fraction'])}/λmax(H∞), β = "
            f"{fmt(res['beta'])}: the residual of GD, heavy ball and Nesterov against its linearized prediction on H(0); "
            "measured and predicted per-step rates; the Gram matrix's drift against λ₀/4; its top eigenvalue against each "
            "method's stability limit.")
