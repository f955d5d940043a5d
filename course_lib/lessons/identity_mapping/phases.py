"""Experiment 2.2: the stages of one run, on one step axis, from a start whose columns (neurons) are shortened and
turned.

Three stages, each measured (``core``): (1) until g is fixed (|g| <= 10% of its start for good); (2) the rows turn
toward the teacher's, slowly at first (a plateau) and then faster; (3) the linear regime, from where the
one-point ratio rho is within 10% of its linearized value rho_H = e^T H e / ||e||^2 for good, in which the distance
follows H's linearized dynamics from the run's own error. Li & Yuan's phase II (one-point strong convexity,
rho >= c) has no sharp start: the rule "rho >= c from here to the end" puts it where c puts it, and the figure
shows that boundary for every c.
"""
from __future__ import annotations

import numpy as np

from ... import plots
from ...claims import claim, log_rate_error, not_applicable
from ...experiment import Experiment, dropdown, integer, real, select
from .core import (
    DIMS,
    EARLY_STEPS,
    PHASE_RATIO,
    experiment,
    hessian_modes,
    neg_log,
    phase_boundary,
    rates,
    rows,
)
from .views import (distance_panel, divergence_note, fraction_text, frames, loss_floor, method_text, nearest, rows_state,
                    series, shade_stages, symlog_steps)

DEFAULTS = dict(init="rotated", scale=0.5, angle=0.7, lr_fraction=0.6, d=20, method="gd", steps=450, seed=0)
FEW = 10  # "in the first few steps": stage 1 ends within 10 steps
STALL = 0.10  # "the distance changes by under 10%"
LONGER = 20  # "stage 2 lasts over 20 times as long as stage 1"
RATE_TOL = 0.05  # "within 5% in -log rate"
C_LOW, C_HIGH = PHASE_RATIO, 0.05  # the two thresholds the text compares
SHIFT = 10  # "moves the boundary by more than 10 steps"
C_GRID = np.round(np.arange(0.005, 0.2001, 0.0025), 4)


def run(init=DEFAULTS["init"], scale=DEFAULTS["scale"], angle=DEFAULTS["angle"], lr_fraction=DEFAULTS["lr_fraction"],
        d=DEFAULTS["d"], method=DEFAULTS["method"], steps=DEFAULTS["steps"], seed=DEFAULTS["seed"], live=None) -> dict:
    lam = hessian_modes(int(d), 0.6, 1000 + int(seed))[0]
    lr = lr_fraction * 2.0 / float(lam[-1])
    res = experiment(d=d, init=init, scale=scale, angle=angle, teacher_scale=0.6, lr=lr, steps=steps, method=method,
                     seeds=1, seed=seed, batch=200, early_steps=min(EARLY_STEPS, 12), records=50, live=live)
    res["lr_fraction"] = lr_fraction
    if not res.get("partial"):
        h = res["history"]
        res["boundaries"] = [phase_boundary(h.steps, h["ratio"][:, 0], c) for c in C_GRID]
    return res


# ----------------------------------------------------------------------------------------------
# Claims
# ----------------------------------------------------------------------------------------------
def _at(h, k):
    return int(np.searchsorted(h.steps, k))


