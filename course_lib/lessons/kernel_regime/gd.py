"""Experiment 1.1: gradient descent against this network's own linearization (three widths), the kernel's
drift, and the residual on the Gram matrix's eigen-directions.

Each network of width m is compared with its own linearized dynamics u(k) - y = (I - eta H(0))^k (u(0) - y)
(H(0) its Gram matrix at initialization, u(0) its own starting output; each eigen-direction's coefficient
computed directly by :func:`course_lib.theory.linearized_modes`). The widest network also carries the
infinite-width version (G instead of H(0)) and Du et al.'s worst-case guarantee (1 - eta lambda_0 / 2)^k L(0).
What the prediction assumes is measured, not guessed: the kernel drift ||H(k) - H(0)||_2 against lambda_0 / 4,
the margin of Du et al.'s argument (Lemma 3.2: within it, lambda_min(H(k)) stays above lambda_0 / 2).
Rates are compared over the same late window, fitted above the float32 floor (:func:`core.fit_window`).
"""
from __future__ import annotations

import numpy as np
import torch

from ... import kernels, plots, theory
from ..._validate import check_choice, check_float, check_int
from ...claims import claim, not_applicable
from ...experiment import Experiment, dropdown, integer, log_frames, log_record_steps, powers_of_two, real, select
from ...models import TwoLayer
from ...runtime import get_device, scaled_steps, to_float64
from ...train import train
from .core import (ACTIVATIONS, FIT_FLOOR, LAYERS, MIN_WIDTH, comparison_widths, fit_window, gram_metric,
                   mode_groups, neuron_movement, problem, rate_over, residual)

DEFAULTS = dict(width=1024, lr_fraction=0.5, n=50, activation="relu", layers="first layer only", seed=0, d=10,
                steps=200)
WIDTHS = powers_of_two(3, 14)  # 8 .. 16384
EARLY = 10            # "for the first 10 steps"
EARLY_FACTOR = 1.2    # "within 20%"
COUPLED_FACTOR = 1.5  # "at about the slowest directions' rate": within a factor 1.5 in -log rate (steps per decade)
SEPARATION = 1e3      # the coupling can show once the middle directions' dashed line ends 1000x below the slow ones
ABOVE = 10            # ... and then the middle directions end at least 10x above their dashed line
LIVE_EVERY = 20       # steps between live updates of a long run
RECORD_EVERY = 4      # record loss and residual every 4 steps (and every step up to EARLY, and at the frames)
FRAMES = 30           # log-spaced frames at which the kernel drift is recorded (the time control's steps)


# ----------------------------------------------------------------------------------------------
# Training one network against its own linearization
# ----------------------------------------------------------------------------------------------
def train_against_linearization(m: int, prob: dict, lr: float, steps: int, seed: int, *, activation: str = "relu",
                                train_output: bool = False, device=None, state: bool = True, top: bool = False,
                                live=None) -> dict:
    """Train one network of width ``m`` on ``prob`` (from :func:`core.problem`) and compute its own linearized
    prediction. With ``state``: the residual at every step and, at log-spaced frames, the kernel drift
    ||H(k) - H(0)||_2 (and lambda_max(H(k)) with ``top``): what the time control replays."""
    device = get_device(device)
    d = prob["X"].shape[1]
    X, y = prob["X"].to(device), prob["y"].to(device)
    model = TwoLayer(m, activation, train_output=train_output)
    params = model.init(d, seed=seed, device=device)
    H0 = kernels.empirical_gram(model, params, X).cpu()  # (1, n, n), float64
    metrics = {"movement": neuron_movement}
    if state:
        metrics["residual"] = residual
        metrics["gram"] = gram_metric(H0, log_record_steps(steps, FRAMES), top=top)
    callback = None
    if live is not None:
        def callback(hist, step):
            if step % LIVE_EVERY < RECORD_EVERY:
                live(hist)
    # records: every step up to EARLY (the early match), every RECORD_EVERY steps after, and the log-spaced frames
    record = sorted(set(range(min(EARLY, steps) + 1)) | set(range(0, steps + 1, RECORD_EVERY))
                    | set(log_record_steps(steps, FRAMES)))
    hist = train(model, params, X, y, steps=steps, lr=lr, record_steps=record, progress=False, metrics=metrics,
                 callback=callback)
    r0 = to_float64(model.apply(params, X)[0] - y).cpu()
    lam, V, coef = theory.linearized_modes(H0[0], r0, lr, steps)
    loss = hist["loss"][:, 0]
    out = {"width": m, "history": hist, "steps": hist.steps, "loss": loss,
           "movement": hist["movement"][:, 0], "diverged": hist.diverged, "message": hist.message,
           "diverged_at": int(hist.diverged_at[0]), "lam_H0": lam, "pred_loss": 0.5 * (coef**2).sum(1),
           "r0": r0.numpy()}
    if state:
        g = hist["gram"][:, 0]
        keep = np.isfinite(g[:, 0])
        out.update(V=V, pred_coef=coef, residual=hist["residual"][:, 0], frames=hist.steps[keep].tolist(),
                   drift=g[keep, 0])
        if top:
            out["lam_max_H"] = g[keep, 1]
    out.update(zip(("window", "rate", "pred_rate"), late_rates(out)))
    return out


