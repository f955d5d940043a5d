"""Experiments 4.1 and 4.2: the Hermite coefficients and the separation (infinite width, no training).

4.1 the Hermite coefficients c_p^2 of phi' (how smooth phi is, made visible);
4.2 lambda_min(G^inf) against the separation delta of points on a half circle, with the lower bound.
The figure helpers here (lambda_min lines with the float64 floor) serve :mod:`.dimension` too.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import torch

from ... import data, plots
from ..._validate import check_int
from ...activations import SMOOTH, get_activation
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, integer, multi
from .core import (ACTIVATIONS, COEFF_FLOOR, DEFAULT_ACTS, DELTA_POWER, NUM_COEFFS, THEORY_SLOPE, check_acts,
                   fit_power, floor_of, gram_batch, kinked_coeffs, lower_bound, parity_slopes, spectrum, style)

f64 = torch.float64


def _kinked(acts) -> list[str]:
    return [a for a in acts if get_activation(a).smoothness != SMOOTH]


def _smooth(acts) -> list[str]:
    return [a for a in acts if get_activation(a).smoothness == SMOOTH]


def _names(acts) -> str:
    return ", ".join(acts)


def _lambda_lines(ax, x, lam: dict, floor: dict, acts, *, labels: dict | None = None):
    """lambda_min against x per activation: solid with markers above the floor, hollow markers at the floor
    where the value is at or below it (float64 rounding, not signal)."""
    x = np.asarray(x, float)
    top = max(float(np.max(np.asarray(floor[a]))) for a in acts)
    for a in acts:
        y, fl = np.asarray(lam[a], float), np.asarray(floor[a], float)
        above = y > fl
        st = style(a)
        ax.plot(x[above], y[above], "-", color=st["color"], marker=st["marker"], ms=4,
                label=(labels or {}).get(a, a))
        if (~above).any():  # drawn on the floor line: "at or below the floor", not a value
            ax.plot(x[~above], np.full((~above).sum(), top), ls="none", marker=st["marker"], ms=6, mfc="none",
                    color=st["color"])
    ax.axhline(top, color="grey", lw=1, ls=":", label="float64 floor (10⁻¹² λmax, the highest\nof the curves'); hollow: at or below it")
    ax.set_yscale("log")
    return top


def _log_limits(ax, values, *, lo_floor: float, pad_decades: float = 0.5, legend_decades: float = 0.0):
    """y limits from the data (never below the floor / 10), with headroom for a legend above the data."""
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], float)
    lo = max(min(v.min() if v.size else lo_floor, lo_floor) / 10 ** pad_decades, lo_floor / 10)
    hi = (v.max() if v.size else 1.0) * 10 ** (pad_decades + legend_decades)
    if hi / lo < 100:  # at least two decades, so that the log axis carries labels
        hi = lo * 100
    ax.set_ylim(lo, hi)


# ==============================================================================================
# Experiment 4.1: Hermite coefficients
# ==============================================================================================
SLOPE_TOL = 0.05  # fitted exponent vs the smoothness class: within 0.05 (the classes differ by 1)
BEND_FACTOR = 1.5  # a smooth phi's local slope steepens by at least this factor from p ~ 16-64 to p ~ 64-256
KINK_NUM = 8192  # the kinked activations' coefficients, exact (core.kinked_coeffs), up to this p
FIT_FROM = 64  # their exponents are fitted over FIT_FROM <= p < KINK_NUM


def coefficients_experiment(activations: Sequence[str] = DEFAULT_ACTS, num: int = NUM_COEFFS, device=None,
                            live=None) -> dict:
    """c_p^2 of phi' for each activation: the smooth ones by course_lib's quadrature (p < num), the kinked ones
    in closed form (p < KINK_NUM), with the exponent of each parity fitted over FIT_FROM <= p < KINK_NUM; for
    the smooth ones the local slope over 16-64 and 64-256."""
    acts = check_acts(activations)
    num = check_int("num", num, min_value=300, max_value=2000)
    per = {}
    for a in acts:
        act = get_activation(a)
        entry = {"smoothness": act.smoothness, "theory_slope": THEORY_SLOPE.get(act.smoothness)}
        if act.smoothness != SMOOTH:
            c2 = kinked_coeffs(a, KINK_NUM) ** 2
            slopes = parity_slopes(c2, FIT_FROM, KINK_NUM)
            entry["parity_slopes"] = slopes
            entry["dominant_parity"] = max(slopes, key=slopes.get)
            entry["fitted_slope"] = max(slopes.values())  # the slower parity sets the tail
        else:
            c2 = act.hermite_coeffs(num) ** 2
            s1, s2 = parity_slopes_all(c2, 16, 64), parity_slopes_all(c2, 64, 256)
            p = np.arange(num)
            entry["local_slopes"] = (s1, s2)
            entry["last_resolved"] = int(p[c2 > COEFF_FLOOR][-1]) if (c2 > COEFF_FLOOR).any() else 0
        entry["c2"] = c2
        per[a] = entry
    return {"kind": "coefficients", "acts": acts, "num": num, "kink_num": KINK_NUM, "per_act": per}


def parity_slopes_all(c2: np.ndarray, lo: int, hi: int) -> float | None:
    """Local log-log slope of c_p^2 over lo <= p < hi (all nonzero resolved terms), None if under 4 terms."""
    p = np.arange(len(c2))
    keep = (p >= lo) & (p < hi) & (c2 > COEFF_FLOOR)
    return fit_power(p[keep], c2[keep])[0] if keep.sum() >= 4 else None


def coefficients_claims(res: dict) -> list:
    per = res["per_act"]
    kinked, smooth = _kinked(res["acts"]), _smooth(res["acts"])
    st1 = ("The slower half of the terms (one parity of p) decays like p^(−3/2) where φ′ jumps (ReLU, SELU) and "
           "like p^(−5/2) where only φ″ jumps (ELU).")
    if kinked:
        devs = {a: per[a]["fitted_slope"] - per[a]["theory_slope"] for a in kinked}
        worst = max(kinked, key=lambda a: abs(devs[a]))
        ok = all(abs(v) <= SLOPE_TOL for v in devs.values())
        c1 = claim("4.1.kink-slopes", st1, holds=ok, measured=per[worst]["fitted_slope"],
                   predicted=per[worst]["theory_slope"], tolerance=f"each within {SLOPE_TOL} of its class",
                   why="" if ok else "fitted exponents: " + ", ".join(
                       f"{a} {per[a]['fitted_slope']:.2f} (class {per[a]['theory_slope']:g})" for a in kinked))
    else:
        c1 = not_applicable("4.1.kink-slopes", st1, "no activation with a kink is selected")
    st2 = ("The smooth activations bend down and leave the plot: their local slope keeps steepening "
           "(faster than any power of p).")
    if smooth:
        ratios = {}
        for a in smooth:
            s1, s2 = per[a]["local_slopes"]
            # below the quadrature floor before p = 64..256: steeper than anything we can fit there
            ratios[a] = math.inf if s2 is None else (s2 / s1 if s1 is not None and s1 < 0 else 0.0)
        worst = min(smooth, key=lambda a: ratios[a])
        ok = all(r >= BEND_FACTOR for r in ratios.values())
        c2 = claim("4.1.smooth-bend", st2, holds=ok, measured=ratios[worst] if math.isfinite(ratios[worst]) else None,
                   predicted=1.0, tolerance=f"slope over p = 64–256 at least {BEND_FACTOR}× the slope over p = 16–64 "
                   "(a power law: 1×)",
                   why="" if ok else "slope ratios: " + ", ".join(f"{a} {fmt(r)}" for a, r in ratios.items()))
    else:
        c2 = not_applicable("4.1.smooth-bend", st2, "no smooth activation is selected")
    return [c1, c2]


def coefficients_numbers(res: dict) -> dict:
    out = {}
    for a in res["acts"]:
        r = res["per_act"][a]
        if r["smoothness"] != SMOOTH:
            out[f"{a}: fitted exponent of c_p² (slower parity)"] = r["fitted_slope"]
            out[f"{a}: class exponent"] = r["theory_slope"]
        else:
            s1, s2 = r["local_slopes"]
            out[f"{a}: local slope p = 16–64 / 64–256"] = f"{fmt(s1)} / {fmt(s2) if s2 is not None else 'below floor'}"
    return out


def _frac(k: float) -> str:
    return {-1.5: "−3/2", -2.5: "−5/2"}.get(k, f"{k:g}")


def _log_spaced(p: np.ndarray, count: int = 150) -> np.ndarray:
    """About ``count`` of the indices p (sorted), log-spaced: what a log axis can show of thousands of terms."""
    if len(p) <= count:
        return p
    pick = np.unique(np.searchsorted(p, np.geomspace(p[0], p[-1], count)).clip(0, len(p) - 1))
    return p[pick]


def coefficients_draw(res: dict):
    fig, (ax,) = plots.new_figure(1, width=9.0, height=4.2)
    fig.subplots_adjust(left=0.08, right=0.66)  # the legend goes to the right of the axes, off the data
    for a in res["acts"]:
        r = res["per_act"][a]
        st = style(a)
        c2 = r["c2"]
        p = np.arange(len(c2))
        keep = np.flatnonzero((c2 > COEFF_FLOOR) & (p >= 1))
        shown = np.concatenate([_log_spaced(keep[keep % 2 == par]) for par in (0, 1)])
        label = f"{a} ({r['smoothness']})"
        ax.plot(p[shown], c2[shown], ls="none", marker=st["marker"], ms=2.5, color=st["color"], label=label,
                alpha=0.5 if r["theory_slope"] is not None else 1.0)  # the dashed class line shows through
        if r["theory_slope"] is not None:
            k, par = r["theory_slope"], r["dominant_parity"]
            sel = (c2 > 0) & (p % 2 == par) & (p >= 100) & (p < 1000)
            anchor = float(np.exp(np.mean(np.log(c2[sel] * p[sel] ** -k))))
            pp = np.array([4, len(c2)])
            plots.plot_theory(ax, pp, anchor * pp**k, label=f"p^({_frac(k)}): {a}'s class",
                              style=dict(color=st["color"], ls="--", lw=1.4, zorder=4))
    ax.axhline(COEFF_FLOOR, color="grey", lw=1, ls=":", label="quadrature floor (smooth φ)")
    ax.set(xscale="log", yscale="log", xlabel="Hermite index p", ylabel="c_p²",
           title="c_p² of φ′ (kinked: closed form; smooth: quadrature)",
           ylim=(COEFF_FLOOR / 10, 10.0), xlim=(0.8, res["kink_num"] * 1.3))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def coefficients_alt(res: dict) -> str:
    return ("Hermite coefficients c_p² of φ′ against p on log-log axes for " + _names(res["acts"])
            + "; dashed lines show the power law of each kinked activation's class.")


COEFFICIENTS = Experiment(
    id="4.1", title="The Hermite coefficients of φ′", run=coefficients_experiment, draw=coefficients_draw,
    claims=coefficients_claims, controls={"activations": multi("activations", DEFAULT_ACTS, ACTIVATIONS)},
    numbers=coefficients_numbers, alt=coefficients_alt,
)


# ==============================================================================================
# Experiment 4.2: lambda_min against the separation (half circle)
# ==============================================================================================
POWER_TOL = 0.1  # fitted exponent of lambda_min(delta) vs the class (1 or 3): within 0.1
SMOOTH_STEEPER = 5.0  # a smooth phi's steepest resolved local slope in delta exceeds this (ELU's is 3)
BOUND_FACTOR = {"phi' jumps": 2.0, "phi'' jumps": 10.0}  # measured / bound at most this, per class


def separation_experiment(activations: Sequence[str] = DEFAULT_ACTS, n: int = 16, num_deltas: int = 10,
                          delta_min: float = 0.01, device=None, live=None) -> dict:
    """lambda_min(G^inf) for n points on a half circle at separation delta, delta_min .. the largest possible,
    and the lower bound at each delta."""
    acts = check_acts(activations)
    n = check_int("n", n, min_value=3, max_value=64)
    delta_max = 2 * math.sin(math.pi / (2 * n)) * (1 - 1e-9)
    if not 1e-3 <= delta_min <= delta_max / 2:
        raise ValueError(f"delta_min must be in [0.001, {delta_max / 2:.3g}] for n = {n}; got {delta_min}")
    num_deltas = check_int("num_deltas", num_deltas, min_value=3, max_value=30)
    deltas = np.geomspace(delta_min, delta_max, num_deltas)
    lam, floors, bounds = {}, {}, {}
    for a in acts:
        lam[a], floors[a], bounds[a] = _separation_one(a, n, tuple(float(x) for x in deltas))
    res = {"kind": "separation", "acts": acts, "n": n, "deltas": deltas, "lambda_min": lam, "floor": floors,
           "lower_bound": bounds}
    res["fits"], res["steepest_slope"] = separation_fits(res)
    return res


@functools.lru_cache(maxsize=128)
def _separation_one(activation: str, n: int, deltas: tuple):
    Xs = [data.half_circle(n, dl, dtype=f64, device="cpu") for dl in deltas]
    ev = spectrum(gram_batch(Xs, activation))
    return ev[:, 0], floor_of(ev), np.array([lower_bound(activation, n, dl) for dl in deltas])


def separation_fits(res: dict) -> tuple[dict, dict]:
    """From the measured lambda_min: the exponent fitted on the small-delta half (values at least 10x above the
    floor), and the steepest local log-log slope between consecutive separations where both values are above the
    floor (None where there are no two such values)."""
    deltas = np.asarray(res["deltas"])
    fits, local = {}, {}
    mid = math.sqrt(deltas[0] * deltas[-1])
    for a in res["acts"]:
        lam, fl = np.asarray(res["lambda_min"][a]), np.asarray(res["floor"][a])
        half = (lam > 10 * fl) & (deltas <= mid)  # the small-delta half: the asymptotic regime
        fits[a] = fit_power(deltas[half], lam[half])[0] if half.sum() >= 3 else None
        above = lam > fl
        steps = [math.log(lam[j + 1] / lam[j]) / math.log(deltas[j + 1] / deltas[j])
                 for j in range(len(deltas) - 1) if above[j] and above[j + 1]]
        local[a] = max(steps) if steps else None  # None: fewer than two consecutive values above the floor
    return fits, local


def separation_claims(res: dict) -> list:
    acts = res["acts"]
    fits, steepest = separation_fits(res)
    kinked, smooth = _kinked(acts), _smooth(acts)
    out = []
    st = "ReLU and SELU: λmin ∝ δ¹; ELU: λmin ∝ δ³ (a power of δ, one per class of kink)."
    if kinked:
        devs = {a: (fits[a] - DELTA_POWER[get_activation(a).smoothness]) if fits[a] is not None else math.inf
                for a in kinked}
        worst = max(kinked, key=lambda a: abs(devs[a]))
        ok = all(abs(v) <= POWER_TOL for v in devs.values())
        out.append(claim("4.2.kink-power", st, holds=ok, measured=fits[worst],
                         predicted=DELTA_POWER[get_activation(worst).smoothness],
                         tolerance=f"each exponent within {POWER_TOL} of its class",
                         why="" if ok else "fitted exponents: " + ", ".join(
                             f"{a} {fmt(fits[a])} (class {DELTA_POWER[get_activation(a).smoothness]:g})" for a in kinked)))
    else:
        out.append(not_applicable("4.2.kink-power", st, "no activation with a kink is selected"))
    st = ("The smooth activations fall far more steeply than the kinked ones (steeper than δ⁵ wherever two "
          "consecutive values lie above the float64 floor) and reach that floor inside the range.")
    if smooth and not any(steepest[a] is not None for a in smooth):
        out.append(not_applicable("4.2.smooth-floor", st, "every smooth λmin but at most one value per activation is "
                                  "already at the float64 floor: no two consecutive values to measure a slope on "
                                  "(lower n to see it)"))
    elif smooth:
        # the slope is measured where two consecutive values lie above the floor; an activation that drops from
        # its first resolved value straight to the floor has no measurable slope (only "reaches the floor" counts)
        info = {a: (steepest[a], bool(res["lambda_min"][a][0] <= res["floor"][a][0])) for a in smooth}
        ok = all((s is None or s > SMOOTH_STEEPER) and f for s, f in info.values())
        sloped = [a for a in smooth if info[a][0] is not None]
        worst = min(sloped, key=lambda a: info[a][0]) if sloped else None
        out.append(claim("4.2.smooth-floor", st, holds=ok, measured=info[worst][0] if worst else None,
                         predicted=SMOOTH_STEEPER,
                         tolerance=f"steepest local slope above the floor > {SMOOTH_STEEPER:g}, and λmin at the floor at "
                         f"δ = {res['deltas'][0]:.2g}",
                         why="" if ok else "; ".join(
                             f"{a}: steepest slope {fmt(s) if s is not None else '– (too few values above the floor)'}, "
                             f"{'at' if f else 'still above'} the floor at the smallest δ" for a, (s, f) in info.items())
                         + (f" (with only n = {res['n']} points the smooth λmin falls about as δ^(2(n−1)) = "
                            f"δ^{2 * (res['n'] - 1)}: not steep enough to reach the floor by δ = {res['deltas'][0]:.2g})"
                            if res["n"] < 8 else "")))
    else:
        out.append(not_applicable("4.2.smooth-floor", st, "no smooth activation is selected"))
    st = ("The lower bound lies below every measurement; for the kinked activations it sits within a factor 2 "
          "(a jump in φ′) or 10 (ELU) of the measurement at every δ, with the same power of δ.")
    lam, b = res["lambda_min"], res["lower_bound"]
    below = all(np.all(b[a] <= lam[a] + res["floor"][a]) for a in acts)
    if kinked:
        ratios = {a: np.max(lam[a] / np.maximum(b[a], 1e-300)) for a in kinked}
        flat = {a: np.max(lam[a] / b[a]) / np.min(lam[a] / b[a]) if np.all(b[a] > 0) else math.inf for a in kinked}
        lim = {a: BOUND_FACTOR[get_activation(a).smoothness] for a in kinked}
        ok = below and all(ratios[a] <= lim[a] and flat[a] <= 1.1 for a in kinked)
        worst = max(kinked, key=lambda a: ratios[a] / lim[a])
        out.append(claim("4.2.bound", st, holds=ok, measured=ratios[worst], predicted=lim[worst],
                         tolerance="bound ≤ measurement everywhere; measurement / bound ≤ 2 (φ′ jumps) or 10 (φ″ "
                         "jumps), varying by under 10% across δ",
                         why="" if ok else ("the bound exceeds a measurement; " if not below else "")
                         + "; ".join(f"{a}: measurement/bound up to {fmt(ratios[a])} (varies {fmt(flat[a])}×)"
                                     for a in kinked)
                         + (f" (with n = {res['n']} the separations reach {res['deltas'][-1]:.2g}, beyond the small-δ "
                            "regime)" if res["n"] < 8 else "")))
    else:
        out.append(not_applicable("4.2.bound", st, "no activation with a kink is selected"))
    return out


def separation_numbers(res: dict) -> dict:
    out = {"points n": res["n"], "separations δ": f"{res['deltas'][0]:.3g} … {res['deltas'][-1]:.3g}"}
    for a in res["acts"]:
        lam, fl = res["lambda_min"][a], res["floor"][a]
        out[f"{a}: λmin at δ = {res['deltas'][0]:.2g}"] = lam[0] if lam[0] > fl[0] else f"< {fl[0]:.0e} (floor)"
        if res["fits"][a] is not None:
            out[f"{a}: fitted exponent"] = res["fits"][a]
        if get_activation(a).smoothness != SMOOTH:
            out[f"{a}: measurement / lower bound"] = float(np.max(lam / res["lower_bound"][a]))
    return out


def separation_draw(res: dict):
    fig, (ax,) = plots.new_figure(1, width=9.0, height=4.4)
    acts = res["acts"]
    labels = {a: a + (f" (fit δ^{res['fits'][a]:.2f})" if res["fits"][a] is not None and
                      get_activation(a).smoothness != SMOOTH else "") for a in acts}
    floor = _lambda_lines(ax, res["deltas"], res["lambda_min"], res["floor"], acts, labels=labels)
    for a in acts:
        b = np.asarray(res["lower_bound"][a])
        good = b > floor
        if good.any():
            ax.plot(res["deltas"][good], b[good], ls="--", lw=1.2, color=style(a)["color"])
    ax.plot([], [], ls="--", color="black", lw=1.2, label="lower bound\nΣ c_p² max(0, 1 − (n−1)(1 − δ²/2)^(p+1))")
    _log_limits(ax, [v for a in acts for v in res["lambda_min"][a]], lo_floor=floor, legend_decades=0.5)
    ax.set(xscale="log", xlabel="separation δ", ylabel="λmin(G∞)",
           title=f"n = {res['n']} points on a half circle at separation δ")
    fig.subplots_adjust(right=0.64)  # the legend beside the axes: it hides no curve
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig


def separation_alt(res: dict) -> str:
    return (f"λmin of G∞ against the separation δ of {res['n']} points on a half circle, log-log, for "
            + _names(res["acts"]) + ", with the lower bound dashed.")


SEPARATION = Experiment(
    id="4.2", title="λmin against the separation δ", run=separation_experiment, draw=separation_draw,
    claims=separation_claims,
    controls={"activations": multi("activations", DEFAULT_ACTS, ACTIVATIONS),
              "n": integer("points n", 16, 4, 32)},
    numbers=separation_numbers, alt=separation_alt,
    reproduce={"n16": {}, "n32": {"n": 32}},
)