def claims(res: dict) -> list:
    h = res["history"]
    out = []
    k1 = res["g_fixed"][0]
    k3 = res["linear_start"][0]
    dist, cos, g = h["dist"][:, 0], h["cos"][:, 0], h["g"][:, 0]
    diverged = h.diverged
    # 1. g first
    st = "In the first few steps (under 10) g falls by 90% while ‖W − W*‖ changes by under 10%."
    if diverged:
        out.append(not_applicable("2.2.g-first", st, "the run diverged"))
    elif k1 is None:
        out.append(not_applicable("2.2.g-first", st, f"g starts at {g[0]:.2g}: the columns' lengths are right from the start"))
    else:
        change = float(dist[_at(h, k1)] / dist[0] - 1)
        ok = k1 <= FEW and abs(change) < STALL
        out.append(claim("2.2.g-first", st, holds=ok, measured=abs(change), predicted=STALL,
                         tolerance=f"|g| down to ≤ 10% of its start by step 10 (here at step {k1}); measured: the "
                                   "distance's relative change by then, under 0.1",
                         why="" if ok else (f"g is fixed only at step {k1}" if k1 > FEW else
                                            f"the distance changed by {change:+.0%} while g was fixed (by step {k1})")))
    # 2. the wrong way
    st = "Meanwhile the cosine between −∇L and W* − W dips below zero: the gradient points away from the teacher."
    if diverged or k1 is None:
        out.append(not_applicable("2.2.wrong-way", st, "the run diverged" if diverged else "there is no stage 1 here"))
    else:
        lowest = float(np.min(cos[: _at(h, k1) + 1]))
        out.append(claim("2.2.wrong-way", st, holds=lowest < 0, measured=lowest, predicted=0.0,
                         tolerance="lowest cosine in stage 1 below 0",
                         why="" if lowest < 0 else f"the cosine stays at or above {lowest:.2g} in stage 1: the gradient "
                         "has a component toward the teacher throughout"))
    # 3. converges (reaches the linear regime)
    st = "The run reaches the linear regime (ρ within 10% of ρ_H for good) and converges to the teacher."
    if diverged:
        out.append(not_applicable("2.2.converges", st, "the run diverged"))
    else:
        rw = rows(res)
        worst = float(np.degrees(np.nanmax(rw["angle"][-1, 0])))
        out.append(claim("2.2.converges", st, holds=k3 is not None,
                         measured=float(h["ratio"][-1, 0]), predicted=float(h["rho_H"][-1, 0]),
                         tolerance="ρ within 10% of ρ_H from some step to the end",
                         why="" if k3 is not None else
                         f"by step {int(h.steps[-1])} ρ = {h['ratio'][-1, 0]:.3g} against ρ_H = {h['rho_H'][-1, 0]:.3g}; "
                         f"the loss is {h['pop_loss'][-1, 0]:.2g} and the worst column is {worst:.0f}° from its teacher column"))
    # 4. stage 2 is long
    st = "Stage 2, the columns turning, lasts over 20 times as long as stage 1."
    if diverged or k1 is None or k3 is None:
        out.append(not_applicable("2.2.stage-two", st, "the run diverged" if diverged else
                                  "there is no stage 1 here" if k1 is None else "the run never reaches stage 3"))
    else:
        ratio = (k3 - k1) / max(k1, 1)
        out.append(claim("2.2.stage-two", st, holds=ratio > LONGER, measured=ratio, predicted=LONGER,
                         tolerance="(stage 3 start − stage 1 end) / stage 1 end > 20",
                         why="" if ratio > LONGER else f"stage 1 ends at step {k1}, stage 3 starts at step {k3}"))
    # 5. the late rate from the run's own error
    st = "In stage 3 the distance follows the dashed line, H's linearized dynamics from this run's own error, within 5% in −log rate."
    pair = rates(res, 0)
    if diverged or k3 is None:
        out.append(not_applicable("2.2.late-rate", st, "the run diverged" if diverged else
                                  "the run never reaches the linear regime (see 2.2.converges)"))
    elif pair is None:
        out.append(not_applicable("2.2.late-rate", st, f"stage 3 starts at step {k3}, too late in a {int(h.steps[-1])}-step "
                                  "run to fit a rate; run more steps"))
    else:
        m, p = pair
        err = log_rate_error(m, p)
        out.append(claim("2.2.late-rate", st, holds=err <= RATE_TOL, measured=m, predicted=p,
                         tolerance=f"within 5% in −log rate (−log rates {neg_log(m):.4f} measured, {neg_log(p):.4f} "
                                   f"predicted; worst case max|1 − ηλ(H)| = {res['worst_rate']:.5f})"))
    # 6. the boundary depends on the threshold
    st = "The one-point rule's phase II boundary depends on c: raising c from 0.04 to 0.05 moves it by more than 10 steps."
    b_lo, b_hi = phase_boundary(h.steps, h["ratio"][:, 0], C_LOW), phase_boundary(h.steps, h["ratio"][:, 0], C_HIGH)
    if diverged or b_lo is None or b_hi is None:
        out.append(not_applicable("2.2.threshold", st, "the run diverged" if diverged else
                                  f"ρ ends at {h['ratio'][-1, 0]:.3g}, below c: no boundary to move"))
    else:
        shift = b_hi - b_lo
        out.append(claim("2.2.threshold", st, holds=shift > SHIFT, measured=shift, predicted=SHIFT,
                         tolerance="> 10 steps",
                         why="" if shift > SHIFT else f"the boundary is at step {b_lo} for c = 0.04 and {b_hi} for "
                         "c = 0.05: here ρ rises steeply through both" if b_lo > 0 else
                         f"ρ is above 0.05 from step {b_hi}: the one-point region holds {'from the start' if b_hi == 0 else 'early'}"))
    return out


