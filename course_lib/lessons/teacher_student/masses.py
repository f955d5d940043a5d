"""Experiment 3.3: each teacher's cluster mass, and the conserved a_j^2 - ||w_j||^2.

Teacher norms ||w*_i|| spread in [0.7, 1.3]; n = (n/m) x m student neurons start near the teacher with their lengths
jittered by 30%, so each cluster starts with the wrong mass. Measured: each cluster's mass sum_{j -> i} a_j ||w_j||
against a*_i ||w*_i||, each student's share, and the drift of c_j = a_j^2 - ||w_j||^2.

Gradient flow conserves c_j (relu is 1-homogeneous: a_j dL/da_j = w_j . dL/dw_j). A GD step changes it by exactly
eta^2 ((dL/da_j)^2 - ||dL/dw_j||^2) (the first-order terms cancel): the run adds these terms up from its own
gradients (``flow_drift``), and the claim compares them with the drift measured on the parameters.
"""
from __future__ import annotations

import numpy as np

from ... import plots
from ..._validate import check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, integer, log_frames, real, select
from ...runtime import scaled_steps
from .core import (
    FLOOR,
    balance,
    cosine_matrix,
    gradient_descent,
    local_init,
    make_teacher,
    reference_loss,
    settling,
    stability_limit,
    teacher_mass,
    frame_title,
)

DEFAULTS = dict(factor=2, lr_fraction=0.4, steps=600, seed=0)
FIXED = dict(m=3, d=5, noise=0.3, norm_noise=0.3)
STEPS = (300, 600, 1200, 2400)
MASS_TOL = 1e-2       # "within 1%"
START_OFF = 0.10      # "the worst [cluster starts off] by more than 10%"
SHARE_MAX = 0.9       # "no single neuron carries more than 90% of its teacher's mass"
FLAT = 0.05           # "the drift stays under 5% of the spread of the starting values"
IDENTITY_TOL = 1e-9   # the per-step identity holds to rounding (relative to the spread)
SETTLED = 5e-3        # the time control stops where every share is within 0.5% (of the largest teacher mass) of its end


def experiment(factor: int = DEFAULTS["factor"], *, m: int = FIXED["m"], d: int = FIXED["d"],
               noise: float = FIXED["noise"], norm_noise: float = FIXED["norm_noise"],
               lr_fraction: float = DEFAULTS["lr_fraction"], lr: float | None = None, steps: int = DEFAULTS["steps"],
               seed: int = DEFAULTS["seed"], device=None, live=None) -> dict:
    """n = factor x m neurons from a local start with jittered lengths; masses and a_j^2 - ||w_j||^2 along the run."""
    factor = check_int("factor", factor, min_value=1, max_value=8)
    steps = scaled_steps(steps)
    a_star, W_star = make_teacher(m, d, norms="spread", seed=seed)
    limit = stability_limit(a_star, W_star)
    lr = lr_fraction * limit if lr is None else float(lr)
    n = factor * m
    a0, W0 = local_init(a_star, W_star, [n], noise=noise, seed=seed + 1, norm_noise=norm_noise)
    run = gradient_descent(a0, W0, a_star, W_star, lr=lr, steps=steps, record_every=1, track_balance=True)
    A, W = run["a_hist"][:, 0], run["W_hist"][:, 0]
    owner = np.argmax(cosine_matrix(W, W_star), axis=-1)  # (R, n)
    share = A * np.linalg.norm(W, axis=-1)                  # a_j ||w_j||, signed
    m_clusters = np.stack([(share * (owner == i)).sum(-1) for i in range(m)], axis=-1)  # (R, m)
    L = run["loss"][:, 0]
    ref = reference_loss(a_star, W_star)
    return {"run": run, "masses": m_clusters, "share": share, "owner": owner, "balance": balance(A, W),
            "flow_drift": run["flow_drift"][:, 0], "a_star": a_star, "W_star": W_star, "m": m, "n": n, "d": d,
            "factor": factor, "lr": lr, "lr_fraction": lr / limit, "teacher_mass": teacher_mass(a_star, W_star),
            "status": settling(L, L[0], int(run["diverged_at"][0]), ref), "ref": ref, "seed": seed,
            "steps": int(run["steps"][-1]), "partial": False}


