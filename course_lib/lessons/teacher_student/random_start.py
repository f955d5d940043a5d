"""Experiment 3.4 (beyond the theorem): a random small start, success fraction against n / m.

The theorem is local. Here every student starts small and at random (w_j ~ N(0, s^2 I / d), a_j = +-||w_j|| with a
random sign, balanced), against a teacher whose output weights alternate in sign (or are all +1); 8 starts for each
n = m, 2m, 4m. A run succeeds if L(T) < 1e-3 L(0). Under gradient flow a balanced neuron keeps the sign of a_j
(a_j^2 - ||w_j||^2 = 0 is conserved, so a_j = 0 needs w_j = 0); GD's finite steps let a neuron that has shrunk to
almost nothing hop across zero, and the run counts those sign changes.
"""
from __future__ import annotations

import itertools

import numpy as np

from ... import plots
from ..._validate import check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, dropdown, integer, log_frames, real, select
from ...runtime import scaled_steps
from .core import (
    FLOOR,
    gradient_descent,
    make_teacher,
    random_init,
    reference_loss,
    stability_limit,
)

OUTPUT_LABELS = {"+1, −1, +1, … (mixed)": "mixed", "all +1": "ones"}
DEFAULTS = dict(m=3, output="+1, −1, +1, … (mixed)", scale=0.3, steps=400, seed=0)
FIXED = dict(d=5, ratios=(1, 2, 4), seeds=8, lr_fraction=0.9, threshold=1e-3)
STEPS = (200, 400, 800, 1600)
AT_FLOOR = 1e-12      # a successful n = m run "reaches the float64 floor": L(T) < 1e-12 L(0)
ABOVE = 1e-9          # the successful n > m runs end "far above it": median above 1e-9 L(0)


def experiment(m: int = DEFAULTS["m"], d: int = FIXED["d"], *, output: str = DEFAULTS["output"],
               scale: float = DEFAULTS["scale"], steps: int = DEFAULTS["steps"], seed: int = DEFAULTS["seed"],
               ratios=FIXED["ratios"], seeds: int = FIXED["seeds"], lr_fraction: float = FIXED["lr_fraction"],
               lr: float | None = None, threshold: float = FIXED["threshold"], device=None, live=None) -> dict:
    """``seeds`` random starts for each n = r m (r in ``ratios``), trained together; the fraction whose final loss is
    below ``threshold`` x L(0). ``output``: the teacher's output weights, "mixed" (+1, -1, ...) or "ones" (or one
    of the dashboard's labels)."""
    output = OUTPUT_LABELS.get(output, output)
    seeds = check_int("seeds", seeds, min_value=1, max_value=64)
    steps = scaled_steps(steps)
    ratios = tuple(int(r) for r in ratios)
    a_star, W_star = make_teacher(m, max(d, m), seed=seed, output=output)
    limit = stability_limit(a_star, W_star)
    lr = lr_fraction * limit if lr is None else float(lr)
    ns = [r * m for r in ratios]
    a0, W0, n_of = random_init(ns, max(d, m), scale=scale, seeds=seeds, seed=seed + 1)
    wrap = None if live is None else (lambda p: live({**p, "ratios": ratios, "n_of": n_of, "ns": ns, "m": m,
                                                      "threshold": threshold}))
    run = gradient_descent(a0, W0, a_star, W_star, lr=lr, steps=steps, record_every=steps, live=wrap)
    L0 = run["loss"][0]
    final = run["loss"][-1] / L0
    ok = np.isfinite(final) & (final < threshold)
    frac = [float(ok[n_of == n].mean()) for n in ns]
    present = a0 != 0
    flips = int(((np.sign(run["a"]) != np.sign(a0)) & present).sum())
    return {"run": run, "ratios": ratios, "ns": ns, "n_of": n_of, "final_rel": final, "ok": ok, "success": frac,
            "m": m, "output": output, "teacher_signs": np.sign(a_star).tolist(), "threshold": threshold,
            "seeds": seeds, "steps": int(run["steps"][-1]), "lr": lr, "lr_fraction": lr / limit, "flips": flips,
            "neurons": int(present.sum()), "diverged": int((run["diverged_at"] >= 0).sum()),
            "floor": FLOOR * reference_loss(a_star, W_star) / float(np.min(L0)), "scale": scale, "partial": False}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def claims(res: dict) -> list:
    frac, seeds = res["success"], res["seeds"]
    s1 = (f"More students succeed more often: the success fraction never drops from n = m to 2m to 4m, and n = 4m "
          f"succeeds from at least {seeds - 1} of the {seeds} starts.")
    mono = all(b >= a for a, b in itertools.pairwise(frac))
    top = round(frac[-1] * seeds)
    c1 = claim("3.4.more-neurons-help", s1, holds=mono and top >= seeds - 1, measured=frac[-1], predicted=None,
               tolerance="success fractions " + " ≤ ".join(f"{f:.2f}" for f in frac),
               why=("" if mono and top >= seeds - 1 else
                    ("the success fraction drops as n grows: " + ", ".join(f"{r}m: {f:.2f}" for r, f in
                                                                           zip(res["ratios"], frac))
                     if not mono else f"n = 4m succeeds from only {top} of the {seeds} starts")))
    s2 = "n = m gets stuck (L stays above 10⁻³ L(0)) from at least half of the starts."
    stuck = 1 - frac[0]
    c2 = claim("3.4.nm-stuck", s2, holds=stuck >= 0.5, measured=stuck, predicted=None,
               tolerance="fraction of n = m starts that get stuck ≥ 0.5",
               why=(f"n = m succeeds from {round(frac[0] * seeds)} of {seeds} starts" +
                    (" (with every a*ᵢ = +1 a student can fit any teacher neuron, and one that starts with the wrong "
                     "sign shrinks and hops across zero)" if res["output"] == "ones" else "")))
    s3 = ("The successful n > m runs end far above the float64 floor (median L(T) above 10⁻⁹ L(0)), in the slow "
          "polynomial phase of experiment 3.1, while the successful n = m runs reach it (below 10⁻¹² L(0)).")
    rel, ok, n_of = res["final_rel"], res["ok"], res["n_of"]
    big = ok & (n_of > res["m"])
    small = ok & (n_of == res["m"])
    if not big.any() or not small.any():
        c3 = not_applicable("3.4.slow-finish", s3, "no " + ("n = m" if not small.any() else "n > m") +
                            " run succeeds here, so there is nothing to compare")
    else:
        med = float(np.median(rel[big]))
        worst_small = float(np.max(rel[small]))
        holds = med > ABOVE and worst_small < AT_FLOOR
        c3 = claim("3.4.slow-finish", s3, holds=holds, measured=med, predicted=None,
                   tolerance=f"median (n > m) > 10⁻⁹ L(0); largest (n = m) {fmt(worst_small, 2, floor=AT_FLOOR)} "
                             "< 10⁻¹² L(0)",
                   why=("" if holds else f"median of the successful n > m runs {med:.2g} L(0), largest successful "
                        f"n = m {worst_small:.2g} L(0) after {res['steps']} steps"))
    return [c1, c2, c3]


