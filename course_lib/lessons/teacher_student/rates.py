"""Experiment 3.1: linear convergence for n = m, the t^-3 law for n = 2m and 4m (local start).

Three student networks of n = m, 2m, 4m neurons start near the teacher (each neuron a perturbed copy of a teacher
neuron) and are trained together at the same step eta = (fraction) x 2 / lambda_max, lambda_max the Hessian's largest
eigenvalue at the teacher. Every loss is in units of E[f*^2] (the figure's axis), with the lesson's one float64 floor
:data:`.core.FLOOR`. What is drawn dashed is the prediction for the run on screen:

* n = m: GD linearized at the point the run converges to, started from the run's own error at the first step where
  L < 1e-3 L(0) (each Hessian mode's coefficient evolved directly); compared with the measured slope fitted over the
  same window, in -log rate. The worst case max |1 - eta lambda| (the slowest mode) is dotted and labelled so: an
  error with little weight on the slowest mode falls faster than it.
* n > m: the course's t^-3 law (L^(-1/3) grows linearly in k), started from each run's own loss and slope at T/4,
  against its loss at T; a t^-2 or t^-4 law started the same way must miss by more than 25%. The heuristic's other
  half, the copies' spread s ~ 1/k, is checked the same way on the RMS angle between each neuron and its teacher.

The state panel shows all three networks: the n = m run's loss per Hessian mode, and every neuron's angle to its
teacher direction. Past the stability limit GD does not settle; the claims then say so instead of comparing.
"""
from __future__ import annotations

import math

import numpy as np

from ... import plots
from ...claims import claim, fmt, log_rate_error, not_applicable
from ...experiment import Experiment, integer, log_frames, real, select
from ...runtime import scaled_steps
from .core import (
    ANGLE_FLOOR_DEG,
    FLOOR,
    angle_matrix,
    flatten,
    frame_title,
    gradient_descent,
    hessian,
    linear_window,
    linearized_prediction,
    local_init,
    loglog_slope,
    make_teacher,
    nonzero_modes,
    power_law_prediction,
    reference_loss,
    semilog_rate,
    settling,
    stability_limit,
)

DEFAULTS = dict(m=3, overlap=0.0, noise=0.3, lr_fraction=0.9, steps=600, seed=0)
FIXED = dict(d=5, factors=(1, 2, 4))
STEPS = (300, 600, 1200, 2400)
RATE_TOL = 0.05        # "to within 5% in -log rate"
LAW_TOL = 1.15         # "within 15%"
RIVAL_MISS = 1.25      # "a t^-2 or t^-4 law started the same way misses by more than 25%"
SPREAD_TOL = 1.03      # "the 1/k law predicts the RMS angle at T within 3%"
NBIG_ABOVE = 1e-10     # n > m "still above 1e-10 E[f*^2]"
LAW_STYLE = dict(color="black", linestyle=(0, (7, 2, 1.5, 2)), linewidth=1.5)  # dash-dot: the t^-3 law (theory)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def experiment(m: int = DEFAULTS["m"], d: int = FIXED["d"], *, overlap: float = DEFAULTS["overlap"],
               noise: float = DEFAULTS["noise"], lr_fraction: float = DEFAULTS["lr_fraction"], lr: float | None = None,
               steps: int = DEFAULTS["steps"], seed: int = DEFAULTS["seed"], factors=FIXED["factors"],
               norms: str = "equal", output: str = "ones", device=None, live=None) -> dict:
    """Student networks of n = f m neurons (f in ``factors``, the first must be 1 for the n = m prediction) from a
    local start, trained together; the step is ``lr_fraction`` x the stability limit 2/lambda_max at the teacher (or
    ``lr`` if given). ``device`` is accepted for the course's uniform signature: the closed-form loss runs in numpy
    float64 (tiny shapes; the late rates need float64)."""
    steps = scaled_steps(steps)
    a_star, W_star = make_teacher(m, d, overlap=overlap, norms=norms, output=output, seed=seed)
    limit = stability_limit(a_star, W_star)
    lr = lr_fraction * limit if lr is None else float(lr)
    ns = [int(f) * m for f in factors]
    a0, W0 = local_init(a_star, W_star, ns, noise=noise, seed=seed + 1)
    ref = reference_loss(a_star, W_star)
    wrap = None if live is None else (lambda p: live({**p, "ns": ns, "m": m, "lr_fraction": lr / limit, "ref": ref}))
    run = gradient_descent(a0, W0, a_star, W_star, lr=lr, steps=steps, record_every=1, live=wrap)
    res = {"run": run, "ns": ns, "m": m, "d": d, "a_star": a_star, "W_star": W_star, "lr": lr, "limit": limit,
           "ref": ref, "lambda_max_teacher": 2.0 / limit,
           "lr_fraction": lr / limit, "steps": int(run["steps"][-1]), "overlap": overlap, "noise": noise, "seed": seed,
           "partial": False}
    res.update(analyse(res))
    return res