def late_rates(run: dict) -> tuple:
    """(window, measured rate, dashed line's rate): per-step contraction of ||u - y|| and of its linearized
    prediction, fitted over the same late window above the float32 floor (None, None, None if no window)."""
    if run["diverged"]:
        return None, None, None
    rnorm = np.sqrt(2 * np.asarray(run["loss"], float))
    window = fit_window(run["steps"], rnorm)
    if window is None:
        return None, None, None
    pred = np.sqrt(2 * np.asarray(run["pred_loss"], float))
    return window, rate_over(run["steps"], rnorm, window), rate_over(np.arange(len(pred)), pred, window)


def experiment(width: int = DEFAULTS["width"], lr_fraction: float = DEFAULTS["lr_fraction"], n: int = DEFAULTS["n"],
               activation: str = DEFAULTS["activation"], layers: str = DEFAULTS["layers"], seed: int = DEFAULTS["seed"],
               *, d: int = DEFAULTS["d"], steps: int = DEFAULTS["steps"], device=None, live=None) -> dict:
    """Experiment 1.1: networks of widths :func:`core.comparison_widths` (m/64, m/8, m) on the same data from
    the same seed, each against its own linearized prediction; the widest also against G's (infinite width)
    and Du et al.'s guarantee, with its residual and its kernel drift recorded for the replay."""
    width = check_int("width", width, min_value=MIN_WIDTH, max_value=65536)
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=2.0, min_inclusive=False)
    n = check_int("n", n, min_value=2, max_value=2000)
    d = check_int("d", d, min_value=2)
    activation = check_choice("activation", activation, ACTIVATIONS)
    layers = check_choice("layers", layers, LAYERS)
    seed = check_int("seed", seed, min_value=0)
    steps = scaled_steps(steps)
    train_output = layers == "both layers"
    prob = problem(n, d, seed, activation, train_output)
    lam_G = prob["lam"].numpy()
    lr = lr_fraction * 2.0 / float(lam_G[-1])
    widths = comparison_widths(width)
    res = {"widths": widths, "runs": [], "lr": lr, "lr_fraction": lr_fraction, "lam_G": lam_G,
           "lambda_0": float(lam_G[0]), "lambda_max": float(lam_G[-1]), "steps": steps, "n": n, "d": d,
           "activation": activation, "layers": layers, "seed": seed, "partial": True}
    for m in widths:
        feed = None
        if live is not None:
            feed = lambda hist, _m=m: live({**res, "live": (_m, hist)})  # noqa: E731
        res["runs"].append(train_against_linearization(m, prob, lr, steps, seed, activation=activation,
                                                       train_output=train_output, device=device,
                                                       state=m == widths[-1], live=feed))
    top = res["runs"][-1]
    _, _, coef_inf = theory.linearized_modes(prob["G"], torch.from_numpy(top["r0"]), lr, steps)
    res.update(pred_inf_loss=0.5 * (coef_inf**2).sum(1), partial=False)
    if 1 - lr * res["lambda_0"] / 2 > 0:
        res["du_bound"] = theory.du_bound(float(top["loss"][0]), res["lambda_0"], lr, steps)
    return res


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def drift_at(run: dict, k: int) -> float:
    """The network's ||H(k) - H(0)||_2, interpolated between recorded frames."""
    return float(np.interp(k, run["frames"], run["drift"]))


