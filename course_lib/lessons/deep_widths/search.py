"""Experiment 5.4: the paper's sufficient widths against the smallest widths that train in practice.

For N = 8, 16, 32 points: every power-of-two width of the last hidden layer from 2 to 4N (no monotonicity
assumed: wider is not always faster at a step tied to beta, experiment 5.3), ``seeds`` networks each, trained
by GD at eta = fraction x 2 / beta for a budget of T steps. Each (N, w) is: reached (every seed cut its loss by
1/target), falling (missed the target but its loss still fell by 2x or more over the second half of the
budget: slow, not stuck), stuck (fell by less than 2x over the second half; dead ReLUs named), or diverged.
Drawn against the paper's orders, each with its setting (PAPERS.md): quadratic N^2 for the two-layer net with
LeCun init, cubic N^3 for deep nets with one wide layer, linear N for a non-standard initialization.
"""
from __future__ import annotations

import numpy as np

from ... import plots
from ..._validate import check_float, check_int
from ...claims import claim, not_applicable
from ...experiment import Experiment, integer, log_frames, log_record_steps, select
from ...runtime import get_device, scaled_steps, torch_threads
from .core import (
    DEFAULTS,
    LOSS_FLOOR,
    OTHER_OPTIONS,
    PAPER_ORDERS,
    dead_units,
    make_model,
    ntk_blocks,
    ntk_extremes,
    paper_order,
    problem,
    key_condition_width,
    silenced_inputs,
    train_widths,
)

NS = (8, 16, 32)
BUDGETS = (150, 300, 600)
TARGET = 1e-2
STATUS = ("reached", "falling", "stuck", "diverged")
MAX_OVER_N = 2  # "at most 2N"


def experiment_widths(depth: int = DEFAULTS["depth"], steps: int = 300, other: int = DEFAULTS["other"], *,
                      ns=NS, init: str = "lecun", target: float = TARGET, lr_fraction: float = DEFAULTS["lr_fraction"],
                      seeds: int = 2, seed: int = 0, dataset: str = DEFAULTS["dataset"], device=None,
                      live=None) -> dict:
    """Every power-of-two width 2 .. 4N of the last hidden layer, for each N in ``ns``, trained for ``steps``."""
    steps_s = scaled_steps(check_int("steps", steps, min_value=1))
    target = check_float("target", target, min_value=0.0, max_value=1.0, min_inclusive=False)
    device = get_device(device)
    record = log_record_steps(steps_s, 30)
    half = int(np.argmin(np.abs(np.asarray(record) - steps_s / 2)))
    rows = []
    base = {"depth": depth, "steps": steps_s, "other": other, "init": init, "target": target,
            "lr_fraction": lr_fraction, "seeds": seeds, "frames": record, "dataset": dataset}
    with torch_threads():
        for n in ns:
            X, y = problem(dataset, n, DEFAULTS["d"], seed, device=device)
            widths = [2**k for k in range(1, 20) if 2**k <= 4 * n]
            own, lrs = [], []
            for w in widths:
                m = make_model(depth, w, other, init)
                p = m.init(X.shape[1], ensemble=seeds, seed=seed, device=device)
                own.append(p)
                key = key_condition_width(m, p, X, y) if depth == 2 else None  # at the widest width (last)
                lrs.append(lr_fraction * 2.0 / ntk_extremes(ntk_blocks(m, p, X))["beta"])
            tr = train_widths(depth, own, widths, X, y, np.array(lrs), steps=steps_s, record=record, other=other,
                              init=init)
            ratio = tr["loss"] / tr["loss"][:1]  # (records, widths, seeds)
            dead = [dead_units(make_model(depth, w, other, init), q, X) for w, q in zip(widths, tr["params"])]
            silenced = [silenced_inputs(make_model(depth, w, other, init), q, X) for w, q in zip(widths, tr["params"])]
            status = classify(ratio, tr["diverged"], target, half)
            rows.append({"n": n, "widths": widths, "ratio": ratio, "diverged": tr["diverged"], "dead": dead,
                         "silenced": silenced, "status": status, "key_width": key,
                         "smallest": next((w for w, s in zip(widths, status) if s == "reached"), None)})
            if live is not None:
                live({"partial": True, "rows": rows[:], **base})
    return {"partial": False, "rows": rows, **base}


