"""Experiments 4.1, 4.2, 4.3 and 4.5: the G-matrix at infinite width, no training.

4.1 the Hermite coefficients c_p^2 of phi' (how smooth phi is, made visible);
4.2 lambda_min(G^inf) against the separation delta of points on a half circle, with the lower bound;
4.3 lambda_min(G^inf) against the data dimension d' and against the number of points n;
4.5 polynomial activations: rank of G against the dimension count.
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
                   fit_power, floor_of, gram_batch, gram_matrix, kinked_coeffs, lower_bound, parity_slopes, spectrum, style,
                   upper_bound)

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
    ax.axhline(top, color="grey", lw=1, ls=":", label="float64 floor (10⁻¹² λmax); hollow: at or below it")
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
        ax.plot(p[shown], c2[shown], ls="none", marker=st["marker"], ms=2.5, color=st["color"], label=label)
        if r["theory_slope"] is not None:
            k, par = r["theory_slope"], r["dominant_parity"]
            sel = (c2 > 0) & (p % 2 == par) & (p >= 100) & (p < 1000)
            anchor = float(np.exp(np.mean(np.log(c2[sel] * p[sel] ** -k))))
            pp = np.array([4, len(c2)])
            plots.plot_theory(ax, pp, anchor * pp**k, label=f"p^({_frac(k)}): {a}'s class",
                              style=dict(color=st["color"], ls="--", lw=1.2))
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
    st = ("The smooth activations fall faster than any power of δ (steeper than δ⁵) and reach the float64 floor "
          "inside the range.")
    if smooth:
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
                         + (f" (with only n = {res['n']} points, δ this small still separates them)" if res["n"] < 8 else "")))
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
    fig, (ax,) = plots.new_figure(1, width=6.4, height=4.2)
    acts = res["acts"]
    labels = {a: a + (f" (fit δ^{res['fits'][a]:.2f})" if res["fits"][a] is not None and
                      get_activation(a).smoothness != SMOOTH else "") for a in acts}
    floor = _lambda_lines(ax, res["deltas"], res["lambda_min"], res["floor"], acts, labels=labels)
    for a in acts:
        b = np.asarray(res["lower_bound"][a])
        good = b > floor
        if good.any():
            ax.plot(res["deltas"][good], b[good], ls="--", lw=1.2, color=style(a)["color"])
    ax.plot([], [], ls="--", color="black", lw=1.2, label="lower bound Σ c_p² max(0, 1 − (n−1)(1 − δ²/2)^(p+1))")
    _log_limits(ax, [v for a in acts for v in res["lambda_min"][a]], lo_floor=floor, legend_decades=4)
    ax.set(xscale="log", xlabel="separation δ", ylabel="λmin(G∞)",
           title=f"n = {res['n']} points on a half circle at separation δ")
    ax.legend(fontsize=7, loc="upper left")
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


# ==============================================================================================
# Experiment 4.3: lambda_min against the data dimension d' and against n
# ==============================================================================================
SEEDS = 5  # data sets per point (a geometric mean: one unusually close pair no longer sets the curve)
N_VALUES = (5, 10, 20, 30, 40, 50)
MAX_D_SUB = 12
GAP_AT_2 = 100.0  # at d' = 2 the kinked lambda_min are at least 100x the smooth ones...
GAP_AT_MAX = 10.0  # ...and at d' = 12 within 10x
TRACK_FACTOR = 5.0  # lambda_min / delta(n) of the activations whose phi' jumps stays within a factor 5 across n


@functools.lru_cache(maxsize=1024)
def _data(n: int, d: int, d_sub: int, seed: int) -> torch.Tensor:
    # a fresh data set per (n, d', seed): nested subsets would share one unusually close pair across n
    return data.subspace_data(n, d, d_sub, seed=10_000 * seed + 100 * d_sub + n, dtype=f64, device="cpu")


@functools.lru_cache(maxsize=256)
def _sweep_one(activation: str, pairs: tuple, d: int, seeds: int):
    """lambda_min and floor per (n, d') in ``pairs`` and per data set (seeds): arrays (len(pairs), seeds)."""
    lam, fl = np.zeros((len(pairs), seeds)), np.zeros((len(pairs), seeds))
    for nn in sorted({p[0] for p in pairs}):  # one batched series per number of points
        rows = [i for i, p in enumerate(pairs) if p[0] == nn]
        Xs = [_data(nn, d, pairs[i][1], s) for i in rows for s in range(seeds)]
        ev = spectrum(gram_batch(Xs, activation)).reshape(len(rows), seeds, nn)
        lam[rows], fl[rows] = ev[..., 0], floor_of(ev)
    return lam, fl


@functools.lru_cache(maxsize=64)
def _separations(pairs: tuple, d: int, seeds: int) -> np.ndarray:
    return np.array([[data.separation(_data(nn, d, ds, s)) for s in range(seeds)] for nn, ds in pairs])


def _sweep(acts: tuple, pairs: tuple, d: int, seeds: int):
    """For each (n, d') in ``pairs``: lambda_min and floor per data set (seeds), separation per data set."""
    lam, fl = {}, {}
    for a in acts:
        lam[a], fl[a] = _sweep_one(a, pairs, d, seeds)
    return lam, fl, _separations(pairs, d, seeds)


def _geo(a: np.ndarray) -> np.ndarray:
    return np.exp(np.mean(np.log(a), axis=-1))


def dimension_experiment(activations: Sequence[str] = DEFAULT_ACTS, n: int = 10, d_sub: int = 2, d: int = 32,
                         max_d_sub: int = MAX_D_SUB, n_values: Sequence[int] = N_VALUES, seeds: int = SEEDS,
                         device=None, live=None) -> dict:
    """lambda_min(G^inf) for n random unit points spanning a d'-dimensional subspace of R^d, geometric mean
    over ``seeds`` independent data sets (values at the float64 floor count as the floor): against
    d' = 2..max_d_sub at fixed n (left), against n at fixed d' = d_sub (right), with the separation and the
    dimension-count upper bound."""
    acts = check_acts(activations)
    d = check_int("d", d, min_value=2, max_value=256)
    n = check_int("n", n, min_value=2, max_value=200)
    max_d_sub = check_int("max_d_sub", max_d_sub, min_value=3, max_value=d)
    d_sub = check_int("d_sub", d_sub, min_value=2, max_value=d)
    seeds = check_int("seeds", seeds, min_value=1, max_value=20)
    n_values = tuple(check_int("n_values[i]", v, min_value=3, max_value=200) for v in n_values)
    d_subs = list(range(2, max_d_sub + 1))
    lam_d, fl_d, sep_d = _sweep(acts, tuple((n, ds) for ds in d_subs), d, seeds)
    lam_n, fl_n, sep_n = _sweep(acts, tuple((nn, d_sub) for nn in n_values), d, seeds)

    def summary(lam, fl):
        return ({a: _geo(np.maximum(lam[a], fl[a])) for a in acts}, {a: _geo(fl[a]) for a in acts},
                {a: np.all(lam[a] <= fl[a], axis=-1) for a in acts})

    by_d = dict(zip(("lambda_min", "floor", "at_floor"), summary(lam_d, fl_d)))
    by_n = dict(zip(("lambda_min", "floor", "at_floor"), summary(lam_n, fl_n)))
    by_n["separation"] = _geo(sep_n)
    by_n["upper_bound"] = {a: np.array([upper_bound(a, nn, d_sub) for nn in n_values]) for a in acts}
    by_n["bound_holds"] = {a: bool(np.all(lam_n[a] <= by_n["upper_bound"][a][:, None] + fl_n[a])) for a in acts}
    by_d["separation"] = _geo(sep_d)
    return {"kind": "dimension", "acts": acts, "n": n, "d": d, "d_sub": d_sub, "d_subs": d_subs,
            "n_values": list(n_values), "seeds": seeds, "by_d": by_d, "by_n": by_n}


def _decades(hi: float, lo: float) -> float:
    return math.log10(hi / lo)


def dimension_claims(res: dict) -> list:
    acts = res["acts"]
    kinked, smooth = _kinked(acts), _smooth(acts)
    bd, bn = res["by_d"], res["by_n"]
    out = []
    st = (f"At d′ = 2 the smooth activations sit at least {GAP_AT_2:g}× below the kinked ones; at d′ = "
          f"{res['d_subs'][-1]} the gap is under {GAP_AT_MAX:g}×.")
    if kinked and smooth:
        def gap(i):
            return max(bd["lambda_min"][a][i] for a in kinked) / min(bd["lambda_min"][a][i] for a in smooth)
        g2, gm = gap(0), gap(-1)
        ok = g2 >= GAP_AT_2 and gm <= GAP_AT_MAX
        out.append(claim("4.3.gap-closes", st, holds=ok, measured=gm, predicted=GAP_AT_MAX,
                         tolerance=f"gap at d′ = 2 ≥ {GAP_AT_2:g} (here {fmt(g2)}), at d′ = {res['d_subs'][-1]} ≤ "
                         f"{GAP_AT_MAX:g}",
                         why="" if ok else f"gap {fmt(g2)}× at d′ = 2 and {fmt(gm)}× at d′ = {res['d_subs'][-1]}"))
    else:
        out.append(not_applicable("4.3.gap-closes", st, "select at least one kinked and one smooth activation"))
    sep = bn["separation"]
    jumps = [a for a in kinked if DELTA_POWER[get_activation(a).smoothness] == 1]
    st = ("Against n, the λmin of ReLU and SELU (φ′ jumps) fall only as the separation δ(n) does: λmin / δ(n) stays "
          f"within a factor {TRACK_FACTOR:g}.")
    if jumps:
        spread = {}
        for a in jumps:
            r = bn["lambda_min"][a] / sep
            spread[a] = float(r.max() / r.min()) if not bn["at_floor"][a].any() else math.inf
        worst = max(jumps, key=lambda a: spread[a])
        ok = all(v <= TRACK_FACTOR for v in spread.values())
        out.append(claim("4.3.kink-tracks-separation", st, holds=ok, measured=spread[worst], predicted=1.0,
                         tolerance=f"max/min of λmin/δ over n ≤ {TRACK_FACTOR:g}",
                         why="" if ok else "spread of λmin/δ: " + ", ".join(f"{a} {fmt(v)}" for a, v in spread.items())))
    else:
        out.append(not_applicable("4.3.kink-tracks-separation", st, "no activation whose φ′ jumps (ReLU, leaky ReLU, "
                                  "SELU) is selected"))
    st = ("Against n, the smooth λmin reach the float64 floor inside the range, while every kinked one stays above it.")
    if smooth:
        ns = res["n_values"]
        first = {a: next((nn for nn, f in zip(ns, bn["at_floor"][a]) if f), None) for a in smooth}
        kinked_floor = [a for a in kinked if bn["at_floor"][a].any()]
        ok = all(v is not None for v in first.values()) and not kinked_floor
        reached = [v for v in first.values() if v is not None]
        out.append(claim("4.3.smooth-collapse", st, holds=ok, measured=max(reached) if len(reached) == len(first) else None,
                         predicted=ns[-1], tolerance=f"every smooth λmin at the floor by n = {ns[-1]}, no kinked one",
                         why="" if ok else "; ".join(
                             [f"{a} stays above the floor up to n = {ns[-1]}" for a, v in first.items() if v is None]
                             + [f"{a} (kinked) reaches the floor" for a in kinked_floor])
                         + (f": at d′ = {res['d_sub']} the data have room for the low-degree terms to separate "
                            f"{ns[-1]} points" if res["d_sub"] > 2 else "")))
    else:
        out.append(not_applicable("4.3.smooth-collapse", st, "no smooth activation is selected"))
    st = ("Every measurement lies below its dimension-count bound; for the smooth activations the bound itself falls "
          "by at least 100× from the smallest to the largest n.")
    holds_all = all(bn["bound_holds"].values())
    if smooth:
        fall = {a: bn["upper_bound"][a][0] / bn["upper_bound"][a][-1] for a in smooth}
        worst = min(smooth, key=lambda a: fall[a])
        ok = holds_all and all(v >= 100 for v in fall.values())
        out.append(claim("4.3.bound", st, holds=ok, measured=fall[worst], predicted=100.0,
                         tolerance="bound ≥ every measured λmin; smooth bounds fall ≥ 100× over n",
                         why="" if ok else ("a measurement exceeds its bound; " if not holds_all else "")
                         + "the bound falls by " + ", ".join(f"{fmt(v)}× ({a})" for a, v in fall.items())
                         + (f" at d′ = {res['d_sub']}: the degree it needs grows only like n^(1/{res['d_sub'] - 1})"
                            if res["d_sub"] > 2 else "")))
    else:
        out.append(claim("4.3.bound", st, holds=holds_all, tolerance="bound ≥ every measured λmin",
                         why="" if holds_all else "a measurement exceeds its bound"))
    return out


def dimension_numbers(res: dict) -> dict:
    bd, bn = res["by_d"], res["by_n"]
    out = {"data sets per point": res["seeds"], "left: points n": res["n"], "right: d′": res["d_sub"],
           "right: separation δ(n) (geometric mean)": [float(v) for v in bn["separation"]]}
    for a in res["acts"]:
        out[f"{a}: λmin at d′ = 2 / {res['d_subs'][-1]} (n = {res['n']})"] = (
            f"{fmt(bd['lambda_min'][a][0])} / {fmt(bd['lambda_min'][a][-1])}")
        out[f"{a}: λmin at n = {res['n_values'][0]} / {res['n_values'][-1]} (d′ = {res['d_sub']})"] = (
            f"{fmt(bn['lambda_min'][a][0])} / " + ("floor" if bn["at_floor"][a][-1] else fmt(bn["lambda_min"][a][-1])))
        out[f"{a}: upper bound at n = {res['n_values'][0]} / {res['n_values'][-1]}"] = (
            f"{fmt(bn['upper_bound'][a][0])} / {fmt(bn['upper_bound'][a][-1])}")
    return out


def dimension_draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.9, height=4.0)
    acts = res["acts"]
    bd, bn = res["by_d"], res["by_n"]
    floor = _lambda_lines(ax1, res["d_subs"], bd["lambda_min"], bd["floor"], acts)
    _log_limits(ax1, [v for a in acts for v in bd["lambda_min"][a]], lo_floor=floor)
    ax1.set(xlabel="data dimension d′", ylabel=f"λmin(G∞), geometric mean of {res['seeds']} data sets",
            title=f"n = {res['n']} points in a d′-dim subspace of R^{res['d']}")
    ax1.legend(fontsize=7, loc="lower right")
    floor = _lambda_lines(ax2, res["n_values"], bn["lambda_min"], bn["floor"], acts)
    for a in acts:
        ub = np.asarray(bn["upper_bound"][a], float)
        good = np.isfinite(ub)
        ax2.plot(np.asarray(res["n_values"])[good], ub[good], ls="--", lw=1.2, color=style(a)["color"])
    ax2.plot([], [], ls="--", color="black", lw=1.2, label="upper bound n Σ_{p≥P(n)} c_p² (dimension count)")
    ax2.plot(res["n_values"], bn["separation"], ls="-.", color="black", lw=1.2, marker="x",
             label="separation δ(n) (geometric mean)")
    _log_limits(ax2, [v for a in acts for v in bn["lambda_min"][a]] + list(bn["separation"])
                + [v for a in acts for v in bn["upper_bound"][a] if np.isfinite(v)], lo_floor=floor, legend_decades=3.5)
    ax2.set(xscale="log", xlabel="number of points n", ylabel="λmin(G∞), geometric mean",
            title=f"d′ = {res['d_sub']}: against n ({res['seeds']} data sets per n)")
    ax2.legend(fontsize=6.5, loc="upper right", ncol=2)
    return fig


