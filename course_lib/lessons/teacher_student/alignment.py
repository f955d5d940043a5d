"""Experiment 3.2: the student neurons find the teacher's directions (d = 2, so the neurons can be drawn).

Zhou, Ge & Jin's statement is about the neurons that keep weight: each converges to a teacher direction. The run
classifies each neuron j of the one student network by its mass |a_j| ||w_j|| at the end against its teacher's
|a*_i| ||w*_i|| (every a*_i = +1 here) and by the sign of a_j:

* keeps weight: a_j > 0 and mass at the end >= KEEP (10%) of its teacher's -> claim 3.2.aligned: within ALIGN_DEG
  of a teacher direction;
* starts with the wrong sign (a_j < 0 at step 0) -> claim 3.2.wrong-sign-shrinks: ends lighter than it started and
  below DEAD (2%) of a teacher's mass, whether it is still negative at the end or crossed zero on the way.

Signs: gradient flow conserves c_j = a_j^2 - ||w_j||^2, which is exactly 0 at this balanced start, so a_j can reach 0
only together with w_j, and a neuron keeps its sign. Each GD step changes c_j by eta^2 ((dL/da_j)^2 - ||dL/dw_j||^2),
which from c_j = 0 is minus eta^2 a_j^2 times the squared sideways part of the gradient: GD pushes c_j below 0, so
||w_j|| > |a_j| and a shrinking wrong-sign neuron can pass a_j = 0 at ||w_j|| = sqrt(-c_j) > 0 (the V-shaped dips of
the mass panel). The run records each neuron's sign at every step (``sign_changes``).

Angles are measured with :func:`course_lib.kernels.angles` (well conditioned at the small angles plotted here). The
state panel draws each neuron in the plane at the direction of w_j, at a distance that grows with log10 of its mass,
with the marker of its sign at step k, and its trail up to k.
"""
from __future__ import annotations

import math

import numpy as np

from ... import plots
from ..._validate import check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, dropdown, integer, log_frames, real, select
from ...runtime import scaled_steps
from .core import (
    ANGLE_FLOOR_DEG,
    FLOOR,
    KEEP,
    angle_matrix,
    frame_title,
    gradient_descent,
    local_init,
    make_teacher,
    masses,
    random_init,
    reference_loss,
    settling,
    stability_limit,
)

DEFAULTS = dict(m=2, n=6, init="random", noise=0.3, scale=0.1, steps=1000, seed=3)
FIXED = dict(d=2, lr_fraction=0.5)
INITS = ("random", "local")
STEPS = (250, 500, 1000, 2000)
ALIGN_DEG = 3.0       # "within 3 degrees" (the teachers are 90 degrees apart)
DEAD = 0.02           # "below 2% of a teacher's mass"
CONVERGED = 1e-4      # the alignment claim needs the loss below 1e-4 L(0)
M_MIN = 1e-4          # the state panel's centre: mass 1e-4 of the teacher's


