"""Experiment 3.4 (beyond the theorem): a random small start, success fraction against n / m.

The theorem is local. Here every neuron starts small and at random (w_j ~ N(0, s^2 I / d), a_j = +-||w_j|| with a
random sign, so c_j = a_j^2 - ||w_j||^2 = 0: balanced), against a teacher whose output weights alternate in sign (or
are all +1); 8 starts for each n = m, 2m, 4m. A run succeeds if L(T) < 1e-3 L(0) (the course's threshold, not the
theorem's).

The output signs decide n = m: a zero loss needs one neuron per teacher neuron, with the teacher neuron's sign. A start
whose random signs already match the teacher's (as many positive a_j as positive a*_i) always succeeded in the
course's runs; a start with other signs can succeed only if a neuron's a_j crosses zero. Gradient flow conserves
c_j = 0 here, so a_j = 0 would need w_j = 0: no neuron ever changes sign. Each GD step changes c_j by
eta^2 ((dL/da_j)^2 - ||dL/dw_j||^2), which from c_j = 0 is never positive: GD keeps ||w_j|| >= |a_j|, and a shrinking
neuron passes a_j = 0 at ||w_j|| = sqrt(-c_j) > 0. The run records every neuron's sign and c_j at every step.
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
    balance,
    frame_title,
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
ABOVE = 1e-9          # the successful n > m runs end "far above [the floor]": median above 1e-9 L(0)
BALANCE_TOL = 1e-12   # c_j = a_j^2 - ||w_j||^2 "never rises above 0" (rounding of the balanced start: ~1e-17)


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
    run = gradient_descent(a0, W0, a_star, W_star, lr=lr, steps=steps, record_every=1, live=wrap)
    L0 = run["loss"][0]
    final = run["loss"][-1] / L0
    ok = np.isfinite(final) & (final < threshold)
    frac = [float(ok[n_of == n].mean()) for n in ns]
    present = a0 != 0
    sign = np.sign(run["a_hist"]) * present                                  # (R, E, N), 0 on the padding
    changed = (sign[1:] != sign[:-1]) & present                              # (R - 1, E, N)
    c = balance(run["a_hist"], run["W_hist"])                                # (R, E, N)
    cross_c = c[:-1][changed]                                                # c_j at the step before each crossing
    teacher_pos = int((a_star > 0).sum())
    match = (((a0 > 0) & present).sum(1) == teacher_pos) & (n_of == m)       # n = m starts with the teacher's signs
    end_match = (((run["a"] > 0) & present).sum(1) == teacher_pos) & (n_of == m)
    ref = reference_loss(a_star, W_star)
    run = {**run, "W_hist": None}                                            # keep the history light: a, loss only
    return {"run": run, "ratios": ratios, "ns": ns, "n_of": n_of, "final_rel": final, "ok": ok, "success": frac,
            "m": m, "output": output, "teacher_signs": np.sign(a_star).tolist(), "threshold": threshold,
            "seeds": seeds, "steps": int(run["steps"][-1]), "lr": lr, "lr_fraction": lr / limit,
            "flips": int(changed.any(0).sum()), "flipped": changed.any(0),
            "first_crossings": np.sort(np.argmax(changed, axis=0)[changed.any(0)] + 1),
            "cross_c_max": float(cross_c.max()) if cross_c.size else float("nan"),
            "cross_w_min": float(np.sqrt(np.maximum(-cross_c, 0)).min()) if cross_c.size else float("nan"),
            "balance_max": float(c[:, present].max()), "match": match, "end_match": end_match,
            "neurons": int(present.sum()), "diverged": int((run["diverged_at"] >= 0).sum()),
            "ref": ref, "final_ref": run["loss"][-1] / ref,
            "floor": FLOOR * ref / float(np.min(L0)), "scale": scale, "seed": seed, "partial": False}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def claims(res: dict) -> list:
    frac, seeds = res["success"], res["seeds"]
    s1 = (f"Networks with more neurons succeed more often: the success fraction never drops from n = m to 2m to 4m, and n = 4m "
          f"succeeds from at least {seeds - 1} of the {seeds} starts.")
    mono = all(b >= a for a, b in itertools.pairwise(frac))
    top = round(frac[-1] * seeds)
    c1 = claim("3.4.more-neurons-help", s1, holds=mono and top >= seeds - 1, measured=frac[-1], predicted=None,
               tolerance="success fractions " + " ≤ ".join(f"{f:.2f}" for f in frac),
               why=("" if mono and top >= seeds - 1 else
                    ("the success fraction drops as n grows: " + ", ".join(f"{r}m: {f:.2f}" for r, f in
                                                                           zip(res["ratios"], frac))
                     if not mono else f"n = 4m succeeds from only {top} of the {seeds} starts")))
    # 2. n = m: stuck where the random signs do not match the teacher's
    nm = res["n_of"] == res["m"]
    ok, match = res["ok"], res["match"]
    mismatched = int((nm & ~match).sum())
    stuck_mis = int((nm & ~match & ~ok).sum())
    stuck_match = int((nm & match & ~ok).sum())
    s2 = ("n = m gets stuck (L stays above 10⁻³ L(0)) from most of the starts whose random output signs do not match "
          "the teacher's, and from none of the others.")
    if mismatched == 0:
        c2 = not_applicable("3.4.nm-stuck", s2, f"every one of the {seeds} n = m starts drew the teacher's signs")
    else:
        holds = stuck_match == 0 and 2 * stuck_mis > mismatched
        why = ""
        if stuck_match:
            why = f"{stuck_match} n = m start(s) with the teacher's signs got stuck too"
        elif not holds:
            why = (f"only {stuck_mis} of the {mismatched} n = m starts with other signs get stuck"
                   + (": with every a*ᵢ = +1 a neuron that starts negative crosses zero and serves a teacher neuron "
                      "(3.4.crossing)" if res["output"] == "ones" else
                      ": there neurons crossed zero and found a teacher neuron of their new sign"))
        c2 = claim("3.4.nm-stuck", s2, holds=holds, measured=int((nm & ~ok).sum()), predicted=mismatched,
                   tolerance=(f"stuck: {stuck_mis} of the {mismatched} starts with other signs (more than half), "
                              f"{stuck_match} of the {int((nm & match).sum())} with the teacher's signs (none)"),
                   why=why)
    # 3. the finish: n > m slow, n = m at the floor
    s3 = ("The successful n > m runs end far above the float64 floor (median L(T) above 10⁻⁹ L(0)), in the slow "
          "polynomial phase of experiment 3.1, while the successful n = m runs reach it (|L(T)| < 10⁻¹⁴ E[f*²]).")
    rel, n_of = res["final_rel"], res["n_of"]
    big = ok & (n_of > res["m"])
    small = ok & nm
    if not big.any() or not small.any():
        c3 = not_applicable("3.4.slow-finish", s3, "no " + ("n = m" if not small.any() else "n > m") +
                            " run succeeds here, so there is nothing to compare")
    else:
        med = float(np.median(rel[big]))
        worst_small = float(np.max(np.abs(res["final_ref"][small])))
        holds = med > ABOVE and worst_small < FLOOR
        c3 = claim("3.4.slow-finish", s3, holds=holds, measured=med, predicted=None,
                   tolerance=(f"median L(T) of the successful n > m runs > 10⁻⁹ L(0); largest |L(T)| of the successful "
                              f"n = m runs {fmt(worst_small, 2, floor=FLOOR)} E[f*²] (the floor: 10⁻¹⁴ E[f*²])"),
                   why=("" if holds else f"median of the successful n > m runs {fmt(med, 2)} L(0), largest successful "
                        f"n = m {fmt(worst_small, 2)} E[f*²] after {res['steps']} steps"))
    # 4. how n = m succeeds from other signs: a crossing, which only GD's finite steps allow here
    s4 = ("Every successful n = m run ends with the teacher's output signs; those that started with other signs got "
          "there by a neuron crossing zero, which GD's finite steps allow: a_j² − ‖w_j‖² starts at 0 and never rises "
          "above it, so ‖w_j‖ stays positive while a_j passes 0.")
    need = nm & ok & ~match
    crossed = need & res["flipped"].any(1)
    wrong_end = int((nm & ok & ~res["end_match"]).sum())
    bal = res["balance_max"]
    holds = wrong_end == 0 and int(crossed.sum()) == int(need.sum()) and bal <= BALANCE_TOL
    why = ""
    if wrong_end:
        why = f"{wrong_end} successful n = m run(s) end with other signs than the teacher's"
    elif crossed.sum() < need.sum():
        why = f"{int(need.sum() - crossed.sum())} run(s) succeeded from other signs without any neuron crossing zero"
    elif bal > BALANCE_TOL:
        why = f"a_j² − ‖w_j‖² rose to {fmt(bal)} above 0"
    c4 = claim("3.4.crossing", s4, holds=holds, measured=int(crossed.sum()), predicted=int(need.sum()),
               tolerance=(f"successful n = m runs that started with other signs: {int(need.sum())}, of them with a "
                          f"crossing: {int(crossed.sum())}; largest a_j² − ‖w_j‖²: {fmt(bal, 2, floor=BALANCE_TOL)}"),
               why=why)
    return [c1, c2, c3, c4]


def numbers(res: dict) -> dict:
    nm = res["n_of"] == res["m"]
    out = {"teacher m; output weights a*": f"{res['m']}; {', '.join(f'{s:+.0f}' for s in res['teacher_signs'])}",
           "starts per n; start scale; seed": f"{res['seeds']}; {res['scale']:g}; {res['seed']}",
           "step η (× stability limit)": f"{fmt(res['lr'])} ({res['lr_fraction']:.3g})", "steps": res["steps"]}
    for r, n, f in zip(res["ratios"], res["ns"], res["success"]):
        v = res["final_rel"][res["n_of"] == n]
        okv = v[np.isfinite(v) & (v < res["threshold"])]
        out[f"{_tag(r)}: success fraction; median L(T)/L(0) of the successes"] = (
            f"{f:.2f}; {fmt(float(np.median(okv)), 2, floor=res['floor']) if len(okv) else '–'}")
    out["n = m starts with the teacher's signs: succeeded / all"] = (
        f"{int((nm & res['match'] & res['ok']).sum())} / {int((nm & res['match']).sum())}")
    out["n = m starts with other signs: succeeded / all"] = (
        f"{int((nm & ~res['match'] & res['ok']).sum())} / {int((nm & ~res['match']).sum())}")
    out["neurons whose a_j changed sign (all networks)"] = f"{res['flips']} of {res['neurons']}"
    out["at the crossings: largest a_j² − ‖w_j‖²; smallest ‖w_j‖ = √(−c_j)"] = (
        f"{fmt(res['cross_c_max'])}; {fmt(res['cross_w_min'])}" if res["flips"] else "–")
    out["largest a_j² − ‖w_j‖² over the run (0 at the start)"] = fmt(res["balance_max"], 3, floor=BALANCE_TOL)
    out["runs that diverged"] = res["diverged"]
    return out


def _tag(r: int) -> str:
    return "n = m" if r == 1 else f"n = {r}m"


def headline(res: dict) -> str:
    parts = ", ".join(f"{_tag(r)}: {round(f * res['seeds'])}/{res['seeds']}" for r, f in zip(res["ratios"], res["success"]))
    extra = f"; {res['diverged']} runs diverged" if res["diverged"] else ""
    return (f"random start, teacher a* = {', '.join(f'{s:+.0f}' for s in res['teacher_signs'])}: successes {parts}; "
            f"{res['flips']} neuron{'' if res['flips'] == 1 else 's'} changed sign{extra}")


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
            ylabel=f"fraction with L(T) < {res['threshold']:g} L(0)", title="success fraction per network size n")
    loss = res["run"]["loss"] / res["run"]["loss"][0]
    K = loss.shape[0]
    k = np.unique(np.geomspace(1, max(K - 1, 1), 150).astype(int))
    floor = res["floor"]
    for e in range(loss.shape[1]):
        g = ratios.index(int(res["n_of"][e]) // res["m"])
        v = np.where(loss[k, e] > floor, loss[k, e], np.nan)
        ax2.plot(k, v, color=plots.color(g), lw=0.8, alpha=0.8, marker=plots.marker(g), ms=3, markevery=[-1],
                 label=_tag(ratios[g]) if e == int(np.flatnonzero(res["n_of"] == res["ns"][g])[0]) else None)
    # runs that end at the same loss (the same stuck point) overlap: say how many lie on each end marker
    end = np.maximum(loss[-1], floor)
    for g, r in enumerate(ratios):
        sel = np.sort(end[(res["n_of"] == res["ns"][g]) & np.isfinite(end)])
        groups = np.split(sel, np.flatnonzero(sel[1:] > 1.02 * sel[:-1]) + 1) if len(sel) else []
        for grp in groups:  # ends within 2% of each other: one visible line
            if len(grp) > 1:
                ax2.annotate(f"×{len(grp)}", (K - 1, float(np.sqrt(grp[0] * grp[-1]))), xytext=(5 + 15 * g, 0),
                             textcoords="offset points", fontsize=7, color=plots.color(g), va="center",
                             fontweight="bold")
    ax2.axhline(res["threshold"], **plots.BOUND_STYLE, label="success threshold")
    ax2.axhspan(floor / 100, floor, color="0.85", zorder=0)
    ax2.text(0.98, 0.03, "float64 floor (10⁻¹⁴ E[f*²])", transform=ax2.transAxes, fontsize=7, color="0.3",
             ha="right")
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="L / L(0)", ylim=(floor / 10, 10),
            xlim=(0.8, 3.5 * max(K - 1, 1)),  # room right of the last step for the ×k marks
            title="every start's loss (×k: k runs end on one line)")
    ax2.legend(fontsize=7, loc="lower left")
    frame_title(fig, _settings(res))
    plots.time_axis(ax2)
    return fig


def _settings(res: dict) -> str:
    return (f"BEYOND THE THEOREM: {res['seeds']} random starts per n (scale {res['scale']:g}), teacher m = {res['m']} in d = "
            f"{FIXED['d']} with a* = {', '.join(f'{s:+.0f}' for s in res['teacher_signs'])}, η = "
            f"{res['lr_fraction']:.3g} × 2/λmax, T = {res['steps']}, seed {res['seed']}")


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
    crossings = res["first_crossings"]

    def update(k: int):
        v = np.where(np.isfinite(loss[k]), np.maximum(loss[k], floor), 10.0)
        pts.set_offsets(np.column_stack([xs, v]))
        below = [int(((loss[k] < res["threshold"]) & (g == i)).sum()) for i in range(len(ratios))]
        text.set_text("below threshold: " + ", ".join(f"{b}/{res['seeds']}" for b in below)
                      + f"\nneurons that changed sign so far: {int(np.searchsorted(crossings, k, side='right'))}")
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
            f"start against the step, with the success threshold ({_settings(res)}).")


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
