"""Experiments 2.3 (identity vs vanilla on the same task) and 2.4 (how the rate changes with d and the init scale)."""
from __future__ import annotations

import numpy as np

from ... import plots
from ...claims import claim, log_rate_error, not_applicable
from ...experiment import Experiment, dropdown, integer, log_frames, real, select
from .core import DIMS, experiment, hessian_modes, neg_log, rates
from .views import divergence_note, fraction_text, loss_floor, method_text, nearest, rows_state

# ----------------------------------------------------------------------------------------------
# Experiment 2.3: identity vs vanilla
# ----------------------------------------------------------------------------------------------
CMP_DEFAULTS = dict(d=20, scale=0.6, lr_fraction=0.8, method="sgd", steps=300, seed=0)
CMP_SEEDS = 3
RECOVER = 100  # "the identity net's distance to the teacher falls more than 100-fold"
LOSS_GAP = 100  # "the vanilla net's loss ends more than 100 times above the identity net's"
FAR = 0.5  # "more than half its initial distance away, even after the best permutation"


def run_compare(d=CMP_DEFAULTS["d"], scale=CMP_DEFAULTS["scale"], lr_fraction=CMP_DEFAULTS["lr_fraction"],
                method=CMP_DEFAULTS["method"], steps=CMP_DEFAULTS["steps"], seed=CMP_DEFAULTS["seed"], live=None) -> dict:
    """Identity and vanilla students from the same W_0 (the vanilla net's first layer is W_0 itself, the identity
    net's I + W_0), the same teacher and the same SGD batches; the step is ``lr_fraction`` x 2 / lambda_max of the
    identity net's Hessian at the teacher."""
    lam = hessian_modes(int(d), 0.6, 1000 + int(seed))[0]
    lr = lr_fraction * 2.0 / float(lam[-1])
    kw = dict(d=d, init="gaussian", scale=scale, teacher_scale=0.6, lr=lr, batch=200, steps=steps, method=method,
              seeds=CMP_SEEDS, seed=seed, records=30)
    ident = experiment(identity=True, live=None if live is None else lambda p: live({"identity": p, "partial": True}), **kw)
    ident["lr_fraction"] = lr_fraction
    van = experiment(identity=False, prediction=False, **kw)
    van["lr_fraction"] = lr_fraction
    return {"identity": ident, "vanilla": van, "partial": False, "lr_fraction": lr_fraction}


def claims_compare(res: dict) -> list:
    ih, vh = res["identity"]["history"], res["vanilla"]["history"]
    out = []
    st = "The identity network recovers the teacher: every seed's distance to W* falls more than 100-fold."
    if ih.diverged:
        out.append(not_applicable("2.3.identity-recovers", st, "the identity net diverged: lower the step"))
    else:
        fall = float(np.min(ih["dist"][0] / ih["dist"][-1]))
        out.append(claim("2.3.identity-recovers", st, holds=fall > RECOVER, measured=fall, predicted=RECOVER,
                         tolerance="> 100-fold (worst seed)",
                         why="" if fall > RECOVER else f"the worst seed's distance fell {fall:.3g}-fold in "
                         f"{int(ih.steps[-1])} steps; run more steps"))
    st = "The vanilla network's loss ends more than 100 times above the identity network's."
    if ih.diverged or vh.diverged:
        out.append(not_applicable("2.3.vanilla-loss", st, "a run diverged: lower the step"))
    else:
        gap = float(np.min(vh["pop_loss"][-1]) / np.max(ih["pop_loss"][-1]))
        out.append(claim("2.3.vanilla-loss", st, holds=gap > LOSS_GAP, measured=gap, predicted=LOSS_GAP,
                         tolerance="best vanilla seed / worst identity seed > 100"))
    st = ("Even after the best permutation of its columns, the vanilla network's first layer ends more than half its "
          "initial distance away from the teacher's.")
    if vh.diverged:
        out.append(not_applicable("2.3.vanilla-far", st, "the vanilla net diverged: lower the step"))
    else:
        each = vh["matched"][-1] / vh["dist"][0]
        far = float(np.min(each))
        near = [f"seed {e}: {x:.2g}" for e, x in enumerate(each)]
        out.append(claim("2.3.vanilla-far", st, holds=far > FAR, measured=far, predicted=FAR,
                         tolerance="matched distance at the end / distance at the start > 0.5 for every seed "
                                   "(measured: the closest seed)",
                         why="" if far > FAR else "not every seed stays far; end / start distance per seed: "
                         + ", ".join(near)))
    return out