def group_norms(run: dict, groups: dict) -> tuple[dict, dict]:
    """Norm of the residual's coefficients on each group of H(0)'s eigen-directions: measured (at the
    recorded steps) and linearized (at every step)."""
    c = run["residual"] @ run["V"]
    meas = {g: np.linalg.norm(c[:, idx], axis=1) for g, idx in groups.items()}
    pred = {g: np.linalg.norm(run["pred_coef"][:, idx], axis=1) for g, idx in groups.items()}
    return meas, pred


def _nlog(rate: float) -> float:
    return -float(np.log(rate)) if rate > 0 else float("inf")


def coupling(res: dict) -> dict | None:
    """The numbers behind ``1.1.coupling`` (None where the run is too short to fit late rates)."""
    run = res["runs"][-1]
    w = late_rates(run)[0]
    if w is None:
        return None
    meas, pred = group_norms(run, mode_groups(res["n"]))
    T = int(run["steps"][-1])
    r_mid = rate_over(run["steps"], meas["middle"], w)
    r_slow = rate_over(run["steps"], meas["slowest"], w)
    return {"separation": float(pred["middle"][T] / max(meas["slowest"][-1], 1e-300)), "rate_middle": r_mid,
            "rate_slowest": r_slow, "rate_middle_dashed": rate_over(np.arange(T + 1), pred["middle"], w),
            "ratio": _nlog(r_mid) / _nlog(r_slow), "above": float(meas["middle"][-1] / pred["middle"][T])}