def experiment(m: int = DEFAULTS["m"], n: int = DEFAULTS["n"], d: int = FIXED["d"], *, init: str = DEFAULTS["init"],
               noise: float = DEFAULTS["noise"], scale: float = DEFAULTS["scale"],
               lr_fraction: float = FIXED["lr_fraction"], lr: float | None = None, steps: int = DEFAULTS["steps"],
               seed: int = DEFAULTS["seed"], device=None, live=None) -> dict:
    """One student network of n neurons (teacher: m orthonormal neurons with a*_i = +1); its parameters at every
    step."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}; got {init!r}")
    n = check_int("n", n, min_value=1, max_value=64)
    if n < m:
        raise ValueError(f"student size n must be >= teacher size m={m}; got n={n}")
    steps = scaled_steps(steps)
    a_star, W_star = make_teacher(m, d, seed=seed)
    limit = stability_limit(a_star, W_star)
    lr = lr_fraction * limit if lr is None else float(lr)
    if init == "local":
        a0, W0 = local_init(a_star, W_star, [n], noise=noise, seed=seed + 1)
    else:
        a0, W0, _ = random_init([n], d, scale=scale, seeds=1, seed=seed + 1)
    run = gradient_descent(a0, W0, a_star, W_star, lr=lr, steps=steps, record_every=1)
    ang = angle_matrix(run["W_hist"][:, 0], W_star)  # (R, n, m) radians
    mass = masses(run["a_hist"][:, 0], run["W_hist"][:, 0])  # (R, n)
    tmass = float(np.abs(a_star[0]) * np.linalg.norm(W_star[0]))  # every teacher neuron has mass 1 here
    L = run["loss"][:, 0]
    ref = reference_loss(a_star, W_star)
    status = settling(L, L[0], int(run["diverged_at"][0]), ref)
    owner = np.argmin(ang[-1], axis=1)
    a_hist = run["a_hist"][:, 0]
    sign = np.sign(a_hist)                                   # (R, n): the sign of a_j at every step
    wrong = a_hist[-1] < 0                                   # negative output weight at the end (every a*_i = +1)
    start_neg = a_hist[0] < 0                                # the wrong sign at the start
    changes = [np.flatnonzero(sign[1:, j] != sign[:-1, j]) + 1 for j in range(n)]  # steps where a_j changed sign
    flipped = np.array([len(c) > 0 for c in changes])
    kept = (mass[-1] >= KEEP * tmass) & ~wrong
    return {"run": run, "angles": ang, "mass": mass, "owner": owner, "kept": kept, "wrong": wrong,
            "start_neg": start_neg, "flipped": flipped, "sign": sign, "sign_changes": changes, "ref": ref,
            "teacher_mass": tmass, "a_star": a_star, "W_star": W_star, "m": m, "n": n, "d": d, "init": init,
            "noise": noise, "scale": scale, "seed": seed,
            "lr": lr, "lr_fraction": lr / limit, "status": status, "steps": int(run["steps"][-1]), "partial": False}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _converged(res: dict) -> str:
    """Why the end of the run is not a converged state ('' when it is)."""
    st, why = res["status"]
    if st != "settles":
        return f"GD does not settle: {why}"
    L = res["run"]["loss"][:, 0]
    if L[-1] > CONVERGED * L[0]:
        return (f"the run has not converged: the loss ends at {L[-1] / L[0]:.2g} L(0) after {res['steps']} steps "
                "(raise the steps)")
    return ""


def claims(res: dict) -> list:
    bad = _converged(res)
    deg = np.degrees(res["angles"][-1].min(axis=1))  # angle to the nearest teacher direction, per neuron
    s1 = (f"Every neuron that keeps weight (at the end at least {KEEP:.0%} of its teacher's mass |a*ᵢ|‖w*ᵢ‖) ends "
          f"within {ALIGN_DEG:g}° of a teacher direction.")
    kept = res["kept"]
    if bad:
        c1 = not_applicable("3.2.aligned", s1, bad)
    elif not kept.any():
        c1 = not_applicable("3.2.aligned", s1, "no neuron keeps weight")
    else:
        worst = float(deg[kept].max())
        j = int(np.flatnonzero(kept)[np.argmax(deg[kept])])
        c1 = claim("3.2.aligned", s1, holds=worst <= ALIGN_DEG, measured=max(worst, ANGLE_FLOOR_DEG), predicted=0.0,
                   tolerance=(f"largest angle among the {int(kept.sum())} neurons that keep weight ≤ {ALIGN_DEG:g}° "
                              f"({fmt(worst, 3, floor=ANGLE_FLOOR_DEG)}°; below 10⁻¹³° is rounding)"),
                   why=(f"neuron {j + 1} keeps {res['mass'][-1, j] / res['teacher_mass']:.0%} of a teacher's mass but "
                        f"ends {worst:.2g}° from the nearest teacher direction" if worst > ALIGN_DEG else ""))
    s2 = (f"Every neuron that starts with the wrong sign (a_j < 0, while every a*ᵢ = +1) shrinks: it ends lighter than "
          f"it started and below {DEAD:.0%} of a teacher's mass, whether it is still negative or crossed zero on the "
          "way.")
    neg = res["start_neg"]
    if res["status"][0] != "settles":
        c2 = not_applicable("3.2.wrong-sign-shrinks", s2, f"GD does not settle: {res['status'][1]}")
    elif not neg.any():
        c2 = not_applicable("3.2.wrong-sign-shrinks", s2, "no neuron starts with a negative output weight "
                            + ("(the local start copies the teacher's signs)" if res["init"] == "local" else
                               "at this seed"))
    else:
        rel = res["mass"][-1, neg] / res["teacher_mass"]
        grew = res["mass"][-1, neg] / res["mass"][0, neg]
        worst, ratio = float(rel.max()), float(grew.max())
        ok = worst < DEAD and ratio < 1
        why = ""
        j = int(np.flatnonzero(neg)[np.argmax(rel)])
        crossed = f" (it crossed zero at step {res['sign_changes'][j][0]})" if res["flipped"][j] else ""
        if worst >= DEAD:
            why = (f"neuron {j + 1} started with a < 0 and still carries {worst:.1%} of a teacher's mass after "
                   f"{res['steps']} steps{crossed}")
        elif ratio >= 1:
            j = int(np.flatnonzero(neg)[np.argmax(grew)])
            why = f"neuron {j + 1} started with a < 0 and ends {ratio:.2g} × heavier than it started"
        crossers = int((neg & res["flipped"]).sum())
        c2 = claim("3.2.wrong-sign-shrinks", s2, holds=ok, measured=worst, predicted=None,
                   tolerance=(f"largest end mass of the {int(neg.sum())} neurons that start with a < 0 "
                              f"({crossers} crossed zero) < {DEAD:.0%} of a teacher's, each lighter than at the start "
                              f"(largest end/start: {ratio:.2g})"),
                   why=why + (_partner(res, neg) if why else ""))
    return [c1, c2]


def _partner(res: dict, neg) -> str:
    """If the heaviest wrong-sign neuron has a positive neuron at nearly its direction, say that they cancel."""
    j = int(np.flatnonzero(neg)[np.argmax(res["mass"][-1, neg])])
    W = res["run"]["W"][0]
    a = res["run"]["a"][0]
    if a[j] > 0:
        return ""
    others = [i for i in range(res["n"]) if i != j and a[i] > 0]
    if not others:
        return ""
    ang = np.degrees(angle_matrix(W[[j]], W[others]))[0]
    if ang.min() < 5:
        return ": a positive neuron points almost the same way and the two cancel, so the loss no longer pushes them"
    return ""


def _kind_text(res: dict, j: int) -> str:
    kind = "a < 0 at the end" if res["wrong"][j] else ("keeps weight" if res["kept"][j] else "a > 0, light")
    if res["start_neg"][j] and not res["wrong"][j]:
        kind += ", started a < 0"
    if res["flipped"][j]:
        kind += ", changed sign at step " + ", ".join(map(str, res["sign_changes"][j][:3]))
    return kind


def numbers(res: dict) -> dict:
    deg = np.degrees(res["angles"][-1].min(axis=1))
    rel = res["mass"][-1] / res["teacher_mass"]
    L = res["run"]["loss"][:, 0]
    out = {"teacher m, student neurons n, d": f"{res['m']}, {res['n']}, {res['d']}",
           "start": f"{res['init']} (" + (f"scale {res['scale']:g}" if res["init"] == "random" else
                                          f"noise {res['noise']:g}") + f"), seed {res['seed']}",
           "step η": res["lr"], "η / stability limit": res["lr_fraction"], "steps": res["steps"],
           "final L / E[f*²]": fmt(L[-1] / res["ref"], 4, floor=FLOOR),
           "neurons that start with a < 0; of them crossed zero":
               f"{int(res['start_neg'].sum())}; {int((res['start_neg'] & res['flipped']).sum())}"}
    for j in np.argsort(-rel):
        out[f"neuron {j + 1} ({_kind_text(res, j)}): mass / teacher's, angle (°)"] = (
            f"{fmt(rel[j])}, {fmt(deg[j], 3, floor=ANGLE_FLOOR_DEG)}")
    return out


def headline(res: dict) -> str:
    bad = _converged(res)
    k = int(res["kept"].sum())
    s = int(res["start_neg"].sum())
    c = int((res["start_neg"] & res["flipped"]).sum())
    head = (f"{res['init']} start, m = {res['m']}, n = {res['n']}: {k} neurons keep weight; {s} start with a < 0 "
            f"({c} crossed zero)")
    L = res["run"]["loss"][:, 0]
    return f"{head}; {bad}" if bad else f"{head}; final loss {fmt(L[-1] / res['ref'], 2, floor=FLOOR)} E[f*²]"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
NEG_GREY = "0.5"


def _style(res: dict, j: int) -> dict:
    """Kept: the colour and marker of its teacher, thick; light positive: the same, thin; negative at the end: grey."""
    if res["wrong"][j]:
        return dict(color=NEG_GREY, marker="x", lw=1.0, ms=4)
    i = int(res["owner"][j])
    return dict(color=plots.color(i), marker=plots.marker(i), lw=1.9 if res["kept"][j] else 0.9,
                ms=4 if res["kept"][j] else 3)


def _kind(res: dict, j: int) -> str:
    if res["wrong"][j]:
        return "a_j < 0 at the end (grey)"
    return f"→ teacher {res['owner'][j] + 1}, " + ("keeps weight (thick)" if res["kept"][j] else
                                                   f"light, < {KEEP:.0%} (thin)")


def _settings(res: dict) -> str:
    start = (f"random start, scale {res['scale']:g}" if res["init"] == "random" else
             f"local start, noise {res['noise']:g}")
    return (f"teacher m = {res['m']} (a* = +1) in d = 2, student n = {res['n']}, {start}, "
            f"η = {res['lr_fraction']:.3g} × 2/λmax, T = {res['steps']}, seed {res['seed']}")


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=4.0)
    fig.subplots_adjust(bottom=0.32, left=0.09, wspace=0.32)  # room for the angle axis's label
    steps = res["run"]["steps"]
    k = np.unique(np.geomspace(1, max(steps[-1], 1), 240).astype(int))
    deg = np.degrees(res["angles"].min(axis=2))  # (R, n)
    rel = res["mass"] / res["teacher_mass"]
    seen = set()
    order = sorted(range(res["n"]), key=lambda j: (res["wrong"][j], res["owner"][j], not res["kept"][j]))
    for r, j in enumerate(order):
        st = _style(res, j)
        kind = _kind(res, j)
        label = None if kind in seen else kind
        seen.add(kind)
        neg = res["sign"][k, j] < 0
        for ax, v in ((ax1, np.maximum(deg[k, j], ANGLE_FLOOR_DEG / 3)), (ax2, rel[k, j])):
            v = np.where(np.isfinite(v) & (v > 0), v, np.nan)
            # dotted while a_j < 0, solid while a_j > 0 (the same colour: the neuron's class at the end)
            ax.plot(k, v, color=st["color"], lw=st["lw"], ls=":" if neg.any() else "-", marker=st["marker"],
                    ms=st["ms"], markevery=(r % 5, 6), label=label if ax is ax1 else None)
            if neg.any() and not neg.all():
                ax.plot(k, np.where(neg, np.nan, v), color=st["color"], lw=st["lw"], ls="-")
        for c in res["sign_changes"][j]:  # a sign change: a_j passes 0 (the V-shaped dip of the mass)
            ax2.plot([c], [rel[c, j]], marker="|", ms=11, mew=1.6, color=st["color"], ls="none")
    if res["flipped"].any():
        ax2.plot([], [], marker="|", ms=9, mew=1.6, color="0.3", ls="none", label="| a_j crosses 0")
    if (res["sign"][k] < 0).any():
        ax2.plot([], [], color="0.3", ls=":", label="dotted: while a_j < 0")
    ax1.axhspan(ANGLE_FLOOR_DEG / 30, ANGLE_FLOOR_DEG, color="0.85", zorder=0)
    ax1.text(0.97, 0.02, "float64 rounding", transform=ax1.transAxes, fontsize=7, color="0.3", ha="right")
    ax1.axhline(ALIGN_DEG, **plots.BOUND_STYLE, label=f"{ALIGN_DEG:g}° (the alignment claim's bound)")
    ax2.axhline(1.0, **plots.THEORY_STYLE, label="teacher's mass |a*ᵢ|‖w*ᵢ‖")
    ax2.axhline(KEEP, color="0.55", lw=1, ls="-.", label=f"keeps weight: ≥ {KEEP:.0%}")
    lo_mass = min(max(float(np.nanmin(rel[k])), 1e-9), KEEP) / 3  # every line in the legend is on the axes
    if res["start_neg"].any():
        ax2.axhline(DEAD, color="0.55", lw=1, ls=(0, (1, 3)), label=f"wrong-sign bound: {DEAD:.0%}")
        lo_mass = min(lo_mass, DEAD / 3)
    ax1.set(xscale="log", yscale="log", xlabel="GD step k", 
            title="each neuron's angle to the nearest teacher")
    ax1.set_ylabel("angle to nearest teacher (°)", fontsize=8.5)
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="mass |a_j|‖w_j‖ / teacher's",
            title="each neuron's mass")
    lo = max(float(np.nanmin(np.where(deg[k] > 0, deg[k], np.nan))), ANGLE_FLOOR_DEG / 10) \
        if np.any(deg[k] > 0) else ANGLE_FLOOR_DEG / 10
    ax1.set_ylim(min(lo, ANGLE_FLOOR_DEG) / 3, 300)
    ax2.set_ylim(lo_mass, 5)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=3, fontsize=7, frameon=False)
    frame_title(fig, _settings(res), _converged(res))
    plots.time_axis(ax1)
    plots.time_axis(ax2)
    return fig


def _plane(res: dict) -> np.ndarray:
    """(R, n, 2): each neuron at the direction of w_j, at distance log10(mass / (M_MIN x teacher's)) (>= 0)."""
    W = res["run"]["W_hist"][:, 0]
    nrm = np.linalg.norm(W, axis=-1, keepdims=True)
    u = W / np.maximum(nrm, 1e-300)
    r = np.maximum(np.log10(np.maximum(res["mass"], 1e-300) / (M_MIN * res["teacher_mass"])), 0.0)
    return u[..., :2] * r[..., None]


def _free_corner(directions: np.ndarray) -> tuple[float, float, str, str]:
    """The corner of the plane (axes coordinates and alignment) farthest from every teacher direction."""
    corners = [(0.02, 0.98, "left", "top", (-1, 1)), (0.98, 0.98, "right", "top", (1, 1)),
               (0.02, 0.02, "left", "bottom", (-1, -1)), (0.98, 0.02, "right", "bottom", (1, -1))]
    u = directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-300)
    best = min(corners, key=lambda c: float((u @ (np.array(c[4]) / math.sqrt(2))).max()))
    return best[:4]


def state(ax, res: dict):
    """The neurons in the plane at step k: direction of w_j, distance log10 of the mass |a_j| ||w_j|| (rings:
    1e-3 .. 1 of the teacher's), marker area ~ mass, marker by the sign of a_j at step k (o: a_j > 0, coloured by the
    teacher it ends nearest; X: a_j < 0, grey), trails up to k; teacher neurons as hollow stars."""
    from matplotlib.collections import LineCollection

    P = _plane(res)
    R = math.log10(1 / M_MIN)
    lim = max(R, float(np.abs(P).max())) * 1.12
    for r, lab in ((1, "10⁻³"), (2, "10⁻²"), (3, "10⁻¹"), (4, "1")):
        t = np.linspace(0, 2 * np.pi, 120)
        ax.plot(r * np.cos(t), r * np.sin(t), color="0.85", lw=0.8, zorder=0)
        ax.text(r * 0.71, -r * 0.71, lab, fontsize=7.5, color="0.4", ha="left", va="top", zorder=1)
    T = res["W_star"][:, :2] / np.linalg.norm(res["W_star"][:, :2], axis=1, keepdims=True) * R
    for x, y in T:
        ax.plot([0, x], [0, y], color="0.4", lw=0.8, zorder=1)
    ax.scatter(T[:, 0], T[:, 1], marker="*", s=300, facecolors="none", edgecolors="black", linewidths=1.2, zorder=6)
    n = res["n"]
    colors = np.array([plots.color(int(res["owner"][j])) if not res["wrong"][j] else NEG_GREY for j in range(n)],
                      dtype=object)
    trails = LineCollection([np.zeros((2, 2))] * n, colors=list(colors), linewidths=1.0, alpha=0.8, zorder=2)
    ax.add_collection(trails)
    pos_pts = ax.scatter(np.zeros(n), np.zeros(n), c=list(colors), marker="o", edgecolors="black", linewidths=0.5,
                         zorder=5)
    neg_pts = ax.scatter(np.zeros(n), np.zeros(n), color="0.35", marker="X", zorder=5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[],
           xlabel="☆ teacher  ● a_j > 0 now  ✖ a_j < 0 now\nangle: direction of w_j; distance: log₁₀ mass")
    x, y, ha, va = _free_corner(res["W_star"][:, :2])
    text = ax.text(x, y, "", transform=ax.transAxes, fontsize=7.5, ha=ha, va=va, zorder=8,
                   bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=1.5))
    steps = res["run"]["snap_steps"]
    rel = res["mass"] / res["teacher_mass"]
    deg = np.degrees(res["angles"].min(axis=2))
    L = res["run"]["loss"][:, 0]
    kept = res["kept"]

    def update(k: int):
        i = int(np.searchsorted(steps, k))
        trails.set_segments([P[: i + 1, j] if i > 0 else np.repeat(P[:1, j], 2, 0) for j in range(n)])
        size = 12 + 150 * np.minimum(rel[i], 1.5)
        pos = res["sign"][i] > 0
        pos_pts.set_offsets(P[i, pos] if pos.any() else np.empty((0, 2)))
        pos_pts.set_sizes(size[pos])
        pos_pts.set_facecolor(list(colors[pos]))
        neg_pts.set_offsets(P[i, ~pos] if (~pos).any() else np.empty((0, 2)))
        neg_pts.set_sizes(size[~pos] * 1.3)
        worst = fmt(float(deg[i, kept].max()), 3, floor=ANGLE_FLOOR_DEG) if kept.any() else "–"
        text.set_text(f"L = {fmt(L[k] / res['ref'], 2, floor=FLOOR)} E[f*²]\n"
                      f"largest angle of the\nneurons that keep weight: {worst}°")
        return [trails, pos_pts, neg_pts, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["steps"], 50)


