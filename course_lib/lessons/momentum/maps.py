"""Experiment 6.2: the predicted rate over the whole (eta, beta) plane, on the spectrum of this network's H(0).

Each cell is the largest root modulus over the spectrum (:func:`course_lib.theory.mode_rate`); the chosen
point (x) is also trained, with heavy ball and Nesterov, and its measured rates are compared with the
linearized dynamics over the same window (:mod:`.network`).
"""
from __future__ import annotations

import functools

import matplotlib
import numpy as np

from ... import plots, theory
from ..._validate import check_float, check_int
from ...claims import claim, fmt, log_rate_error, not_applicable
from ...models import TwoLayer
from . import network
from .core import (
    LABELS,
    MAP_BETA,
    MAP_LR,
    best_tuning,
    classical_parameters,
    gram64,
    high_resolution_beta,
    problem,
    rate_maps,
)

DEFAULTS = dict(dataset="sphere", lr_fraction=1.0, beta=0.8, width=512, steps=200, seed=0)
ODE_STEPS = np.linspace(0.02, 1.0, 50)  # eta x L along the high-resolution-ODE curve, eta <= 1/L
DIVERGED = "#bdbdbd"  # the colour of "diverges" on every map
ODE_MARGIN = 1.15  # along the ODE curve NAG needs fewer steps than HB, but fewer than 15% fewer (1-12% here)
TUNING_TOL = 1e-6  # the numerical optimum equals the closed form (Nelder-Mead to 1e-10 in (eta, beta))


@functools.lru_cache(maxsize=16)
def _gram_spectrum_cached(dataset: str, width: int, seed: int) -> np.ndarray:
    X, _, _, _ = problem(dataset, seed, "cpu")
    model = TwoLayer(width)
    params = model.init(X.shape[1], seed=seed, device="cpu")
    return np.linalg.eigvalsh(gram64(model, params, X)[0].numpy())


def experiment_map(dataset: str = DEFAULTS["dataset"], lr_fraction: float = DEFAULTS["lr_fraction"],
                   beta: float = DEFAULTS["beta"], *, width: int = DEFAULTS["width"], steps: int = DEFAULTS["steps"],
                   seed: int = DEFAULTS["seed"], train_point: bool = True, device=None, live=None) -> dict:
    """Predicted rate maps on the spectrum of H(0) (step ``lr_fraction`` in units of 1/lambda_max(H(0))), the
    classical and the numerically best tunings, and the chosen point trained with HB and NAG."""
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=4.0, min_inclusive=False)
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    width = check_int("width", width, min_value=1)
    lam_inf = problem(dataset, seed, "cpu")[3]
    lam0 = _gram_spectrum_cached(dataset, width, seed)
    maps = rate_maps(lam0)
    L, mu = float(lam0[-1]), float(lam0[0])
    point = None
    if train_point:
        point = network.experiment(dataset, width, lr_fraction=lr_fraction * float(lam_inf[-1]) / L, beta=beta,
                                   steps=steps, seed=seed, methods=("hb", "nag"), device=device)
    ode_beta = high_resolution_beta(ODE_STEPS / L, mu)
    ode = {m: np.array([theory.predicted_rate(lam0, f / L, float(b), m) for f, b in zip(ODE_STEPS, ode_beta)])
           for m in ("hb", "nag")}
    return {"dataset": dataset, "lam0": lam0, "maps": maps, "classical": classical_parameters(mu, L),
            "best": {m: best_tuning(lam0, m) for m in ("hb", "nag")}, "lr_fraction": lr_fraction, "beta": beta,
            "point": point, "width": width, "ode_beta": ode_beta, "ode": ode,
            "pred_point": {m: theory.predicted_rate(lam0, lr_fraction / L, beta, m) for m in ("hb", "nag")}}


# ----------------------------------------------------------------------------------------------
# What the maps show
# ----------------------------------------------------------------------------------------------
def _nag_faster(res: dict) -> np.ndarray:
    H, N = res["maps"]["hb"], res["maps"]["nag"]
    return (N < H - 1e-9) & (N < 1)


