"""Experiment 1.2: how far the weights and the Gram matrix move, by width, against the margin lambda_0 / 4.

ReLU, first layer trained (Du et al.'s main theorem). For each width, a few networks (seeds) train ``steps``
GD steps at eta = lr_fraction x 2 / lambda_max(H^inf). Recorded: the per-neuron movement
max_r ||w_r(k) - w_r(0)||, the kernel's drift max_k ||H(k) - H(0)||_2 over the run, and the distance of the
starting Gram matrix to its limit ||H(0) - H^inf||_2. Du et al.'s argument needs both ||H(0) - H^inf|| and
||H(k) - H(0)|| below lambda_0 / 4 (their Lemmas 3.1 and 3.2: then lambda_min(H(k)) >= lambda_0 / 2); each
fitted log-log line says at which width that happens (extrapolated beyond the sweep, and labelled so).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ... import kernels, plots
from ..._validate import check_float, check_int
from ...claims import claim
from ...experiment import Experiment, integer, log_record_steps, real, select
from ...models import TwoLayer
from ...runtime import get_device, scaled_steps
from ...train import train
from . import gd
from .core import gram_metric, loglog_slope, neuron_movement, problem

SWEEP_DEFAULTS = dict(max_width=4096, n=50, lr_fraction=0.5, seed=0, d=10, steps=100, seeds=4)
MAX_WIDTHS = (1024, 4096, 16384)
SLOPE_TOL = 0.1   # "like m^-1/2": a fitted slope within 0.1 of -1/2
FRAMES = 20       # log-spaced steps at which the drift is recorded (the time control's frames)
REFERENCE = 1024  # the first dashboard's default width
DRIFT_VS_INIT = (0.25, 2.0)  # "the same order": the drift between a quarter of ||H(0) - H^inf|| and twice it


def sweep_widths(max_width: int) -> list[int]:
    """16, 64, 256, ... (powers of 4) up to ``max_width``, and ``max_width`` itself."""
    out = [4**k for k in range(2, 9) if 4**k <= max_width]
    return out + ([max_width] if max_width not in out else [])


def seeds_for(m: int, seeds: int) -> int:
    """Networks trained at width m: ``seeds`` up to width 256, fewer beyond (the spread between seeds shrinks
    with width, the cost grows): at most 2 up to width 1024, 1 beyond."""
    return seeds if m <= 256 else min(seeds, 2 if m <= 1024 else 1)


def width_experiment(max_width: int = SWEEP_DEFAULTS["max_width"], n: int = SWEEP_DEFAULTS["n"],
                     lr_fraction: float = SWEEP_DEFAULTS["lr_fraction"], seed: int = SWEEP_DEFAULTS["seed"], *,
                     d: int = SWEEP_DEFAULTS["d"], steps: int = SWEEP_DEFAULTS["steps"],
                     seeds: int = SWEEP_DEFAULTS["seeds"], widths=None, dtype=torch.float32, device=None,
                     live=None) -> dict:
    """For each width (:func:`sweep_widths`), :func:`seeds_for` networks train ``steps`` GD steps; records
    max_r ||w_r(k) - w_r(0)|| at the end, max_k ||H(k) - H(0)||_2 over the run and ||H(0) - H^inf||_2."""
    max_width = check_int("max_width", max_width, min_value=16, max_value=65536)
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=1.0, min_inclusive=False,
                              max_inclusive=False)
    seeds = check_int("seeds", seeds, min_value=1)
    device = get_device(device)
    steps = scaled_steps(steps)
    prob = problem(check_int("n", n, min_value=2), check_int("d", d, min_value=2), check_int("seed", seed, min_value=0),
                   "relu", False)
    H = prob["G"]
    lam = prob["lam"].numpy()
    lr = lr_fraction * 2.0 / float(lam[-1])
    X, y = prob["X"].to(device), prob["y"].to(device)
    widths = [int(w) for w in widths] if widths is not None else sweep_widths(max_width)
    record = log_record_steps(steps, FRAMES)
    res = {"widths": [], "movement": [], "drift": [], "H0_dev": [], "final_loss": [], "drift_path": [],
           "movement_path": [], "record_steps": list(record), "lr": lr,
           "lr_fraction": lr_fraction, "steps": steps, "n": prob["X"].shape[0], "d": d, "seed": seed,
           "lambda_0": float(lam[0]), "lambda_max": float(lam[-1]), "partial": True}
    for m in widths:
        E = seeds_for(m, seeds)
        model = TwoLayer(m)
        params = model.init(d, ensemble=E, seed=seed * 1000 + m, device=device, dtype=dtype)
        H0 = kernels.empirical_gram(model, params, X).cpu()
        hist = train(model, params, X, y, steps=steps, lr=lr, record_steps=record, progress=False,
                     metrics={"movement": neuron_movement, "gram": gram_metric(H0, record)})
        res["widths"].append(m)
        res["movement"].append(hist["movement"][-1])
        res["drift"].append(np.nanmax(hist["gram"][:, :, 0], axis=0))
        res["drift_path"].append(hist["gram"][:, :, 0])  # (records, networks): the time control replays it
        res["movement_path"].append(hist["movement"])
        res["H0_dev"].append(torch.linalg.matrix_norm(H0 - H, 2).numpy())
        res["final_loss"].append(hist["loss"][-1])
        if live is not None and m != widths[-1]:
            live(dict(res))
    res["partial"] = False
    if len(res["widths"]) >= 2:
        w = res["widths"]
        res["slopes"] = {k: loglog_slope(w, means(res, k)) for k in ("movement", "drift", "H0_dev")}
        # where each quantity crosses lambda_0 / 4: the line through the widest (up to) three widths
        res["crossing"] = {k: crossing_width(w[-3:], means(res, k)[-3:], res["lambda_0"] / 4) for k in ("drift", "H0_dev")}
    return res


def means(res: dict, key: str) -> np.ndarray:
    return np.array([float(np.mean(v)) for v in res[key]])


def crossing_width(widths, values, level: float) -> dict:
    """Where the fitted log-log line of ``values`` crosses ``level``: the width (None if the line does not
    fall), whether that width lies inside the sweep (measured between two widths) or beyond (extrapolated)."""
    w, v = np.asarray(widths, float), np.asarray(values, float)
    slope, icept = np.polyfit(np.log(w), np.log(v), 1)
    if slope >= 0:
        return {"width": None, "extrapolated": True}
    m = float(math.exp((math.log(level) - icept) / slope))
    return {"width": m, "extrapolated": not (w[0] <= m <= w[-1])}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _at(res, key, width):
    """Mean of ``key`` at ``width`` (interpolated in log-log between swept widths)."""
    w = np.log(np.asarray(res["widths"], float))
    return float(np.exp(np.interp(math.log(width), w, np.log(means(res, key)))))


def growth(res: dict) -> np.ndarray:
    """Per width: the mean drift at the last recorded step over the mean drift at step 1."""
    i1 = res["record_steps"].index(1) if 1 in res["record_steps"] else 1
    return np.array([float(np.mean(p[-1]) / np.mean(p[i1])) for p in res["drift_path"]])


def drift_over_init(res: dict) -> np.ndarray:
    """Per width: the mean largest drift over the mean ||H(0) - H^inf||."""
    return means(res, "drift") / means(res, "H0_dev")


def rough(width: float) -> str:
    """An extrapolated width to one significant digit (an order of magnitude, not a number): '≈ 5×10⁴'."""
    e = int(math.floor(math.log10(width)))
    mant = int(round(width / 10**e))
    if mant == 10:
        mant, e = 1, e + 1
    power = "10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"≈ {power}" if mant == 1 else f"≈ {mant}×{power}"


def claims(res: dict) -> list:
    s = res["slopes"]
    margin = res["lambda_0"] / 4
    span = f"widths {res['widths'][0]}–{res['widths'][-1]}"
    out = [claim("1.2.movement-slope", "Each neuron moves less in wider networks, like m^(−1/2): the fitted log-log "
                 "slope of the movement is −1/2 within 0.1.", holds=abs(s["movement"] + 0.5) <= SLOPE_TOL,
                 measured=s["movement"], predicted=-0.5, tolerance=f"within {SLOPE_TOL} ({span})",
                 why=f"the fitted slope is {s['movement']:.2f} over {span}"),
           claim("1.2.drift-slope", "The kernel's drift ‖H(k) − H(0)‖ shrinks at least as fast as m^(−1/2), the rate "
                 "the movement bound gives: fitted slope at most −0.4.", holds=s["drift"] <= -0.5 + SLOPE_TOL,
                 measured=s["drift"], predicted=-0.5, tolerance=f"slope ≤ −0.4 ({span})",
                 why=f"the fitted slope is {s['drift']:.2f} over {span}"),
           claim("1.2.init-slope", "‖H(0) − H∞‖, a Monte Carlo error over m random neurons, shrinks like m^(−1/2): "
                 "slope −1/2 within 0.1.", holds=abs(s["H0_dev"] + 0.5) <= SLOPE_TOL, measured=s["H0_dev"],
                 predicted=-0.5, tolerance=f"within {SLOPE_TOL} ({span})",
                 why=f"the fitted slope is {s['H0_dev']:.2f} over {span}")]
    # the drift against the starting kernel's distance to its limit
    r = drift_over_init(res)
    lo, hi = float(r.min()), float(r.max())
    ok = DRIFT_VS_INIT[0] <= lo and hi <= DRIFT_VS_INIT[1]
    worst = res["widths"][int(np.argmin(r))] if lo < DRIFT_VS_INIT[0] else res["widths"][int(np.argmax(r))]
    out.append(claim("1.2.drift-vs-init", "At every width, training moves the kernel by the same order as its "
                     "starting distance from H∞: the drift is between a quarter of ‖H(0) − H∞‖ and twice it.",
                     holds=ok, measured=lo if lo < DRIFT_VS_INIT[0] else hi, predicted=1.0,
                     tolerance=f"drift / ‖H(0) − H∞‖ between {DRIFT_VS_INIT[0]} and {DRIFT_VS_INIT[1]} at every width "
                               f"(from {lo:.2f} to {hi:.2f})",
                     why=f"at width {worst} the drift is {float(r[res['widths'].index(worst)]):.2g} × ‖H(0) − H∞‖"
                         + (f": at this small step (η = {res['lr_fraction']:.2f} × 2/λmax) training moves the kernel "
                            f"little in {res['steps']} steps" if lo < DRIFT_VS_INIT[0] else "")))
    g = growth(res)
    out.append(claim("1.2.drift-grows", "The drift grows during training at every width: it is larger at the last "
                     "step than at step 1.", holds=bool(np.all(g > 1)), measured=float(g.min()), predicted=1.0,
                     tolerance="drift at the last step / drift at step 1 (mean over networks) above 1 at every width",
                     why=f"at width {res['widths'][int(np.argmin(g))]} the drift at the last step is only "
                         f"{float(g.min()):.2g} × its value at step 1"))
    # the margin, at the first dashboard's default width and beyond
    st = ("At width 1024 the drift exceeds λ₀/4 within 100 steps: the kernel stays within the argument's margin only "
          "beyond the width where the line through the widest three widths crosses λ₀/4.")
    inside = res["widths"][0] <= REFERENCE <= res["widths"][-1]
    d_ref = _at(res, "drift", REFERENCE) if inside else float("nan")
    cross = res["crossing"]["drift"]["width"]
    ok = inside and d_ref > margin and cross is not None and cross > REFERENCE
    out.append(claim("1.2.lazy-width", st, holds=ok, measured=d_ref / margin, predicted=1.0,
                     tolerance="drift / (λ₀/4) at width 1024 above 1" + (f"; crossing at m ≈ {cross:.3g}" if cross else ""),
                     why=(f"at width 1024 the drift is {d_ref / margin:.2g} × λ₀/4, already within the margin (with "
                          f"n = {res['n']} λ₀ is larger)" if inside else "the sweep does not include width 1024")))
    st = ("‖H(0) − H∞‖ needs a larger width than the drift to fall below λ₀/4: finite width spoils the margin before "
          "training moves anything.")
    c_init = res["crossing"]["H0_dev"]["width"]
    if cross is None or c_init is None:
        out.append(claim("1.2.init-margin", st, holds=False, tolerance="crossing width of ‖H(0) − H∞‖ / the drift's, above 1",
                         why="a fitted line does not fall with width here, so it never crosses λ₀/4"))
    else:
        out.append(claim("1.2.init-margin", st, holds=c_init > cross, measured=c_init, predicted=cross,
                         tolerance="crossing width of ‖H(0) − H∞‖ above the drift's",
                         why=f"‖H(0) − H∞‖ crosses λ₀/4 at m ≈ {c_init:.3g}, the drift at m ≈ {cross:.3g}"))
    return out


def numbers(res: dict) -> dict:
    margin = res["lambda_0"] / 4
    cr = res.get("crossing", {})

    def where(key):
        c = cr.get(key, {})
        if not c or c["width"] is None:
            return "–"
        if c["extrapolated"]:
            return f"{rough(c['width'])} (extrapolated from three widths: an order of magnitude)"
        return f"{c['width']:.3g} (between two swept widths)"

    return {"widths m": res["widths"], "networks per width": [len(v) for v in res["movement"]],
            "steps": res["steps"], "step size η": res["lr"], "λ₀ of H∞": res["lambda_0"], "λ₀/4": margin,
            "movement max_r ‖w_r(k) − w_r(0)‖ (mean)": list(means(res, "movement")),
            "drift max_k ‖H(k) − H(0)‖ / (λ₀/4) (mean)": list(means(res, "drift") / margin),
            "‖H(0) − H∞‖ / (λ₀/4) (mean)": list(means(res, "H0_dev") / margin),
            "drift / ‖H(0) − H∞‖ (mean)": list(drift_over_init(res)),
            "drift at the last step / at step 1 (mean)": list(growth(res)),
            "fitted slopes: movement, drift, ‖H(0) − H∞‖": [res["slopes"][k] for k in ("movement", "drift", "H0_dev")],
            "width where the drift line crosses λ₀/4": where("drift"),
            "width where the ‖H(0) − H∞‖ line crosses λ₀/4": where("H0_dev")}


def headline(res: dict) -> str:
    s = res["slopes"]
    return (f"fitted log-log slopes over widths {res['widths'][0]}–{res['widths'][-1]}: movement {s['movement']:.2f}, "
            f"drift {s['drift']:.2f}, ‖H(0) − H∞‖ {s['H0_dev']:.2f} (m^(−1/2): −0.50)")


def setting_text(res: dict) -> str:
    return (f"ReLU, first layer trained, n = {res['n']}, η = {res['lr_fraction']:.2f} × 2/λmax, {res['steps']} steps, "
            f"seed {res['seed']}")


def width_ticks(ax, widths) -> None:
    """Ticks at the swept widths, labelled as plain numbers (16, 64, ..., 16384)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.xaxis.set_major_locator(FixedLocator([float(w) for w in widths]))
    ax.xaxis.set_minor_locator(NullLocator())


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.9, height=4.5)
    fig.subplots_adjust(top=0.87, bottom=0.34, wspace=0.3)
    fig.suptitle(setting_text(res), fontsize=10, y=0.985)
    w = np.asarray(res["widths"], float)
    margin = res["lambda_0"] / 4
    if len(w):
        vals = res["movement"]
        ax1.plot(np.concatenate([np.full(len(v), m) for m, v in zip(w, vals)]), np.concatenate(vals), ".",
                 color=plots.color(0), alpha=0.4)
        mean = means(res, "movement")
        slope = res.get("slopes", {}).get("movement")
        ax1.plot(w, mean, color=plots.color(0), marker="o",
                 label="max_r ‖w_r(k) − w_r(0)‖ (dots: each network)" + (f", slope {slope:.2f}" if slope is not None else ""))
        plots.plot_theory(ax1, w, mean[-1] * np.sqrt(w[-1] / w), label="m^(−1/2) through the widest point")
        ax1.set_xlim(w[0] / 1.5, w[-1] * 1.5)
    ax1.set(xscale="log", yscale="log", xlabel="width m", ylabel="per-neuron movement",
            title="how far each neuron moves")
    if len(w):
        width_ticks(ax1, w)
        gd.ticks_125(ax1)
    gd.legend_below(ax1, offset=-0.18)
    if res["partial"]:
        ax2.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
        return fig
    right = w[-1]
    extrapolated = False
    for key, i, label in (("drift", 3, "drift max_k ‖H(k) − H(0)‖"), ("H0_dev", 2, "‖H(0) − H∞‖ at the start")):
        vals = res[key]
        ax2.plot(np.concatenate([np.full(len(v), m) for m, v in zip(w, vals)]), np.concatenate(vals), ".",
                 color=plots.color(i), alpha=0.4)
        ax2.plot(w, means(res, key), color=plots.color(i), marker=plots.marker(i),
                 label=f"{label} (slope {res['slopes'][key]:.2f})")
        c = res["crossing"][key]
        if c["width"] is not None and c["extrapolated"] and c["width"] > w[-1] and c["width"] < 1e3 * w[-1]:
            # the fitted line, extended to where it crosses lambda_0 / 4 (thin, dotted: an extrapolation), and the
            # crossing as an open marker with a bar of a factor 2 either way (it is an order of magnitude)
            slope, icept = np.polyfit(np.log(w[-3:]), np.log(means(res, key)[-3:]), 1)
            xs = np.geomspace(w[-1], c["width"], 20)
            ax2.plot(xs, np.exp(icept) * xs**slope, color=plots.color(i), linestyle=":", linewidth=1.2)
            ax2.plot([c["width"] / 2, c["width"] * 2], [margin, margin], color=plots.color(i), linewidth=2.5,
                     alpha=0.5, solid_capstyle="butt")
            ax2.plot([c["width"]], [margin], marker=plots.marker(i), color=plots.color(i), markerfacecolor="white")
            right = max(right, 2 * c["width"])
            extrapolated = True
    ax2.axhline(margin, color="black", linestyle="--", linewidth=1.3, label="λ₀/4: the margin the argument needs")
    if extrapolated:
        ax2.plot([], [], color="0.3", linestyle=":", marker="o", markerfacecolor="white",
                 label="fitted line extended; open marker: the crossing,\nan order of magnitude (bar: ÷2 to ×2)")
    allv = np.concatenate([np.concatenate(res[k]) for k in ("drift", "H0_dev")])
    ax2.set(xscale="log", yscale="log", xlabel="width m", ylabel="operator norm", xlim=(w[0] / 1.5, right * 1.5),
            ylim=(min(margin, allv.min()) / 2, allv.max() * 2),
            title="the kernel against λ₀/4")
    width_ticks(ax2, w)
    gd.ticks_125(ax2)
    gd.legend_below(ax2, offset=-0.18)
    return fig