def claims(res: dict) -> list:
    run = res["runs"][-1]
    m, lr, margin = run["width"], res["lr"], res["lambda_0"] / 4
    diverged = run["diverged"]
    why_div = f"the width-{m} network diverged at step {run['diverged_at']}: past the stability edge"
    out = []
    # 1. the early match
    st = "For the first 10 steps the widest network's loss stays within 20% of its dashed line."
    if diverged:
        out.append(not_applicable("1.1.early-match", st, why_div))
    else:
        k = run["steps"] <= EARLY
        L, P = run["loss"][k], run["pred_loss"][run["steps"][k]]
        factor = float(np.max(np.maximum(L / P, P / L)))
        out.append(claim("1.1.early-match", st, holds=factor <= EARLY_FACTOR, measured=factor, predicted=1.0,
                         tolerance="largest ratio loss/dashed (either way) at most 1.2",
                         why=f"the loss strays by a factor {factor:.3g} from its dashed line within {EARLY} steps: "
                             f"its Gram matrix moved by {drift_at(run, EARLY) / margin:.2g} × λ₀/4 by step {EARLY}"))
    # 2. the kernel moves
    st = "The widest network's Gram matrix moves by more than λ₀/4 during training (middle panel)."
    if diverged:
        out.append(not_applicable("1.1.kernel-moves", st, why_div))
    else:
        dmax = float(np.max(run["drift"]))
        out.append(claim("1.1.kernel-moves", st, holds=dmax > margin, measured=dmax / margin, predicted=1.0,
                         tolerance="largest ‖H(k) − H(0)‖ / (λ₀/4) above 1",
                         why=f"the drift stays below λ₀/4 (at most {dmax / margin:.2g} × λ₀/4): at width {m} the "
                             "kernel stays within the margin of Du et al.'s argument"))
    # 3. the loss ends above the dashed line (at its last step above the float32 floor)
    st = ("By its last step above the float32 floor, the widest network's loss is above its dashed line: the late phase "
          "is slower.")
    if diverged:
        out.append(not_applicable("1.1.ends-above", st, why_div))
    else:
        w = late_rates(run)[0]
        i = int(np.searchsorted(run["steps"], w[1])) if w is not None else len(run["steps"]) - 1
        kend = int(run["steps"][i])
        L_end, P_end = float(run["loss"][i]), float(run["pred_loss"][kend])
        out.append(claim("1.1.ends-above", st, holds=L_end > P_end, measured=L_end, predicted=P_end,
                         tolerance=f"loss above the dashed line's at step {kend}",
                         why=f"at step {kend} the loss {L_end:.3g} is not above the dashed line's {P_end:.3g}: in this "
                             "run the moving kernel did not slow the late phase"))
    # 4. the late rate, up to the drift
    st = ("The late rates of the loss and of its dashed line (fitted over the same window, above the float32 floor) "
          "differ by at most η × the kernel's drift.")
    w, rm, rp = late_rates(run)
    if diverged:
        out.append(not_applicable("1.1.late-rate", st, why_div))
    elif w is None:
        out.append(not_applicable("1.1.late-rate", st, "the run is too short (or reaches the float32 floor too soon) "
                                  "to fit a late rate over at least 10 steps"))
    else:
        allow = lr * float(np.max(run["drift"][np.asarray(run["frames"]) <= w[1]]))
        out.append(claim("1.1.late-rate", st, holds=abs(rm - rp) <= allow, measured=rm, predicted=rp,
                         tolerance=f"|difference| ≤ η·max‖H(k) − H(0)‖ = {allow:.2g} per step (window {w[0]}–{w[1]})",
                         why=f"the rates differ by {abs(rm - rp):.2g} per step, more than η × drift = {allow:.2g}"))
    # 5. the modes couple
    st = ("Once small, the middle directions stop following their dashed line and decay at about the slowest "
          "directions' rate.")
    cp = None if diverged else coupling(res)
    if diverged:
        out.append(not_applicable("1.1.coupling", st, why_div))
    elif cp is None:
        out.append(not_applicable("1.1.coupling", st, "the run is too short (or reaches the float32 floor too soon) "
                                  "to fit late rates"))
    elif not cp["separation"] < 1 / SEPARATION:
        out.append(not_applicable("1.1.coupling", st, f"the middle directions' dashed line ends only "
                                  f"{1 / cp['separation']:.3g}× below the slowest directions: in this run they never get "
                                  "small enough for the coupling to show (that needs a factor 1000)"))
    else:
        ok = 1 / COUPLED_FACTOR <= cp["ratio"] <= COUPLED_FACTOR and cp["above"] >= ABOVE
        out.append(claim("1.1.coupling", st, holds=ok, measured=cp["rate_middle"], predicted=cp["rate_slowest"],
                         tolerance=f"middle within a factor {COUPLED_FACTOR} of the slowest in −log rate (factor "
                                   f"{cp['ratio']:.2f}; its dashed line: {cp['rate_middle_dashed']:.3g} per step) and "
                                   f"ending ≥ {ABOVE}× above its dashed line ({cp['above']:.2g}×)",
                         why=f"the middle directions decay at {cp['rate_middle']:.4f} per step, the slowest at "
                             f"{cp['rate_slowest']:.4f} (a factor {cp['ratio']:.2f} in −log rate), ending "
                             f"{cp['above']:.2g}× above their dashed line"))
    # 6. Du et al.'s guarantee
    st = "The loss stays below Du et al.'s guarantee (1 − ηλ₀/2)ᵏ L(0) (dash-dotted): a worst case, not a prediction."
    if diverged:
        out.append(not_applicable("1.1.du-bound", st, why_div))
    elif "du_bound" not in res:
        out.append(not_applicable("1.1.du-bound", st, "ηλ₀/2 ≥ 1: the bound says nothing at this step size"))
    else:
        q = run["loss"][1:] / res["du_bound"][run["steps"][1:]]
        worst = float(np.max(q))
        out.append(claim("1.1.du-bound", st, holds=worst <= 1, measured=worst, predicted=1.0,
                         tolerance="largest loss / guarantee over k ≥ 1 at most 1",
                         why=f"the loss exceeds the guarantee by a factor {worst:.3g}: the theorem needs far larger "
                             f"widths (and smaller steps) than width {m}, η = {lr:.3g}"))
    return out