def claims(res: dict) -> list:
    H, N = res["maps"]["hb"], res["maps"]["nag"]
    # 1. the ODE curve lies in NAG's region
    speedup = np.log(res["ode"]["nag"]) / np.log(res["ode"]["hb"])  # steps HB / steps NAG
    lo_i, hi_i = int(np.argmin(speedup)), int(np.argmax(speedup))
    why = []
    if not speedup[lo_i] > 1:
        why.append(f"at η × λmax(H(0)) = {fmt(ODE_STEPS[lo_i])} heavy ball is as fast or faster")
    if not speedup[hi_i] < ODE_MARGIN:
        why.append(f"at η × λmax(H(0)) = {fmt(ODE_STEPS[hi_i])} NAG needs {fmt(speedup[hi_i])} × fewer steps: more than "
                   f"{ODE_MARGIN - 1:.0%} fewer")
    ode = claim("6.2.ode-curve", "Along the high-resolution-ODE curve (dotted) NAG's predicted rate beats heavy ball's "
                f"at every point, but by less than {ODE_MARGIN - 1:.0%} in steps.", holds=not why,
                measured=float(speedup[hi_i]), predicted=1.0,
                tolerance=f"steps HB / steps NAG between 1 and {ODE_MARGIN:g} at each of 50 points of the curve (smallest: "
                f"{fmt(speedup[lo_i], 4)})", why="; ".join(why))
    # 2. only in the high-momentum corner
    win = _nag_faster(res)
    bmin = float(MAP_BETA[np.nonzero(win)[0]].min()) if win.any() else float("nan")
    corner = claim("6.2.nag-corner", "NAG is faster than heavy ball only at high momentum (β above 1/2, red), "
                   "and only at steps NAG itself tolerates.", holds=bool(win.any() and bmin > 0.5),
                   measured=bmin, predicted=0.5, tolerance="the smallest β where NAG is faster is above 0.5",
                   why="NAG is faster nowhere on the grid" if not win.any() else f"NAG is faster at β = {fmt(bmin)}")
    # 3. between the two stability limits only heavy ball converges (grid cells one step away from either limit)
    F, B = np.meshgrid(MAP_LR, MAP_BETA)
    lo_lim, hi_lim = 2 * (1 + B) / (1 + 2 * B), 2 * (1 + B)
    step = MAP_LR[1] - MAP_LR[0]
    band = (F >= lo_lim + step) & (F < hi_lim - step)
    ok = (H < 1) & (N >= 1)
    frac = float(ok[band].mean()) if band.any() else float("nan")
    alone = claim("6.2.hb-alone", "Between 2(1+β)/(1+2β) and 2(1+β) (in units of 1/λmax(H(0))) heavy ball converges and "
                  "NAG does not.", holds=frac == 1.0, measured=frac, predicted=1.0,
                  tolerance="every grid cell between the two limits (one cell away from each)",
                  why=f"only {frac:.1%} of those cells have heavy ball converging and NAG diverging")
    # 4. the best tunings: numerical optimum against the closed forms
    c, b = res["classical"], res["best"]
    err = max(abs(b["hb"]["rate"] - c["hb"]["rate"]), abs(b["nag"]["rate"] - c["nag_best"]["rate"]))
    order = c["hb"]["rate"] < c["nag_best"]["rate"] < c["nag"]["rate"]
    best = claim("6.2.best", "The best heavy ball (★, Polyak's tuning) beats the best NAG (◆), which beats Nesterov's "
                 "standard tuning (○).", holds=bool(err < TUNING_TOL and order), measured=b["hb"]["rate"],
                 predicted=c["hb"]["rate"], tolerance=f"numerical optimum within {TUNING_TOL:g} of the closed forms",
                 why=(f"numerical optima HB {fmt(b['hb']['rate'], 6)}, NAG {fmt(b['nag']['rate'], 6)} vs closed forms "
                      f"{fmt(c['hb']['rate'], 6)}, {fmt(c['nag_best']['rate'], 6)}"))
    return [ode, corner, alone, best, point_claim(res)]


def point_claim(res: dict):
    cid = "6.2.point"
    statement = ("At the chosen point (×) the measured rates of heavy ball and NAG follow their linearized dynamics on "
                 "H(0) over the same window (printed in each panel).")
    tol = f"each within {network.RATE_TOL:.0%} in −log rate of the linearized dynamics over the same window"
    p = res["point"]
    if p is None:
        return not_applicable(cid, statement, "the point was not trained")
    sub = {m: network.rate_claim(p, m, "6.2") for m in ("hb", "nag")}
    na = [f"{LABELS[m]}: {c.why}" for m, c in sub.items() if not c.applies]
    if na:
        return not_applicable(cid, statement, "; ".join(na), tolerance=tol)
    errs = {m: log_rate_error(p["runs"][m]["measured_rate"], p["runs"][m]["linearized_rate"]) for m in sub}
    worst = max(errs, key=errs.get)
    r = p["runs"][worst]
    return claim(cid, statement, holds=all(c.holds for c in sub.values()), measured=r["measured_rate"],
                 predicted=r["linearized_rate"], tolerance=tol,
                 why="; ".join(f"{LABELS[m]}: {c.why}" for m, c in sub.items() if not c.holds))


