"""Experiment 2.1: SGD from small random starts, five seeds, each against its own linearized prediction; what the
batch size changes (the stable step, not a noise floor) and what label noise adds (a floor)."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from ... import plots
from ...claims import claim, log_rate_error, not_applicable
from ...experiment import Experiment, dropdown, integer, real, select
from .core import DIMS, PHASE_RATIO, experiment, fit_rate, hessian_modes, neg_log, rates
from .views import distance_panel, divergence_note, fraction_text, frames, method_text, nearest, rows_state, series

SEEDS = 5
DEFAULTS = dict(d=20, scale=0.6, lr_fraction=0.6, batch=200, noise=0.0, method="sgd", steps=300, seed=0)
BATCHES = (10, 20, 50, 200, 1000)
NOISES = (0.0, 0.1, 0.3)
RATE_TOL = 0.10  # "within 10% in -log rate"
ORDERS = 3  # "the loss falls by more than three orders of magnitude"
STABLE_BAND = (0.8, 1.25)  # eta / stable step between these: too close to the edge to call
NO_FLOOR = 0.5  # "over the last quarter it still falls at least half as fast as over the quarter before"
FLOOR_TOL = 0.25  # "levels off at the predicted floor, within 25%"


def run(d=DEFAULTS["d"], scale=DEFAULTS["scale"], lr_fraction=DEFAULTS["lr_fraction"], batch=DEFAULTS["batch"],
        noise=DEFAULTS["noise"], method=DEFAULTS["method"], steps=DEFAULTS["steps"], seed=DEFAULTS["seed"],
        seeds=SEEDS, lr=None, live=None) -> dict:
    """Five students from Gaussian starts with ||W_0||_2 = ``scale`` (teacher ||W*||_2 = 0.6), step
    ``lr_fraction`` x 2 / lambda_max(H) (or ``lr`` as given: the paper's setting)."""
    lam = hessian_modes(int(d), 0.6, 1000 + int(seed))[0]
    if lr is None:
        lr = lr_fraction * 2.0 / float(lam[-1])
    else:
        lr_fraction = lr * float(lam[-1]) / 2.0
    res = experiment(d=d, init="gaussian", scale=scale, teacher_scale=0.6, lr=lr, batch=batch, steps=steps,
                     method=method, seeds=seeds, seed=seed, noise=noise, live=live)
    res["lr_fraction"] = lr_fraction
    return res


# ----------------------------------------------------------------------------------------------
# Claims
# ----------------------------------------------------------------------------------------------
def quarter_rates(res: dict, e: int) -> tuple[float, float] | None:
    """The measured rate of ||W - W*|| over the run's last quarter and over the quarter before, above the floor."""
    h = res["history"]
    s, dist = h.steps, h["dist"][:, e]
    T, span = s[-1], (s[-1] - s[0]) / 4
    out = []
    for a, b in ((T - span, T), (T - 2 * span, T - span)):
        keep = (s >= a) & (s <= b) & np.isfinite(dist) & (dist > 10 * res["floor"])
        if keep.sum() < 4:
            return None
        out.append(fit_rate(s[keep], dist[keep]))
    return out[0], out[1]


def claims(res: dict) -> list:
    h = res["history"]
    E = h.ensemble
    out = []
    ratio_stable = res["lr"] / res["stable_step"]
    diverged = h.diverged
    what = method_text(res)
    # 1. converges
    st = f"All {E} seeds converge: the loss falls by more than {ORDERS} orders of magnitude."
    if diverged:
        out.append(not_applicable("2.1.converges", st, "the run diverged (see 2.1.stable-step)"))
    elif res["noise"] > 0 and res["method"] == "sgd":
        out.append(not_applicable("2.1.converges", st, f"label noise σ = {res['noise']:g}: the loss levels off at a "
                                  "floor (see 2.1.floor)"))
    else:
        orders = np.log10(h["pop_loss"][0] / h["pop_loss"][-1])
        worst = float(np.min(orders))
        why = ""
        if worst <= ORDERS:
            why = f"the worst seed's loss fell by {worst:.2g} orders in {int(h.steps[-1])} steps; run more steps"
        out.append(claim("2.1.converges", st, holds=worst > ORDERS, measured=worst, predicted=ORDERS,
                         tolerance=f"more than {ORDERS} orders (worst seed)", why=why))
    # 1b. no phase I from these starts
    st = "From these small starts every student is in the one-point convex region from the first step: ρ ≥ 0.04 at every record."
    if diverged:
        out.append(not_applicable("2.1.one-point", st, "the run diverged"))
    else:
        low = float(np.nanmin(h["ratio"]))
        e = int(np.unravel_index(np.nanargmin(h["ratio"]), h["ratio"].shape)[1])
        out.append(claim("2.1.one-point", st, holds=low >= PHASE_RATIO, measured=low, predicted=PHASE_RATIO,
                         tolerance="lowest ρ over all records and students ≥ 0.04",
                         why="" if low >= PHASE_RATIO else f"student {e}'s ρ drops to {low:.3g}: from this start it "
                         "spends some steps outside the one-point region"))
    # 2. late rate against the run's own linearized prediction
    st = ("Each seed's late slope matches its dashed line, GD linearized at W* from that seed's own error, within "
          "10% in −log rate.")
    pairs = [rates(res, e) for e in range(E)]
    noisy = res["noise"] > 0 and res["method"] == "sgd"
    if diverged:
        out.append(not_applicable("2.1.late-rate", st, "the run diverged"))
    elif noisy:
        out.append(not_applicable("2.1.late-rate", st, "label noise: the distance levels off at a floor instead "
                                  "(see 2.1.floor)"))
    elif any(p is None for p in pairs):
        miss = [e for e, p in enumerate(pairs) if p is None]
        k0 = [res["linear_start"][e] for e in miss]
        out.append(not_applicable("2.1.late-rate", st,
                                  f"seed(s) {miss} reach the linear regime (ρ within 10% of ρ_H) only at step(s) "
                                  f"{['never' if k is None else k for k in k0]} of {int(h.steps[-1])}: too late to fit "
                                  "a rate; run more steps"))
    else:
        errs = [log_rate_error(m, p) for m, p in pairs]
        e = int(np.argmax(errs))
        m, p = pairs[e]
        why = ""
        if errs[e] > RATE_TOL:
            why = (f"seed {e}: measured {m:.5f} vs predicted {p:.5f} per step, {errs[e]:.0%} apart in −log rate")
            if res["method"] == "sgd" and m > p:
                why += (f"; SGD's noise slows the contraction, the more the closer η is to its stable step (here "
                        f"{ratio_stable:.2g} × the stable step for batch {res['batch']})")
        out.append(claim("2.1.late-rate", st, holds=errs[e] <= RATE_TOL, measured=m, predicted=p,
                         tolerance=f"within 10% in −log rate (worst seed: −log rates {neg_log(m):.4f} measured, "
                                   f"{neg_log(p):.4f} predicted)", why=why))
    # 3. the worst case is a bound, not the prediction
    st = ("The worst case max|1 − ηλ(H)| (dotted) is a bound, not the prediction: every seed's late rate is closer "
          "to its dashed line than to the worst case.")
    if diverged or noisy or any(p is None for p in pairs):
        out.append(not_applicable("2.1.worst-case", st, "no late rate to compare (see 2.1.late-rate)"))
    else:
        own = [log_rate_error(m, p) for m, p in pairs]
        worst = [log_rate_error(m, res["worst_rate"]) for m, _ in pairs]
        rel = [a / b if b > 0 else np.inf for a, b in zip(own, worst)]
        e = int(np.argmax(rel))
        ok = all(a < b for a, b in zip(own, worst))
        out.append(claim("2.1.worst-case", st, holds=ok, measured=pairs[e][0], predicted=pairs[e][1],
                         tolerance=f"closer to the dashed rate than to the worst case {res['worst_rate']:.5f} "
                               f"(in −log rate, every seed; seed {e}: {neg_log(pairs[e][0]):.4f} measured, "
                               f"{neg_log(pairs[e][1]):.4f} dashed, {neg_log(res['worst_rate']):.4f} worst case)",
                         why="" if ok else f"seed {e}: {own[e]:.1%} from its dashed rate, {worst[e]:.1%} from the "
                         "worst case"))
    # 4. the stable step
    st = ("The run diverges when η is above the stable step for its batch (the course's linearized SGD), and "
          "converges below it.")
    lo, hi = STABLE_BAND
    if lo <= ratio_stable <= hi:
        out.append(not_applicable("2.1.stable-step", st,
                                  f"η is {ratio_stable:.2g} × the stable step {res['stable_step']:.3g} for {what}: too "
                                  "close to the edge for the estimate to call", measured=ratio_stable, predicted=1.0))
    else:
        expect = ratio_stable > 1
        grew = bool(np.nanmax(h["pop_loss"][-1]) > np.nanmax(h["pop_loss"][0])) if not diverged else True
        ok = expect == (diverged or grew)
        why = ""
        if not ok:
            why = (f"η = {ratio_stable:.2g} × the stable step {res['stable_step']:.3g} for {what}, yet the run "
                   + ("converged" if expect else "diverged"))
        elif diverged:
            why = ""
        side = ("η is above the stable step here: the run must diverge" if expect else
                "η is below the stable step here: the run must converge (the other side: set the batch to 10)")
        out.append(claim("2.1.stable-step", st, holds=ok, measured=ratio_stable, predicted=1.0,
                         tolerance=f"diverges iff η / stable step > 1 (no call between 0.8 and 1.25); {side}",
                         why=why))
    # 5. a floor only with label noise
    st = ("A floor only with label noise: without it the distance keeps falling to the end (over the last quarter at "
          "least half as fast as over the quarter before); with label noise σ it levels off at the predicted floor, "
          "within 25%.")
    floor = res["noise_floor"][0]
    if diverged:
        out.append(not_applicable("2.1.floor", st, "the run diverged"))
    elif not noisy:
        q = [quarter_rates(res, e) for e in range(E)]
        if any(x is None for x in q):
            out.append(not_applicable("2.1.floor", st, "the distance reached the precision floor before the last "
                                      "quarter"))
        else:
            frac = [neg_log(a) / neg_log(b) if b < 1 else (1.0 if a < 1 else 0.0) for a, b in q]
            e = int(np.argmin(frac))
            out.append(claim("2.1.floor", st, holds=frac[e] >= NO_FLOOR, measured=frac[e], predicted=1.0,
                             tolerance="no label noise: last quarter's −log rate ≥ 0.5 × the quarter before's "
                                       "(slowest seed)",
                             why="" if frac[e] >= NO_FLOOR else f"seed {e} slowed to {frac[e]:.2g} of its earlier "
                             "rate over the last quarter"))
    elif not np.isfinite(floor) or ratio_stable > STABLE_BAND[0]:
        out.append(not_applicable("2.1.floor", st, f"η is {ratio_stable:.2g} × the stable step: the linearized floor "
                                  "does not hold near the edge"))
    else:
        s = h.steps
        last = s >= s[-1] - (s[-1] - s[0]) / 4
        # reached: where the last quarter starts, the noise-free prediction is already below half the floor
        i = int(np.argmax(last))
        pred = res["prediction_free"]
        if not bool(np.all(np.isfinite(pred[i])) and np.all(pred[i] < floor / 2)):
            out.append(not_applicable("2.1.floor", st, f"the run has not come down to the floor {floor:.2g} by its last "
                                      "quarter; run more steps"))
        else:
            level = float(np.sqrt(np.mean(h["dist"][last] ** 2)))
            ok = abs(level / floor - 1) <= FLOOR_TOL
            out.append(claim("2.1.floor", st, holds=ok, measured=level, predicted=floor,
                             tolerance="label noise: within 25% (root mean square over the last quarter, all seeds)"))
    return out


def numbers(res: dict) -> dict:
    h = res["history"]
    out = {"dimension d": res["d"], "method": method_text(res), "step η": res["lr"],
           "η / (2/λ_max(H))": res["lr_fraction"], "λ_min(H), λ_max(H)": list(res["lam"]),
           "stable step for this batch": res["stable_step"], "η / stable step": res["lr"] / res["stable_step"],
           "stable step / GD's limit 2/λ_max(H)": res["stable_step"] / res["gd_limit"],
           "worst case max|1 − ηλ(H)|": res["worst_rate"], "steps": int(h.steps[-1]),
           "initial loss (per seed)": h["pop_loss"][0].tolist(), "final loss (per seed)": h["pop_loss"][-1].tolist(),
           "final ‖W − W*‖ (per seed)": h["dist"][-1].tolist(),
           "linear regime from step (per seed)": ["–" if k is None else k for k in res["linear_start"]]}
    pairs = [rates(res, e) for e in range(h.ensemble)]
    if all(p is not None for p in pairs):
        out["measured late rate (per seed)"] = [p[0] for p in pairs]
        out["predicted late rate (per seed)"] = [p[1] for p in pairs]
    out["share of ‖e‖² on H's slowest direction (per seed)"] = res["slow_share"]
    if res["noise"]:
        out["predicted noise floor of ‖W − W*‖"] = res["noise_floor"][0]
    return out


def headline(res: dict) -> str:
    h = res["history"]
    base = f"d = {res['d']}, {method_text(res)}, {fraction_text(res)}"
    if h.diverged:
        k = int(h.diverged_at[h.diverged_at >= 0].min())
        return (f"{base}: diverged at step {k}. η is {res['lr'] / res['stable_step']:.2g} × the stable step "
                f"{res['stable_step']:.3g} for this batch (the course's linearized SGD; GD's limit is "
                f"2/λ_max(H) = {res['gd_limit']:.3g}): lower the step or raise the batch.")
    return f"{base}: loss {np.max(h['pop_loss'][0]):.3g} → {np.max(h['pop_loss'][-1]):.3g} (worst seed)"


# ----------------------------------------------------------------------------------------------
# Figure and state
# ----------------------------------------------------------------------------------------------
def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.8, height=3.6)
    h = res["history"]
    E = h.ensemble
    labels = [f"student {e}" for e in range(E)]
    for e in range(E):
        sv, v = plots.finite_part(h.steps, h["pop_loss"][:, e])
        ax1.plot(sv, v, color=plots.color(e), marker=plots.marker(e), markevery=max(1, len(sv) // 8), markersize=4,
                 lw=1.4, label=labels[e])
    ax1.set(yscale="log", xlabel="step", ylabel="population loss L(W) (closed form)",
            title=f"{E} students (one batch stream), d = {res['d']}, ‖W₀‖₂ = {res['scale']:g}", )
    ax1.title.set_fontsize(9)
    ax1.legend(fontsize=7, loc="best")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(5))
    plots.time_axis(ax1)
    divergence_note(ax1, res)
    if res.get("partial"):
        ax2.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
        return fig
    distance_panel(ax2, res)
    ax2.set_title(f"{method_text(res)}, {fraction_text(res)}", fontsize=9)
    handles, labs = ax2.get_legend_handles_labels()
    keep = [i for i, lab in enumerate(labs) if not lab.startswith("_")]
    if keep:
        ax2.legend([handles[i] for i in keep], [labs[i] for i in keep], fontsize=6.5, loc="upper right")
    plots.time_axis(ax2)
    return fig