def key_steps(res: dict) -> list[int]:
    T = res["steps"]
    near = lambda t: int(min(res["run"]["steps"], key=lambda k: abs(k - t)))  # noqa: E731
    return sorted({0, near(T / 30), near(T / 5), T})


def alt(res: dict) -> str:
    return (f"Left: angle of each of the {res['n']} neurons to the nearest of the {res['m']} teacher directions; right: "
            f"each neuron's mass |a_j|‖w_j‖ against the teacher's (dashed), dotted while a_j < 0, with ticks where a_j "
            f"crosses 0; neurons negative at the end in grey ({_settings(res)}).")


EXPERIMENT = Experiment(
    id="3.2", title="The student neurons find the teacher's directions (d = 2)", run=experiment, draw=draw,
    claims=claims,
    controls={"m": integer("teacher m", DEFAULTS["m"], 1, 2),
              "n": integer("student neurons n", DEFAULTS["n"], 2, 12),
              "init": dropdown("start", DEFAULTS["init"], INITS),
              "noise": real("local start noise", DEFAULTS["noise"], 0.1, 1.5, 0.1),
              "scale": real("random start scale", DEFAULTS["scale"], 0.05, 0.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed=dict(FIXED), numbers=numbers, floors={}, headline=headline, state=state, frames=frames,
    key_steps=key_steps, alt=alt,
    reproduce={"random": {}, "local": {"init": "local"}},
)