def numbers(res: dict) -> dict:
    L, mu = float(res["lam0"][-1]), float(res["lam0"][0])
    c, b = res["classical"], res["best"]
    H, N = res["maps"]["hb"], res["maps"]["nag"]
    ok = np.minimum(H, N) < 1
    out = {"data": res["dataset"], "width m": res["width"], "κ of H(0)": L / mu,
           "chosen (η × λmax(H(0)), β)": (res["lr_fraction"], res["beta"]),
           "ρ at the chosen point: HB, NAG": (res["pred_point"]["hb"], res["pred_point"]["nag"]),
           "Polyak HB: η × λmax(H(0)), β, rate": (c["hb"]["lr"] * L, c["hb"]["beta"], c["hb"]["rate"]),
           "best NAG: η × λmax(H(0)), β, rate": (c["nag_best"]["lr"] * L, c["nag_best"]["beta"], c["nag_best"]["rate"]),
           "Nesterov's tuning: η × λmax(H(0)), β, rate": (c["nag"]["lr"] * L, c["nag"]["beta"], c["nag"]["rate"]),
           "numerical optimum HB, NAG": (b["hb"]["rate"], b["nag"]["rate"]),
           "share of the plane where either converges, on which NAG is faster": float(np.mean((N < H - 1e-9)[ok])),
           "share of the plane where either converges, on which HB is faster": float(np.mean((H < N - 1e-9)[ok])),
           "share of the plane where both diverge": float(np.mean(~ok))}
    speedup = np.log(res["ode"]["nag"]) / np.log(res["ode"]["hb"])
    out["steps HB / steps NAG along the ODE curve: smallest, largest"] = (float(speedup.min()), float(speedup.max()))
    if res["point"] is not None:
        for m in ("hb", "nag"):
            r = res["point"]["runs"][m]
            out[f"{m.upper()} at the point: measured, linearized same window"] = (r["measured_rate"], r["linearized_rate"])
    return out


def headline(res: dict) -> str:
    k = numbers(res)
    return (f"{res['dataset']}, κ(H(0)) = {k['κ of H(0)']:.1f}: at η = {fmt(res['lr_fraction'])}/λmax(H(0)), β = "
            f"{fmt(res['beta'])} the predicted rates are HB {fmt(res['pred_point']['hb'], 4)}, NAG "
            f"{fmt(res['pred_point']['nag'], 4)}; NAG is faster on {k['share of the plane where either converges, on which NAG is faster']:.0%} of "
            "the plane where either converges")