def numbers(res: dict) -> dict:
    runs = res["runs"]
    top = runs[-1]
    out = {"widths m": res["widths"], "samples n": res["n"], "activation": res["activation"],
           "trained": res["layers"], "step size η": res["lr"], "λ₀ of G (infinite width)": res["lambda_0"],
           "λmax of G": res["lambda_max"], "λ₀ of H(0), widest network": float(top["lam_H0"][0]),
           "slowest direction's rate 1 − ηλ₀ (G)": 1 - res["lr"] * res["lambda_0"],
           "final loss, per width": [float(r["loss"][-1]) for r in runs],
           "final loss of each dashed line (own H(0))": [float(r["pred_loss"][int(r["steps"][-1])]) for r in runs],
           "late-rate window, widest": "–" if top["window"] is None else f"{top['window'][0]}–{top['window'][1]}",
           "late rate, per width (measured)": [late_rates(r)[1] for r in runs],
           "late rate, per width (dashed line, same window)": [late_rates(r)[2] for r in runs],
           "largest drift ‖H(k) − H(0)‖ / (λ₀/4), widest": float(np.max(top["drift"])) / (res["lambda_0"] / 4),
           "largest neuron movement, per width": [float(np.nanmax(r["movement"])) for r in runs]}
    cp = None if top["diverged"] else coupling(res)
    if cp is not None:
        out.update({"late rate of the 5 slowest / 5 middle directions": [cp["rate_slowest"], cp["rate_middle"]],
                    "middle directions: end / dashed line's end": cp["above"]})
    return out


def headline(res: dict) -> str:
    top = res["runs"][-1]
    if top["diverged"]:
        return f"Diverged: {top['message']}"
    return (f"width {top['width']}, η = {res['lr']:.3g} (= {res['lr_fraction']:.2f} × 2/λmax of G): final loss "
            f"{top['loss'][-1]:.3g}, its dashed line {top['pred_loss'][int(top['steps'][-1])]:.3g}")


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
GROUP_STYLE = {"slowest": 0, "middle": 2, "fastest": 3}  # palette index per group of directions


def _floor_band(ax, loss0: float, lowest: float) -> None:
    """Shade the loss range below the fit floor (float32 round-off region) when the curves get near it."""
    level = FIT_FLOOR**2 * loss0  # the loss where ||u - y|| = FIT_FLOOR x ||u(0) - y||
    if lowest < 10 * level:  # the axis reaches down to lowest / 10: the band is in view
        ax.axhspan(level * 1e-6, level, color="0.85", zorder=0, label="not fitted: near float32 round-off")


def _late_window(ax, run) -> None:
    if run.get("window") is not None:
        a, b = run["window"]
        ax.axvspan(a, b, color=plots.color(5), alpha=0.12, zorder=0, label=f"late-rate window ({a}–{b})")