def dimension_alt(res: dict) -> str:
    return (f"Left: λmin of G∞ against the data dimension d′ for n = {res['n']}; right: against n at d′ = "
            f"{res['d_sub']}, with the separation δ(n) and the dimension-count upper bounds dashed.")


DIMENSION = Experiment(
    id="4.3", title="λmin against the data dimension d′ and against n", run=dimension_experiment,
    draw=dimension_draw, claims=dimension_claims,
    controls={"activations": multi("activations", DEFAULT_ACTS, ACTIVATIONS),
              "n": integer("points n (left)", 10, 4, 50),
              "d_sub": integer("d′ (right)", 2, 2, 6)},
    numbers=dimension_numbers, alt=dimension_alt,
    reproduce={"n10": {}, "n50": {"n": 50}},
)


# ==============================================================================================
# Experiment 4.5: polynomial activations
# ==============================================================================================
RANK_TOL = 1e-10  # relative: eigenvalues above RANK_TOL x lambda_max count towards the rank
DEGREES = (1, 2, 3, 4, 5, 6)


def _power(k: int) -> str:
    return "z" + str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def predicted_poly_rank(n: int, degree: int, d_sub: int) -> int:
    """min(n, C(d' + k - 1, k)): homogeneous polynomials of degree k in d' variables."""
    return min(n, math.comb(d_sub + degree - 1, degree))


