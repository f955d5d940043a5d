"""Experiment 3.1: linear convergence for n = m, the t^-3 law for n = 2m and 4m (local start).

Three students of n = m, 2m, 4m neurons start near the teacher (each a perturbed copy of a teacher neuron) and are
trained together at the same step eta = (fraction) x 2 / lambda_max, lambda_max the Hessian's largest eigenvalue at
the teacher. What is drawn dashed is the prediction for the run on screen:

* n = m: GD linearized at the point the run converges to, started from the run's own error at the first step where
  L < 1e-3 L(0) (each Hessian mode's coefficient evolved directly); compared with the measured slope fitted over the
  same window, in -log rate. The worst case max |1 - eta lambda| (the slowest mode) is dotted and labelled so: an
  error with little weight on the slowest mode falls faster than it.
* n > m: the course's t^-3 law (L^(-1/3) grows linearly in k), started from each run's own loss and slope at T/4,
  against its loss at T. A t^-2 or t^-4 law started the same way misses by a factor 1.3-2.

Past the stability limit GD does not settle; the claims then say so instead of comparing.
"""
from __future__ import annotations

import math

import numpy as np

from ... import plots
from ...claims import claim, fmt, log_rate_error, not_applicable
from ...experiment import Experiment, integer, log_frames, real, select
from ...runtime import scaled_steps
from .core import (
    FLOOR,
    angle_matrix,
    flatten,
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
    warn,
)