def state(ax, res: dict):
    """Each column u_i = e_i + w_i (neuron i's weights) of every student against the teacher's v_i at step k."""
    h = res["history"]

    def info(k):
        i = min(int(np.searchsorted(h.steps, k)), len(h.steps) - 1)
        gone = [e for e in range(h.ensemble) if 0 <= h.diverged_at[e] <= k]
        if gone:
            return (f"diverged by step {k} (not drawn): student{'s' if len(gone) > 1 else ''} "
                    f"{', '.join(map(str, gone))}")
        return (f"student 0: ‖W − W*‖ = {h['dist'][i, 0]:.2g}, g = {h['g'][i, 0]:.2g}\n"
                f"ρ = {h['ratio'][i, 0]:.3g}, ρ_H = {h['rho_H'][i, 0]:.3g} (stage 3 from step "
                f"{res['linear_start'][0] if res['linear_start'][0] is not None else '–'})")

    return rows_state(ax, series(res, label=lambda e: f"student {e}"), info=info, legend_cols=3)


def key_steps(res: dict) -> list[int]:
    s = res["history"].steps
    k0 = res.get("linear_start", [None])[0]
    picks = [0, nearest(res, 10), nearest(res, k0) if k0 is not None else nearest(res, s[-1] // 2), int(s[-1])]
    return sorted(set(picks))


def alt(res: dict) -> str:
    return (f"Left: the population loss of {res['history'].ensemble} students against the step; right: each "
            "student's distance to the teacher (solid) against the linearized prediction from its own error (dashed) "
            "and the worst-case rate (dotted).")


EXPERIMENT = Experiment(
    id="2.1", title="SGD from small random starts", run=run, draw=draw, claims=claims,
    controls={"d": select("dimension d", DEFAULTS["d"], DIMS),
              "scale": real("init ‖W₀‖₂", DEFAULTS["scale"], 0.1, 0.9, 0.1),
              "lr_fraction": real("step η / (2/λ_max(H))", DEFAULTS["lr_fraction"], 0.05, 0.95, 0.05),
              "batch": select("batch B", DEFAULTS["batch"], BATCHES),
              "noise": select("label noise σ", DEFAULTS["noise"], NOISES),
              "method": dropdown("method", DEFAULTS["method"], ("sgd", "gd")),
              "steps": select("steps", DEFAULTS["steps"], (300, 600, 1200)),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    numbers=numbers, floors={}, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"default": {}, "batch10": {"batch": 10}, "batch10_small_step": {"batch": 10, "lr_fraction": 0.15,
                                                                              "steps": 1200},
               "label_noise": {"noise": 0.3, "steps": 600}},
    paper={"li-yuan-step": {"lr": 0.001, "batch": 200, "steps": 40000, "seeds": 5, "scale": 0.6}},
    paper_note=("the course's closest analogue of Li & Yuan's experiment (Section 5.2: SGD, batch 200, step 0.001, "
                "5 runs from ||W||_2 <= 0.6): here ||W_0||_2 = ||W*||_2 = 0.6, d = 20, fresh Gaussian samples for every "
                "batch instead of a training set of 100,000"),
)


def dashboard(**overrides):
    """Experiment 2.1's dashboard (the lesson's first)."""
    return EXPERIMENT.dashboard(**overrides)