def neuron_angles(res: dict) -> np.ndarray:
    """(R, E, N) degrees: each neuron's angle to its nearest teacher direction at every recorded step (NaN for the
    padding of the smaller networks), from :func:`course_lib.kernels.angles`."""
    run = res["run"]
    ang = np.degrees(angle_matrix(run["W_hist"], res["W_star"]).min(axis=-1))
    for e, n in enumerate(res["ns"]):
        ang[:, e, n:] = np.nan
    return ang


def analyse(res: dict) -> dict:
    """Settling, fits and the predictions of an :func:`experiment` result."""
    run, ns, m = res["run"], res["ns"], res["m"]
    loss, steps = run["loss"], run["steps"]
    T = int(steps[-1])
    L0 = loss[0]
    ang = neuron_angles(res) if len(run["snap_steps"]) == len(steps) else None
    fits, status = [], []
    for e, n in enumerate(ns):
        L = loss[:, e]
        st, why = settling(L, L0[e], int(run["diverged_at"][e]), res["ref"])
        status.append((st, why))
        fin = np.degrees(angle_matrix(run["W"][e, :n], res["W_star"]).min(axis=1)) if st != "diverged" else \
            np.full(n, np.nan)
        fit = {"n": n, "final_loss": float(L[-1]), "rel_final": float(L[-1] / L0[e]), "status": st, "why": why,
               "final": float(L[-1] / res["ref"]), "worst_angle_deg": float(fin.max())}
        if n > m:
            k1 = max(1, T // 4)
            ks = np.arange(k1, T + 1)
            Lr = L / res["ref"]
            fit.update(window=(k1, T), loglog_slope=loglog_slope(steps, L, k1, T),
                       law=power_law_prediction(steps, Lr, k1, ks, 3.0),
                       law_T={p: float(power_law_prediction(steps, Lr, k1, [T], p)[0]) for p in (2.0, 3.0, 4.0)},
                       exp_T=float(Lr[k1] * math.exp(semilog_rate(steps, Lr, 0.9 * k1, 1.1 * k1) * (T - k1)))
                       if st == "settles" else float("nan"))
            if ang is not None:
                rms = np.sqrt(np.mean(ang[:, e, :n] ** 2, axis=1))
                fit.update(rms=rms, rms_law=power_law_prediction(steps, rms, k1, ks, 1.0),
                           rms_T_law={p: float(power_law_prediction(steps, rms, k1, [T], p)[0])
                                      for p in (2 / 3, 1.0, 4 / 3)},
                           rms_slope=loglog_slope(steps, rms, k1, T))
        elif ang is not None:
            fit["rms"] = np.sqrt(np.mean(ang[:, e, :n] ** 2, axis=1))
        fits.append(fit)
    out = {"fits": fits, "status": status, "prediction": None, "T": T, "angles": ang}
    if ns[0] == m and status[0][0] == "settles":
        out["prediction"] = linear_prediction(res, loss[:, 0], L0[0])
    return out


def linear_prediction(res: dict, L: np.ndarray, L0: float) -> dict | None:
    """n = m: GD linearized at the run's limit point, started from its own error at the fit window's start."""
    lo, hi = linear_window(L, L0, res["ref"])
    run, m = res["run"], res["m"]
    if hi <= lo or hi - lo < 5 or L[hi] > 1e-2 * L[lo]:
        return {"window": (lo, hi), "ok": False}
    a_lim, W_lim = run["a"][0, :m], run["W"][0, :m]
    theta_lim = flatten(a_lim, W_lim)
    H = hessian(a_lim, W_lim, res["a_star"], res["W_star"])
    i0 = int(np.searchsorted(run["snap_steps"], lo))
    theta_lo = flatten(run["a_hist"][i0, 0, :m], run["W_hist"][i0, 0, :m])
    T = int(run["steps"][-1])
    ks = np.arange(0, T - lo + 1)
    pred = linearized_prediction(theta_lo, theta_lim, H, res["lr"], ks)
    lam = pred["lam"]
    nz = nonzero_modes(lam)
    steps = np.arange(lo, T + 1)
    measured = semilog_rate(run["steps"], L, lo, hi)
    predicted = semilog_rate(steps, pred["loss"], lo, hi)
    share = pred["coef"][0] ** 2 * np.maximum(lam, 0)
    return {"window": (lo, hi), "ok": True, "steps": steps, "loss": pred["loss"], "lam": lam, "V": pred["V"],
            "coef": pred["coef"],
            "nonzero": nz, "theta_lim": theta_lim, "measured": measured, "predicted": predicted,
            "worst": 2 * math.log(float(np.max(np.abs(1 - res["lr"] * lam[nz])))),
            "lambda_min": float(lam[nz].min()), "lambda_max": float(lam[nz].max()),
            "slowest_share": float(share[nz][0] / share.sum()) if share.sum() > 0 else float("nan")}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _unsettled(res: dict, which) -> str:
    bad = [(res["ns"][e], res["status"][e]) for e in which if res["status"][e][0] != "settles"]
    if not bad:
        return ""
    n, (_, why) = bad[0]
    head = (f"η is {res['lr_fraction']:.3g} × the stability limit 2/λmax, so GD does not settle"
            if res["lr_fraction"] > 1 else "GD does not settle")
    return f"{head}: for the network with n = {n}, {why}"


def _miss(q: float) -> float:
    """How far a predicted/measured ratio is from 1, as a factor >= 1 (inf if not positive and finite)."""
    return max(q, 1 / q) if q > 0 and math.isfinite(q) else math.inf


def claims(res: dict) -> list:
    ns, T = res["ns"], res["T"]
    out = []
    # 1. n = m: its slope on the semilog plot against its own linearized dynamics
    s1 = ("n = m falls on a straight line on the semilog plot, at the slope of the dashed line: this run's own error "
          "evolved by GD linearized at its limit (within 5% in −log rate).")
    bad = _unsettled(res, [0])
    pred = res["prediction"]
    if bad:
        out.append(not_applicable("3.1.linear-rate", s1, bad))
    elif pred is None or not pred["ok"]:
        out.append(not_applicable("3.1.linear-rate", s1, f"in {T} steps the n = m loss has not fallen two decades below "
                                  "10⁻³ L(0), where the linearization is fitted: raise the steps or the step size"))
    else:
        rm, rp = math.exp(pred["measured"]), math.exp(pred["predicted"])
        err = log_rate_error(rm, rp)
        out.append(claim("3.1.linear-rate", s1, holds=err <= RATE_TOL, measured=rm, predicted=rp,
                         tolerance="per-step loss factor, within 5% in −log rate",
                         why=(f"measured {fmt(rm, 4)} per step vs {fmt(rp, 4)} predicted: {err:.0%} apart in −log rate"
                              if err > RATE_TOL else "")))
    # 2. n = m reaches the float64 floor, n > m does not: over-parameterization costs speed
    s2 = (f"Over-parameterization costs speed here: n = m reaches the float64 floor (|L| < 10⁻¹⁴ E[f*²]), while "
          f"n = 2m and 4m are still above 10⁻¹⁰ E[f*²] at the last step.")
    bad = _unsettled(res, range(len(ns)))
    if bad:
        out.append(not_applicable("3.1.overparam-slower", s2, bad))
    else:
        nm = abs(res["fits"][0]["final"])
        big = min(f["final"] for f in res["fits"][1:])
        ok = nm < FLOOR and big > NBIG_ABOVE
        why = ""
        if nm >= FLOOR:
            why = f"n = m ends at {fmt(nm, 2)} E[f*²], not yet at the float64 floor, after {T} steps (raise the steps)"
        elif big <= NBIG_ABOVE:
            why = f"an n > m network ends at {fmt(big, 2)} E[f*²], below 10⁻¹⁰ E[f*²]"
        out.append(claim("3.1.overparam-slower", s2, holds=ok, measured=big, predicted=None,
                         tolerance=f"n = m: |L(T)| {fmt(nm, 2, floor=FLOOR)} E[f*²] (floor 10⁻¹⁴); smallest n > m: "
                                   "above 10⁻¹⁰ E[f*²]", why=why))
    # 3. n > m: the t^-3 law from each run's own state at T/4
    s3 = ("n = 2m and n = 4m follow the same t⁻³ law: started from each run's own loss and slope at T/4, it predicts "
          "the loss at T within 15%, where a t⁻² or t⁻⁴ law started the same way misses by more than 25%.")
    bad = _unsettled(res, range(1, len(ns)))
    if bad:
        out.append(not_applicable("3.1.power-law", s3, bad))
    else:
        big = res["fits"][1:]
        f = max(big, key=lambda f: _miss(f["final"] / f["law_T"][3.0]))
        r = f["final"] / f["law_T"][3.0]
        law_ok = all(_miss(g["final"] / g["law_T"][3.0]) <= LAW_TOL for g in big)
        rival = min(_miss(g["final"] / g["law_T"][p]) for g in big for p in (2.0, 4.0))
        ok = law_ok and rival > RIVAL_MISS
        why = ""
        if not law_ok:
            why = (f"n = {f['n']}: L(T) = {fmt(f['final'])} E[f*²] is {r:.2f} × the t⁻³ law's {fmt(f['law_T'][3.0])} "
                   f"(the law describes the late phase: at T/4 = {T // 4} this run may still be in the fast early "
                   "phase; raise the steps)")
        elif not ok:
            why = (f"a t⁻² or t⁻⁴ law misses by only {rival:.2f}×, so L(T) does not tell the exponents apart here "
                   "(raise the steps)")
        out.append(claim("3.1.power-law", s3, holds=ok, measured=f["final"], predicted=f["law_T"][3.0],
                         tolerance=(f"L(T) / E[f*²] within 15% (t⁻² law: {fmt(f['law_T'][2.0])}, t⁻⁴: "
                                    f"{fmt(f['law_T'][4.0])}; closest rival off by {rival:.2f}×)"), why=why))
    # 4. n > m: the copies' spread closes like 1/k (the heuristic's s ~ 1/t)
    s4 = ("The n > m neurons close in on their teacher direction only like 1/k: started from each run's own RMS angle "
          "and its slope at T/4, the 1/k law predicts the RMS angle at T within 3%.")
    if bad:
        out.append(not_applicable("3.1.spread", s4, bad))
    elif "rms_T_law" not in res["fits"][1]:
        out.append(not_applicable("3.1.spread", s4, "this run did not record every step's neurons"))
    else:
        big = res["fits"][1:]
        f = max(big, key=lambda f: _miss(f["rms"][-1] / f["rms_T_law"][1.0]))
        r = _miss(f["rms"][-1] / f["rms_T_law"][1.0])
        rivals = [f["rms_T_law"][2 / 3], f["rms_T_law"][4 / 3]]
        out.append(claim("3.1.spread", s4, holds=r <= SPREAD_TOL, measured=float(f["rms"][-1]),
                         predicted=f["rms_T_law"][1.0],
                         tolerance=(f"RMS angle (°) at T within 3% (k^−2/3 law: {fmt(rivals[0])}, k^−4/3: "
                                    f"{fmt(rivals[1])})"),
                         why=(f"n = {f['n']}: the RMS angle at T, {fmt(f['rms'][-1])}°, is {r:.3f}× off the 1/k law "
                              "(raise the steps: at T/4 the run may still be in its early phase)"
                              if r > SPREAD_TOL else "")))
    return out


def numbers(res: dict) -> dict:
    """Every loss in units of E[f*^2], as on the figure's axis."""
    out = {f"teacher m (d = {res['d']}); overlap; start noise; seed":
           f"{res['m']}; {res['overlap']:g}; {res['noise']:g}; {res['seed']}",
           "student networks n": ", ".join(map(str, res["ns"])),
           "E[f*²] (the loss unit)": res["ref"],
           "Hessian λmax at the teacher (sets the step)": res.get("lambda_max_teacher", 2 / res["limit"]),
           "step η (= fraction × 2/λmax at the teacher)": res["lr"],
           "η / stability limit 2/λmax": res["lr_fraction"], "steps T": res["T"]}
    pred = res["prediction"]
    if pred is not None and pred["ok"]:
        lo, hi = pred["window"]
        out.update({"n = m: fit window (steps)": f"{lo}–{hi}",
                    "n = m: per-step loss factor, measured / own error linearized / worst case (slowest mode)":
                        " / ".join(fmt(math.exp(v), 4) for v in (pred["measured"], pred["predicted"], pred["worst"])),
                    "n = m: Hessian at the run's limit point, λmin (nonzero), λmax":
                        f"{fmt(pred['lambda_min'])}, {fmt(pred['lambda_max'])}",
                    "n = m: slowest mode's share of the loss at the window start": pred["slowest_share"]})
    for f in res["fits"]:
        key = _tag(f["n"], res["m"])
        out[f"{key}: final L / E[f*²]"] = f["final"]
        if "law_T" in f and f["status"] == "settles":  # (a run that does not settle has no late phase to extrapolate)
            out[f"{key}: log-log slope of L over [T/4, T]"] = f["loglog_slope"]
            out[f"{key}: L(T) / E[f*²] predicted by t⁻² / t⁻³ / t⁻⁴ from T/4"] = (
                f"{fmt(f['law_T'][2.0])} / {fmt(f['law_T'][3.0])} / {fmt(f['law_T'][4.0])}")
            out[f"{key}: L(T) / E[f*²] if exponential from T/4"] = f["exp_T"]
        if "rms_T_law" in f and f["status"] == "settles":
            out[f"{key}: RMS angle to the teacher at T (°), 1/k law from T/4"] = (
                f"{fmt(f['rms'][-1])}, {fmt(f['rms_T_law'][1.0])}")
        out[f"{key}: largest neuron–teacher angle at T (°)"] = fmt(f["worst_angle_deg"], 3, floor=ANGLE_FLOOR_DEG)
    return out


def headline(res: dict) -> str:
    bad = _unsettled(res, range(len(res["ns"])))
    head = f"m = {res['m']}, η = {res['lr_fraction']:.3g} × 2/λmax = {res['lr']:.3g}"
    if bad:
        return f"{head}: {bad}"
    return f"{head}: every network settles; final L / E[f*²]: " + ", ".join(
        f"n = {f['n']}: {fmt(f['final'], 2, floor=FLOOR)}" for f in res["fits"])


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _tag(n: int, m: int) -> str:
    return "n = m" if n == m else f"n = {n // m}m"


def _label(n: int, m: int) -> str:
    return f"n = {n}" + (" = m" if n == m else f" = {n // m}m")


def _settings(res: dict) -> str:
    return (f"teacher m = {res['m']} in d = {res.get('d', FIXED['d'])}, overlap {res.get('overlap', 0):g}, start noise "
            f"{res.get('noise', 0):g}, η = {res.get('lr_fraction', 0):.3g} × 2/λmax, T = {res.get('steps', '?')}, "
            f"seed {res.get('seed', '?')}")


def draw(res: dict):
    """Left: loss vs step, log y (a straight line = linear convergence). Right: log-log (a line = power law)."""
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=3.9)
    fig.subplots_adjust(bottom=0.27, left=0.09, wspace=0.32)  # room for the loss axis's label
    ref = res["ref"]
    loss = (res["run"]["loss"] if "run" in res else res["loss"]) / ref
    ns, m = res["ns"], res["m"]
    K = loss.shape[0]
    L0 = float(np.nanmax(loss[0]))
    idx_log = np.unique(np.geomspace(1, max(K - 1, 1), 300).astype(int))
    for e, n in enumerate(ns):
        st = dict(color=plots.color(e), marker=plots.marker(e), markersize=4, lw=1.6, label=_label(n, m))
        k = np.arange(K)
        v = loss[:, e]
        keep = np.isfinite(v) & (v > FLOOR)
        ax1.plot(k[keep], v[keep], markevery=max(1, keep.sum() // 8), **st)
        kk = idx_log[np.isfinite(v[idx_log]) & (v[idx_log] > FLOOR)]
        ax2.plot(kk, v[kk], markevery=max(1, len(kk) // 8), **st)
    for ax in (ax1, ax2):
        ax.axhspan(FLOOR / 100, FLOOR, color="0.85", zorder=0)
        ax.text(0.98, 0.03, "float64 floor (10⁻¹⁴ E[f*²])", transform=ax.transAxes, fontsize=7, color="0.3",
                ha="right")
    ax1.set_yscale("log")
    ax2.set(xscale="log", yscale="log")
    if not res.get("partial"):
        pred = res["prediction"]
        if pred is not None and pred["ok"]:
            lo, hi = pred["window"]
            sel = (pred["steps"] <= hi + (hi - lo) // 3) & (pred["loss"] / ref > FLOOR)
            ax1.plot(pred["steps"][sel], pred["loss"][sel] / ref, **plots.THEORY_STYLE,
                     label="left, dashed: n = m's own error through linearized GD")
            kk = np.arange(lo, hi + 1)
            ax1.plot(kk, loss[lo, 0] * np.exp(pred["worst"] * (kk - lo)), **plots.BOUND_STYLE,
                     label="left, dotted: n = m worst case (slowest mode)")
        first = True
        for e, f in enumerate(res["fits"]):
            if "law" in f and f["status"] == "settles":
                k1, T = f["window"]
                ks = np.unique(np.geomspace(k1, T, 40).astype(int))
                ax2.plot(ks, f["law"][ks - k1], **LAW_STYLE,
                         label="right, dash-dot: t⁻³ law from each run's state at T/4" if first else None)
                first = False
        txt = [f"n = {f['n']}: slope {f['loglog_slope']:.2f} on [T/4, T]" for f in res["fits"]
               if "law" in f and f["status"] == "settles"]
        ax2.text(0.03, 0.1, "\n".join(txt), transform=ax2.transAxes, fontsize=7, va="bottom")
    bad = "" if res.get("partial") else _unsettled(res, range(len(ns)))
    lo_y = FLOOR / 10
    top = float(np.nanmax(np.where(np.isfinite(loss), loss, np.nan))) if np.isfinite(loss).any() else L0
    ax1.set_ylim(lo_y, max(L0, top) * 10)
    ax2.set_ylim(lo_y, max(L0, top) * 10)
    ax1.set(xlabel="GD step k", ylabel="population loss L / E[f*²]", title="semilog: straight = linear rate")
    ax2.set(xlabel="GD step k", ylabel="population loss L / E[f*²]", title="log-log: straight = power law")
    handles, labels = [], []
    for ax in (ax1, ax2):  # one legend below both panels: it never hides a curve
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False, handlelength=3.2)
    if not res.get("partial"):
        frame_title(fig, _settings(res), bad)
    plots.time_axis(ax1)
    plots.time_axis(ax2)
    return fig


def _split(ax):
    """Two panels stacked in the place of ``ax`` (which stays as an empty frame, so that a title set on it by the
    small multiples still shows above both). Returns (top, bottom)."""
    fig = ax.figure
    box = ax.get_position()
    ax.set_axis_off()
    top = fig.add_axes([box.x0, box.y0 + 0.58 * box.height, box.width, 0.42 * box.height])
    bottom = fig.add_axes([box.x0, box.y0, box.width, 0.42 * box.height])
    return top, bottom


def state(ax, res: dict):
    """Top: the n = m network at step k, the loss carried by each Hessian mode at its limit point,
    1/2 lambda_i (v_i . e(k))^2 with e(k) = theta(k) - theta* (slowest mode on the left, filled), against the
    linearized prediction from the fit window's start on (dashed). Bottom: all three networks, every neuron's angle to
    its teacher direction at step k (one dot each), with each network's RMS angle (solid tick) and, for n > m from
    T/4 on, the 1/k law's RMS angle (dash-dot tick)."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    axm, axa = _split(ax)
    pred = res["prediction"]
    run, m, ref = res["run"], res["m"], res["ref"]
    steps = run["snap_steps"]
    loss = run["loss"] / ref
    small = 7
    # --- top: the n = m network's Hessian modes
    if pred is None or not pred["ok"]:
        axm.text(0.5, 0.5, "n = m does not settle here:\nno limit point to linearize at", ha="center", va="center",
                 transform=axm.transAxes, fontsize=small + 1)
        axm.set(xticks=[], yticks=[])
        mode_update = None
    else:
        lam, V, nz = pred["lam"], pred["V"], pred["nonzero"]
        lamz = lam[nz]
        theta = np.concatenate([run["a_hist"][:, 0, :m], run["W_hist"][:, 0, :m].reshape(len(steps), -1)], 1)
        meas = 0.5 * lamz * ((theta - pred["theta_lim"]) @ V[:, nz]) ** 2 / ref   # (records, modes)
        predl = 0.5 * lamz * pred["coef"][:, nz] ** 2 / ref                       # from the window start on
        top = float(meas.max()) * 1e6  # headroom for the text
        edges = np.arange(len(lamz) + 1) - 0.5
        bars = axm.stairs(np.full(len(lamz), FLOOR), edges, baseline=FLOOR / 100, fill=True, color=plots.color(0),
                          alpha=0.7)
        line = axm.stairs(np.full(len(lamz), FLOOR), edges, baseline=None, **plots.THEORY_STYLE)
        axm.axhspan(FLOOR / 100, FLOOR, color="0.85", zorder=0)
        axm.set(yscale="log", ylim=(FLOOR / 100, top), xlim=(edges[0], edges[-1]))
        axm.set_ylabel("n = m: loss per\nmode / E[f*²]", fontsize=small + 1)
        axm.set_xlabel(f"modes, slowest first (λ {lamz[0]:.2g}…{lamz[-1]:.2g}); filled: measured, dashed: linearized",
                       fontsize=small - 1, labelpad=1)
        axm.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        axm.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
        axm.tick_params(labelsize=small)
        mtext = axm.text(0.99, 0.95, "", transform=axm.transAxes, fontsize=small, ha="right", va="top",
                         bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=1))
        lo = pred["window"][0]
        at_floor = np.flatnonzero(np.abs(loss[:, 0]) < FLOOR)
        k_floor = int(at_floor[0]) if len(at_floor) else None

        def mode_update(k: int, i: int):
            bars.set_data(np.maximum(meas[i], FLOOR / 100))
            line.set_data(np.maximum(predl[k - lo], FLOOR / 100) if k >= lo else np.full(len(lamz), np.nan))
            total = meas[i].sum()
            if k_floor is not None and k >= k_floor:
                msg = f"n = m: at the float64 floor since step {k_floor}\n(L < 10⁻¹⁴ E[f*²])"
            else:
                msg = f"n = m: L = {fmt(loss[k, 0], 2)} E[f*²]"
                if total > 0:
                    msg += f", slowest mode {meas[i, 0] / total:.0%}"
                if k < lo:
                    msg += f"\ndashed from step {lo} (the fit window's start)"
            mtext.set_text(msg)
            return [bars, line, mtext]
    # --- bottom: every neuron's angle to its teacher, all three networks
    ang = res.get("angles")
    ns = res["ns"]
    E = len(ns)
    xs, cols = [], []
    for e, n in enumerate(ns):
        xs.append(e + (np.linspace(-0.3, 0.3, n) if n > 1 else np.zeros(1)))
        cols += [plots.color(e)] * n
    xs = np.concatenate(xs)
    vals = np.concatenate([ang[:, e, :n] for e, n in enumerate(ns)], axis=1)  # (records, neurons of all networks)
    shown = np.where(np.isfinite(vals), np.maximum(vals, ANGLE_FLOOR_DEG / 3), np.nan)
    hi = float(np.nanmax(shown)) * 5 if np.isfinite(shown).any() else 90.0
    axa.axhspan(ANGLE_FLOOR_DEG / 30, ANGLE_FLOOR_DEG, color="0.85", zorder=0)
    axa.text(0.99, 0.04, "rounding", transform=axa.transAxes, fontsize=small - 0.5, color="0.3", ha="right",
             va="bottom")
    dots = axa.scatter(xs, shown[0], c=cols, s=12, edgecolors="black", linewidths=0.3, zorder=3)
    rms_meas = axa.plot(np.repeat(np.arange(E), 3) + np.tile([-0.4, 0.4, np.nan], E), np.full(3 * E, np.nan),
                        color="black", lw=1.6, zorder=4)[0]
    rms_law = axa.plot(np.repeat(np.arange(E), 3) + np.tile([-0.46, 0.46, np.nan], E), np.full(3 * E, np.nan),
                       **{**LAW_STYLE, "linewidth": 1.2}, zorder=4)[0]
    axa.set(yscale="log", ylim=(ANGLE_FLOOR_DEG / 30, hi), xlim=(-0.55, E - 0.45), xticks=range(E))
    axa.set_xticklabels([_label(n, m) for n in ns], fontsize=small)
    axa.set_ylabel("neuron–teacher\nangle (°)", fontsize=small + 1)
    axa.set_xlabel("ticks: RMS angle (solid); 1/k law from T/4 (dash-dot)", fontsize=small, labelpad=1)
    axa.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
    axa.tick_params(labelsize=small)
    rms = [f.get("rms") for f in res["fits"]]

    def update(k: int):
        i = int(np.searchsorted(steps, k))
        arts = [] if mode_update is None else mode_update(k, i)
        dots.set_offsets(np.column_stack([xs, shown[i]]))
        y_meas = np.full(3 * E, np.nan)
        y_law = np.full(3 * E, np.nan)
        for e, f in enumerate(res["fits"]):
            if rms[e] is not None and np.isfinite(rms[e][i]):
                y_meas[3 * e: 3 * e + 2] = max(rms[e][i], ANGLE_FLOOR_DEG / 3)
            if "rms_law" in f and f["status"] == "settles" and k >= f["window"][0]:
                y_law[3 * e: 3 * e + 2] = f["rms_law"][k - f["window"][0]]
        rms_meas.set_ydata(y_meas)
        rms_law.set_ydata(y_law)
        return [*arts, dots, rms_meas, rms_law]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["steps"], 50)


def key_steps(res: dict) -> list[int]:
    pred = res["prediction"]
    T = res["T"]
    if pred is None or not pred["ok"]:
        return sorted({0, T // 4, T})
    lo, hi = pred["window"]
    return sorted({0, lo, T // 4, T})


def alt(res: dict) -> str:
    return (f"Loss of student networks with n = {', '.join(map(str, res['ns']))} neurons against a teacher of "
            f"m = {res['m']} ({_settings(res)}), in units of E[f*²]: left on semilog axes with the n = m run's own "
            "linearized prediction (dashed) and the worst case (dotted); right on log-log axes with the t⁻³ law from "
            "each n > m run's state at T/4 (dash-dot); the float64 floor shaded grey.")


EXPERIMENT = Experiment(
    id="3.1", title="Linear convergence for n = m, the t⁻³ law for n > m (local start)", run=experiment, draw=draw,
    claims=claims,
    controls={"m": integer("teacher m", DEFAULTS["m"], 1, 4),
              "overlap": real("teacher overlap (cos)", DEFAULTS["overlap"], 0.0, 0.6, 0.05),
              "noise": real("start noise", DEFAULTS["noise"], 0.05, 0.6, 0.05),
              "lr_fraction": real("step η (× stability limit 2/λmax)", DEFAULTS["lr_fraction"], 0.1, 1.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed={"d": FIXED["d"]}, numbers=numbers,
    floors={"n = m: final L / E[f*²]": FLOOR, "n = 2m: final L / E[f*²]": FLOOR, "n = 4m: final L / E[f*²]": FLOOR},
    headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"default": {}, "overlap0.3": {"overlap": 0.3}, "past-limit": {"lr_fraction": 1.2}},
    paper={"larger-teacher-longer-run": {"m": 4, "d": 10, "steps": 4800}},
    paper_note=("the course's closest analogue of Zhou, Ge & Jin's setting (the experiments are the course's own): the "
                "course's setting with a larger teacher in a higher dimension and a longer run, m = 4 teacher neurons "
                "in d = 10, student networks of n = 4, 8, 16 neurons from a local start, 4800 steps at 0.9 × the "
                "stability limit; exact population loss, no regularizer"),
)