def draw(res: dict):
    fig, (ax1, ax2, ax3) = plots.new_figure(3, width=4.2)
    runs = list(res["runs"])
    live = res.get("live")
    top_width = res["widths"][-1]
    # 1. loss vs step, each width solid (colour + marker), the widest's predictions
    lowest = np.inf
    for i, r in enumerate(runs):
        s, v = plots.finite_part(r["steps"], r["loss"])
        ax1.plot(s, v, color=plots.color(i), marker=plots.marker(i), markevery=max(1, len(s) // 8), markersize=4,
                 label=f"width {r['width']}")
        lowest = min(lowest, v.min()) if len(v) else lowest
    if live is not None:
        m, hist = live
        i = len(runs)
        s, v = plots.finite_part(hist.steps, hist["loss"][:, 0])
        ax1.plot(s, v, color=plots.color(i), marker=plots.marker(i), markevery=max(1, len(s) // 8), markersize=4,
                 label=f"width {m} (training...)")
    ax1.set_yscale("log")
    if not res["partial"]:
        top = runs[-1]
        k = np.arange(len(top["pred_loss"]))
        plots.plot_theory(ax1, k, top["pred_loss"], label=f"linearized, own H(0) (width {top_width})")
        plots.plot_theory(ax1, k, res["pred_inf_loss"], label="linearized, G (infinite width)",
                          style=dict(color="black", linestyle=":", linewidth=1.3))
        if "du_bound" in res:
            plots.plot_theory(ax1, k, res["du_bound"], label="Du et al.'s guarantee (worst case)",
                              style=dict(color="0.45", linestyle="-.", linewidth=1.3))
        _late_window(ax1, top)
        _floor_band(ax1, float(top["loss"][0]), lowest)
        if top["diverged"]:
            plots.mark_divergence(ax1, top["history"])
        lo = max(lowest / 10, 1e-14 * top["loss"][0])
        ax1.set_ylim(lo, 3 * max(r["loss"][0] for r in runs))
    ax1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²",
            title=f"loss (η = {res['lr_fraction']:.2f} × 2/λmax, n = {res['n']})")
    ax1.legend(fontsize=6.5, loc="lower left")
    plots.time_axis(ax1)
    if res["partial"]:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    top = runs[-1]
    margin = res["lambda_0"] / 4
    # 2. the kernel's drift against the margin of the argument
    fr, dr = np.asarray(top["frames"]), np.asarray(top["drift"])
    keep = fr > 0
    ax2.plot(fr[keep], dr[keep], color=plots.color(0), marker="o", markersize=3,
             label=f"‖H(k) − H(0)‖₂, width {top_width}")
    ax2.axhline(margin, color="black", linestyle="--", linewidth=1.3, label="λ₀/4: the margin the argument needs")
    vals = dr[keep] if keep.any() else np.array([margin])
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="operator norm",
            title=f"kernel drift (width {top_width})",
            ylim=(min(margin, vals.min()) / 2, max(margin, vals.max()) * 4))
    ax2.legend(fontsize=6.5, loc="upper left")
    plots.time_axis(ax2)
    # 3. the residual on groups of H(0)'s eigen-directions, each against its dashed line
    groups = mode_groups(res["n"])
    meas, pred = group_norms(top, groups)
    k = np.arange(len(top["pred_loss"]))
    size = len(groups["slowest"])
    lows = []
    for g, idx in groups.items():
        c = plots.color(GROUP_STYLE[g])
        s, v = plots.finite_part(top["steps"], meas[g])
        lam = top["lam_H0"][idx]
        ax3.plot(s, v, color=c, marker=plots.marker(GROUP_STYLE[g]), markevery=max(1, len(s) // 8), markersize=4,
                 label=f"{size} {g}: λ {lam.min():.2g}–{lam.max():.2g}")
        plots.plot_theory(ax3, k, pred[g], label=None, style=dict(color=c, linestyle="--", linewidth=1.2))
        lows.append(v.min() if len(v) else np.inf)
    ax3.plot([], [], color="black", linestyle="--", linewidth=1.2, label="dashed: linearized (1 − ηλᵢ)ᵏ cᵢ(0)")
    hi = max(np.nanmax(meas[g]) for g in groups)
    ax3.set_yscale("log")
    ax3.set_ylim(max(min(lows) / 30, hi * 1e-14), hi * 3)
    _late_window(ax3, top)
    ax3.set(xlabel="GD step k", ylabel="‖coefficients‖ on eigenvectors of H(0)",
            title=f"residual by direction (width {top_width})")
    ax3.legend(fontsize=6.5, loc="lower left")
    plots.time_axis(ax3)
    return fig


def state(ax, res: dict):
    """The state at step k: the residual's coefficients on the eigenvectors of the widest network's H(0)
    (filled bars, slowest direction on the left) against the linearized prediction (1 - eta lambda_i)^k c_i(0)
    (dashed outline), and the kernel's drift ||H(k) - H(0)|| against lambda_0 / 4 (gauge, top right)."""
    return state_panel(ax, res["runs"][-1], res["lambda_0"], mode_groups(res["n"]))


def state_panel(ax, run: dict, lambda_0: float, groups: dict | None = None):
    steps = np.asarray(run["steps"])
    coef = np.abs(run["residual"] @ run["V"])  # (records, n)
    pred = np.abs(run["pred_coef"][: int(steps[-1]) + 1])
    n = coef.shape[1]
    edges = np.arange(n + 1) - 0.5
    positive = coef[coef > 0]
    top = float(coef.max()) * 1e3  # headroom for the legend and the gauge
    floor = max(float(positive.min()) / 3 if len(positive) else top * 1e-12, top * 1e-12)
    if groups:
        for g, idx in groups.items():
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color=plots.color(GROUP_STYLE[g]), alpha=0.12, zorder=0)
    bars = ax.stairs(np.full(n, floor), edges, baseline=floor, fill=True, color=plots.color(0), alpha=0.75,
                     label="measured")
    line = ax.stairs(np.full(n, floor), edges, baseline=None, **plots.THEORY_STYLE, label="linearized")
    ax.set(yscale="log", ylim=(floor, top), xlim=(edges[0], edges[-1]),
           xlabel="eigen-direction i of H(0) (slowest first)", ylabel="|vᵢ · (u − y)|")
    ax.legend(fontsize=7, loc="upper left")
    # the drift gauge (drawn in axes coordinates, no inset axes: cheaper to draw): a bar on a log scale in units
    # of lambda_0 / 4 from LO to hi, with the margin marked at 1
    margin = lambda_0 / 4
    ratios = np.asarray(run["drift"]) / margin
    lo, hi = 0.05, max(4.0, float(np.nanmax(ratios)) * 1.3) if len(ratios) else 4.0
    x0, y0, width, height = 0.58, 0.86, 0.36, 0.06
    at = lambda r: x0 + width * np.log(max(r, lo) / lo) / np.log(hi / lo)  # noqa: E731
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x0, y0), width, height, transform=ax.transAxes, facecolor="white", edgecolor="black",
                           linewidth=0.8, zorder=3))
    bar = ax.add_patch(Rectangle((x0, y0), 0.0, height, transform=ax.transAxes, facecolor=plots.color(3), alpha=0.8,
                                 zorder=4))
    ax.plot([at(1.0)] * 2, [y0 - 0.01, y0 + height + 0.01], transform=ax.transAxes, color="black", linestyle="--",
            linewidth=1.2, zorder=5)
    ax.text(at(1.0), y0 - 0.015, "λ₀/4", transform=ax.transAxes, fontsize=6, ha="center", va="top")
    ax.text(x0 + width, y0 - 0.015, f"{hi:.0f}×" if hi >= 10 else f"{hi:.2g}×", transform=ax.transAxes, fontsize=6,
            ha="right", va="top")
    text = ax.text(x0, y0 + height + 0.015, "", transform=ax.transAxes, fontsize=7, va="bottom")
    frames = np.asarray(run["frames"])

    def update(k: int):
        k = int(min(max(k, steps[0]), steps[-1]))
        i = int(np.searchsorted(steps, k))
        bars.set_data(np.clip(coef[i], floor, None))
        line.set_data(np.clip(pred[k], floor, top * 10))
        r = float(np.interp(k, frames, ratios)) if len(frames) else float("nan")
        bar.set_width(at(min(r, hi)) - x0 if np.isfinite(r) and r > lo else 0.0)
        text.set_text(f"kernel drift: {r:.2g} × λ₀/4")
        return [bars, line, bar, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["runs"][-1]["frames"], FRAMES)