def numbers_compare(res: dict) -> dict:
    ih, vh = res["identity"]["history"], res["vanilla"]["history"]
    r = res["identity"]
    return {"dimension d": r["d"], "method": method_text(r), "step η": r["lr"], "steps": int(ih.steps[-1]),
            "identity: loss start → end (worst seed)": f"{np.max(ih['pop_loss'][0]):.3g} → {np.max(ih['pop_loss'][-1]):.3g}",
            "vanilla: loss start → end (best seed)": f"{np.min(vh['pop_loss'][0]):.3g} → {np.min(vh['pop_loss'][-1]):.3g}",
            "identity: ‖W − W*‖ at the end (per seed)": ih["dist"][-1].tolist(),
            "vanilla: first-layer distance at the start (per seed)": vh["dist"][0].tolist(),
            "vanilla: after the best permutation, at the end (per seed)": vh["matched"][-1].tolist()}


def headline_compare(res: dict) -> str:
    r = res["identity"]
    for name in ("identity", "vanilla"):
        h = res[name]["history"]
        if h.diverged:
            return f"{name} net diverged at step {int(h.diverged_at.max())}: {h.message}"
    return f"d = {r['d']}, {method_text(r)}, {fraction_text(r)}, {CMP_SEEDS} seeds, the same W₀ and batches for both nets"


