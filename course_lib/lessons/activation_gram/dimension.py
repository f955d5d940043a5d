"""Experiments 4.3 and 4.5: lambda_min against the data dimension and n, and polynomial activations.

4.3 lambda_min(G^inf) against the data dimension d' and against the number of points n (geometric means over
    independent data sets), with the separation delta(n) and the dimension-count upper bound;
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
from ...activations import get_activation
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, integer, multi
from .core import (ACTIVATIONS, DEFAULT_ACTS, DELTA_POWER, check_acts, fit_power, floor_of, gram_batch, gram_matrix,
                   spectrum, style, upper_bound)
from .spectra import _kinked, _lambda_lines, _log_limits, _smooth

f64 = torch.float64


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
    for a in _kinked(res["acts"]):  # how each kinked λmin scales with the separation across n
        if not bn["at_floor"][a].any():
            out[f"{a}: fitted exponent of λmin against δ(n)"] = float(fit_power(bn["separation"], bn["lambda_min"][a])[0])
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
    paper={"n10": {"n": 10}, "n50": {"n": 50}},
    paper_note=("the course's closest analogue of the eigenvalue panels of the paper's Figure 1 (G-matrix eigenvalues "
                "at initialization on synthetic data, n = 10 and n = 50): here λmin of the infinite-width G∞ in float64 "
                "(experiment 4.4's paper runs show a finite net's whole G(0) spectrum), for n random unit points "
                "spanning a d′-dimensional subspace of R^32, against d′ = 2..12, geometric mean over 5 data sets (the "
                "course's setting); the right panel, against n at d′ = 2, is the course's addition"),
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
        ax1.plot(ns, r["rank"], ls="none", marker=st["marker"], ms=3, color=st["color"], alpha=0.7,
                 label=f"z^{k}: measured rank")
        ax1.plot(ns, r["predicted"], "--", color=st["color"], lw=1.2, zorder=3)
        lam, fl = np.array(r["lambda_min"]), np.array(r["floor"])
        above = lam > fl
        ax2.plot(ns[above], lam[above], "-", marker=st["marker"], ms=3, color=st["color"], label=f"z^{k}")
        if r["singular_from"] <= ns[-1]:  # a count beyond the range would stretch the axis past the data
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
