"""Experiment 6.4: wider networks move their weights less, and momentum barely changes where they end.

At each width the same initialization is trained by GD, heavy ball and Nesterov until the residual is
tiny. The dashed prediction is the linearized model's minimum-norm move from this network's own start:
Delta W = -J^T H(0)^-1 (u(0) - y), of length sqrt(r0' H(0)^-1 r0) (:func:`.core.min_norm_move`): the point
GD on a model linear in W reaches (its updates stay in the row space of J). Relative to ||W0||_F =
sqrt(m d) it falls like m^(-1/2).
"""
from __future__ import annotations

import numpy as np
import torch

from ... import plots
from ..._validate import check_float, check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import log_frames, log_record_steps
from ...models import TwoLayer
from ...runtime import get_device, scaled_steps, torch_threads
from ...train import train
from .core import (
    COLORS,
    LABELS,
    MARKERS,
    METHODS,
    SHORT,
    min_norm_move,
    problem,
)

DEFAULTS = dict(dataset="sphere", lr_fraction=1.0, beta=0.8, steps=100, seeds=2, seed=0)
WIDTHS_EXCURSION = (32, 128, 512, 1024)  # (2048 doubled the run time for a fourth point)
MIN_NORM_TOL = 0.05  # "GD ends at the minimum-norm distance": within 5% (measured: 0.3-2.5% at m >= 128)
MIN_NORM_FROM = 128  # narrower nets leave the kernel regime (GD ends 2-10% off at m = 32)
SLOPE_TOL = 0.10  # "like m^(-1/2)": a fitted slope within -1/2 +- 0.1 (geometric means of 2 initializations per width)
PER_NEURON = 0.2  # "far less than its own length": below a fifth of ||w_r(0)||, at the widest width
CONVERGED = 1e-2  # a run "ended" when ||u - y|| fell below 1% of its start


def _neuron_metric(params, ctx):
    d = params["W"] - ctx.params0["W"]  # (E, m, d)
    return d.norm(dim=2).max(dim=1).values


def experiment_width(beta: float = DEFAULTS["beta"], dataset: str = DEFAULTS["dataset"], *,
                     lr_fraction: float = DEFAULTS["lr_fraction"], widths=WIDTHS_EXCURSION,
                     steps: int = DEFAULTS["steps"], seeds: int = DEFAULTS["seeds"], seed: int = DEFAULTS["seed"],
                     device=None, live=None) -> dict:
    """Train ``seeds`` initializations per width (batched) with GD, HB and NAG; ||W - W0||_F / ||W0||_F and
    max_r ||w_r - w_r(0)|| through training (at log-spaced steps, geometric means over the initializations),
    against the minimum-norm prediction of each initialization."""
    with torch_threads(1):  # small networks: see runtime.torch_threads
        return _experiment_width(beta, dataset, lr_fraction, widths, steps, seeds, seed, device, live)