def classify(ratio: np.ndarray, diverged: np.ndarray, target: float, half: int) -> list[str]:
    """Per width (the worst of its seeds): 'diverged', 'stuck' (the loss fell by less than 2x over the second
    half of the budget; ``half`` is the index of the record at T/2), 'falling' (missed the target, still
    falling), or 'reached'."""
    out = []
    for j in range(ratio.shape[1]):
        worst = "reached"
        for s in range(ratio.shape[2]):
            end = ratio[-1, j, s]
            if diverged[j, s] or not np.isfinite(end):
                st = "diverged"
            elif end <= target:
                st = "reached"
            else:
                mid = ratio[half, j, s]
                st = "stuck" if end / mid > 0.5 else "falling"
            if STATUS.index(st) > STATUS.index(worst):
                worst = st
        out.append(worst)
    return out


def smallest_over_n(res) -> list:
    return [r["smallest"] for r in res["rows"]]


def claims(res: dict) -> list:
    rows = res["rows"]
    p = paper_order(res["depth"])
    lower = (f" (the other hidden layers {res['other']} wide)" if res["depth"] > 2 else "")
    st1 = (f"The smallest last-hidden width that reaches the target is at most {MAX_OVER_N}N at every N{lower}: far "
           f"below the paper's N{'²' if p == 2 else '³'} for this setting drawn with constant 1.")
    missing = [r["n"] for r in rows if r["smallest"] is None]
    worst = max((r["smallest"] / r["n"] for r in rows if r["smallest"] is not None), default=float("nan"))
    if missing:
        c1 = claim("5.4.far-below", st1, holds=False, measured=worst,
                   tolerance=f"smallest width / N ≤ {MAX_OVER_N} at every N",
                   why=f"at N = {missing} no width up to 4N reached the target within {res['steps']} steps "
                       "(a larger budget may reach it)")
    else:
        gap = min(r["n"] ** p / r["smallest"] for r in rows)
        below_n = [r["n"] for r in rows if r["smallest"] < r["n"]]
        c1 = claim("5.4.far-below", st1, holds=worst <= MAX_OVER_N, measured=worst,
                   tolerance=f"measured: the largest smallest-width / N; it must be ≤ {MAX_OVER_N} at every N (N^{p} is at "
                             f"least {gap:.3g}x larger)" + (f"; at N = {below_n} it is below N, where λ_F = 0: the output "
                                                          "layer alone cannot fit, the layers below it do" if below_n else ""),
                   why=f"at some N the smallest width that trains is {worst:.3g} N")
    st2 = ("Above the smallest width that trains, a width that misses the target is slow, not stuck: its loss was "
           "still falling when the budget ran out.")
    found = [r for r in rows if r["smallest"] is not None]
    if not found:
        c2 = not_applicable("5.4.slow-not-stuck", st2, "no width reached the target at any N: nothing to compare")
    else:
        bad = [(r["n"], w, s) for r in found for w, s in zip(r["widths"], r["status"])
               if w > r["smallest"] and s in ("stuck", "diverged")]
        misses = sum(1 for r in found for w, s in zip(r["widths"], r["status"]) if w > r["smallest"] and s != "reached")
        c2 = claim("5.4.slow-not-stuck", st2, holds=not bad, measured=len(bad),
                   tolerance=f"no stuck or diverged width above the smallest ({misses} slow misses)",
                   why="; ".join(_story(res, n, w, s) for n, w, s in bad[:4]))
    return [c1, c2]


def _story(res, n, w, status) -> str:
    r = next(r for r in res["rows"] if r["n"] == n)
    j = r["widths"].index(w)
    dead = r["dead"][j]
    text = f"N = {n}, w = {w}: {status}"
    sil = r.get("silenced", [None] * len(r["widths"]))[j]
    if status == "stuck" and sil is not None and any(sil):
        seeds = [f"seed {e}: input {s[0][0]} silenced at layer {s[0][1]}" for e, s in enumerate(sil) if s]
        text += (f" ({'; '.join(seeds)}: all its features zero, so its output is stuck at 0 and the loss cannot fall "
                 "below y_i²/2 = 0.5)")
    elif status == "stuck" and dead.max() > 0:
        live = w - int(dead.max())
        text += f" ({int(dead.max())} of {w} last-layer ReLUs died, " + (
            f"leaving {live} < N)" if live < n else f"{live} ≥ N live ones remain: not the cause)")
    return text