def polynomial_experiment(degrees: Sequence[int] = (2, 3, 4), d_sub: int = 3, d: int = 16, n_max: int = 40,
                          seed: int = 0, device=None, live=None) -> dict:
    """rank and lambda_min of G for phi = z^k (poly k) on the first n of n_max points of a d'-dim subspace."""
    degrees = tuple(check_int("degree", k, min_value=1, max_value=12) for k in degrees)
    if not degrees:
        raise ValueError("degrees: choose at least one degree")
    d_sub = check_int("d_sub", d_sub, min_value=1, max_value=d)
    n_max = check_int("n_max", n_max, min_value=3, max_value=200)
    ns = list(range(2, n_max + 1))
    Xall = data.subspace_data(n_max, d, d_sub, seed=seed, dtype=f64, device="cpu")
    out = {}
    for k in degrees:
        full = gram_matrix(Xall, f"poly{k}")
        ranks, lam, fl = [], [], []
        for nn in ns:
            ev = spectrum(full[:nn, :nn])
            ranks.append(int(np.sum(ev > RANK_TOL * ev[-1])))
            lam.append(float(ev[0]))
            fl.append(float(floor_of(ev)))
        out[k] = {"rank": ranks, "lambda_min": lam, "floor": fl,
                  "predicted": [predicted_poly_rank(nn, k, d_sub) for nn in ns],
                  "singular_from": math.comb(d_sub + k - 1, k) + 1}
    return {"kind": "polynomial", "degrees": degrees, "d_sub": d_sub, "ns": ns, "per_degree": out}