def numbers(res: dict) -> dict:
    h = res["history"]
    b = {c: phase_boundary(h.steps, h["ratio"][:, 0], c) for c in (0.03, C_LOW, C_HIGH, 0.06)}
    pair = rates(res, 0)
    out = {"dimension d": res["d"], "start": start_text(res), "method": method_text(res), "step η": res["lr"],
           "η / (2/λ_max(H))": res["lr_fraction"], "λ_min(H), λ_max(H)": list(res["lam"]),
           "g at step 0": float(h["g"][0, 0]), "stage 1 ends (|g| ≤ 10% of its start)": res["g_fixed"][0] or "–",
           "stage 3 starts (ρ within 10% of ρ_H)": res["linear_start"][0] or "–",
           "lowest cosine in stage 1": float(np.min(h["cos"][: _at(h, res["g_fixed"][0] or 0) + 1, 0])),
           "‖W₀‖₂ (the start's spectral norm)": start_norm(res),
           f"lowest ρ on the plateau (steps {FEW} to stage 3)": (
               float(np.nanmin(h["ratio"][_at(h, FEW): _at(h, res["linear_start"][0]) + 1, 0]))
               if res["linear_start"][0] is not None and res["linear_start"][0] > FEW else "–"),
           **{f"one-point boundary for c = {c:g}": "–" if v is None else v for c, v in b.items()},
           "final loss": float(h["pop_loss"][-1, 0]), "final ‖W − W*‖": float(h["dist"][-1, 0])}
    if pair is not None:
        out["measured late rate"], out["predicted late rate (own error)"] = pair
    out["worst case max|1 − ηλ(H)|"] = res["worst_rate"]
    return out


def start_norm(res: dict) -> float:
    """||W_0||_2 of the run's start (the recorded first layer is I + W_0)."""
    d = res["d"]
    return float(np.linalg.norm(res["history"]["W"][0, 0].reshape(d, d) - np.eye(d), 2))


def start_text(res: dict) -> str:
    if res["init"] == "rotated":
        return f"columns shrunk by {res['scale']:g}, turned by {res['angle']:g} rad (‖W₀‖₂ = {start_norm(res):.2g})"
    if res["init"] == "minus_identity":
        return f"W₀ = −{res['scale']:g} I"
    return f"{res['init']}, ‖W₀‖₂ = {res['scale']:g}"


def headline(res: dict) -> str:
    h = res["history"]
    base = f"d = {res['d']}, {start_text(res)}, {method_text(res)}, {fraction_text(res)}"
    if h.diverged:
        return f"{base}: diverged at step {int(h.diverged_at.max())}: lower the step."
    k1, k3 = res["g_fixed"][0], res["linear_start"][0]
    return (f"{base}: stage 1 to step {k1 if k1 is not None else '–'}, stage 3 from step "
            f"{k3 if k3 is not None else '– (not reached)'}; final loss {h['pop_loss'][-1, 0]:.3g}")