# ----------------------------------------------------------------------------------------------
# Figure
# ----------------------------------------------------------------------------------------------
def draw(res: dict):
    from matplotlib.lines import Line2D

    fig, axes = plots.new_figure(3, width=3.9, height=3.5)
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.3, top=0.8, wspace=0.35)
    L, mu = float(res["lam0"][-1]), float(res["lam0"][0])
    ext = [MAP_LR[0], MAP_LR[-1], MAP_BETA[0], MAP_BETA[-1]]
    c = res["classical"]
    bb = np.linspace(0, 0.99, 60)
    kappa = L / mu

    def marks(ax):
        ax.plot(ODE_STEPS, res["ode_beta"], color="#56B4E9", lw=2, ls=":")
        ax.plot(c["hb"]["lr"] * L, c["hb"]["beta"], marker="*", ms=13, color="#0072B2", mec="white", ls="")
        ax.plot(c["nag_best"]["lr"] * L, c["nag_best"]["beta"], marker="D", ms=7, color="#D55E00", mec="white", ls="")
        ax.plot(c["nag"]["lr"] * L, c["nag"]["beta"], marker="o", ms=7, mfc="none", mec="black", mew=1.5, ls="")
        ax.plot(res["lr_fraction"], res["beta"], marker="x", ms=10, mew=2.5, color="#CC79A7", ls="")
        ax.set(xlim=(0, MAP_LR[-1]), ylim=(0, 0.99), xlabel="step η × λmax(H(0))", ylabel="momentum β")

    for ax, m in zip(axes[:2], ("hb", "nag")):
        R = np.ma.masked_where(res["maps"][m] >= 1, res["maps"][m])
        cmap = matplotlib.colormaps["magma_r"].with_extremes(bad=DIVERGED)
        im = ax.imshow(R, origin="lower", extent=ext, aspect="auto", cmap=cmap, vmin=0.5, vmax=1.0,
                       interpolation="nearest")
        ax.plot(2 * (1 + bb) if m == "hb" else 2 * (1 + bb) / (1 + 2 * bb), bb, color="black", lw=1.2, ls="--")
        marks(ax)
        txt = f"ρ at × (k → ∞): {fmt(res['pred_point'][m], 3)}"
        if res["point"] is not None:
            pr = res["point"]["runs"][m]
            txt += (f"\nlinearized, same window: {fmt(pr['linearized_rate'], 3)}"
                    f"\nmeasured: {fmt(pr['measured_rate'], 3)}")
        ax.text(0.97, 0.03, txt, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox=dict(facecolor="white", alpha=0.85, lw=0))
        ax.set_title(f"{LABELS[m]}: predicted rate ρ (grey: diverges)", fontsize=9, y=1.01)
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    H, N = res["maps"]["hb"], res["maps"]["nag"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(np.log(np.minimum(N, 1 - 1e-12)) / np.log(np.minimum(H, 1 - 1e-12)))
    ratio = np.where((H >= 1) & (N >= 1), np.nan, ratio)
    ratio = np.where((H >= 1) & (N < 1), 3.0, ratio)
    ratio = np.where((N >= 1) & (H < 1), -3.0, ratio)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=DIVERGED)  # both diverge: grey (white is a tie here)
    im = axes[2].imshow(np.ma.masked_invalid(np.clip(ratio, -3, 3)), origin="lower", extent=ext, aspect="auto",
                        cmap=cmap, vmin=-2, vmax=2, interpolation="nearest")
    axes[2].contour(MAP_LR, MAP_BETA, np.nan_to_num(ratio, nan=-9), levels=[0.0], colors="black", linewidths=1)
    marks(axes[2])
    axes[2].set_title("log₂(steps HB ∕ steps NAG): red = NAG faster,\nwhite = tie, grey = both diverge", fontsize=9,
                      y=1.01)
    fig.colorbar(im, ax=axes[2], fraction=0.05, pad=0.02)
    handles = [Line2D([], [], color="black", ls="--", label="stability limit (HB 2(1+β), NAG 2(1+β)/(1+2β))"),
               Line2D([], [], color="black", lw=1, label="right: log₂ = 0, NAG and HB tie (edge of the red corner)"),
               Line2D([], [], color="#56B4E9", ls=":", lw=2, label="β = (1−√(μη))/(1+√(μη)), η ≤ 1/L (high-resolution ODE)"),
               Line2D([], [], marker="*", ms=11, color="#0072B2", ls="", label=f"Polyak's HB, the best HB: ρ = {c['hb']['rate']:.3f}"),
               Line2D([], [], marker="D", ms=7, color="#D55E00", ls="", label=f"the best NAG: ρ = {c['nag_best']['rate']:.3f}"),
               Line2D([], [], marker="o", ms=7, mfc="none", mec="black", ls="", label=f"Nesterov's standard tuning: ρ = {c['nag']['rate']:.3f}"),
               Line2D([], [], marker="x", ms=9, mew=2.5, color="#CC79A7", ls="", label="your point (trained at width "
                      f"{res['width']})")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    fig.suptitle(f"{res['dataset']}: spectrum of H(0) at width {res['width']}, κ = {kappa:.1f}; "
                 f"your point η = {fmt(res['lr_fraction'])}/λmax(H(0)), β = {fmt(res['beta'])}", fontsize=9, y=0.985)
    return fig


def alt(res: dict) -> str:
    return (f"Predicted per-step rate of heavy ball and Nesterov over step size and momentum for {res['dataset']} "
            "(κ = {:.1f}), with the stability limits, the high-resolution-ODE curve, the best tunings and the chosen "
            "point; a third map shows which method needs fewer steps.".format(res["lam0"][-1] / res["lam0"][0]))


def state(ax, res: dict):
    return network.state(ax, res["point"])


def frames(res: dict) -> list[int]:
    return network.frames(res["point"])


def key_steps(res: dict) -> list[int]:
    return network.key_steps(res["point"])