def state(ax, res: dict):
    """The drift ||H(k) - H(0)||_2 at step k for every width (points: each network; line: their mean) against
    lambda_0 / 4, with ||H(0) - H^inf|| (fixed) for reference: which widths stay inside the margin, and when
    the others leave it."""
    w = np.asarray(res["widths"], float)
    steps = np.asarray(res["record_steps"])
    margin = res["lambda_0"] / 4
    paths = res["drift_path"]
    xs = np.concatenate([np.full(p.shape[1], m) for m, p in zip(w, paths)])
    allv = np.concatenate([p[np.isfinite(p) & (p > 0)] for p in paths] + [np.concatenate(res["H0_dev"])])
    ax.plot(w, means(res, "H0_dev"), color=plots.color(2), linewidth=1.0, alpha=0.6, marker=plots.marker(2),
            markersize=4, label="‖H(0) − H∞‖ (at the start)")
    ax.axhline(margin, color="black", linestyle="--", linewidth=1.3, label="λ₀/4")
    dots = ax.scatter(xs, np.full(len(xs), np.nan), s=12, color=plots.color(3), alpha=0.45)
    (line,) = ax.plot(w, np.full(len(w), np.nan), color=plots.color(3), marker=plots.marker(3), markersize=5,
                      label="drift ‖H(k) − H(0)‖ at step k")
    ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="operator norm",
           xlim=(w[0] / 1.5, w[-1] * 1.5), ylim=(min(margin, allv.min()) / 2, allv.max() * 6))
    width_ticks(ax, w)
    ax.text(0.02, 0.975, f"ReLU, first layer\nn = {res['n']}, seed {res['seed']}\nη = {res['lr_fraction']:.2f} × 2/λmax\n"
            f"{res['steps']} steps", transform=ax.transAxes, fontsize=6.5, va="top", ha="left", linespacing=1.15)
    ax.legend(fontsize=7, loc="upper right", frameon=False)

    def update(k: int):
        i = int(np.clip(np.searchsorted(steps, k), 0, len(steps) - 1))
        vals = [p[i] for p in paths]
        dots.set_offsets(np.column_stack([xs, np.concatenate(vals)]))
        line.set_data(w, [float(np.mean(v)) for v in vals])
        return [dots, line]

    return update


