"""Experiment 4.6: depth, through the dual activation.

Each layer maps the correlation rho of two inputs to phi-hat(rho) = sum_p a_p^2 rho^p / sum_p a_p^2 (a_p the
Hermite coefficients of phi). Near rho = 1, 1 - phi-hat(rho) ~ phi-hat'(1) (1 - rho): a layer multiplies the
small distances between close points by the dual activation's slope at 1, phi-hat'(1) = E[phi'^2] / E[phi^2].
Where that slope exceeds 1 (tanh, erf, gelu, swish) depth separates close points and lambda_min of the
last layer's G-matrix climbs; where it is below 1 (softplus, sigmoid) depth merges them.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ... import data, plots
from ..._validate import check_float, check_int
from ...activations import get_activation
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, dropdown, integer, select
from .core import (SMOOTH_ACTS, correlation, deep_grams, dual_slope, empirical_deep_grams, floor_of, spectrum,
                   style)

f64 = torch.float64
SLOPE_RTOL = 0.01  # the measured per-layer factor of 1 - max|K| vs phi-hat'(1): within 1%
CLIMB = 10.0  # where phi-hat'(1) > 1, lambda_min at the last depth is at least 10x its first resolved value
CHECK_SIGMAS = 6.0  # the finite net's correlations within 6 / sqrt(width) of the composed kernel's, entrywise
WIDTHS = (128, 256, 512, 1024)  # the check net at 2048 takes over a second: not offered


@functools.lru_cache(maxsize=32)
def _series(activation: str, n: int, delta: float, max_depth: int):
    X = data.half_circle(n, delta, dtype=f64, device="cpu")
    return X, deep_grams(X, activation, max_depth)


def depth_experiment(activation: str = "tanh", n: int = 16, delta: float = 0.1, max_depth: int = 12,
                     width: int = 512, seed: int = 0, device=None, live=None) -> dict:
    """lambda_min of the last hidden layer's G-matrix against depth (half-circle data, n points, separation
    delta), from the composed dual activation, and one random finite net of width ``width`` as a check."""
    act = get_activation(activation)
    n = check_int("n", n, min_value=3, max_value=64)
    delta = check_float("delta", delta, min_value=1e-3, max_value=2 * math.sin(math.pi / (2 * n)))
    max_depth = check_int("max_depth", max_depth, min_value=2, max_value=32)
    width = check_int("width", width, min_value=16, max_value=8192)
    X, series = _series(act.name, n, float(delta), max_depth)
    depths = list(range(1, max_depth + 1))
    empirical = empirical_deep_grams(X, act, max_depth, width, seed=seed)
    lam, fl, lam_emp, err_K, err_G, sep = [], [], [], [], [], []
    for (G, K), (Ge, Ke) in zip(series, empirical):
        ev = spectrum(G)
        lam.append(float(ev[0]))
        fl.append(float(floor_of(ev)))
        lam_emp.append(float(spectrum(correlation(Ge))[0] * float(torch.diagonal(G).mean())))
        err_K.append(float((correlation(Ke) - K).abs().max()))
        err_G.append(float((correlation(Ge) - correlation(G)).abs().max()))
        off = K.clone()
        off.fill_diagonal_(0.0)
        sep.append(float(1 - off.abs().max()))  # 1 - max |correlation|: how distinguishable the closest points are
    sep = np.array(sep)
    slope = dual_slope(act)
    return {"kind": "depth", "activation": act.name, "n": n, "delta": float(delta), "depths": depths,
            "width": width, "lambda_min": np.array(lam), "floor": np.array(fl),
            "lambda_min_empirical": np.array(lam_emp), "max_err_K": np.array(err_K), "max_err_G": np.array(err_G),
            "one_minus_max_corr": sep, "factors": sep[1:] / sep[:-1], "dual_slope": slope,
            "predicted_sep": sep[0] * slope ** np.arange(max_depth), "mc_scale": 1 / math.sqrt(width)}


def _close_layers(res) -> np.ndarray:
    """Layers whose input pairs are still close (1 - max|K| < 0.05): where the slope at 1 governs."""
    return np.flatnonzero(res["one_minus_max_corr"][:-1] < 0.05)


def measured_factor(res: dict) -> float | None:
    """The per-layer factor of 1 - max|K|: geometric mean over the layers whose pairs are still close (None if none)."""
    idx = _close_layers(res)
    return float(np.exp(np.mean(np.log(res["factors"][idx])))) if len(idx) else None


def depth_claims(res: dict) -> list:
    slope = res["dual_slope"]
    out = []
    st = "Each layer multiplies 1 − max|K_ij| (the closest pair's distance) by the dual activation's slope φ̂′(1)."
    factor = measured_factor(res)
    if factor is not None:
        ok = abs(factor / slope - 1) <= SLOPE_RTOL
        out.append(claim("4.6.slope", st, holds=ok, measured=factor, predicted=slope,
                         tolerance=f"within {SLOPE_RTOL:.0%} (geometric mean over the layers whose 1 − max|K| < 0.05)"))
    else:
        out.append(not_applicable("4.6.slope", st, "no pair of points is close (1 − max|K| ≥ 0.05 at every layer)"))
    lam, fl = res["lambda_min"], res["floor"]
    st = ("Depth brings λmin back exactly when φ̂′(1) > 1: then λmin climbs with every layer; where φ̂′(1) < 1 "
          "depth merges the points and λmin never leaves the floor.")
    above = lam > fl
    if slope > 1:
        if not above[-1]:
            out.append(not_applicable("4.6.depth-helps", st, f"at depth {res['depths'][-1]} λmin is still at the "
                                      "float64 floor: add layers"))
        else:
            first = int(np.argmax(above))
            climb = lam[-1] / max(lam[first], fl[first])
            rising = bool(np.all(np.diff(lam[first:]) > 0))
            short = res["depths"][-1] - res["depths"][first] < 4
            if short and climb < CLIMB:
                above_n = res["depths"][-1] - res["depths"][first] + 1
                out.append(not_applicable("4.6.depth-helps", st, f"only {above_n} depth{'s' if above_n > 1 else ''} "
                                          "above the floor: too few to see the climb (raise the max depth)"))
            else:
                ok = rising and climb >= CLIMB
                out.append(claim("4.6.depth-helps", st, holds=ok, measured=climb, predicted=CLIMB,
                                 tolerance=f"φ̂′(1) = {slope:.3g} > 1: from depth {res['depths'][first]} (the first "
                                 f"above the floor) on, λmin rises at every layer, by ≥ {CLIMB:g}× in all",
                                 why="" if ok else f"λmin rose {fmt(climb)}× (rising at every layer: {rising})"))
    else:
        left = int(np.sum(above[1:]))
        ok = left == 0 and res["one_minus_max_corr"][-1] < res["one_minus_max_corr"][0]
        out.append(claim("4.6.depth-helps", st, holds=ok, measured=left, predicted=0,
                         tolerance=f"φ̂′(1) = {slope:.3g} < 1: no depth ≥ 2 with λmin above the float64 floor "
                         f"(≤ {fl[-1]:.0e}), and the closest pair closer at the last depth than at the first",
                         why="" if ok else f"λmin above the floor at {left} depths"))
    errs = np.concatenate([res["max_err_K"][1:], res["max_err_G"][1:]])
    worst = float(errs.max()) if errs.size else 0.0
    limit = CHECK_SIGMAS * res["mc_scale"]
    out.append(claim("4.6.finite-width", "One random net of width m computes the same correlations as the composed "
                     "series, to within a few 1/√m entrywise.", holds=worst <= limit, measured=worst,
                     predicted=res["mc_scale"], tolerance=f"largest entrywise gap ≤ {CHECK_SIGMAS:g}/√m = {limit:.3g}"))
    return out


def depth_numbers(res: dict) -> dict:
    lam, fl = res["lambda_min"], res["floor"]
    return {"activation": res["activation"], "dual slope φ̂′(1) = E[φ′²]/E[φ²]": res["dual_slope"],
            "measured factor per layer (geometric mean while 1 − max|K| < 0.05)":
                measured_factor(res) if measured_factor(res) is not None else "– (no close pair)",
            "λmin at depth 1": lam[0] if lam[0] > fl[0] else f"< {fl[0]:.0e} (floor)",
            f"λmin at depth {res['depths'][-1]}": lam[-1] if lam[-1] > fl[-1] else f"< {fl[-1]:.0e} (floor)",
            "1 − max|K| at depth 1 / last": f"{fmt(res['one_minus_max_corr'][0])} / {fmt(res['one_minus_max_corr'][-1])}",
            f"finite net (width {res['width']}): largest correlation gap, K / G":
                f"{fmt(float(res['max_err_K'][1:].max()))} / {fmt(float(res['max_err_G'][1:].max()))}",
            "1/√m": res["mc_scale"]}


def depth_draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.9, height=4.0)
    a = res["activation"]
    st = style(a)
    x = np.array(res["depths"])
    lam, fl = res["lambda_min"], res["floor"]
    above = lam > fl
    ax1.plot(x[above], lam[above], "-", color=st["color"], marker=st["marker"], label=f"{a}: series (infinite width)")
    ax1.plot(x[~above], np.full((~above).sum(), float(np.max(fl))), ls="none", marker=st["marker"], mfc="none", ms=7,
             color=st["color"], label="at or below the floor (hollow)" if (~above).any() else None)
    emp = res["lambda_min_empirical"]
    ok = emp > fl
    ax1.plot(x[ok], emp[ok], ls="none", marker="x", color="black",
             label=f"one random net of width {res['width']}" if ok.any() else None)
    ax1.axhline(float(np.max(fl)), color="grey", ls=":", lw=1, label="float64 floor (10⁻¹² λmax)")
    vals = list(lam[above]) + list(emp[ok]) + [float(np.max(fl))]
    lo, hi = min(vals) / 10, max(vals) * 1e3
    ax1.set(yscale="log", xlabel="depth L (hidden layers)", ylabel="λmin of the last layer's G",
            title=f"{a}, φ̂′(1) = {res['dual_slope']:.3g}: n = {res['n']}, δ = {res['delta']:g}",
            ylim=(lo, max(hi, lo * 100)))
    ax1.legend(fontsize=7, loc="upper left")
    sep, pred = res["one_minus_max_corr"], res["predicted_sep"]
    ax2.plot(x, sep, "-", color=st["color"], marker=st["marker"], label="1 − max|K_ij| (series)")
    plots.plot_theory(ax2, x, pred, label=f"(1 − max|K|)(1) × φ̂′(1)^(L−1), φ̂′(1) = {res['dual_slope']:.3g}",
                      style=dict(color="black", ls="--", lw=1.2))
    ax2.plot(x[1:], res["max_err_K"][1:], ls=":", marker="x", color="black",
             label=f"finite net, width {res['width']}: max |K_net − K| (not a distance)")
    ax2.axhline(res["mc_scale"], color="grey", ls="-.", lw=1, label="1/√m")
    vals = np.concatenate([sep, pred, res["max_err_K"][1:], [res["mc_scale"]]])
    vals = vals[vals > 0]
    lo, hi = vals.min() / 3, vals.max() * 30
    ax2.set(yscale="log", xlabel="depth L (hidden layers)", ylabel="1 − max|K| (closest pair); ×: |K_net − K|",
            title=f"from δ²/2 = {res['delta'] ** 2 / 2:.2g}, × φ̂′(1) = {res['dual_slope']:.3g} per layer",
            ylim=(lo, max(hi, lo * 100)))
    # the series rises to the right where phi-hat'(1) > 1 and falls where it is below 1: the legend goes where it is not
    ax2.legend(fontsize=7, loc="upper left" if res["dual_slope"] > 1 else "lower left")
    return fig


def depth_alt(res: dict) -> str:
    return (f"Left: λmin of the last layer's G-matrix against depth for {res['activation']} (dual slope "
            f"{res['dual_slope']:.3g}); right: 1 − max|K| against depth with the predicted geometric line.")


DEPTH = Experiment(
    id="4.6", title="Depth and the dual activation's slope", run=depth_experiment, draw=depth_draw,
    claims=depth_claims,
    controls={"activation": dropdown("activation", "tanh", SMOOTH_ACTS),
              "max_depth": integer("max depth", 12, 2, 16),
              "width": select("check width m", 512, WIDTHS)},
    numbers=depth_numbers, alt=depth_alt,
    reproduce={"tanh": {}, "softplus": {"activation": "softplus"}},
)


def dual_slope_table():
    """phi-hat'(1) = E[phi'^2] / E[phi^2] and E[phi] for every smooth activation of the lesson (a Table)."""
    from ...claims import Table
    from .core import phi_hermite

    rows = []
    for a in SMOOTH_ACTS:
        slope = dual_slope(a)
        rows.append((a, slope, phi_hermite(a)[0][0], "separates close points" if slope > 1 else "merges them"))
    return Table(["activation", "φ̂′(1) = E[φ′²]/E[φ²]", "mean E[φ(z)]", "what depth does"], rows,
                 title="The dual activation's slope at 1")