def key_steps(res: dict) -> list[int]:
    fr = res["runs"][-1]["frames"]
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({0, near(3), near(30), fr[-1]})


def alt(res: dict) -> str:
    return (f"Left: training loss of widths {', '.join(map(str, res['widths']))} against the widest network's own "
            "linearized prediction (dashed), the infinite-width one (dotted) and Du et al.'s guarantee; middle: the "
            "widest network's kernel drift against λ₀/4; right: its residual on the slowest, middle and fastest "
            "eigen-directions of H(0), each against its linearized prediction.")


EXPERIMENT = Experiment(
    id="1.1", title="Gradient descent against its own linearization", run=experiment, draw=draw, claims=claims,
    controls={"width": select("width m (largest)", DEFAULTS["width"], WIDTHS),
              "lr_fraction": real("step η × λmax/2", DEFAULTS["lr_fraction"], 0.05, 0.95, 0.05),
              "n": integer("samples n", DEFAULTS["n"], 20, 100, 10),
              "activation": dropdown("activation", DEFAULTS["activation"], ACTIVATIONS),
              "layers": dropdown("trained", DEFAULTS["layers"], LAYERS),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    floors={}, reproduce={"default": {}, "width16384": {"width": 16384}, "both_layers": {"layers": "both layers"},
                          "tanh": {"activation": "tanh"}},
)


def dashboard(**overrides):
    """Experiment 1.1's dashboard: width, step size (fraction of 2/λmax, below the stability edge), n,
    activation, layers trained, seed."""
    return EXPERIMENT.dashboard(**overrides)