def _gmean(a, axis=0):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def _experiment_width(beta, dataset, lr_fraction, widths, steps, seeds, seed, device, live) -> dict:
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=4.0, min_inclusive=False)
    widths = [check_int("widths", w, min_value=1) for w in widths]
    seeds = check_int("seeds", seeds, min_value=1)
    steps = scaled_steps(check_int("steps", steps, min_value=1))
    device = get_device(device)
    X, y, _, lam_inf = problem(dataset, seed, device)
    lr = lr_fraction / float(lam_inf[-1])
    record = log_record_steps(steps, 30)
    rel = {m: np.full((len(widths), len(record)), np.nan) for m in METHODS}
    neuron = {m: np.full((len(widths), len(record)), np.nan) for m in METHODS}
    final_resid = {m: np.full(len(widths), np.nan) for m in METHODS}
    pred_rel, pred_neuron, w0_len, diverged = [], [], [], {m: False for m in METHODS}
    for i, m_width in enumerate(widths):
        model = TwoLayer(m_width)
        params = model.init(X.shape[1], ensemble=seeds, seed=seed, device=device)
        mn = min_norm_move(model, params, X, y)
        W0 = mn["W0_norm"]  # (seeds,)
        pred_rel.append(float(_gmean(mn["distance"] / W0)))
        lens = params["W"].norm(dim=2).mean(dim=1).cpu().numpy()  # mean ||w_r(0)|| per network
        pred_neuron.append(float(_gmean(mn["per_neuron"] / lens)))
        w0_len.append(lens)
        both = {k: torch.cat([v, v]) for k, v in params.items()}  # GD (first half) and HB (second half)
        hs = {"gd+hb": train(model, both, X, y, steps=steps, lr=lr, method="hb", momentum=[0.0] * seeds + [beta] * seeds,
                             record_steps=record, metrics={"neuron": _neuron_metric}, progress=False),
              "nag": train(model, params, X, y, steps=steps, lr=lr, method="nag", momentum=beta, record_steps=record,
                           metrics={"neuron": _neuron_metric}, progress=False)}
        for m, (key, sl) in {"gd": ("gd+hb", slice(0, seeds)), "hb": ("gd+hb", slice(seeds, 2 * seeds)),
                             "nag": ("nag", slice(0, seeds))}.items():
            h = hs[key]
            rel[m][i] = _gmean(h["distance"][:, sl] / W0, axis=1)
            neuron[m][i] = _gmean(h["neuron"][:, sl] / lens, axis=1)
            final_resid[m][i] = float(np.max(np.sqrt(h["loss"][-1, sl] / h["loss"][0, sl])))
            diverged[m] |= bool((h.diverged_at[sl] >= 0).any())
        if live is not None:
            live({"partial": True, "widths": widths[: i + 1], "rel": {m: v[: i + 1] for m, v in rel.items()},
                  "beta": beta, "dataset": dataset, "lr_fraction": lr_fraction})
    return {"partial": False, "widths": widths, "record": record, "rel": rel, "neuron": neuron,
            "final_residual": final_resid, "pred_rel": np.array(pred_rel), "pred_neuron": np.array(pred_neuron),
            "beta": beta, "dataset": dataset, "lr_fraction": lr_fraction, "steps": steps, "seeds": seeds, "seed": seed,
            "diverged": diverged, "d": int(X.shape[1])}


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def slope(widths, values) -> float:
    """Least-squares slope of log(values) against log(widths)."""
    return float(np.polyfit(np.log(np.asarray(widths, dtype=float)), np.log(np.asarray(values, dtype=float)), 1)[0])


def _unfinished(res: dict, methods=METHODS) -> list[str]:
    out = []
    for m in methods:
        if res["diverged"][m]:
            out.append(f"{LABELS[m]} diverged")
        elif not np.all(res["final_residual"][m] < CONVERGED):
            out.append(f"{LABELS[m]} did not get below {CONVERGED:g} of its start in {res['steps']} steps "
                       f"(it is at {fmt(np.nanmax(res['final_residual'][m]))})")
    return out


