"""Lesson 0 (tour): a first teacher-student run, against the linearized prediction for this very network.

Setting (the course's own, chosen to run in well under a second): n = 64 unit-norm inputs in R^5, labels
from a teacher with 3 orthonormal ReLU neurons, y = sum_i relu(w*_i . x). The student is the two-layer
net f(x) = (1/sqrt m) sum_r a_r relu(w_r . x) with a_r = +-1 fixed and the first layer trained by
full-batch GD on (1/2)||u - y||^2, step size eta = 0.5 x 2 / lambda_max(H^inf) (Du et al. 2019's setting,
at a far smaller width than their theorem needs).

Prediction (dashed): the linearized dynamics of this network, u(k) - y = (I - eta H(0))^k (u(0) - y), with
H(0) its own Gram matrix at initialization; dotted: the same with the infinite-width H^inf. What breaks
the prediction is measured, not guessed: the kernel drift ||H(k) - H(0)||_2 against lambda_0 / 4, the
margin within which the lazy-training argument keeps lambda_min(H(k)) >= lambda_0 / 2.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import data, kernels, plots, theory
from ..claims import claim, fmt
from ..experiment import Experiment, integer, log_frames, log_record_steps, powers_of_two, select
from ..models import TwoLayer
from ..runtime import get_device, scaled_steps, to_float64
from ..train import train

DEFAULTS = dict(width=1024, seed=0, n=64, d=5, teacher_m=3, steps=400, lr_fraction=0.5)
WIDTHS = powers_of_two(3, 13)  # 8 .. 8192
EARLY = 100  # "the first 100 steps"
EARLY_FACTOR = 1.3  # "within 30%"
FAST_STEP = 20  # "after 20 steps"
FAST_MODES = 10  # "the 10 fastest / slowest directions"


def _gram_drift(H0: torch.Tensor, frames: set[int]):
    """Metric for ``train``: ||H(k) - H(0)||_2 at the steps in ``frames`` (NaN at the other records)."""
    def metric(params, ctx):
        if ctx.step not in frames:
            return torch.full((ctx.params0["W"].shape[0],), float("nan"))
        Hk = kernels.empirical_gram(ctx.model, params, ctx.X).cpu()
        return torch.linalg.matrix_norm(Hk - H0, 2)
    return metric


def _residual(params, ctx) -> torch.Tensor:
    return ctx.model.apply(params, ctx.X) - ctx.y


def experiment(width: int = DEFAULTS["width"], seed: int = DEFAULTS["seed"], *, n: int = DEFAULTS["n"],
               d: int = DEFAULTS["d"], teacher_m: int = DEFAULTS["teacher_m"], steps: int = DEFAULTS["steps"],
               lr_fraction: float = DEFAULTS["lr_fraction"], device=None, live=None) -> dict:
    """Train one student and compute the linearized predictions from H(0) and from H^inf.

    Returns a dict: ``history`` (loss, residual u - y, kernel drift at the recorded steps), ``modes``
    (eigenvalues ``lam`` and eigenvectors ``V`` of H(0); the predicted coefficients ``pred_coef`` at every
    step), the predicted losses ``prediction`` (H(0)) and ``prediction_inf`` (H^inf), held-out fits.
    """
    device = get_device(device)
    steps = scaled_steps(steps)
    X = data.unit_sphere(n, d, seed=seed, device=device)
    teacher = data.two_layer_teacher(teacher_m, d, seed=1000 + seed, device=device)
    y = teacher(X)
    X_test = data.unit_sphere(200, d, seed=2000 + seed, device=device)
    X64 = to_float64(X)
    H_inf = kernels.relu_h_inf(X64).cpu()
    lr = lr_fraction * 2.0 / float(kernels.spectrum(H_inf)[-1])
    model = TwoLayer(width)
    params = model.init(d, seed=seed, device=device)
    H0 = kernels.empirical_gram(model, params, X)[0].cpu()
    r0 = to_float64(model.apply(params, X)[0] - y).cpu()
    # the time slider's frames (state and kernel drift recorded there), with the steps the text names
    frames = set(log_record_steps(steps, 40)) | {k for k in (FAST_STEP, EARLY) if k <= steps}
    record = sorted(frames | set(range(0, steps + 1, max(1, steps // 50))))
    callback = None
    if live is not None:
        callback = lambda hist, step: live({"history": hist, "partial": True, "width": width, "seed": seed})  # noqa: E731
    hist = train(model, params, X, y, steps=steps, lr=lr, record_steps=record, callback=callback, progress=False,
                 metrics={"residual": _residual, "drift": _gram_drift(H0, frames)})
    lam, V, pred_coef = theory.linearized_modes(H0, r0, lr, steps)
    lam_inf, _, pred_inf = theory.linearized_modes(H_inf, r0, lr, steps)
    with torch.no_grad():
        test_pred = model.apply(hist.params, X_test)[0].cpu().numpy()
        train_pred = model.apply(hist.params, X)[0].cpu().numpy()
    return {
        "history": hist, "width": width, "seed": seed, "steps": steps, "lr": lr, "n": n, "d": d, "partial": False,
        "lam": lam, "V": V, "pred_coef": pred_coef, "lambda_0": max(float(lam[0]), 0.0),  # a rounded 0 reads 0
        "lambda_0_inf": float(lam_inf[0]),
        "prediction": 0.5 * (pred_coef**2).sum(1), "prediction_inf": 0.5 * (pred_inf**2).sum(1),
        "frames": sorted(frames), "train_pred": train_pred, "train_y": y.cpu().numpy(), "test_pred": test_pred,
        "test_y": teacher(X_test).cpu().numpy(),
    }


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _drift(res) -> tuple[np.ndarray, np.ndarray]:
    h = res["history"]
    v = h["drift"][:, 0]
    keep = np.isfinite(v)
    return h.steps[keep], v[keep]


def match_factor(res, upto: int = EARLY) -> float:
    """max over recorded steps k <= ``upto`` of max(L/P, P/L): how far the loss strays from the H(0) prediction."""
    h = res["history"]
    k = h.steps <= upto
    L, P = h["loss"][k, 0], res["prediction"][h.steps[k]]
    return float(np.max(np.maximum(L / P, P / L)))


def fast_first(res, step: int = FAST_STEP) -> tuple[float, float, float]:
    """What is left after ``step`` steps of the error along the ``FAST_MODES`` fastest and slowest
    eigen-directions of H(0): (fast measured, slow measured, fast predicted by the linearized dynamics),
    each as ||c(k)|| / ||c(0)|| over those directions."""
    h = res["history"]
    i = int(np.searchsorted(h.steps, step))
    V, q = res["V"], FAST_MODES
    c0, ck, pk = V.T @ h["residual"][0, 0], V.T @ h["residual"][i, 0], res["pred_coef"][h.steps[i]]
    left = lambda a, b: float(np.linalg.norm(b) / np.linalg.norm(a))  # noqa: E731
    return left(c0[-q:], ck[-q:]), left(c0[:q], ck[:q]), left(c0[-q:], pk[-q:])


def claims(res: dict) -> list:
    h = res["history"]
    lam0 = res["lambda_0_inf"]  # the lazy-training margin is lambda_min(H^inf) / 4 (Du et al. 2019)
    s, drift = _drift(res)
    d_early = float(np.interp(EARLY, s, drift))
    d_end = float(drift[-1])
    factor = match_factor(res)
    early = claim(
        "0.1.early-match", "For the first 100 steps the loss stays within 30% of the prediction from this network's "
        "own Gram matrix H(0).", holds=factor <= EARLY_FACTOR, measured=factor, predicted=1.0,
        tolerance=f"within a factor {EARLY_FACTOR}",
        why=(f"the loss strays by a factor {fmt(factor)} from the prediction; by step {EARLY} the Gram matrix moved "
             f"by {fmt(d_early / (lam0 / 4), 2)} × λ₀/4 and its smallest eigenvalue λ_min(H(0)) is "
             f"{fmt(res['lambda_0'] / lam0, 2)} × λ₀: at width {res['width']} the network is not in the kernel regime"
             if factor > EARLY_FACTOR else ""))
    L_end, P_end = float(h["loss"][-1, 0]), float(res["prediction"][h.steps[-1]])
    moved = d_end > lam0 / 4
    above = L_end > P_end
    parts = []
    if not moved:
        parts.append(f"the Gram matrix moved by only {fmt(d_end / (lam0 / 4), 2)} × λ₀/4")
    if not above:
        parts.append(f"the loss ends below the prediction ({fmt(L_end)} vs {fmt(P_end)}): this network's own "
                     "kernel changed enough to train it faster than H(0) says" +
                     (f" (it moved by {fmt(d_end / (lam0 / 4), 2)} × λ₀/4)" if moved else ""))
    late = claim(
        "0.1.kernel-moves", "By the last step the Gram matrix has moved by more than λ₀/4, and the loss ends above "
        "the prediction.", holds=moved and above, measured=d_end / (lam0 / 4), predicted=None,
        tolerance=(f"drift / (λ₀/4) > 1 (here {fmt(d_end / (lam0 / 4), 2)}) and final loss above the dashed line "
                   f"({fmt(L_end)} vs {fmt(P_end)})"),
        why="; ".join(parts))
    fast, slow, fast_pred = fast_first(res)
    why = []
    if fast >= 0.05:
        why.append(f"{fmt(fast, 2)} of the error is left along the {FAST_MODES} fastest directions of H(0) (the "
                   f"linearized dynamics leave {fmt(fast_pred, 2)})")
    if slow <= 0.5:
        why.append(f"only {fmt(slow, 2)} is left along the {FAST_MODES} slowest: they moved faster than H(0) says")
    if why and factor > EARLY_FACTOR:
        why.append("this network left the kernel regime, so H(0)'s directions no longer separate fast from slow")
    first = claim(
        "0.1.fast-first", f"Fast directions die out first: after {FAST_STEP} steps less than 5% of the error is left "
        f"along the {FAST_MODES} fastest directions of H(0), more than half along the {FAST_MODES} slowest.",
        holds=fast < 0.05 and slow > 0.5, measured=fast, predicted=fast_pred,
        tolerance=f"fastest < 0.05 and slowest > 0.5 (slowest: {fmt(slow, 2)})", why="; ".join(why))
    train_mse = float(np.mean((res["train_pred"] - res["train_y"]) ** 2))
    test_mse = float(np.mean((res["test_pred"] - res["test_y"]) ** 2))
    var = float(np.var(res["test_y"]))
    why = []
    if test_mse >= var:
        why.append(f"held-out MSE {fmt(test_mse)} is not below the teacher's variance {fmt(var)}: the student is far "
                   "from the teacher off the training points")
    if 10 * train_mse > test_mse:
        why.append(f"held-out MSE {fmt(test_mse)} is less than 10 × the training MSE {fmt(train_mse)}: this student "
                   "does not fit its training points much more tightly than new ones (not a failure to generalize)")
    held = claim(
        "0.1.held-out", "On held-out points the student is close to the teacher (error below the teacher's "
        "variance) but not exact (error 10x the training error or more).",
        holds=10 * train_mse <= test_mse < var, measured=test_mse, predicted=None,
        tolerance=(f"10 × training MSE ({fmt(10 * train_mse)}) ≤ held-out MSE < teacher variance ({fmt(var)})"),
        why="; ".join(why))
    return [early, first, late, held]


def numbers(res: dict) -> dict:
    h = res["history"]
    s, drift = _drift(res)
    lam_min = res["lambda_0"]
    if lam_min <= 1e-12 * res["lambda_0_inf"]:  # rounding level: say why instead of printing round-off
        rank = res["width"] * res["d"]  # H(0) = sum over neurons of rank-<=d terms
        lam_min = f"0 (singular: rank ≤ m·d = {rank} < n = {res['n']})" if rank < res["n"] else "< 1e-12 × λ₀"
    return {"width m, seed": f"{res['width']}, {res['seed']}", "steps": int(h.steps[-1]), "step size η": res["lr"],
            "λ_min of H(0) (this network)": lam_min, "λ₀ = λ_min of H∞ (infinite width)": res["lambda_0_inf"],
            "λ_max of H(0)": float(res["lam"][-1]),
            "final loss": float(h["loss"][-1, 0]), "predicted final loss (H(0))": float(res["prediction"][h.steps[-1]]),
            "predicted final loss (H∞)": float(res["prediction_inf"][h.steps[-1]]),
            "λ₀/4 (the proof's margin)": res["lambda_0_inf"] / 4,
            "kernel drift ‖H(k) − H(0)‖ at step 1, 100, last (× λ₀/4)":
                ", ".join(fmt(float(np.interp(k, s, drift)) / (res["lambda_0_inf"] / 4), 2)
                          for k in (1, EARLY, int(s[-1]))),
            "held-out MSE": float(np.mean((res["test_pred"] - res["test_y"]) ** 2)),
            "teacher variance (held-out)": float(np.var(res["test_y"]))}


def headline(res: dict) -> str:
    h = res["history"]
    if h.diverged:
        return h.message
    return (f"width {res['width']}, η = {res['lr']:.3g}: final loss {h['loss'][-1, 0]:.3g} "
            f"(prediction from H(0): {res['prediction'][h.steps[-1]]:.3g})")


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def draw(res: dict):
    fig, (ax1, ax2, ax3) = plots.new_figure(3, width=4.1)
    h = res["history"]
    plots.plot_curves(ax1, h.steps, h["loss"], labels=[f"measured, width {res['width']}"], cmap=None)
    if not res.get("partial"):
        k = np.arange(len(res["prediction"]))
        plots.plot_theory(ax1, k, res["prediction"], label="prediction from H(0)")
        plots.plot_theory(ax1, k, res["prediction_inf"], label="prediction from H∞", style=plots.BOUND_STYLE)
    plots.mark_divergence(ax1, h)
    ax1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²",
            title=f"loss, width {res['width']}, seed {res['seed']}")
    ax1.legend(fontsize=7, loc="lower left")
    plots.time_axis(ax1)
    if res.get("partial"):
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    s, drift = _drift(res)
    ax2.plot(s[s > 0], drift[s > 0], color=plots.color(0), marker=".", label="‖H(k) − H(0)‖₂ (measured)")
    ax2.axhline(res["lambda_0_inf"] / 4, **plots.THEORY_STYLE, label="λ₀/4: the proof's margin")
    margin = res["lambda_0_inf"] / 4
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="operator norm", title="how far the kernel moved",
            ylim=(min(margin, drift[s > 0].min()) / 3, max(margin, drift.max()) * 10))  # headroom for the legend
    ax2.legend(fontsize=7, loc="upper left")
    plots.time_axis(ax2)
    lim = [min(res["test_y"].min(), res["test_pred"].min()), max(res["test_y"].max(), res["test_pred"].max())]
    ax3.plot(lim, lim, color="0.6", lw=1, label="student = teacher")  # solid grey: a reference, not a prediction
    ax3.scatter(res["test_y"], res["test_pred"], s=8, alpha=0.5, color=plots.color(0), marker="o", label="held-out points")
    ax3.scatter(res["train_y"], res["train_pred"], s=12, alpha=0.8, color=plots.color(2), marker="s", label="training points")
    ax3.set(xlabel="teacher f*(x)", ylabel="student f(x)", title="student vs teacher (end of training)")
    ax3.legend(fontsize=7)
    return fig


def state(ax, res: dict):
    """The residual's coefficients on the eigenvectors of H(0) at step k (filled bars) against the
    linearized prediction (1 - eta lambda_i)^k c_i(0) (dashed), slowest direction on the left."""
    h = res["history"]
    V, lam = res["V"], res["lam"]
    coef = np.abs(h["residual"][:, 0] @ V)  # (records, n)
    pred = np.abs(res["pred_coef"])
    edges = np.arange(len(lam) + 1) - 0.5
    floor = 1e-8
    top = max(coef.max(), pred[: h.steps[-1] + 1].max()) * 1e4  # headroom: the legend and the drift sit above the bars
    # one artist per series (stairs), not one patch per bar: a frame redraws in a few milliseconds
    bars = ax.stairs(np.full(len(lam), floor), edges, baseline=floor, fill=True, color=plots.color(0), alpha=0.7,
                     label="measured |vᵢ·(u − y)|")
    line = ax.stairs(np.full(len(lam), np.nan), edges, baseline=None, **plots.THEORY_STYLE,
                     label="linearized (1 − ηλᵢ)ᵏ cᵢ(0)")
    below = ax.scatter([], [], marker="v", s=12, color="black", zorder=5, clip_on=False,
                       label="linearized: below the axis")
    ax.set(yscale="log", ylim=(floor, top), xlim=(edges[0], edges[-1]),
           xlabel="eigen-direction i of H(0) (slowest first)", ylabel="|coefficient|")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.84))
    s, drift = _drift(res)
    text = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=8, va="top")

    def update(k: int):
        i = int(np.searchsorted(h.steps, k))
        bars.set_data(np.maximum(coef[i], floor))
        p = pred[k]
        line.set_data(np.where(p >= floor, p, np.nan))  # a prediction below the axis is marked, not drawn at it
        hidden = np.flatnonzero(p < floor)
        below.set_offsets(np.column_stack([hidden, np.full(len(hidden), floor)]) if len(hidden) else np.empty((0, 2)))
        d = float(np.interp(k, s, drift))
        text.set_text(f"kernel drift\n‖H(k) − H(0)‖ = {fmt(d / (res['lambda_0_inf'] / 4), 2)} × λ₀/4")
        return [bars, line, below, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], 40)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    # the steps the text refers to: the start, "after 20 steps" (0.1.fast-first), "the first 100 steps", the end
    return sorted({0, min(fr, key=lambda k: abs(k - FAST_STEP)), min(fr, key=lambda k: abs(k - EARLY)), fr[-1]})


def alt(res: dict) -> str:
    return (f"Left: training loss of a width-{res['width']} student against its linearized prediction; middle: the "
            "kernel drift against λ₀/4; right: student against teacher on training and held-out points.")


EXPERIMENT = Experiment(
    id="0.1", title="A first teacher-student run", run=experiment, draw=draw, claims=claims,
    controls={"width": select("student width m", DEFAULTS["width"], WIDTHS, gpu=(16384, 32768)),
              "seed": integer("seed", DEFAULTS["seed"], 0, 20)},
    numbers=numbers, floors={"final loss": 1e-15, "predicted final loss (H(0))": 1e-15,
                             "predicted final loss (H∞)": 1e-15},
    headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"width1024": {}, "width16": {"width": 16}, "width8192": {"width": 8192}},
    paper={"du-setting-wide": {"width": 8192, "steps": 1000}},
    paper_note=("the course's closest analogue of Du et al. (2019)'s setting (first layer trained, a_r = ±1 fixed, "
                "unit-norm inputs, square loss), at the widest width the course offers and 1000 steps; the course's "
                "sources confirm no experiment of that paper to reproduce"),
)
EXPERIMENTS = (EXPERIMENT,)


def dashboard(**overrides):
    """Sliders: student width (powers of 2) and seed."""
    return EXPERIMENT.dashboard(**overrides)