def polynomial_claims(res: dict) -> list:
    per, ns = res["per_degree"], np.array(res["ns"])
    bad = {k: int(np.sum(np.array(v["rank"]) != np.array(v["predicted"]))) for k, v in per.items()}
    c1 = claim("4.5.rank", "The rank of G follows n up to the dimension count C(d′+k−1, k), then stays flat.",
               holds=sum(bad.values()) == 0, measured=sum(bad.values()), predicted=0,
               tolerance="measured rank = min(n, C(d′+k−1, k)) at every n",
               why="" if sum(bad.values()) == 0 else "mismatches: " + ", ".join(f"{_power(k)}: {v}" for k, v in bad.items()))
    over = {}
    for k, v in per.items():
        sel = ns >= v["singular_from"]
        lam, fl = np.array(v["lambda_min"]), np.array(v["floor"])
        over[k] = (int(np.sum(lam[sel] > fl[sel])), int(sel.sum()))
    applies = any(t for _, t in over.values())
    st = "From n = C(d′+k−1, k) + 1 on, λmin sits at the float64 floor: G is singular."
    if applies:
        n_bad = sum(b for b, _ in over.values())
        c2 = claim("4.5.singular", st, holds=n_bad == 0, measured=n_bad, predicted=0,
                   tolerance="λmin ≤ 10⁻¹² λmax at every n past the count",
                   why="" if n_bad == 0 else "above the floor past the count: " + ", ".join(
                       f"{_power(k)}: {b} of {t}" for k, (b, t) in over.items()))
    else:
        c2 = not_applicable("4.5.singular", st, f"n ≤ {res['ns'][-1]} never exceeds the dimension count here "
                            "(lower the degree or d′)")
    return [c1, c2]