def claims(res: dict) -> list:
    w = np.asarray(res["widths"])
    final = {m: res["rel"][m][:, -1] for m in METHODS}
    pred = res["pred_rel"]
    # 1. GD ends at the minimum-norm distance
    st1 = (f"At widths {MIN_NORM_FROM} and above, after {res['steps']} steps, GD is at the minimum-norm distance "
           "√(r₀ᵀH(0)⁻¹r₀) from its start (dashed).")
    tol1 = f"within {MIN_NORM_TOL:.0%} at each width"
    bad = _unfinished(res, ("gd",))
    wide = w >= MIN_NORM_FROM
    if bad or not wide.any():
        c1 = not_applicable("6.4.min-norm", st1, "; ".join(bad) or f"no width of {MIN_NORM_FROM} or more", tolerance=tol1)
    else:
        ratio = final["gd"][wide] / pred[wide]
        i = int(np.argmax(np.abs(ratio - 1)))
        c1 = claim("6.4.min-norm", st1, holds=bool(np.all(np.abs(ratio - 1) <= MIN_NORM_TOL)), measured=float(ratio[i]),
                   predicted=1.0, tolerance=tol1,
                   why=f"at width {w[wide][i]} GD ends at {fmt(ratio[i])} × the minimum-norm distance")
    # 2. momentum overshoots, less so when wider
    st2 = (f"After {res['steps']} steps heavy ball and NAG are further from the start than GD (momentum overshoots), and "
           "the excess is smaller at the widest width than at the narrowest.")
    bad = _unfinished(res)
    if res["beta"] == 0:
        c2 = not_applicable("6.4.overshoot", st2, "with β = 0 heavy ball and NAG are GD")
    elif bad:
        c2 = not_applicable("6.4.overshoot", st2, "; ".join(bad))
    else:
        why, worst = [], 1.0
        for m in ("hb", "nag"):
            ex = final[m] / final["gd"]
            worst = max(worst, float(ex[-1]))
            if np.any(ex <= 1):
                why.append(f"{LABELS[m]} ends no further than GD at width {w[int(np.argmin(ex))]} ({fmt(ex.min())} × "
                           "GD's distance)")
            if not ex[-1] < ex[0]:
                why.append(f"{LABELS[m]}'s distance is {fmt(ex[-1])} × GD's at width {w[-1]}, {fmt(ex[0])} × at width {w[0]}")
        c2 = claim("6.4.overshoot", st2, holds=not why, measured=worst, predicted=1.0,
                   tolerance="above GD's distance at every width, by less at the widest", why="; ".join(why))
    # 3. the slope
    st3 = "GD's relative move ‖W − W₀‖ / ‖W₀‖ falls with width like m^(−1/2)."
    tol3 = f"fitted log-log slope within −1/2 ± {SLOPE_TOL}"
    bad = _unfinished(res, ("gd",))
    if bad:
        c3 = not_applicable("6.4.slope", st3, "; ".join(bad), tolerance=tol3)
    else:
        s = slope(w, final["gd"])
        c3 = claim("6.4.slope", st3, holds=abs(s + 0.5) <= SLOPE_TOL, measured=s, predicted=-0.5, tolerance=tol3,
                   why=f"GD's fitted slope is {fmt(s)} (the dashed line's: {fmt(slope(w, pred))})")
    # 4. single neurons barely move
    st4 = (f"At the widest width, {w[-1]}, the largest single-neuron move is below a fifth of the mean neuron length "
           "‖wᵣ(0)‖, for every method.")
    bad = [b for b in _unfinished(res) if "diverged" in b]
    if bad:
        c4 = not_applicable("6.4.per-neuron", st4, "; ".join(bad))
    else:
        worst_m = max(METHODS, key=lambda m: res["neuron"][m][-1, -1])
        frac = float(res["neuron"][worst_m][-1, -1])
        c4 = claim("6.4.per-neuron", st4, holds=frac < PER_NEURON, measured=frac, predicted=PER_NEURON,
                   tolerance="largest move / mean ‖wᵣ(0)‖ below 0.2",
                   why=f"{LABELS[worst_m]}'s largest single-neuron move is {fmt(frac)} × the mean neuron length")
    return [c1, c2, c3, c4]


def numbers(res: dict) -> dict:
    w = res["widths"]
    out = {"data": res["dataset"], "β": res["beta"], "η × λmax(H∞)": res["lr_fraction"], "widths": list(w),
           "minimum-norm ‖ΔW‖ / ‖W₀‖ (predicted)": res["pred_rel"].tolist()}
    for m in METHODS:
        out[f"{SHORT[m]}: ‖W − W₀‖ / ‖W₀‖"] = res["rel"][m][:, -1].tolist()
    for m in METHODS:
        out[f"{SHORT[m]}: log-log slope"] = slope(w, res["rel"][m][:, -1]) if np.all(np.isfinite(res["rel"][m][:, -1])) else None
    for m in METHODS:
        out[f"{SHORT[m]}: largest neuron move / mean ‖wᵣ(0)‖"] = res["neuron"][m][:, -1].tolist()
    for m in METHODS:
        out[f"{SHORT[m]}: final ‖u − y‖ / ‖u(0) − y‖"] = res["final_residual"][m].tolist()
    return out


