"""Experiment 5.3: why a wider last layer can train slower: the step is tied to beta = lambda_max of the NTK.

The same initial networks as experiment 5.2 at widths 16 .. 512 (N = 32), trained together as one ensemble
(zero-padded to the widest, :func:`.core.stacked_widths`), each with its own step eta = fraction x 2 / beta.
Measured per width: beta and its two parts (the output layer's block F F^T, the lower layers' blocks), the
loss left after T steps, how far the lower layers moved, lambda_F and lambda_F^2 / beta (the guarantee's
per-step rate is 1 - eta lambda_F^2 / 4 = 1 - fraction lambda_F^2 / (2 beta)). Predicted from the large-width
limit M_w = s_w^2 k(F_{L-2}): the output block's lambda_max ~ w lambda_max(M_w) and lambda_F^2 ~ w lambda_min(M_w).
Time control: the loss left at step k against the width.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import plots
from ..._validate import check_float, check_int
from ...claims import claim, fmt, not_applicable, rel_error
from ...experiment import (
    Experiment,
    dropdown,
    integer,
    log_frames,
    log_record_steps,
    real,
    select,
)
from ...runtime import get_device, scaled_steps, torch_threads
from .core import (
    DEFAULTS,
    INITS,
    LOSS_FLOOR,
    lambda_F,
    limit_kernel,
    make_model,
    ntk_blocks,
    ntk_extremes,
    problem,
    train_widths,
)

WIDTHS = (16, 32, 64, 128, 256, 512)
STEP_OPTIONS = (100, 200, 400)
BETA_TOL = 0.15  # "follows w lambda_max(M) + the lower layers' part": the growth factor within 15%
GROWS, FLAT = 3.0, 1.5  # beta grows (x3 or more from 2N to 16N) / stays flat (under x1.5)
SLOWER = 5.0  # "more than 5x the loss left at 2N"
FREEZE = 0.5  # "less than half as far"
RATIO_BAND = (0.75, 1.05)  # lambda_F^2 / beta within 25% of its large-width value, from below


def _lower_move(model, depth):
    def metric(p, ctx):
        num = sum(((p[f"W{l}"] - ctx.params0[f"W{l}"]) ** 2).flatten(1).sum(1) for l in range(1, depth))
        den = sum((ctx.params0[f"W{l}"] ** 2).flatten(1).sum(1) for l in range(1, depth))
        return torch.sqrt(num / den)
    return metric


def experiment_step(init: str = DEFAULTS["init"], depth: int = DEFAULTS["depth"],
                    lr_fraction: float = DEFAULTS["lr_fraction"], steps: int = DEFAULTS["steps"], *,
                    widths=WIDTHS, n: int = DEFAULTS["n"], other: int = DEFAULTS["other"], seeds: int = 3,
                    seed: int = 0, dataset: str = DEFAULTS["dataset"], device=None, live=None) -> dict:
    """Train ``seeds`` networks at each width in ``widths`` (one batched run) at eta = lr_fraction x 2 / beta."""
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=2.0, min_inclusive=False)
    steps = scaled_steps(check_int("steps", steps, min_value=1))
    widths = sorted({check_int("widths", w, min_value=1) for w in widths})
    device = get_device(device)
    X, y = problem(dataset, n, DEFAULTS["d"], seed, device=device)
    N, d = X.shape
    per = {k: [] for k in ("beta", "out_max", "lower_max", "lam_F", "lam_min_M", "lam_max_M")}
    own = []
    with torch_threads():
        for w in widths:
            m = make_model(depth, w, other, init)
            p = m.init(d, ensemble=seeds, seed=seed, device=device)
            ex = ntk_extremes(ntk_blocks(m, p, X))
            ev = np.linalg.eigvalsh(limit_kernel(m, p, X))
            for k in ("beta", "out_max", "lower_max"):
                per[k].append(ex[k])
            per["lam_F"].append(lambda_F(m, p, X)[0])
            per["lam_min_M"].append(ev[:, 0])
            per["lam_max_M"].append(ev[:, -1])
            own.append(p)
        per = {k: np.array(v) for k, v in per.items()}  # (widths, seeds)
        record = log_record_steps(steps, 40)
        def result(tr, partial):
            return {"partial": partial, "steps_recorded": tr["steps"], "widths": widths, "seeds": seeds, "n": N,
                    "depth": depth, "init": init, "other": other, "lr_fraction": lr_fraction, "steps": steps,
                    "dataset": dataset, "frames": record, "loss_ratio": tr["loss"] / tr["loss"][:1],
                    "lower_move": tr["lower_move"], "diverged": tr["diverged"], "message": tr.get("message", ""), **per}

        tr = train_widths(depth, own, widths, X, y, lr_fraction * 2.0 / per["beta"], steps=steps, record=record,
                          other=other, init=init, metrics=lambda model: {"lower_move": _lower_move(model, depth)},
                          on_group=None if live is None else (lambda part: live(result(part, True))))
    return result(tr, False)


# ----------------------------------------------------------------------------------------------
# what the run shows
# ----------------------------------------------------------------------------------------------
def _gm(a, axis=-1):
    """Geometric mean (of positive numbers) along ``axis``; NaN if any is not finite."""
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def predicted_beta(res) -> np.ndarray:
    """w lambda_max(M_w) (the output block's large-width value) plus the lower layers' measured part, per width."""
    w = np.asarray(res["widths"], dtype=float)
    return w * res["lam_max_M"].mean(1) + res["lower_max"].mean(1)


def predicted_ratio(res) -> np.ndarray:
    """The large-width value of lambda_F^2 / beta: w lambda_min(M_w) / (w lambda_max(M_w) + lower part)."""
    w = np.asarray(res["widths"], dtype=float)
    return w * res["lam_min_M"].mean(1) / predicted_beta(res)


def _ends(res):
    """Indices of w = 2N and of the widest width."""
    w = np.asarray(res["widths"])
    return int(np.searchsorted(w, 2 * res["n"])), len(w) - 1


def beta_growth(res) -> tuple[float, float]:
    i, j = _ends(res)
    b = res["beta"].mean(1)
    pb = predicted_beta(res)
    return float(b[j] / b[i]), float(pb[j] / pb[i])


def claims(res: dict) -> list:
    w = np.asarray(res["widths"])
    i, j = _ends(res)
    out = []
    grow, grow_pred = beta_growth(res)
    out.append(claim(
        "5.3.beta-grows", "β = λ_max(NTK) follows w·λ_max(M) plus the lower layers' part, which does not grow (dashed): "
        "with LeCun or He it grows nearly in proportion to w, so the step η = f·2/β shrinks nearly like 1/w; with "
        "Xavier it levels off.",
        holds=rel_error(grow, grow_pred) <= BETA_TOL, measured=grow, predicted=grow_pred,
        tolerance=f"growth of β from w = {w[i]} to {w[j]} within {BETA_TOL:.0%} of the prediction"))
    regime = "grows" if grow >= GROWS else ("flat" if grow < FLAT else "between")
    alive = ~res["diverged"]
    T = -1
    left = np.where(alive, res["loss_ratio"][T], np.nan)
    rise = float(_gm(left[j]) / _gm(left[i]))
    move = res["lower_move"][T]
    shrink = float(np.mean(move[j]) / np.mean(move[i]))
    # the lower layers freeze where beta grows
    st2 = (f"Where β grows, the lower layers' part of the NTK does not: their effective step shrinks and they move "
           f"less — by the end, less than half as far at w = {w[j]} as at w = {w[i]}.")
    st3 = (f"So where β grows, wider trains slower at this step: the loss left after the run at w = {w[j]} is more "
           f"than {SLOWER:g}× the loss left at w = {w[i]}; where β stays flat (Xavier), it is not.")
    if not alive[[i, j]].all():
        why = "a network at one of the compared widths diverged: lower the step"
        out.append(not_applicable("5.3.lower-freeze", st2, why))
        out.append(not_applicable("5.3.wider-slower", st3, why))
    else:
        if regime == "grows":
            out.append(claim("5.3.lower-freeze", st2, holds=shrink < FREEZE, measured=shrink,
                             tolerance=f"movement at w = {w[j]} / movement at w = {w[i]} < {FREEZE}",
                             why=f"the lower layers moved {shrink:.2g} x as far at w = {w[j]}"))
        else:
            out.append(not_applicable("5.3.lower-freeze", st2, f"β grows only {grow:.2g}x from w = {w[i]} to {w[j]} "
                                      "here: the step does not shrink with the width"))
        if regime == "grows":
            ok = rise > SLOWER
        elif regime == "flat":
            ok = rise < 2.0
        else:
            ok = None
        if ok is None:
            out.append(not_applicable("5.3.wider-slower", st3, f"β grows {grow:.2g}x from w = {w[i]} to {w[j]}: "
                                      "neither clearly growing nor flat"))
        else:
            out.append(claim("5.3.wider-slower", st3, holds=ok, measured=rise,
                             tolerance=(f"measured: loss left at w = {w[j]} / at w = {w[i]}; β grows {grow:.2g}x here, so "
                                        f"it must exceed {SLOWER:g}" if regime == "grows"
                                        else f"measured: loss left at w = {w[j]} / at w = {w[i]}; β is flat ({grow:.2g}x) "
                                        "here, so it must stay under 2"),
                             why=f"the loss left after the run changed {rise:.3g}x from w = {w[i]} to {w[j]}"))
    # the guarantee's rate: lambda_F^2 / beta levels off
    r = (res["lam_F"] ** 2 / res["beta"]).mean(1)
    pr = predicted_ratio(res)
    q = float(r[j] / pr[j])
    out.append(claim(
        "5.3.rate-levels", "λ_F grows with w, but the guarantee's rate depends on λ_F²/β, and that levels off at its "
        "large-width value w·λ_min(M)/(w·λ_max(M) + lower part) (dashed), approached from below.",
        holds=RATIO_BAND[0] <= q <= RATIO_BAND[1], measured=float(r[j]), predicted=float(pr[j]),
        tolerance=f"at w = {w[j]}: measured / predicted in [{RATIO_BAND[0]}, {RATIO_BAND[1]}] (here {q:.3g})",
        why=f"λ_F²/β at w = {w[j]} is {q:.3g} x its large-width value"))
    return out


def numbers(res: dict) -> dict:
    w = res["widths"]
    T = -1
    return {"samples N": res["n"], "depth L": res["depth"], "init": res["init"], "η × β / 2": res["lr_fraction"],
            "steps": res["steps"], "widths w": list(w),
            "β = λ_max(NTK(0)) (mean of seeds)": [float(v) for v in res["beta"].mean(1)],
            "predicted β: w·λ_max(M) + lower part": [float(v) for v in predicted_beta(res)],
            "lower layers' part of β": [float(v) for v in res["lower_max"].mean(1)],
            "loss left L(T)/L(0) (geometric mean of seeds)": [float(v) for v in _gm(res["loss_ratio"][T], 1)],
            "lower layers moved ‖ΔW‖/‖W(0)‖ (mean)": [float(v) for v in res["lower_move"][T].mean(1)],
            "λ_F (mean)": [float(v) for v in res["lam_F"].mean(1)],
            "λ_F²/β (mean)": [float(v) for v in (res["lam_F"] ** 2 / res["beta"]).mean(1)],
            "networks that diverged": int(res["diverged"].sum())}


def headline(res: dict) -> str:
    w = res["widths"]
    i, j = _ends(res)
    g = _gm(res["loss_ratio"][-1], 1)
    grow, _ = beta_growth(res)
    return (f"{res['init']}, L = {res['depth']}, η = {res['lr_fraction']:g}·2/β: β grows {grow:.3g}x from w = {w[i]} to "
            f"{w[j]}; loss left after {res['steps']} steps {fmt(float(g[i]))} at w = {w[i]}, "
            f"{fmt(float(g[j]))} at w = {w[j]}")


# ----------------------------------------------------------------------------------------------
# figure and state panel
# ----------------------------------------------------------------------------------------------
def _series(ax, w, vals, i, label, *, open_marker=False, line=True):
    col, mk = plots.color(i), plots.marker(i)
    S = vals.shape[1]  # every seed as one artist (markers only), then the geometric mean as a line
    ax.plot(np.repeat(w, S), np.asarray(vals).ravel(), linestyle="none", marker=mk, color=col, ms=4, alpha=0.6,
            mfc="none" if open_marker else col)
    if line:
        ax.plot(w, _gm(vals, 1), "-", color=col, marker=mk, ms=5, mfc="none" if open_marker else col, label=label)


def draw(res: dict, spec: dict | None = None):
    fig, axes = plots.new_figure(2, 2, width=4.9, height=3.3)
    a1, a2, a3, a4 = axes
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.09, top=0.9, wspace=0.26, hspace=0.45)
    w = np.asarray(res["widths"], dtype=float)
    N = res["n"]
    T = res["steps"]
    # (1) beta and its parts
    _series(a1, w, res["beta"], 0, "β")
    _series(a1, w, res["out_max"], 1, "output block F Fᵀ", open_marker=True)
    _series(a1, w, res["lower_max"], 2, "lower blocks")
    a1.plot(w, predicted_beta(res), **plots.THEORY_STYLE, label="w·λ_max(M) + lower")
    a1.set(xscale="log", yscale="log", xlabel="width of the last hidden layer w", ylabel="largest eigenvalue",
           title="β = λ_max(NTK at init) and its two parts")
    vals = np.concatenate([res["beta"].ravel(), res["out_max"].ravel(), res["lower_max"].ravel()])
    a1.set_ylim(vals[vals > 0].min() / 2, vals.max() * 20)  # headroom above the data for the legend
    a1.legend(fontsize=6.5, loc="upper left", framealpha=0.9)
    # (2) loss left after T steps
    left = res["loss_ratio"][-1]
    _series(a2, w, left, 3, None)
    a2.set(xscale="log", yscale="log", xlabel="width of the last hidden layer w", ylabel="loss left L(T)/L(0)",
           title=f"loss left after T = {T} steps")
    lo = np.nanmin(np.where(left > 0, left, np.nan))
    a2.set_ylim(lo / 5, min(np.nanmax(left) * 20, 1e3))
    if lo / 5 < LOSS_FLOOR:
        a2.axhspan(lo / 5, LOSS_FLOOR, color="grey", alpha=0.12)
        a2.text(0.98, 0.02, "float32 floor", transform=a2.transAxes, ha="right", fontsize=7, color="dimgrey")
    # (3) the lower layers' movement
    _series(a3, w, res["lower_move"][-1], 4, None)
    a3.set(xscale="log", yscale="log", xlabel="width of the last hidden layer w", ylabel="‖ΔW‖/‖W(0)‖, layers < L",
           title=f"how far the lower layers moved in {T} steps")
    # (4) the guarantee's rate
    r = res["lam_F"] ** 2 / res["beta"]
    keep = w >= 2 * N  # at w = N, lambda_F is numerically 0 for some seeds
    _series(a4, w[keep], r[keep], 5, "measured")
    a4.plot(w[keep], predicted_ratio(res)[keep], **plots.THEORY_STYLE, label="large-width value")
    if (~keep).any():  # off the axis: marked on its bottom edge, with their values
        a4.plot(w[~keep], np.zeros((~keep).sum()), linestyle="none", marker="v", color=plots.color(5), ms=6,
                mfc="none", transform=a4.get_xaxis_transform(), clip_on=False,
                label="w ≤ N: " + ", ".join(f"{fmt(float(v), 2)}" for v in np.clip(r[~keep], 0, None).mean(1)) +
                " (off the axis)")
    a4.set(xscale="log", yscale="log", xlabel="width of the last hidden layer w", ylabel="λ_F² / β",
           title="what sets the guarantee's rate 1 − f·λ_F²/(2β)")
    a4.legend(fontsize=6.5, loc="lower right", framealpha=0.9)
    for ax in axes:
        ax.axvline(N, color="grey", lw=0.8)
        ax.set_xlim(w[0] / 1.3, w[-1] * 1.3)
        ax.title.set_fontsize(9)
    other = f", other widths {res['other']}" if res["depth"] > 2 else ""
    fig.suptitle(f"{res['init']} init, depth L = {res['depth']}, N = {N}{other}, "
                 f"η = {res['lr_fraction']:g}·2/β per network, {len(res['widths'])} widths × {res['seeds']} seeds",
                 fontsize=9.5, y=0.995)
    return plots.fast_log_axes(fig)


def state(ax, res: dict):
    """The loss left at step k against the width, each seed (markers) and their geometric mean (line)."""
    steps = res["steps_recorded"]
    lr = res["loss_ratio"]  # (records, W, S)
    w = np.asarray(res["widths"], dtype=float)
    good = lr[np.isfinite(lr) & (lr > 0)]
    lo, hi = (float(good.min()) / 3, float(good.max()) * 3) if good.size else (1e-3, 10)
    S = lr.shape[2]
    dots = [ax.plot(w, np.ones_like(w), linestyle="none", marker=plots.marker(s), color=plots.color(s), ms=5,
                    alpha=0.8, label=f"seed {s}")[0] for s in range(S)]
    line, = ax.plot(w, np.ones_like(w), "-", color="dimgrey", lw=1.2, label="geometric mean")
    ax.axvline(res["n"], color="grey", lw=0.8)
    if lo < LOSS_FLOOR:
        ax.axhspan(lo, LOSS_FLOOR, color="grey", alpha=0.12, label="float32 floor (shaded)")
    ax.set(xscale="log", yscale="log", ylim=(lo, hi), xlim=(w[0] / 1.3, w[-1] * 1.3),
           xlabel="width of the last hidden layer w", ylabel="loss left L(k)/L(0)")
    other = f", other widths {res['other']}" if res["depth"] > 2 else ""
    ax.legend(fontsize=6.5, loc="lower right", framealpha=0.9, title=f"{res['init']}, L = {res['depth']}{other},\n"
              f"N = {res['n']}, η = {res['lr_fraction']:g}·2/β", title_fontsize=6.5)

    def update(k: int):
        i = min(int(np.searchsorted(steps, k)), len(steps) - 1)
        for s in range(S):
            dots[s].set_data(w, np.clip(np.nan_to_num(lr[i, :, s], nan=hi), lo, hi))
        line.set_data(w, np.clip(np.nan_to_num(_gm(lr[i], 1), nan=hi), lo, hi))
        return [*dots, line]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], 40)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    return sorted({0, min(fr, key=lambda k: abs(k - fr[-1] // 10)), min(fr, key=lambda k: abs(k - fr[-1] // 3)), fr[-1]})


def alt(res: dict) -> str:
    return (f"Four panels against the last hidden width ({res['init']}, N = {res['n']}): β and its parts; the loss left "
            "after the run; how far the lower layers moved; λ_F²/β against its large-width value.")


def _run(init, depth, lr_fraction, steps, live=None):
    return experiment_step(init, depth, lr_fraction, steps, live=live)


EXPERIMENT = Experiment(
    id="5.3", title="why a wider last layer can train slower", run=_run, draw=draw, claims=claims,
    controls={"init": dropdown("init", DEFAULTS["init"], INITS),
              "depth": integer("depth L", DEFAULTS["depth"], 2, 4),
              "lr_fraction": real("η × β / 2", DEFAULTS["lr_fraction"], 0.05, 1.0, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEP_OPTIONS)},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"lecun": {}, "he": {"init": "he"}, "xavier": {"init": "xavier"}},
)


def step_dashboard(**overrides):
    """Controls: init, depth, step fraction, steps."""
    return EXPERIMENT.dashboard(**overrides)