def draw_compare(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.8, height=3.6)
    styles = {"identity": dict(color=plots.color(0), marker="o"), "vanilla": dict(color=plots.color(3), marker="s")}
    for name in ("identity", "vanilla"):
        r = res.get(name)
        if r is None:
            continue
        h = r["history"]
        for e in range(h.ensemble):
            sv, v = plots.finite_part(h.steps, h["pop_loss"][:, e])
            ax1.plot(sv, v, lw=1.3, markevery=max(1, len(sv) // 6), markersize=4, **styles[name],
                     label=f"{name} net" if e == 0 else None)
        divergence_note(ax1, r)
    r = res["identity"]
    loss_floor(ax1, r["history"]["pop_loss"])
    ax1.set(yscale="log", xlabel="step", ylabel="population loss (closed form)",
            title=f"same teacher, same W₀, same batches; d = {r['d']}")
    ax1.legend(fontsize=7, loc="center right")
    plots.time_axis(ax1)
    if res.get("partial") or "vanilla" not in res:
        ax2.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
        return fig
    ih, vh = res["identity"]["history"], res["vanilla"]["history"]
    for e in range(ih.ensemble):
        sv, v = plots.finite_part(ih.steps, ih["dist"][:, e])
        ax2.plot(sv, v, lw=1.3, markevery=max(1, len(sv) // 6), markersize=4, **styles["identity"],
                 label="identity: ‖I + W − (I + W*)‖" if e == 0 else None)
        sv, v = plots.finite_part(vh.steps, vh["matched"][:, e])
        ax2.plot(sv, v, lw=1.3, markevery=max(1, len(sv) // 6), markersize=4, **styles["vanilla"],
                 label="vanilla: ‖W − (I + W*)‖ after the best\npermutation of its columns" if e == 0 else None)
    ax2.set_yscale("log")
    lo, hi = ax2.get_ylim()
    gap = 0.055 * np.log10(hi / lo)  # labels at least this far apart (in decades)
    for h, key, name in ((ih, "dist", "identity"), (vh, "matched", "vanilla")):  # each curve's seed, at its end
        ends = []
        for e in range(h.ensemble):
            sv, v = plots.finite_part(h.steps, h[key][:, e])
            if len(sv) and v[-1] > 0:
                ends.append((float(np.log10(v[-1])), e, sv[-1], v[-1]))
        ends.sort()
        placed = -np.inf
        for y, e, x, v in ends:
            placed = max(y, placed + gap)
            ax2.annotate(f"seed {e}", (x, v), xytext=(x * 1.015 + 2, 10**placed), textcoords="data", fontsize=6.5,
                         va="center", color=styles[name]["color"])
    ax2.set_xlim(right=ih.steps[-1] * 1.18)
    ax2.set(yscale="log", xlabel="step", ylabel="first layer's distance to the teacher's (Frobenius)",
            title=f"{method_text(r)}, {fraction_text(r)}")
    ax2.legend(fontsize=7, loc="lower left")
    plots.time_axis(ax2)
    return fig


def state_compare(ax, res: dict):
    """Seed 0's columns (neurons) at step k, for both nets: the angle and length error of each column against the
    teacher column it is compared with (the vanilla net's: the one its best permutation of columns assigns)."""
    ir, vr = res["identity"], res["vanilla"]
    items = [dict(res=ir, member=0, color=plots.color(0), marker="o", hollow=False, label="identity net: columns of I + W"),
             dict(res=vr, member=0, color=plots.color(3), marker="s", hollow=False,
                  label="vanilla net: columns of W (best permutation)")]
    h_i, h_v = ir["history"], vr["history"]

    def info(k):
        i = min(int(np.searchsorted(h_i.steps, k)), len(h_i.steps) - 1)
        j = min(int(np.searchsorted(h_v.steps, k)), len(h_v.steps) - 1)
        return f"seed 0: loss {h_i['pop_loss'][i, 0]:.2g} (identity), {h_v['pop_loss'][j, 0]:.2g} (vanilla)"

    return rows_state(ax, items, info=info, legend_cols=1)


def frames_compare(res: dict) -> list[int]:
    return log_frames(res["identity"]["history"].steps, 40)


def key_steps_compare(res: dict) -> list[int]:
    r = res["identity"]
    s = r["history"].steps
    return sorted({0, nearest(r, 20), nearest(r, s[-1] // 4), int(s[-1])})


COMPARE = Experiment(
    id="2.3", title="Identity vs vanilla on the same task", run=run_compare, draw=draw_compare, claims=claims_compare,
    controls={"d": select("dimension d", CMP_DEFAULTS["d"], DIMS),
              "scale": real("init ‖W₀‖₂", CMP_DEFAULTS["scale"], 0.1, 0.9, 0.1),
              "lr_fraction": real("step η / (2/λ_max(H))", CMP_DEFAULTS["lr_fraction"], 0.1, 0.9, 0.1),
              "method": dropdown("method", CMP_DEFAULTS["method"], ("sgd", "gd")),
              "steps": select("steps", CMP_DEFAULTS["steps"], (300, 600, 1200)),
              "seed": integer("seed", CMP_DEFAULTS["seed"], 0, 20)},
    numbers=numbers_compare, headline=headline_compare, state=state_compare, frames=frames_compare,
    key_steps=key_steps_compare,
    alt=lambda res: ("Left: the population loss of identity and vanilla students from the same starts; right: the "
                     "distance of each first layer to the teacher's (the vanilla net's after the best permutation)."),
)


def compare_dashboard(**overrides):
    return COMPARE.dashboard(**overrides)


# ----------------------------------------------------------------------------------------------
# Experiment 2.4: dimension and initialization scale
# ----------------------------------------------------------------------------------------------
SWEEP_DIMS = DIMS
SWEEP_SCALES = (0.3, 0.9)
SWEEP_DEFAULTS = dict(lr_fraction=0.7, steps=300)
SWEEP_RATE_TOL = 0.05  # "within 5% in -log rate"
SCALE_TOL = 0.10  # "the two scales' rates agree within 10%"


def run_sweep(lr_fraction=SWEEP_DEFAULTS["lr_fraction"], steps=SWEEP_DEFAULTS["steps"], seed=0, live=None) -> dict:
    """Population GD for each d (step ``lr_fraction`` x 2 / lambda_max(H): the curvature grows with d) and each
    Gaussian init scale ||W_0||_2 (one ensemble per d, the same seed)."""
    runs = []
    for d in SWEEP_DIMS:
        lam = hessian_modes(int(d), 0.6, 1000 + seed)[0]
        r = experiment(d=int(d), init="gaussian", scales=SWEEP_SCALES, lr=lr_fraction * 2.0 / float(lam[-1]),
                       steps=steps, method="gd", seed=seed, records=30)
        r["lr_fraction"] = lr_fraction
        runs.append(r)
        if live is not None and d != SWEEP_DIMS[-1]:
            live({"runs": list(runs), "partial": True, "lr_fraction": lr_fraction})
    return {"runs": runs, "partial": False, "lr_fraction": lr_fraction, "scales": list(SWEEP_SCALES)}


def sweep_rates(res: dict) -> list[list]:
    """[(measured, predicted, worst case) or None] per d, per scale."""
    out = []
    for r in res["runs"]:
        row = []
        for e in range(len(SWEEP_SCALES)):
            p = rates(r, e) if not r["history"].diverged else None
            row.append(None if p is None else (p[0], p[1], r["worst_rate"]))
        out.append(row)
    return out


def claims_sweep(res: dict) -> list:
    rr = sweep_rates(res)
    flat = [x for row in rr for x in row]
    missing = any(x is None for x in flat)
    why_missing = ("a run does not reach the linear regime early enough to fit a rate "
                   f"(linear regime from step {[r['linear_start'] for r in res['runs']]}); run more steps or raise the step")
    out = []
    st = "Each run's late rate matches its own dashed prediction within 5% in −log rate."
    if missing:
        out.append(not_applicable("2.4.prediction", st, why_missing))
    else:
        errs = [log_rate_error(m, p) for m, p, _ in flat]
        i = int(np.argmax(errs))
        out.append(claim("2.4.prediction", st, holds=errs[i] <= SWEEP_RATE_TOL, measured=flat[i][0], predicted=flat[i][1],
                         tolerance=f"within 5% in −log rate (worst run: −log rates {neg_log(flat[i][0]):.4f} "
                                   f"measured, {neg_log(flat[i][1]):.4f} predicted)"))
    st = "The rate per step slows as d grows: −log(rate) falls from d = 10 to 20 to 30, for both init scales."
    if missing:
        out.append(not_applicable("2.4.slower-with-d", st, why_missing))
    else:
        speed = np.array([[neg_log(x[0]) for x in row] for row in rr])  # (dims, scales)
        ok = bool(np.all(np.diff(speed, axis=0) < 0))
        out.append(claim("2.4.slower-with-d", st, holds=ok, measured=float(speed[-1].max() / speed[0].min()),
                         predicted=None, tolerance="strictly decreasing in d (ratio d = 30 to d = 10 shown)",
                         why="" if ok else f"−log rates by d: {np.round(speed, 5).tolist()}"))
    st = "The init scale changes the late rate little: for each d the two scales' late rates agree within 10% in −log rate."
    if missing:
        out.append(not_applicable("2.4.scale", st, why_missing))
    else:
        diffs = [log_rate_error(row[1][0], row[0][0]) for row in rr]
        i = int(np.argmax(diffs))
        ratio = neg_log(rr[i][1][0]) / neg_log(rr[i][0][0])
        out.append(claim("2.4.scale", st, holds=diffs[i] <= SCALE_TOL, measured=ratio, predicted=1.0,
                         tolerance=f"−log rate of ‖W₀‖₂ = 0.9 over that of 0.3 within 10% of 1 (widest d = "
                                   f"{SWEEP_DIMS[i]})"))
    st = ("The worst case max|1 − ηλ(H)| (dotted) is a bound, not the prediction: every run's late rate is closer to "
          "its dashed prediction than to the worst case.")
    if missing:
        out.append(not_applicable("2.4.worst-case", st, why_missing))
    else:
        own = [log_rate_error(m, p) for m, p, _ in flat]
        worst = [log_rate_error(m, w) for m, _, w in flat]
        i = int(np.argmax([a / b if b > 0 else np.inf for a, b in zip(own, worst)]))
        ok = all(a < b for a, b in zip(own, worst))
        out.append(claim("2.4.worst-case", st, holds=ok, measured=flat[i][0], predicted=flat[i][1],
                         tolerance=f"closer to the dashed rate than to the worst case {flat[i][2]:.5f} (in −log rate, "
                               "every run)",
                         why="" if ok else f"a run is {own[i]:.1%} from its dashed rate and {worst[i]:.1%} from the worst case"))
    return out


def numbers_sweep(res: dict) -> dict:
    rr = sweep_rates(res)
    out = {"η / (2/λ_max(H))": res["lr_fraction"], "steps": int(res["runs"][0]["history"].steps[-1])}
    for r, row in zip(res["runs"], rr):
        d = r["d"]
        out[f"d = {d}: λ_min(H), λ_max(H)"] = list(r["lam"])
        out[f"d = {d}: step η"] = r["lr"]
        out[f"d = {d}: worst case max|1 − ηλ|"] = r["worst_rate"]
        for sc, x in zip(SWEEP_SCALES, row):
            if x is not None:
                out[f"d = {d}, ‖W₀‖₂ = {sc:g}: measured, predicted rate"] = [x[0], x[1]]
    return out


def headline_sweep(res: dict) -> str:
    return (f"population GD, η = {res['lr_fraction']:g} × 2/λ_max(H) for each d; ‖W₀‖₂ ∈ "
            f"{{{', '.join(f'{s:g}' for s in SWEEP_SCALES)}}}")


def draw_sweep(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.8, height=3.6)
    for j, r in enumerate(res["runs"]):
        h = r["history"]
        for e, sc in enumerate(SWEEP_SCALES):
            sv, v = plots.finite_part(h.steps, h["pop_loss"][:, e])
            ax1.plot(sv, v, color=plots.color(j), marker=plots.marker(2 * e + (0 if e == 0 else 2)),
                     markevery=max(1, len(sv) // 6), markersize=4, lw=1.3 if e == 0 else 0.9,
                     mfc="white" if e else None, label=f"d = {r['d']}, ‖W₀‖₂ = {sc:g}")
    loss_floor(ax1, np.concatenate([r["history"]["pop_loss"].ravel() for r in res["runs"]]))
    ax1.set(yscale="log", xlabel="step", ylabel="population loss", title=f"GD, η = {res['lr_fraction']:g} × 2/λ_max(H)")
    ax1.legend(fontsize=6.5, ncol=2, loc="upper right")
    plots.time_axis(ax1)
    if res.get("partial"):
        ax2.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
        return fig
    rr = sweep_rates(res)
    dims = [r["d"] for r in res["runs"]]
    for e, sc in enumerate(SWEEP_SCALES):
        meas = [neg_log(row[e][0]) if row[e] else np.nan for row in rr]
        pred = [neg_log(row[e][1]) if row[e] else np.nan for row in rr]
        ax2.plot(dims, meas, ls="", marker="o" if e == 0 else "^", mfc="white" if e else None, markersize=8,
                 color=plots.color(e + 4), label=f"measured, ‖W₀‖₂ = {sc:g}")
        ax2.plot(dims, pred, **plots.THEORY_STYLE, marker="x", markersize=6,
                 label="predicted from each run's own error" if e == 0 else None)
    worst = [neg_log(r["worst_rate"]) for r in res["runs"]]
    ax2.plot(dims, worst, **plots.BOUND_STYLE, marker="v", label="worst case −log max|1 − ηλ(H)|")
    ax2.set(xlabel="dimension d", ylabel="−log(rate) per step (late, fitted)", yscale="log", xticks=dims,
            title=f"late rate against d (η = {res['lr_fraction']:g} × 2/λ_max(H))")
    ax2.legend(fontsize=6.5, loc="lower left")
    return fig


def state_sweep(ax, res: dict):
    """The columns of every run at step k (colour: d; marker: filled for the small init scale, hollow for the large)."""
    items = [dict(res=r, member=e, color=plots.color(j), marker=("o", "^")[e], hollow=e == 1,
                  label=f"d = {r['d']}, ‖W₀‖₂ = {sc:g}")
             for j, r in enumerate(res["runs"]) for e, sc in enumerate(SWEEP_SCALES)]
    return rows_state(ax, items, info=lambda k: "every column of every run")


def frames_sweep(res: dict) -> list[int]:
    return log_frames(res["runs"][0]["history"].steps, 40)


def key_steps_sweep(res: dict) -> list[int]:
    r = res["runs"][0]
    s = r["history"].steps
    return sorted({0, nearest(r, 30), nearest(r, s[-1] // 3), int(s[-1])})


SWEEP = Experiment(
    id="2.4", title="Dimension and initialization scale", run=run_sweep, draw=draw_sweep, claims=claims_sweep,
    controls={"lr_fraction": real("step η / (2/λ_max(H))", SWEEP_DEFAULTS["lr_fraction"], 0.1, 0.9, 0.1),
              "steps": select("steps", SWEEP_DEFAULTS["steps"], (300, 600, 1200))},
    numbers=numbers_sweep, headline=headline_sweep, state=state_sweep, frames=frames_sweep, key_steps=key_steps_sweep,
    alt=lambda res: ("Left: population losses for d = 10, 20, 30 and two init scales; right: each run's fitted late "
                     "rate (as −log rate) against its own linearized prediction and the worst case, against d."),
)


def sweep_dashboard(**overrides):
    return SWEEP.dashboard(**overrides)