def mass_numbers_raw(res: dict) -> dict:
    """The numbers the old lesson module returned (kept for callers): masses, drift."""
    drift = np.abs(res["balance"] - res["balance"][0]).max()
    return {"m": res["m"], "n": res["n"], "lr": res["lr"], "final_loss": float(res["run"]["loss"][-1, 0]),
            "cluster_mass_start": res["masses"][0].tolist(), "cluster_mass_end": res["masses"][-1].tolist(),
            "teacher_mass": res["teacher_mass"].tolist(),
            "max_mass_error_end": float(np.abs(res["masses"][-1] - res["teacher_mass"]).max()),
            "balance_spread": float(np.abs(res["balance"][0]).max()), "max_balance_drift": float(drift)}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _unsettled(res: dict) -> str:
    st, why = res["status"]
    if st == "settles":
        return ""
    head = (f"η is {res['lr_fraction']:.3g} × the stability limit 2/λmax, so GD does not settle"
            if res["lr_fraction"] > 1 else "GD does not settle")
    return f"{head}: {why}"


def claims(res: dict) -> list:
    bad = _unsettled(res)
    tm = res["teacher_mass"]
    start = np.abs(res["masses"][0] / tm - 1)
    start_err = float(start.max())
    end_err = float(np.abs(res["masses"][-1] / tm - 1).max())
    s1 = ("Each teacher's cluster mass Σ_{j→i} a_j‖w_j‖ ends within 1% of a*ᵢ‖w*ᵢ‖, while at the start the "
          f"clusters are off by up to tens of percent (the worst by more than {START_OFF:.0%}).")
    if bad:
        c1 = not_applicable("3.3.cluster-mass", s1, bad)
    else:
        ok = end_err <= MASS_TOL and start_err > START_OFF
        why = ""
        if end_err > MASS_TOL:
            why = f"a cluster ends {end_err:.2g} off its teacher's mass after {res['steps']} steps (raise the steps)"
        elif start_err <= START_OFF:
            why = f"at this seed every cluster starts within {START_OFF:.0%} of its teacher's mass"
        c1 = claim("3.3.cluster-mass", s1, holds=ok, measured=end_err, predicted=0.0,
                   tolerance=(f"largest relative error ≤ {MASS_TOL:.0%} at the end; at the start each cluster is off by "
                              + ", ".join(f"{e:.0%}" for e in start)), why=why)
    s2 = (f"No single neuron carries its teacher's mass: with n/m ≥ 2 each ends with a share below "
          f"{SHARE_MAX:.0%}; only the cluster's sum is fixed.")
    tshare = res["share"][-1] / tm[res["owner"][-1]]
    if bad:
        c2 = not_applicable("3.3.shared", s2, bad)
    elif res["factor"] < 2:
        c2 = not_applicable("3.3.shared", s2, "with n = m each teacher has one neuron, which carries its whole mass")
    else:
        top = float(tshare.max())
        c2 = claim("3.3.shared", s2, holds=top < SHARE_MAX, measured=top, predicted=None,
                   tolerance=f"largest share < {SHARE_MAX:.0%}",
                   why=f"one neuron carries {top:.0%} of its teacher's mass" if top >= SHARE_MAX else "")
    bal, flow = res["balance"], res["flow_drift"]
    drift = bal - bal[0]
    spread = float(np.abs(bal[0]).max())
    s3 = ("a_j² − ‖w_j‖² changes only by the discrete steps' η²((∂L/∂a_j)² − ‖∂L/∂w_j‖²): the drift measured on the "
          "parameters equals the sum of these terms.")
    gap = float(np.abs(drift - flow).max()) / max(spread, 1e-300)
    if res["status"][0] == "diverged":
        c3 = not_applicable("3.3.drift-identity", s3, bad)  # (an identity of every step: it holds even past the limit)
    else:
        c3 = claim("3.3.drift-identity", s3, holds=gap <= IDENTITY_TOL, measured=float(np.abs(drift).max()),
                   predicted=float(np.abs(flow).max()), tolerance="equal to rounding (1e-9 of the spread)",
                   why=f"the drift differs from the sum of the per-step terms by {gap:.2g} of the spread")
    s4 = (f"At a small step the conserved quantities stay flat: the largest drift of a_j² − ‖w_j‖² stays under "
          f"{FLAT:.0%} of the spread of their starting values.")
    worst = float(np.abs(drift).max()) / max(spread, 1e-300)
    if bad:
        c4 = not_applicable("3.3.nearly-conserved", s4, bad)
    else:
        c4 = claim("3.3.nearly-conserved", s4, holds=worst < FLAT, measured=worst, predicted=0.0,
                   tolerance=f"largest |c_j(k) − c_j(0)| < {FLAT:.0%} of max |c_j(0)|",
                   why=(f"at η = {res['lr_fraction']:.3g} × the stability limit the drift reaches {worst:.0%} of the "
                        "spread: each step adds η² × (...), so large steps break the balance (lower the step)"
                        if worst >= FLAT else ""))
    return [c1, c2, c3, c4]