def numbers(res: dict) -> dict:
    out = {"teacher m; output weights a*": f"{res['m']}; {', '.join(f'{s:+.0f}' for s in res['teacher_signs'])}",
           "starts per n; start scale": f"{res['seeds']}; {res['scale']:g}",
           "step η (× stability limit)": f"{fmt(res['lr'])} ({res['lr_fraction']:.2g})", "steps": res["steps"]}
    for r, n, f in zip(res["ratios"], res["ns"], res["success"]):
        v = res["final_rel"][res["n_of"] == n]
        okv = v[np.isfinite(v) & (v < res["threshold"])]
        out[f"{_tag(r)}: success fraction; median L(T)/L(0) of the successes"] = (
            f"{f:.2f}; {fmt(float(np.median(okv)), 2, floor=AT_FLOOR) if len(okv) else '–'}")
    out["output-weight sign changes (neurons that hopped across 0)"] = f"{res['flips']} of {res['neurons']}"
    out["runs that diverged"] = res["diverged"]
    return out


def _tag(r: int) -> str:
    return "n = m" if r == 1 else f"n = {r}m"


def headline(res: dict) -> str:
    parts = ", ".join(f"{_tag(r)}: {round(f * res['seeds'])}/{res['seeds']}" for r, f in zip(res["ratios"], res["success"]))
    extra = f"; {res['diverged']} runs diverged" if res["diverged"] else ""
    return f"random start, teacher a* = {res['output']}: successes {parts}{extra}"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6)
    if res.get("partial"):
        loss = res["loss"] / res["loss"][0]
        for e in range(loss.shape[1]):
            g = res["ratios"].index(int(res["n_of"][e]) // res["m"])
            ax2.plot(np.arange(1, len(loss)), loss[1:, e], color=plots.color(g), lw=0.6)
        ax2.set(xscale="log", yscale="log", title="training...")
        ax1.set_axis_off()
        return fig
    ratios = res["ratios"]
    x = np.arange(len(ratios))
    ax1.bar(x, res["success"], color=[plots.color(g) for g in range(len(ratios))], edgecolor="black",
            hatch=["", "//", ".."][: len(ratios)] if len(ratios) <= 3 else None)
    for g, f in enumerate(res["success"]):
        ax1.text(g, f + 0.02, f"{round(f * res['seeds'])}/{res['seeds']}", ha="center", fontsize=8)
    ax1.set(xticks=x, xticklabels=[_tag(r) for r in ratios], ylim=(0, 1.15),
            ylabel=f"fraction with L(T) < {res['threshold']:g} L(0)",
            title=f"BEYOND THE THEOREM: random start (m = {res['m']}, a* {res['output']})")
    loss = res["run"]["loss"] / res["run"]["loss"][0]
    K = loss.shape[0]
    k = np.unique(np.geomspace(1, max(K - 1, 1), 150).astype(int))
    floor = res["floor"]
    for e in range(loss.shape[1]):
        g = ratios.index(int(res["n_of"][e]) // res["m"])
        v = np.where(loss[k, e] > floor, loss[k, e], np.nan)
        ax2.plot(k, v, color=plots.color(g), lw=0.8, alpha=0.8, marker=plots.marker(g), ms=3, markevery=[-1],
                 label=_tag(ratios[g]) if e == int(np.flatnonzero(res["n_of"] == res["ns"][g])[0]) else None)
    ax2.axhline(res["threshold"], **plots.BOUND_STYLE, label="success threshold")
    ax2.axhspan(floor / 100, floor, color="0.85", zorder=0)
    ax2.text(0.98, 0.03, "float64 floor", transform=ax2.transAxes, fontsize=7, color="0.35", ha="right")
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="L / L(0)", ylim=(floor / 10, 10),
            title=f"every start ({res['seeds']} per n, η = {res['lr_fraction']:.2g} × 2/λmax)")
    ax2.legend(fontsize=7, loc="lower left")
    plots.time_axis(ax2)
    return fig


def state(ax, res: dict):
    """Every start's L(k)/L(0) at step k, one dot per start, grouped by n/m, against the success threshold."""
    ratios = res["ratios"]
    loss = res["run"]["loss"] / res["run"]["loss"][0]
    E = loss.shape[1]
    g = np.array([ratios.index(int(n) // res["m"]) for n in res["n_of"]])
    jitter = np.concatenate([np.linspace(-0.25, 0.25, int((g == i).sum())) for i in range(len(ratios))])
    order = np.argsort(g, kind="stable")
    xs = np.empty(E)
    xs[order] = g[order] + jitter
    floor = res["floor"]
    ax.axhline(res["threshold"], **plots.BOUND_STYLE, label="success threshold")
    ax.axhspan(floor / 100, floor, color="0.85", zorder=0)
    pts = ax.scatter(xs, np.ones(E), c=[plots.color(i) for i in g], s=30, edgecolors="black", linewidths=0.4, zorder=3)
    ax.set(yscale="log", ylim=(floor / 10, 10), xlim=(-0.6, len(ratios) - 0.4), xticks=range(len(ratios)),
           xticklabels=[_tag(r) for r in ratios], ylabel="L(k) / L(0), one dot per start")
    ax.legend(fontsize=7, loc="lower left")
    text = ax.text(0.98, 0.1, "", transform=ax.transAxes, fontsize=8, ha="right", va="bottom")

    def update(k: int):
        v = np.where(np.isfinite(loss[k]), np.maximum(loss[k], floor), 10.0)
        pts.set_offsets(np.column_stack([xs, v]))
        below = [int(((loss[k] < res["threshold"]) & (g == i)).sum()) for i in range(len(ratios))]
        text.set_text("below threshold: " + ", ".join(f"{b}/{res['seeds']}" for b in below))
        return [pts, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["steps"], 50)


def key_steps(res: dict) -> list[int]:
    T = res["steps"]
    near = lambda t: int(min(res["run"]["steps"], key=lambda k: abs(k - t)))
    return sorted({0, near(T / 20), near(T / 4), T})


def alt(res: dict) -> str:
    return ("Left: fraction of random starts that reach L < 10⁻³ L(0), for n = m, 2m, 4m; right: the loss of every "
            "start against the step, with the success threshold.")


EXPERIMENT = Experiment(
    id="3.4", title="Beyond the theorem: a random small start", run=experiment, draw=draw, claims=claims,
    controls={"m": integer("teacher m", DEFAULTS["m"], 2, 4),
              "output": dropdown("teacher a*", DEFAULTS["output"], tuple(OUTPUT_LABELS)),
              "scale": real("start scale", DEFAULTS["scale"], 0.05, 0.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed={"d": FIXED["d"]}, numbers=numbers, floors={}, headline=headline, state=state, frames=frames,
    key_steps=key_steps, alt=alt,
    reproduce={"mixed": {}, "ones": {"output": "all +1"}},
)