def headline(res: dict) -> str:
    w = res["widths"]
    return (f"{res['dataset']}, η = {fmt(res['lr_fraction'])}/λmax(H∞), β = {fmt(res['beta'])}, widths {w[0]}–{w[-1]}, "
            f"{res['steps']} steps: ‖W − W₀‖/‖W₀‖ at width {w[-1]}: " +
            ", ".join(f"{SHORT[m]} {fmt(res['rel'][m][-1, -1])}" for m in METHODS) +
            f" (minimum norm {fmt(res['pred_rel'][-1])})")


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=4.6, height=3.4)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.86, wspace=0.3)
    w = np.asarray(res["widths"], dtype=float)
    if res.get("partial"):
        for m in METHODS:
            v = res["rel"][m][:, -1]
            ax1.plot(w[: len(v)], v, color=COLORS[m], marker=MARKERS[m])
        ax1.set(xscale="log", yscale="log", xlabel="width m", ylabel="‖W − W₀‖ / ‖W₀‖")
        ax1.set_title("training...", fontsize=9)
        ax2.set_axis_off()
        return fig
    for m in METHODS:
        ax1.plot(w, res["rel"][m][:, -1], color=COLORS[m], marker=MARKERS[m], lw=1.5, label=LABELS[m])
        ax2.plot(w, res["neuron"][m][:, -1], color=COLORS[m], marker=MARKERS[m], lw=1.5,
                 label=LABELS[m])
    ax1.plot(w, res["pred_rel"], **plots.THEORY_STYLE, label="minimum-norm move (linearized)")
    ref = res["pred_rel"][0] * (w / w[0]) ** -0.5
    ax1.plot(w, ref, **plots.BOUND_STYLE, label="slope −1/2")
    ax1.set(xscale="log", yscale="log", xlabel="width m", ylabel="‖W − W₀‖ / ‖W₀‖ (Frobenius)")
    ax1.legend(fontsize=7, loc="lower left")
    ax1.set_title("how far the weights moved, after the last step", fontsize=9, y=1.01)
    ax2.plot(w, res["pred_neuron"], **plots.THEORY_STYLE, label="largest neuron move of the minimum-norm ΔW")
    ax2.axhline(PER_NEURON, color="grey", lw=1, ls=":", label="a fifth of the mean neuron length")
    ax2.set(xscale="log", yscale="log", xlabel="width m", ylabel="largest ‖wᵣ − wᵣ(0)‖ / mean ‖wᵣ(0)‖")
    top = max(float(np.nanmax(res["neuron"][m][:, -1])) for m in METHODS)
    low = min(float(np.nanmin(res["pred_neuron"])), *(float(np.nanmin(res["neuron"][m][:, -1])) for m in METHODS))
    ax2.set_ylim(low / 1.5, top * 6)  # room above the curves for the legend
    ax2.legend(fontsize=7, loc="upper right")
    ax2.set_title("the largest single-neuron move", fontsize=9, y=1.01)
    lo = min(np.nanmin(res["rel"][m][:, -1]) for m in METHODS)
    ax1.set_ylim(lo / 4, max(np.nanmax(res["rel"][m][:, -1]) for m in METHODS) * 1.6)
    fig.suptitle(f"{res['dataset']}, η = {fmt(res['lr_fraction'])}/λmax(H∞), β = {fmt(res['beta'])}, {res['steps']} steps; "
                 f"geometric means over {res['seeds']} initializations per width", fontsize=9, y=0.995)
    return plots.fast_log_axes(fig)


def state(ax, res: dict):
    """How far the weights have moved at step k, against width, for each method; dashed: where the linearized
    model ends (the minimum-norm move)."""
    w = np.asarray(res["widths"], dtype=float)
    rec = np.asarray(res["record"])
    lines = {}
    allv = np.concatenate([res["rel"][m][np.isfinite(res["rel"][m]) & (res["rel"][m] > 0)] for m in METHODS])
    for m in METHODS:
        line, = ax.plot(w, np.full(len(w), np.nan), color=COLORS[m], marker=MARKERS[m], lw=1.5, label=LABELS[m])
        lines[m] = line
    ax.plot(w, res["pred_rel"], **plots.THEORY_STYLE, label="where the linearized model ends")
    lo = max(allv.min(), res["pred_rel"].min() * 1e-3) if len(allv) else 1e-4
    ax.set(xscale="log", yscale="log", xlim=(w[0] / 1.5, w[-1] * 1.5), ylim=(lo / 2, allv.max() * 3 if len(allv) else 1),
           xlabel="width m", ylabel="‖W(k) − W₀‖ / ‖W₀‖ (Frobenius)")
    ax.legend(fontsize=7, loc="upper right")

    def update(k: int):
        i = min(int(np.searchsorted(rec, k)), len(rec) - 1)
        for m, line in lines.items():
            v = res["rel"][m][:, i]
            line.set_data(w, np.where(v > 0, v, np.nan))
        return list(lines.values())

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["record"], 30)


def key_steps(res: dict) -> list[int]:
    rec = res["record"]
    pick = lambda t: min(rec, key=lambda k: abs(k - t))
    return sorted({pick(3), pick(15), rec[-1]})


def alt(res: dict) -> str:
    return ("How far the weights of GD, heavy ball and Nesterov move, against width, with the minimum-norm prediction "
            "of the linearized model; and the largest single-neuron move against a neuron's length.")