def polynomial_numbers(res: dict) -> dict:
    out = {"d′": res["d_sub"]}
    for k, v in res["per_degree"].items():
        out[f"{_power(k)}: dimension count C(d′+{k}−1, {k})"] = v["singular_from"] - 1
        out[f"{_power(k)}: largest measured rank"] = max(v["rank"])
    return out


def polynomial_draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.9, height=4.0)
    ns = np.array(res["ns"])
    for k in res["degrees"]:
        r = res["per_degree"][k]
        st = style(f"poly{k}")
        ax1.plot(ns, r["rank"], ls="none", marker=st["marker"], ms=4, color=st["color"], label=f"{_power(k)}: measured rank")
        ax1.plot(ns, r["predicted"], "--", color=st["color"], lw=1.2, zorder=3)
        lam, fl = np.array(r["lambda_min"]), np.array(r["floor"])
        above = lam > fl
        ax2.plot(ns[above], lam[above], "-", marker=st["marker"], ms=3, color=st["color"], label=_power(k))
        ax2.axvline(r["singular_from"], color=st["color"], ls="--", lw=1)
    ax1.plot([], [], "--", color="black", lw=1.2, label="min(n, C(d′+k−1, k)) (dimension count)")
    ax1.plot(ns, ns, color="grey", lw=0.8, ls=":", label="n (full rank)")
    ax1.set(xlabel="number of points n", ylabel="rank of G (eigenvalues > 10⁻¹⁰ λmax)",
            title=f"polynomial activations zᵏ, d′ = {res['d_sub']}")
    ax1.legend(fontsize=7, loc="upper left")
    fl_top = max(max(res["per_degree"][k]["floor"]) for k in res["degrees"])
    for k in res["degrees"]:  # values at or below the floor: hollow, on the floor line
        r, st = res["per_degree"][k], style(f"poly{k}")
        below = np.array(r["lambda_min"]) <= np.array(r["floor"])
        ax2.plot(ns[below], np.full(below.sum(), fl_top), ls="none", marker=st["marker"], ms=5, mfc="none",
                 color=st["color"])
    ax2.axhline(fl_top, color="grey", ls=":", lw=1, label="float64 floor; hollow: at or below it")
    ax2.plot([], [], "--", color="black", lw=1, label="n = count + 1: singular from here")
    _log_limits(ax2, [v for k in res["degrees"] for v in res["per_degree"][k]["lambda_min"]], lo_floor=fl_top,
                legend_decades=3)
    ax2.set(yscale="log", xlabel="number of points n", ylabel="λmin(G)", title=f"λmin of G, d′ = {res['d_sub']}")
    ax2.legend(fontsize=7, loc="upper right")
    return fig


def polynomial_alt(res: dict) -> str:
    return (f"Left: rank of G for polynomial activations of degree {', '.join(map(str, res['degrees']))} against n, "
            f"with the dimension count dashed; right: λmin against n (d′ = {res['d_sub']}).")


POLYNOMIAL = Experiment(
    id="4.5", title="Polynomial activations: an exactly singular G", run=polynomial_experiment,
    draw=polynomial_draw, claims=polynomial_claims,
    controls={"degrees": multi("degrees k", (2, 3, 4), DEGREES), "d_sub": integer("data dimension d′", 3, 2, 6)},
    numbers=polynomial_numbers, alt=polynomial_alt,
)