DEFAULTS = dict(m=3, overlap=0.0, noise=0.3, lr_fraction=0.9, steps=600, seed=0)
FIXED = dict(d=5, factors=(1, 2, 4))
STEPS = (300, 600, 1200, 2400)
RATE_TOL = 0.05        # "to within 5% in -log rate"
LAW_TOL = 1.15         # "within 15%": a t^-2 or t^-4 law started the same way misses by 1.3-2x
NM_FLOOR = 1e-13       # n = m "reaches the float64 floor": |L| < 1e-13 L(0)
NBIG_ABOVE = 1e-10     # n > m "still above 1e-10 L(0)"


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def experiment(m: int = DEFAULTS["m"], d: int = FIXED["d"], *, overlap: float = DEFAULTS["overlap"],
               noise: float = DEFAULTS["noise"], lr_fraction: float = DEFAULTS["lr_fraction"], lr: float | None = None,
               steps: int = DEFAULTS["steps"], seed: int = DEFAULTS["seed"], factors=FIXED["factors"],
               norms: str = "equal", output: str = "ones", device=None, live=None) -> dict:
    """Students of n = f m neurons (f in ``factors``, the first must be 1 for the n = m prediction) from a local
    start, trained together; the step is ``lr_fraction`` x the stability limit 2/lambda_max at the teacher (or
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
           "ref": ref,
           "lr_fraction": lr / limit, "steps": int(run["steps"][-1]), "overlap": overlap, "noise": noise, "seed": seed,
           "partial": False}
    res.update(analyse(res))
    return res


def analyse(res: dict) -> dict:
    """Settling, fits and the predictions of an :func:`experiment` result."""
    run, ns, m = res["run"], res["ns"], res["m"]
    loss, steps = run["loss"], run["steps"]
    T = int(steps[-1])
    L0 = loss[0]
    fits, status = [], []
    for e, n in enumerate(ns):
        L = loss[:, e]
        st, why = settling(L, L0[e], int(run["diverged_at"][e]), res["ref"])
        status.append((st, why))
        ang = angle_matrix(run["W"][e, :n], res["W_star"]).min(axis=1) if st != "diverged" else np.full(n, np.nan)
        fit = {"n": n, "final_loss": float(L[-1]), "rel_final": float(L[-1] / L0[e]), "status": st, "why": why,
               "floor_final": float(abs(L[-1]) / res["ref"]),
               "worst_angle_deg": float(np.degrees(ang.max()))}
        if n > m:
            k1 = max(1, T // 4)
            ks = np.arange(k1, T + 1)
            fit.update(window=(k1, T), loglog_slope=loglog_slope(steps, L, k1, T),
                       law=power_law_prediction(steps, L, k1, ks, 3.0),
                       law_T={p: float(power_law_prediction(steps, L, k1, [T], p)[0]) for p in (2.0, 3.0, 4.0)},
                       exp_T=float(L[k1] * math.exp(semilog_rate(steps, L, 0.9 * k1, 1.1 * k1) * (T - k1)))
                       if st == "settles" else float("nan"))
        fits.append(fit)
    out = {"fits": fits, "status": status, "prediction": None, "T": T}
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
    head = (f"η is {res['lr_fraction']:.2g} × the stability limit 2/λmax, so GD does not settle"
            if res["lr_fraction"] > 1 else "GD does not settle")
    return f"{head}: for n = {n} {why}"


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
    s2 = ("Over-parameterization costs speed here: n = m reaches the float64 floor (|L| < 10⁻¹³ E[f*²]), while "
          "n = 2m and 4m are still above 10⁻¹⁰ E[f*²] at the last step.")
    bad = _unsettled(res, range(len(ns)))
    if bad:
        out.append(not_applicable("3.1.overparam-slower", s2, bad))
    else:
        nm = res["fits"][0]["floor_final"]
        big = min(f["floor_final"] for f in res["fits"][1:])
        ok = nm < NM_FLOOR and big > NBIG_ABOVE
        why = ""
        if nm >= NM_FLOOR:
            why = f"n = m ends at {nm:.2g} E[f*²], not yet at the float64 floor, after {T} steps"
        elif big <= NBIG_ABOVE:
            why = f"an n > m student ends at {big:.2g} E[f*²], below 10⁻¹⁰ E[f*²]"
        out.append(claim("3.1.overparam-slower", s2, holds=ok, measured=big, predicted=None,
                         tolerance="n = m below 10⁻¹³ E[f*²], n > m above 10⁻¹⁰ E[f*²]", why=why))
    # 3. n > m: the t^-3 law from each run's own state at T/4
    s3 = ("n = 2m and n = 4m follow the same t⁻³ law: started from each run's own loss and slope at T/4, "
          "it predicts the loss at T within 15%.")
    bad = _unsettled(res, range(1, len(ns)))
    if bad:
        out.append(not_applicable("3.1.power-law", s3, bad))
    else:
        ratios = [(f["final_loss"] / f["law_T"][3.0], f) for f in res["fits"][1:]]
        r, f = max(ratios, key=lambda t: abs(math.log(t[0])) if t[0] > 0 and math.isfinite(t[0]) else math.inf)
        ok = all(0 < q <= LAW_TOL and 1 / q <= LAW_TOL for q, _ in ratios)
        out.append(claim("3.1.power-law", s3, holds=ok, measured=f["final_loss"], predicted=f["law_T"][3.0],
                         tolerance=f"L(T) within 15% (t⁻² law: {fmt(f['law_T'][2.0])}, t⁻⁴: {fmt(f['law_T'][4.0])})",
                         why=(f"n = {f['n']}: L(T) = {fmt(f['final_loss'])} is {r:.2f} × the t⁻³ law's "
                              f"{fmt(f['law_T'][3.0])} (the law describes the late phase: at T/4 = {T // 4} this run "
                              "may still be in the fast early phase; raise the steps)" if not ok else "")))
    return out


def numbers(res: dict) -> dict:
    out = {f"teacher m (d = {res['d']})": res["m"], "students n": ", ".join(map(str, res["ns"])),
           "step η": res["lr"], "η / stability limit 2/λmax": res["lr_fraction"], "steps T": res["T"]}
    pred = res["prediction"]
    if pred is not None and pred["ok"]:
        lo, hi = pred["window"]
        out.update({"n = m: fit window (steps)": f"{lo}–{hi}",
                    "n = m: measured ln L per step": pred["measured"],
                    "n = m: predicted (own error, linearized)": pred["predicted"],
                    "n = m: worst case (slowest Hessian mode)": pred["worst"],
                    "Hessian λmin (nonzero), λmax at the limit": f"{fmt(pred['lambda_min'])}, {fmt(pred['lambda_max'])}",
                    "slowest mode's share of the loss at the window start": pred["slowest_share"]})
    for f in res["fits"]:
        key = _tag(f["n"], res["m"])
        out[f"{key}: final L / E[f*²]"] = f["floor_final"] if f["final_loss"] >= 0 else -f["floor_final"]
        if "law_T" in f:
            out[f"{key}: log-log slope over [T/4, T]"] = f["loglog_slope"]
            out[f"{key}: L(T) predicted by t⁻² / t⁻³ / t⁻⁴ from T/4"] = (
                f"{fmt(f['law_T'][2.0])} / {fmt(f['law_T'][3.0])} / {fmt(f['law_T'][4.0])}")
            out[f"{key}: L(T) if exponential from T/4"] = f["exp_T"]
        out[f"{key}: largest student–teacher angle (°)"] = f["worst_angle_deg"]
    return out


def headline(res: dict) -> str:
    bad = _unsettled(res, range(len(res["ns"])))
    head = f"m = {res['m']}, η = {res['lr_fraction']:.2g} × 2/λmax = {res['lr']:.3g}"
    if bad:
        return f"{head}: {bad}"
    return f"{head}: every student settles; final L / E[f*²] " + ", ".join(
        f"n={f['n']}: {fmt(f['floor_final'], 2, floor=NM_FLOOR)}" for f in res["fits"])


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _tag(n: int, m: int) -> str:
    return "n = m" if n == m else f"n = {n // m}m"


def _label(n: int, m: int) -> str:
    return f"n = {n}" + (" = m" if n == m else f" = {n // m}m")


def draw(res: dict):
    """Left: loss vs step, log y (a straight line = linear convergence). Right: log-log (a line = power law)."""
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=3.8)
    fig.subplots_adjust(bottom=0.27)
    ref = res["ref"]
    loss = (res["run"]["loss"] if "run" in res else res["loss"]) / ref
    ns, m = res["ns"], res["m"]
    K = loss.shape[0]
    L0 = float(np.nanmax(loss[0]))
    floor = FLOOR
    idx_log = np.unique(np.geomspace(1, max(K - 1, 1), 300).astype(int))
    for e, n in enumerate(ns):
        st = dict(color=plots.color(e), marker=plots.marker(e), markersize=4, lw=1.6, label=_label(n, m))
        k = np.arange(K)
        v = loss[:, e]
        keep = np.isfinite(v) & (v > floor)
        ax1.plot(k[keep], v[keep], markevery=max(1, keep.sum() // 8), **st)
        kk = idx_log[np.isfinite(v[idx_log]) & (v[idx_log] > floor)]
        ax2.plot(kk, v[kk], markevery=max(1, len(kk) // 8), **st)
    ax1.axhspan(floor / 100, floor, color="0.85", zorder=0)
    ax1.text(0.98, 0.03, "float64 floor", transform=ax1.transAxes, fontsize=7, color="0.35", ha="right")
    ax1.set_yscale("log")
    ax2.set(xscale="log", yscale="log")
    if not res.get("partial"):
        pred = res["prediction"]
        if pred is not None and pred["ok"]:
            lo, hi = pred["window"]
            sel = (pred["steps"] <= hi + (hi - lo) // 3) & (pred["loss"] / ref > floor)
            ax1.plot(pred["steps"][sel], pred["loss"][sel] / ref, **plots.THEORY_STYLE,
                     label="n = m: own error, linearized GD")
            kk = np.arange(lo, hi + 1)
            ax1.plot(kk, loss[lo, 0] * np.exp(pred["worst"] * (kk - lo)), **plots.BOUND_STYLE,
                     label="n = m: worst case (slowest mode)")
        first = True
        for e, f in enumerate(res["fits"]):
            if "law" in f and f["status"] == "settles":
                k1, T = f["window"]
                ks = np.unique(np.geomspace(k1, T, 40).astype(int))
                ax2.plot(ks, f["law"][ks - k1] / ref, **plots.THEORY_STYLE, label="t⁻³ law from T/4" if first else None)
                first = False
        txt = [f"n = {f['n']}: slope {f['loglog_slope']:.2f} on [T/4, T]" for f in res["fits"]
               if "law" in f and f["status"] == "settles"]
        ax2.text(0.03, 0.03, "\n".join(txt), transform=ax2.transAxes, fontsize=7, va="bottom")
    bad = "" if res.get("partial") else _unsettled(res, range(len(ns)))
    if bad:
        warn(ax1, bad, y=0.3)
    lo_y = floor / 10
    top = float(np.nanmax(np.where(np.isfinite(loss), loss, np.nan))) if np.isfinite(loss).any() else L0
    ax1.set_ylim(lo_y, max(L0, top) * 10)
    ax2.set_ylim(max(lo_y, float(np.nanmin(np.where(loss > floor, loss, np.nan))) / 10) if np.any(loss > floor) else lo_y,
                 max(L0, top) * 10)
    eta = f"η = {res.get('lr_fraction', 0):.2g} × 2/λmax"
    ax1.set(xlabel="GD step k", ylabel="population loss L / E[f*²]", title=f"semilog: straight = linear rate ({eta})")
    ax2.set(xlabel="GD step k", ylabel="population loss L / E[f*²]", title=f"log-log: straight = power law (m = {m})")
    handles, labels = [], []
    for ax in (ax1, ax2):  # one legend below both panels: it never hides a curve
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    plots.time_axis(ax1)
    plots.time_axis(ax2)
    return fig


def state(ax, res: dict):
    """n = m at step k: the loss carried by each Hessian mode at the limit point, 1/2 lambda_i (v_i . e(k))^2 with
    e(k) = theta(k) - theta*, slowest mode on the left (filled), against the linearized prediction from the window
    start (dashed outline)."""
    pred = res["prediction"]
    run, m = res["run"], res["m"]
    if pred is None or not pred["ok"]:
        ax.text(0.5, 0.5, "n = m does not settle here:\nno limit point to linearize at", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        text = ax.text(0.5, 0.2, "", ha="center", transform=ax.transAxes, fontsize=8)
        return lambda k: [text]
    lam, V, nz = pred["lam"], pred["V"], pred["nonzero"]
    lamz = lam[nz]
    theta = np.concatenate([run["a_hist"][:, 0, :m], run["W_hist"][:, 0, :m].reshape(len(run["snap_steps"]), -1)], 1)
    coef = (theta - pred["theta_lim"]) @ V[:, nz]                       # (records, modes)
    meas = 0.5 * lamz * coef**2 / res["ref"]
    predl = 0.5 * lamz * pred["coef"][:, nz] ** 2 / res["ref"]          # from the window start on
    floor = FLOOR
    top = float(meas.max()) * 1e4  # headroom for the text and the legend
    edges = np.arange(len(lamz) + 1) - 0.5
    bars = ax.stairs(np.full(len(lamz), floor), edges, baseline=floor, fill=True, color=plots.color(0), alpha=0.7,
                     label="measured")
    line = ax.stairs(np.full(len(lamz), floor), edges, baseline=None, **plots.THEORY_STYLE,
                     label="linearized (dashed)")
    ax.set(yscale="log", ylim=(floor, top), xlim=(edges[0], edges[-1]),
           xlabel=f"Hessian mode i, slowest first (λ from {lamz[0]:.2g} to {lamz[-1]:.2g})",
           ylabel="loss in mode i / E[f*²]")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="upper right")
    text = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=8, va="top")
    lo = pred["window"][0]
    steps = run["snap_steps"]

    def update(k: int):
        i = int(np.searchsorted(steps, k))
        bars.set_data(np.maximum(meas[i], floor))
        if k >= lo:
            line.set_data(np.maximum(predl[k - lo], floor))
        else:
            line.set_data(np.full(len(lamz), np.nan))
        share = meas[i, 0] / meas[i].sum() if meas[i].sum() > 0 else float("nan")
        text.set_text(f"n = m: L = {fmt(run['loss'][k, 0] / res['ref'], 2, floor=floor)} E[f*²]\n"
                      f"slowest mode's share {share:.0%}"
                      + ("" if k >= lo else f"\nprediction starts at step {lo}"))
        return [bars, line, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["steps"], 50)


def key_steps(res: dict) -> list[int]:
    pred = res["prediction"]
    T = res["T"]
    if pred is None or not pred["ok"]:
        return sorted({0, T // 10, T})
    lo, hi = pred["window"]
    return sorted({0, lo, (lo + hi) // 2, hi})


def alt(res: dict) -> str:
    return (f"Loss of students with n = {', '.join(map(str, res['ns']))} neurons against a teacher of m = {res['m']}: "
            "left on semilog axes with the n = m run's own linearized prediction (dashed) and the worst case "
            "(dotted); right on log-log axes with the t⁻³ law from each n > m run's state at T/4 (dashed).")


EXPERIMENT = Experiment(
    id="3.1", title="Linear convergence for n = m, the t⁻³ law for n > m (local start)", run=experiment, draw=draw,
    claims=claims,
    controls={"m": integer("teacher m", DEFAULTS["m"], 1, 4),
              "overlap": real("teacher overlap (cos)", DEFAULTS["overlap"], 0.0, 0.6, 0.05),
              "noise": real("start noise", DEFAULTS["noise"], 0.05, 0.6, 0.05),
              "lr_fraction": real("step η (× stability limit 2/λmax)", DEFAULTS["lr_fraction"], 0.1, 1.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEPS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    fixed={"d": FIXED["d"]}, numbers=numbers, floors={"n = m: final L / E[f*²]": NM_FLOOR, "n = 2m: final L / E[f*²]": NM_FLOOR,
                                             "n = 4m: final L / E[f*²]": NM_FLOOR},
    headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"default": {}, "overlap0.3": {"overlap": 0.3}, "past-limit": {"lr_fraction": 1.2}},
)