def numbers(res: dict) -> dict:
    tm = res["teacher_mass"]
    bal = res["balance"]
    out = {"teacher m, student neurons n; seed": f"{res['m']}, {res['n']}; {res['seed']}", "step η": res["lr"],
           "η / stability limit": res["lr_fraction"], "steps": res["steps"],
           "final L / E[f*²]": fmt(float(res["run"]["loss"][-1, 0]) / res["ref"], 4, floor=FLOOR)}
    for i in range(res["m"]):
        out[f"teacher {i + 1}: a*‖w*‖; cluster mass at start, end"] = (
            f"{fmt(tm[i], 4)}; {fmt(res['masses'][0, i], 4)}, {fmt(res['masses'][-1, i], 6)}")
    out["largest share of one neuron"] = float((res["share"][-1] / tm[res["owner"][-1]]).max())
    out["spread of a_j² − ‖w_j‖² at the start"] = float(np.abs(bal[0]).max())
    out["largest drift of a_j² − ‖w_j‖²"] = float(np.abs(bal - bal[0]).max())
    out["sum of η²((∂L/∂a)² − ‖∂L/∂w‖²), largest"] = float(np.abs(res["flow_drift"]).max())
    return out


def headline(res: dict) -> str:
    bad = _unsettled(res)
    head = f"n = {res['n']} neurons for m = {res['m']} teacher neurons, η = {res['lr_fraction']:.3g} × 2/λmax"
    if bad:
        return f"{head}: {bad}"
    err = np.abs(res["masses"][-1] / res["teacher_mass"] - 1).max()
    return f"{head}: cluster masses {err:.1e} off the teacher's at the end"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _settings(res: dict) -> str:
    return (f"teacher m = {res['m']} (norms 0.7–1.3) in d = {res['d']}, n = {res['n']} neurons (n/m = {res['factor']}), "
            f"local start with lengths jittered {FIXED['norm_noise']:.0%}, η = {res['lr_fraction']:.3g} × 2/λmax, "
            f"T = {res['steps']}, seed {res['seed']}")


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=3.7)
    steps = res["run"]["steps"]
    k = np.unique(np.concatenate([[0], np.geomspace(1, max(steps[-1], 1), 250).astype(int)]))
    kx = np.maximum(k, 0.5)  # step 0 drawn at 0.5 on the log axis
    tm = res["teacher_mass"]
    owner_end = res["owner"][-1]
    for j in range(res["n"]):
        i = int(owner_end[j])
        ax1.plot(kx, res["share"][k, j], color=plots.color(i), lw=0.8, alpha=0.6)
    for i in range(res["m"]):
        ax1.plot(kx, res["masses"][k, i], color=plots.color(i), marker=plots.marker(i), lw=2, ms=4,
                 markevery=25, label=f"cluster {i + 1}: Σ a_j‖w_j‖")
        ax1.axhline(tm[i], **{**plots.THEORY_STYLE, "linewidth": 1.2})
    ax1.plot([], [], **plots.THEORY_STYLE, label="a*ᵢ‖w*ᵢ‖")
    ax1.plot([], [], color="0.5", lw=0.8, label="one neuron's a_j‖w_j‖")
    ax1.set(xscale="log", xlabel="GD step k (step 0 at 0.5)", ylabel="mass",
            title="cluster masses",
            ylim=(0, 1.45 * max(float(tm.max()), float(np.nanmax(res["masses"][k])))))
    ax1.legend(fontsize=7, loc="upper left", ncol=2)
    drift = res["balance"] - res["balance"][0]
    spread = float(np.abs(res["balance"][0]).max())
    for j in range(res["n"]):
        i = int(owner_end[j])
        ax2.plot(kx, drift[k, j], color=plots.color(i), marker=plots.marker(i), ms=3, markevery=40, lw=1.2)
        ax2.plot(kx, res["flow_drift"][k, j], **{**plots.THEORY_STYLE, "linewidth": 1.0})
    # legend samples in neutral grey: the curves are coloured by the cluster of each neuron (as on the left)
    ax2.plot([], [], color="0.35", lw=1.2, label="measured c_j(k) − c_j(0), coloured by cluster")
    ax2.plot([], [], **{**plots.THEORY_STYLE, "linewidth": 1.0}, label="Σ η²((∂L/∂a_j)² − ‖∂L/∂w_j‖²)")
    ax2.axhspan(-FLAT * spread, FLAT * spread, color="0.9", zorder=0, label=f"± {FLAT:.0%} of the spread of c_j(0)")
    top = max(float(np.abs(drift).max()), FLAT * spread) * 1.6
    ax2.set(xscale="log", ylim=(-top, top), xlabel="GD step k (step 0 at 0.5)", ylabel="c_j = a_j² − ‖w_j‖², minus c_j(0)",
            title="drift of the conserved c_j")
    ax2.legend(fontsize=7, loc="upper left")
    frame_title(fig, _settings(res), _unsettled(res))
    plots.time_axis(ax1)
    plots.time_axis(ax2)
    return fig