def frames(res: dict) -> list[int]:
    return [int(k) for k in res["record_steps"] if k > 0]


def key_steps(res: dict) -> list[int]:
    fr = frames(res)
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({fr[0], near(10), fr[-1]})


def alt(res: dict) -> str:
    return (f"Setting: {setting_text(res)}. Left: the largest per-neuron movement against width, with an m^(−1/2) "
            "line; right: the kernel's drift during training and the distance of H(0) to H∞ against width, with the "
            "margin λ₀/4.")


EXPERIMENT = Experiment(
    id="1.2", title="How far the weights and the kernel move, by width", run=width_experiment, draw=draw,
    claims=claims,
    controls={"max_width": select("largest width", SWEEP_DEFAULTS["max_width"], MAX_WIDTHS),
              "n": integer("samples n", SWEEP_DEFAULTS["n"], 20, 100, 10),
              "lr_fraction": real("step η × λmax/2", SWEEP_DEFAULTS["lr_fraction"], 0.05, 0.95, 0.05),
              "seed": integer("seed", SWEEP_DEFAULTS["seed"], 0, 20)},
    numbers=numbers, headline=headline, alt=alt, state=state, frames=frames, key_steps=key_steps,
    reproduce={"default": {}, "max16384": {"max_width": 16384}},
)


def width_dashboard(**overrides):
    """Experiment 1.2's dashboard: largest width, n, step size, seed (ReLU, first layer trained)."""
    return EXPERIMENT.dashboard(**overrides)
