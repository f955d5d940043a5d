"""Experiment 3.2: the students find the teacher's directions (d = 2, so the neurons can be drawn).

Zhou, Ge & Jin's statement is about the neurons that keep weight: each converges to a teacher direction. A student
whose output weight has the wrong sign cannot help fit the teacher; it shrinks toward zero and need not align. So the
run classifies each student by its mass |a_j| ||w_j|| against its teacher's |a*_i| ||w*_i|| (teacher a*_i = +1):

* kept: mass at the end >= KEEP (10%) of its teacher's -> claim 3.2.aligned: within ALIGN_DEG of a teacher direction;
* wrong sign: a_j < 0 at the start -> claim 3.2.wrong-sign-shrinks: ends below 1% of a teacher's mass.

Angles are measured with :func:`course_lib.kernels.angles` (well conditioned at the small angles plotted here).
The state panel draws each neuron in the plane at the direction of w_j, at a distance that grows with log10 of its
mass (so the small random start and the shrinking of the dead neurons are both visible), with its trail up to k.
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
    KEEP,
    angle_matrix,
    gradient_descent,
    local_init,
    make_teacher,
    masses,
    random_init,
    reference_loss,
    settling,
    stability_limit,
    warn,
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
    """One student of n neurons (teacher: m orthonormal neurons with a*_i = +1); its parameters at every step."""
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
    status = settling(L, L[0], int(run["diverged_at"][0]), reference_loss(a_star, W_star))
    owner = np.argmin(ang[-1], axis=1)
    a_hist = run["a_hist"][:, 0]
    wrong = a_hist[-1] < 0                                   # negative output weight at the end (every a*_i = +1)
    flipped = np.sign(a_hist[-1]) != np.sign(a_hist[0])     # crossed zero (GD's finite steps allow it)
    kept = (mass[-1] >= KEEP * tmass) & ~wrong
    return {"run": run, "angles": ang, "mass": mass, "owner": owner, "kept": kept, "wrong": wrong, "flipped": flipped,
            "teacher_mass": tmass, "a_star": a_star, "W_star": W_star, "m": m, "n": n, "d": d, "init": init,
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
    deg = np.degrees(res["angles"][-1].min(axis=1))  # angle to the nearest teacher direction, per student
    s1 = (f"Every student that keeps weight (at the end at least {KEEP:.0%} of its teacher's mass |a*ᵢ|‖w*ᵢ‖) ends "
          f"within {ALIGN_DEG:g}° of a teacher direction.")
    kept = res["kept"]
    if bad:
        c1 = not_applicable("3.2.aligned", s1, bad)
    elif not kept.any():
        c1 = not_applicable("3.2.aligned", s1, "no student keeps weight")
    else:
        worst = float(deg[kept].max())
        j = int(np.flatnonzero(kept)[np.argmax(deg[kept])])
        c1 = claim("3.2.aligned", s1, holds=worst <= ALIGN_DEG, measured=worst, predicted=0.0,
                   tolerance=f"largest angle among the {int(kept.sum())} students that keep weight ≤ {ALIGN_DEG:g}°",
                   why=(f"student {j + 1} keeps {res['mass'][-1, j] / res['teacher_mass']:.0%} of a teacher's mass but "
                        f"ends {worst:.2g}° from the nearest teacher direction" if worst > ALIGN_DEG else ""))
    s2 = (f"Students whose output weight is negative (the wrong sign: every a*ᵢ = +1) shrink and stay light: each "
          f"ends lighter than it started and below {DEAD:.0%} of a teacher's mass, whatever its direction.")
    wrong = res["wrong"]
    if res["status"][0] != "settles":
        c2 = not_applicable("3.2.wrong-sign-shrinks", s2, f"GD does not settle: {res['status'][1]}")
    elif not wrong.any():
        c2 = not_applicable("3.2.wrong-sign-shrinks", s2, "no student ends with a negative output weight "
                            + ("(the local start copies the teacher's signs)" if res["init"] == "local" else
                               "at this seed"))
    else:
        rel = res["mass"][-1, wrong] / res["teacher_mass"]
        grew = res["mass"][-1, wrong] / res["mass"][0, wrong]
        worst, ratio = float(rel.max()), float(grew.max())
        ok = worst < DEAD and ratio < 1
        why = ""
        if worst >= DEAD:
            why = f"a student with a < 0 still carries {worst:.1%} of a teacher's mass after {res['steps']} steps"
        elif ratio >= 1:
            why = f"a student with a < 0 ends {ratio:.2g} × heavier than it started"
        c2 = claim("3.2.wrong-sign-shrinks", s2, holds=ok, measured=worst, predicted=None,
                   tolerance=(f"largest mass of the {int(wrong.sum())} negative students < {DEAD:.0%} of a teacher's, "
                              f"each lighter than at the start (largest end/start: {ratio:.2g})"),
                   why=why + (_partner(res, wrong) if why else ""))
    return [c1, c2]


def _partner(res: dict, wrong) -> str:
    """If the heaviest wrong-sign student has a positive student at nearly its direction, say that they cancel."""
    j = int(np.flatnonzero(wrong)[np.argmax(res["mass"][-1, wrong])])
    W = res["run"]["W"][0]
    a = res["run"]["a"][0]
    others = [i for i in range(res["n"]) if i != j and a[i] > 0]
    if not others:
        return ""
    ang = np.degrees(angle_matrix(W[[j]], W[others]))[0]
    if ang.min() < 5:
        return ": a positive student points almost the same way and the two cancel, so the loss no longer pushes them"
    return ""


def numbers(res: dict) -> dict:
    deg = np.degrees(res["angles"][-1].min(axis=1))
    rel = res["mass"][-1] / res["teacher_mass"]
    L = res["run"]["loss"][:, 0]
    out = {"teacher m, student n, d": f"{res['m']}, {res['n']}, {res['d']}", "start": res["init"],
           "step η": res["lr"], "η / stability limit": res["lr_fraction"], "steps": res["steps"],
           "final L / L(0)": float(L[-1] / L[0])}
    for j in np.argsort(-rel):
        kind = "a < 0" if res["wrong"][j] else ("keeps weight" if res["kept"][j] else "a > 0, light")
        kind += ", changed sign" if res["flipped"][j] else ""
        out[f"student {j + 1} ({kind}): mass / teacher's, angle (°)"] = f"{fmt(rel[j])}, {fmt(deg[j])}"
    return out


def headline(res: dict) -> str:
    bad = _converged(res)
    k = int(res["kept"].sum())
    w = int(res["wrong"].sum())
    head = f"{res['init']} start, m = {res['m']}, n = {res['n']}: {k} students keep weight, {w} end with a < 0"
    return f"{head}; {bad}" if bad else f"{head}; final loss {res['run']['loss'][-1, 0] / res['run']['loss'][0, 0]:.2g} L(0)"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _style(res: dict, j: int) -> dict:
    """Kept: the colour and marker of its teacher; light positive: the same, thin; negative: grey with x."""
    if res["wrong"][j]:
        return dict(color="0.55", marker="x", lw=1.0, ms=4)
    i = int(res["owner"][j])
    return dict(color=plots.color(i), marker=plots.marker(i), lw=1.8 if res["kept"][j] else 0.9,
                ms=4 if res["kept"][j] else 3)


def _kind(res: dict, j: int) -> str:
    if res["wrong"][j]:
        return "a_j < 0 (wrong sign)"
    return f"→ teacher {res['owner'][j] + 1}" + ("" if res["kept"][j] else f", light (< {KEEP:.0%})")


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=3.9)
    fig.subplots_adjust(bottom=0.3)
    steps = res["run"]["steps"]
    k = np.unique(np.geomspace(1, max(steps[-1], 1), 200).astype(int))
    deg = np.degrees(res["angles"].min(axis=2))  # (R, n)
    rel = res["mass"] / res["teacher_mass"]
    seen = set()
    order = sorted(range(res["n"]), key=lambda j: (res["wrong"][j], res["owner"][j], not res["kept"][j]))
    for j in order:
        st = _style(res, j)
        kind = _kind(res, j)
        label = None if kind in seen else kind
        seen.add(kind)
        for ax, v in ((ax1, deg[k, j]), (ax2, rel[k, j])):
            ok = np.isfinite(v) & (v > 0)
            ax.plot(k[ok], v[ok], color=st["color"], lw=st["lw"], marker=st["marker"], ms=st["ms"],
                    markevery=max(1, ok.sum() // 6), label=label if ax is ax1 else None)
    ax1.axhline(ALIGN_DEG, **plots.BOUND_STYLE, label=f"{ALIGN_DEG:g}° (the claim's tolerance)")
    ax2.axhline(1.0, **plots.THEORY_STYLE, label="teacher's mass |a*ᵢ|‖w*ᵢ‖")
    ax2.axhline(KEEP, color="0.6", lw=1, ls="-.", label=f"keeps weight: ≥ {KEEP:.0%}")
    ax2.axhline(DEAD, color="0.6", lw=1, ls=(0, (1, 3)), label=f"light: < {DEAD:.0%}")
    ax1.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="angle to the nearest teacher (°)",
            title=f"each student's angle ({res['init']} start, n = {res['n']}, m = {res['m']})")
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="mass |a_j|‖w_j‖ / teacher's",
            title=f"each student's mass (η = {res['lr_fraction']:.2g} × 2/λmax)")
    lo = max(float(np.nanmin(np.where(deg[k] > 0, deg[k], np.nan))), 1e-12) if np.any(deg[k] > 0) else 1e-12
    ax1.set_ylim(lo / 3, 300)
    ax2.set_ylim(max(float(np.nanmin(rel[k])), 1e-8) / 3, 5)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=4, fontsize=7, frameon=False)
    bad = _converged(res)
    if bad:
        warn(ax1, bad)
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


def state(ax, res: dict):
    """The students in the plane at step k: direction of w_j, distance log10 of the mass |a_j| ||w_j|| (rings:
    1e-3 .. 1 of the teacher's), marker area ~ mass, trails up to k; teacher neurons as black stars."""
    from matplotlib.collections import LineCollection

    P = _plane(res)
    R = math.log10(1 / M_MIN)
    lim = max(R, float(np.abs(P).max())) * 1.12
    for r, lab in ((1, "10⁻³"), (2, "10⁻²"), (3, "10⁻¹"), (4, "1")):
        t = np.linspace(0, 2 * np.pi, 120)
        ax.plot(r * np.cos(t), r * np.sin(t), color="0.85", lw=0.8, zorder=0)
        ax.text(r * 0.71, -r * 0.71, lab, fontsize=6, color="0.5", ha="left", va="top")
    T = res["W_star"][:, :2] / np.linalg.norm(res["W_star"][:, :2], axis=1, keepdims=True) * R
    for i, (x, y) in enumerate(T):
        ax.plot([0, x], [0, y], color="0.4", lw=0.8, zorder=1)
    ax.scatter(T[:, 0], T[:, 1], marker="*", s=300, facecolors="none", edgecolors="black", linewidths=1.2, zorder=6)
    n = res["n"]
    colors = [_style(res, j)["color"] for j in range(n)]
    trails = LineCollection([np.zeros((2, 2))] * n, colors=colors, linewidths=1.0, alpha=0.8, zorder=2)
    ax.add_collection(trails)
    pos = ~res["wrong"]
    kept_pts = ax.scatter(np.zeros(pos.sum()), np.zeros(pos.sum()), c=[colors[j] for j in np.flatnonzero(pos)],
                          marker="o", edgecolors="black", linewidths=0.5, zorder=5)
    dead_pts = ax.scatter(np.zeros((~pos).sum()), np.zeros((~pos).sum()), color="0.45", marker="X", zorder=5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[],
           xlabel="☆ teacher  ● a_j > 0  ✖ a_j < 0 (at the end)\nangle: direction of w_j; distance: log₁₀ mass")
    text = ax.text(0.98, 0.02, "", transform=ax.transAxes, fontsize=8, ha="right", va="bottom")
    steps = res["run"]["snap_steps"]
    rel = res["mass"] / res["teacher_mass"]
    L = res["run"]["loss"][:, 0]

    def update(k: int):
        i = int(np.searchsorted(steps, k))
        trails.set_segments([P[: i + 1, j] if i > 0 else np.repeat(P[:1, j], 2, 0) for j in range(n)])
        size = 12 + 150 * np.minimum(rel[i], 1.5)
        kept_pts.set_offsets(P[i, pos])
        kept_pts.set_sizes(size[pos])
        dead_pts.set_offsets(P[i, ~pos])
        dead_pts.set_sizes(size[~pos] * 1.5)
        text.set_text(f"L = {L[k] / L[0]:.2g} L(0)")
        return [trails, kept_pts, dead_pts, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["steps"], 50)


def key_steps(res: dict) -> list[int]:
    T = res["steps"]
    near = lambda t: int(min(res["run"]["steps"], key=lambda k: abs(k - t)))
    return sorted({0, near(T / 30), near(T / 5), T})


def alt(res: dict) -> str:
    return (f"Left: angle of each of the {res['n']} students to the nearest of the {res['m']} teacher directions; right: "
            "each student's mass |a_j|‖w_j‖ against the teacher's (dashed); wrong-sign students in grey.")


EXPERIMENT = Experiment(
    id="3.2", title="The students find the teacher's directions (d = 2)", run=experiment, draw=draw, claims=claims,
    controls={"m": integer("teacher m", DEFAULTS["m"], 1, 2),
              "n": integer("student n", DEFAULTS["n"], 2, 12),
              "init": dropdown("start", DEFAULTS["init"], INITS),
              "noise": real("local start noise", DEFAULTS["noise"], 0.1, 1.5, 0.1),
              "scale": real("random start scale", DEFAULTS["scale"], 0.05, 0.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed=dict(FIXED), numbers=numbers, floors={}, headline=headline, state=state, frames=frames,
    key_steps=key_steps, alt=alt,
    reproduce={"random": {}, "local": {"init": "local"}},
)