def state(ax, res: dict):
    """Each teacher's column at step k: its neurons' masses a_j ||w_j|| stacked (alternating shades, one segment
    per neuron), against a*_i ||w*_i|| (dashed)."""
    from matplotlib.collections import LineCollection

    m, n = res["m"], res["n"]
    tm = res["teacher_mass"]
    for i in range(m):
        ax.plot([i - 0.35, i + 0.35], [tm[i], tm[i]], **plots.THEORY_STYLE, zorder=4,
                label="a*ᵢ‖w*ᵢ‖" if i == 0 else None)
    segs = LineCollection([np.zeros((2, 2))] * n, linewidths=28, zorder=2)
    ax.add_collection(segs)
    share = res["share"]
    top = max(float(np.abs(res["masses"]).max()), float(tm.max())) * 1.35
    ax.set(xlim=(-0.6, m - 0.4), ylim=(0, top), xticks=range(m), xticklabels=[f"teacher {i + 1}" for i in range(m)],
           ylabel="mass a_j‖w_j‖, stacked per cluster")
    ax.legend(fontsize=7, loc="upper right")
    text = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=7, va="top")
    steps = res["run"]["snap_steps"]
    drift = np.abs(res["balance"] - res["balance"][0]).max(axis=1)

    def update(k: int):
        i = int(np.searchsorted(steps, k))
        own = res["owner"][i]
        segments, colors = [], []
        for t in range(m):
            base = 0.0
            members = np.flatnonzero(own == t)
            for r, j in enumerate(members):
                h = max(float(share[i, j]), 0.0)
                segments.append([(t, base + 0.004 * top), (t, base + h - 0.004 * top)])
                colors.append(plots.color(t) if r % 2 == 0 else "#bbbbbb")
                base += h
        segments += [[(np.nan, np.nan), (np.nan, np.nan)]] * (n - len(segments))
        colors += ["white"] * (n - len(colors))
        segs.set_segments(segments)
        segs.set_color(colors)
        text.set_text(f"drift of a_j² − ‖w_j‖² so far ≤ {drift[: i + 1].max():.2g}")
        return [segs, text]

    return update


def frames(res: dict) -> list[int]:
    """Log-spaced steps until the stacked masses stop visibly moving (every neuron's share within 0.5% of the
    largest teacher mass of its final value), then the last step: the columns settle within a few dozen steps and
    the rest of the run would replay the same picture."""
    steps = res["run"]["steps"]
    share = res["share"]
    moving = np.abs(share - share[-1]).max(axis=1) > SETTLED * float(np.max(res["teacher_mass"]))
    idx = np.flatnonzero(moving)
    settle = int(steps[min(idx[-1] + 1, len(steps) - 1)]) if len(idx) else 0
    return sorted(set(log_frames(steps[: settle + 1], 40)) | {0, int(steps[-1])})


def key_steps(res: dict) -> list[int]:
    T = res["steps"]
    near = lambda t: int(min(res["run"]["steps"], key=lambda k: abs(k - t)))
    return sorted({0, near(5), near(50), T})


def alt(res: dict) -> str:
    return (f"Left: each of the {res['m']} clusters' mass against the teacher's a*‖w*‖ (dashed), with each neuron's "
            f"share; right: the drift of a_j² − ‖w_j‖² for the {res['n']} neurons against the sum of the per-step "
            f"terms η²(...) (dashed) ({_settings(res)}).")


EXPERIMENT = Experiment(
    id="3.3", title="Cluster masses and the conserved a² − ‖w‖²", run=experiment, draw=draw, claims=claims,
    controls={"factor": integer("n / m", DEFAULTS["factor"], 1, 4),
              "lr_fraction": real("step η (× stability limit 2/λmax)", DEFAULTS["lr_fraction"], 0.1, 1.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed=dict(FIXED), numbers=numbers, floors={}, headline=headline, state=state, frames=frames,
    key_steps=key_steps, alt=alt,
    reproduce={"default": {}, "large-step": {"lr_fraction": 0.9}},
)