# ----------------------------------------------------------------------------------------------
# Figure and state
# ----------------------------------------------------------------------------------------------
def draw(res: dict):
    fig, axes = plots.new_figure(3, 2, width=3.9, height=2.7)
    fig.subplots_adjust(left=0.065, right=0.985, bottom=0.09, top=0.88, wspace=0.3, hspace=0.55)
    fig.suptitle(f"d = {res['d']}, {start_text(res)}; {method_text(res)}, {fraction_text(res)}", fontsize=9.5, y=0.985)
    h = res["history"]
    s = h.steps
    ax_loss, ax_g, ax_dist, ax_cos, ax_rho, ax_c = axes
    sv, v = plots.finite_part(s, h["pop_loss"][:, 0])
    ax_loss.plot(sv, v, color=plots.color(0), lw=1.5)
    loss_floor(ax_loss, h["pop_loss"])
    ax_loss.set(yscale="log", ylabel="population loss L(W)")
    ax_g.plot(s, h["g"][:, 0], color=plots.color(2), lw=1.5)
    ax_g.axhline(0, color="grey", lw=0.8)
    ax_g.set(ylabel="g(W)", title="potential g = Σ‖eᵢ+w*ᵢ‖ − ‖eᵢ+wᵢ‖")
    ax_cos.plot(s, h["cos"][:, 0], color=plots.color(4), lw=1.5)
    ax_cos.axhline(0, color="grey", lw=0.8)
    ax_cos.set(ylim=(-1, 1), ylabel="cos(−∇L, W* − W)", title="does the gradient point to the teacher?")
    partial = res.get("partial")
    if partial:
        for ax in (ax_dist, ax_rho, ax_c):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
    else:
        distance_panel(ax_dist, res, labels=["measured"])
        ax_dist.set_title("distance to the teacher")
        ax_dist.legend(fontsize=6, loc="lower left")
        ax_rho.plot(s, h["ratio"][:, 0], color=plots.color(3), lw=1.5, label="ρ = ⟨−∇L, W*−W⟩/‖W−W*‖² (measured)")
        end = float(np.nanmax(h["ratio"][len(s) // 3:, 0])) if len(s) > 3 else 0.2
        top = max(0.25, 1.4 * end)
        rho_h = h["rho_H"][:, 0]
        off = bool(np.all(~np.isfinite(rho_h) | (rho_h > top)))
        ax_rho.plot(s, rho_h, **plots.THEORY_STYLE, label="ρ_H = eᵀHe/‖e‖² (linearized at W*)"
                    + (f": off scale, ≥ {np.nanmin(rho_h):.2g}" if off else ""))
        first = float(h["ratio"][0, 0])
        if np.isfinite(first) and first > top:  # the start's rho, above the panel
            ax_rho.annotate(f"ρ = {first:.3g} at step 0 ↑", (0, top), xytext=(4, -2), textcoords="offset points",
                            fontsize=6.5, va="top", color=plots.color(3))
        for c, ls, va in ((C_LOW, ":", "top"), (C_HIGH, "-.", "bottom")):
            ax_rho.axhline(c, color="grey", lw=1, ls=ls)
            ax_rho.text(0.995, c, f"c = {c:g}", transform=ax_rho.get_yaxis_transform(), ha="right", va=va,
                        fontsize=6.5, color="dimgrey")
        b = phase_boundary(s, h["ratio"][:, 0], C_LOW)
        if b is not None:
            ax_rho.axvline(max(b, 0.5), color="crimson", lw=1, ls=":", label=f"ρ ≥ {C_LOW:g} from step {b}")
        ax_rho.set(ylim=(-0.1, top), ylabel="one-point ratio", title="ρ against its linearization")
        ax_rho.legend(fontsize=6, loc="lower right")
        _threshold_panel(ax_c, res)
    for ax in (ax_loss, ax_g, ax_dist, ax_cos, ax_rho):
        symlog_steps(ax, res)
        shade_stages(ax, res, labels=ax is ax_loss)
        plots.time_axis(ax)
    divergence_note(ax_loss, res)
    return fig


def _threshold_panel(ax, res: dict) -> None:
    """The one-point rule's boundary (first step from which rho >= c to the end) for every threshold c."""
    b = np.array([np.nan if v is None else v for v in res["boundaries"]], dtype=float)
    ax.step(C_GRID, np.maximum(b, 0.5), where="post", color=plots.color(3), lw=1.5, label="boundary for threshold c")
    for c, mk in ((C_LOW, "o"), (C_HIGH, "s")):
        v = phase_boundary(res["history"].steps, res["history"]["ratio"][:, 0], c)
        if v is not None:
            ax.plot([c], [max(v, 0.5)], marker=mk, color="crimson", ls="", label=f"c = {c:g}: step {v}")
    k3 = res["linear_start"][0]
    if k3 is not None:
        ax.axhline(k3, color="grey", lw=0.8, ls="-", label=f"stage 3 starts: step {k3}")
    h = res["history"]
    end = float(h["ratio"][-1, 0])
    if np.isfinite(end) and end > 0:
        ax.axvline(end, color="grey", lw=0.8, ls=":", label=f"ρ at the end = {end:.3g}: no boundary beyond")
    if np.all(np.isnan(b)):
        ax.text(0.5, 0.5, f"ρ ends at {end:.2g}: below every threshold,\nno boundary for any c", transform=ax.transAxes,
                ha="center", va="center", fontsize=8)
    ax.set_yscale("symlog", linthresh=10, linscale=0.6)
    right = min(C_GRID[-1], max(0.1, 1.4 * end)) if np.isfinite(end) else C_GRID[-1]
    ax.set(xlim=(0, right), ylim=(0, h.steps[-1] * 4), xlabel="threshold c",
           ylabel="phase II starts at step", title="one-point rule: ρ ≥ c from here on")
    ax.legend(fontsize=6, loc="best")


def state(ax, res: dict):
    """The columns at step k (angle to the teacher's column, length error), with g, rho and the stage at k."""
    h = res["history"]
    k1, k3 = res["g_fixed"][0], res["linear_start"][0]
    b = phase_boundary(h.steps, h["ratio"][:, 0], C_LOW)

    def info(k):
        i = min(_at(h, k), len(h.steps) - 1)
        stage = ("stage 1 (g being fixed)" if k1 is not None and k < k1 else
                 "stage 3 (linear regime)" if k3 is not None and k >= k3 else
                 "stage 2 (columns turning)" if k3 is not None else "stage 2 (no linear regime in this run)")
        phase = "phase II by the rule (c = 0.04)" if b is not None and k >= b else "before the rule's phase II (c = 0.04)"
        return (f"{stage}\n{phase}\ng = {h['g'][i, 0]:.3g}, ρ = {h['ratio'][i, 0]:.3g}, ρ_H = {h['rho_H'][i, 0]:.3g}, "
                f"cos = {h['cos'][i, 0]:.2f}")

    return rows_state(ax, series(res), info=info)


def key_steps(res: dict) -> list[int]:
    s = res["history"].steps
    k1, k3 = res["g_fixed"][0], res["linear_start"][0]
    picks = {0, int(s[-1])}
    if k1 is not None:
        picks.add(nearest(res, k1))
        picks.add(nearest(res, (k1 + (k3 if k3 is not None else s[-1])) // 3))
    if k3 is not None:
        picks.add(nearest(res, k3))
    return sorted(picks)[:5]


def alt(res: dict) -> str:
    return ("Six panels against the step: the population loss, the potential g, the distance to the teacher with its "
            "linearized prediction, the cosine between the negative gradient and the way to the teacher, the one-point "
            "ratio against its linearized value, and the one-point rule's boundary for every threshold c.")


EXPERIMENT = Experiment(
    id="2.2", title="The stages of one run", run=run, draw=draw, claims=claims,
    controls={"init": dropdown("init W₀", DEFAULTS["init"], ("rotated", "minus_identity", "gaussian")),
              "scale": real("shrink (rotated), γ (−γI) or ‖W₀‖₂", DEFAULTS["scale"], 0.1, 0.9, 0.1),
              "angle": real("rotation angle (rad, rotated)", DEFAULTS["angle"], 0.0, 1.2, 0.1),
              "lr_fraction": real("step η / (2/λ_max(H))", DEFAULTS["lr_fraction"], 0.1, 0.9, 0.1),
              "d": select("dimension d", DEFAULTS["d"], DIMS),
              "method": dropdown("method", DEFAULTS["method"], ("gd", "sgd")),
              "steps": select("steps", DEFAULTS["steps"], (300, 450, 900)),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"default": {}, "minus_identity": {"init": "minus_identity"}, "angle1": {"angle": 1.0, "steps": 900}},
)


def phase_dashboard(**overrides):
    """Experiment 2.2's dashboard: one network from a start that makes the stages visible."""
    return EXPERIMENT.dashboard(**overrides)