def numbers(res: dict) -> dict:
    out = {"depth L": res["depth"], "budget (steps)": res["steps"], "target L(T)/L(0)": res["target"],
           "other widths": res["other"], "η × β / 2": res["lr_fraction"], "seeds per width": res["seeds"]}
    p = paper_order(res["depth"])
    for r in res["rows"]:
        cells = ", ".join(f"{w}: {s}" for w, s in zip(r["widths"], r["status"]))
        out[f"N = {r['n']}: smallest width that trains (paper: N^{p} = {r['n'] ** p})"] = r["smallest"] or "none"
        out[f"N = {r['n']}: each width"] = cells
        if r.get("key_width") is not None:
            out[f"N = {r['n']}: width the citing paper's key condition asks for (the course's derivation, from the "
                f"w = {r['widths'][-1]} nets' λ_min(M), L(θ₀), ‖W₂‖)"] = ", ".join(f"{v:.2g}" for v in r["key_width"])
    return out


def headline(res: dict) -> str:
    parts = [f"N = {r['n']}: w = {r['smallest'] or 'none up to 4N'}" for r in res["rows"]]
    return f"smallest width that cut the loss {1 / res['target']:.0f}× in {res['steps']} steps: " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------
# figure and state panel
# ----------------------------------------------------------------------------------------------
STYLE = {"reached": {"marker": "o", "color": plots.color(2), "mfc": plots.color(2), "ms": 7},
         "falling": {"marker": "^", "color": plots.color(1), "mfc": "none", "ms": 7},
         "stuck": {"marker": "x", "color": plots.color(3), "ms": 7},
         "diverged": {"marker": "P", "color": plots.color(4), "mfc": "none", "ms": 7}}
LABEL = {"reached": "reached the target", "falling": "missed it, still falling (slow)",
         "stuck": "stuck (fell < 2× in the second half)", "diverged": "diverged"}


def draw(res: dict, spec: dict | None = None):
    fig, (ax,) = plots.new_figure(1, width=7.6, height=4.4)
    fig.subplots_adjust(left=0.09, right=0.56, bottom=0.12, top=0.86)
    rows = res["rows"]
    ns = np.array([r["n"] for r in rows], dtype=float)
    x = np.log2(ns)  # N on a log2 axis, labelled with N itself
    p_here = paper_order(res["depth"])
    grid = np.linspace(x.min() - 0.3, x.max() + 0.3, 30)
    styles = {1: "-.", 2: "--", 3: ":"}
    for p, (name, setting) in PAPER_ORDERS.items():
        here = p == p_here
        ax.plot(grid, (2.0**grid) ** p, color="black" if here else "grey", linestyle=styles[p], lw=1.6 if here else 1.0,
                label=f"{name}: {setting}" + ("\n   ← the paper's width for this setting" if here else "") +
                ("\n   (also w = N: below it λ_F = 0, the layers\n   below the last do the fitting)" if p == 1 else ""))
    seen = set()
    for xi, r in zip(x, rows):
        for w, s in zip(r["widths"], r["status"]):
            ax.plot([xi], [w], linestyle="none", **STYLE[s], label=LABEL[s] if s not in seen else None)
            seen.add(s)
    ok = [(xi, r["smallest"]) for xi, r in zip(x, rows) if r["smallest"] is not None]
    if ok:
        ax.plot(*zip(*ok), "-", color=plots.color(0), lw=2, label="smallest width that reached it", zorder=1)
    if res.get("partial"):
        ax.text(0.5, 0.5, "training...", transform=ax.transAxes, ha="center")
    ax.set(yscale="log", xlabel="number of samples N", ylabel="width of the last hidden layer w",
           xlim=(grid[0], grid[-1]), ylim=(1.3, max(ns.max() ** 3 * 2, 100)))
    ax.set_xticks(x, [str(int(n)) for n in ns])
    other = f", other widths {res['other']}" if res["depth"] > 2 else " (one hidden layer)"
    ax.set_title(f"depth L = {res['depth']}, LeCun init{other}, η = {res['lr_fraction']:g}·2/β:\n"
                 f"target L(T) ≤ {res['target']:g}·L(0) within T = {res['steps']} steps, {res['seeds']} seeds per width",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0, framealpha=0.9,
              title="the paper's orders (drawn with constant 1),\nand this run", title_fontsize=7)
    return plots.fast_log_axes(fig)


def state(ax, res: dict):
    """The loss left at step k against the width, one line per N, and the target."""
    rows = res["rows"]
    steps = np.asarray(res["frames"])
    allv = np.concatenate([r["ratio"].ravel() for r in rows])
    good = allv[np.isfinite(allv) & (allv > 0)]
    lo, hi = max(float(good.min()) / 3, 1e-16), float(good.max()) * 3
    lines = []
    for i, r in enumerate(rows):
        ln, = ax.plot(r["widths"], np.ones(len(r["widths"])), "-", marker=plots.marker(i), color=plots.color(i),
                      ms=5, label=f"N = {r['n']} (worst seed)")
        ax.axvline(r["n"], color=plots.color(i), lw=0.6, alpha=0.5)
        lines.append(ln)
    ax.plot([], [], color="grey", lw=0.6, alpha=0.5, label="w = N (thin, in its colour)")
    ax.axhline(res["target"], color="grey", lw=1, label=f"target {res['target']:g}")
    if lo < LOSS_FLOOR:
        ax.axhspan(lo, LOSS_FLOOR, color="grey", alpha=0.12, label="float32 floor (shaded)")
    ax.set(xscale="log", yscale="log", ylim=(lo, hi), xlabel="width of the last hidden layer w",
           ylabel="loss left L(k)/L(0)")
    other = f", other widths {res['other']}" if res["depth"] > 2 else ""
    ax.legend(fontsize=6.5, loc="center left", framealpha=0.9, title=f"L = {res['depth']}{other},\nT = {res['steps']}",
              title_fontsize=6.5)

    def update(k: int):
        i = min(int(np.searchsorted(steps, k)), len(steps) - 1)
        for ln, r in zip(lines, rows):
            v = np.nanmax(np.where(np.isfinite(r["ratio"][i]), r["ratio"][i], hi), axis=1)
            ln.set_data(r["widths"], np.clip(v, lo, hi))
        return lines

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], 30)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    return sorted({0, min(fr, key=lambda k: abs(k - fr[-1] // 10)), min(fr, key=lambda k: abs(k - fr[-1] // 3)), fr[-1]})


def alt(res: dict) -> str:
    return (f"Log-log plot of the last hidden width against N = {[r['n'] for r in res['rows']]}: each width tried "
            "marked reached / slow / stuck, the smallest that trains, and the paper's N, N², N³.")


def _run(depth, steps, other, live=None):
    return experiment_widths(depth, steps, other, live=live)


EXPERIMENT = Experiment(
    id="5.4", title="the paper's widths against the smallest widths that train", run=_run, draw=draw, claims=claims,
    controls={"depth": integer("depth L", DEFAULTS["depth"], 2, 4),
              "steps": select("step budget T", 300, BUDGETS),
              "other": select("other widths", DEFAULTS["other"], OTHER_OPTIONS)},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"depth3": {}, "depth2": {"depth": 2}},
    paper={"quadratic_case": {"depth": 2}, "cubic_case": {"depth": 3}},
    paper_note=("The experiments are the course's own. The course's closest analogues of the two cases later papers "
                "describe: depth 2 (two-layer, both layers trained, LeCun init: quadratic width) and "
                "depth 3 (deep, one wide hidden layer, LeCun init: cubic width)."),
)


def widths_dashboard(**overrides):
    """Controls: depth, step budget, other widths. A sweep of 36 networks: it runs on the Run button (change several
    controls, then run) and redraws after each N."""
    from ...widgets import Dashboard

    return Dashboard(EXPERIMENT, overrides=overrides, auto=False,
                     title=f"Experiment {EXPERIMENT.id}: {EXPERIMENT.title} (press Run after changing)")
