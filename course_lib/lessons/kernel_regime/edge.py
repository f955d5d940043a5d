"""Experiment 1.3: past the stability edge, eta > 2 / lambda_max.

The linearized dynamics then grow along the top eigen-direction by |1 - eta lambda_max| > 1 per step (each
direction's coefficient is computed directly, so the stable directions' dashed lines keep decaying). A finite
network need not follow: if its own Gram matrix's top eigenvalue lambda_max(H(k)) falls below 2 / eta while the
loss is still finite, it converges, having left the kernel regime (the "catapult" described by Lewkowycz et al.
2020); otherwise it diverges. The experiment records lambda_max(H(k)) and the kernel drift next to a reference run
at the stable step 0.5 x 2 / lambda_max(G).
"""
from __future__ import annotations

import functools

import numpy as np

from ... import plots
from ..._validate import check_float, check_int
from ...claims import claim, not_applicable
from ...experiment import Experiment, integer, log_frames, powers_of_two, real, select
from ...runtime import get_device, scaled_steps
from .core import problem
from .gd import FRAMES, state_panel, train_against_linearization

EDGE_DEFAULTS = dict(lr_fraction=1.1, width=1024, seed=0, n=50, d=10, steps=200)
REFERENCE_FRACTION = 0.5
CONVERGED = 1e-3  # "converges": the final loss below 1e-3 x its start
FURTHER = 3.0     # "several times further": the largest drift at least 3x the reference run's
GROWS = 2.0       # "grows several-fold": the top direction's error reaches at least 2x its start


def edge_experiment(lr_fraction: float = EDGE_DEFAULTS["lr_fraction"], width: int = EDGE_DEFAULTS["width"],
                    seed: int = EDGE_DEFAULTS["seed"], *, n: int = EDGE_DEFAULTS["n"], d: int = EDGE_DEFAULTS["d"],
                    steps: int = EDGE_DEFAULTS["steps"], device=None, live=None) -> dict:
    """One ReLU network (first layer trained) at eta = lr_fraction x 2 / lambda_max(G), and the same network at
    the stable step 0.5 x 2 / lambda_max(G); both record lambda_max(H(k)) and the drift at log-spaced frames."""
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=2.0, min_inclusive=False)
    width = check_int("width", width, min_value=8, max_value=65536)
    seed = check_int("seed", seed, min_value=0)
    steps = scaled_steps(steps)
    device = get_device(device)
    prob = problem(check_int("n", n, min_value=2), check_int("d", d, min_value=2), seed, "relu", False)
    lam = prob["lam"].numpy()
    lr = lr_fraction * 2.0 / float(lam[-1])
    res = {"lr": lr, "lr_fraction": lr_fraction, "width": width, "seed": seed, "steps": steps, "n": n,
           "lambda_0": float(lam[0]), "lambda_max": float(lam[-1]), "partial": True, "runs": []}
    feed = None
    if live is not None:
        feed = lambda hist: live({**res, "live": (lr_fraction, hist)})  # noqa: E731
    res["run"] = train_against_linearization(width, prob, lr, steps, seed, device=device, top=True, live=feed)
    res["reference"] = _reference(width, seed, n, d, steps, str(device))
    res["runs"] = [res["run"], res["reference"]]
    res["partial"] = False
    return res


@functools.lru_cache(maxsize=8)
def _reference(width: int, seed: int, n: int, d: int, steps: int, device: str) -> dict:
    """The same network at the stable step (cached: moving the step slider does not retrain it)."""
    prob = problem(n, d, seed, "relu", False)
    lr = REFERENCE_FRACTION * 2.0 / float(prob["lam"][-1])
    return train_against_linearization(width, prob, lr, steps, seed, device=device, top=True)


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def top_coefficient(run: dict) -> np.ndarray:
    """|v_top . (u(k) - y)| at the recorded steps: the error along the top eigenvector of the network's H(0)."""
    return np.abs(run["residual"] @ run["V"][:, -1])


def _edge_ratio(run, lr, i) -> float:
    """eta lambda_max(H(k)) / 2 at recorded frame i: above 1, the step is past the network's own edge."""
    return float(lr * run["lam_max_H"][i] / 2)


def claims(res: dict) -> list:
    run, ref, lr = res["run"], res["reference"], res["lr"]
    margin = res["lambda_0"] / 4
    L = run["loss"]
    own0 = _edge_ratio(run, lr, 0)
    diverged = run["diverged"]
    why_div = (f"the network diverged at step {run['diverged_at']}: its loss overflowed before its own top "
               "eigenvalue could fall below 2/η")
    out = []
    st = ("The error along the top direction first grows several-fold (at least 2×), as the dashed line says; then the "
          "network's own top eigenvalue λmax(H(k)) falls below 2/η and the loss converges: it leaves the kernel regime "
          "instead of diverging.")
    if diverged:
        out.append(not_applicable("1.3.catapult", st, why_div))
    elif own0 <= 1:
        out.append(not_applicable("1.3.catapult", st, f"η is below this network's own edge: ηλmax(H(0))/2 = {own0:.3f} "
                                  "(its H(0) differs from G at finite width), so it converges without a catapult"))
    else:
        top = top_coefficient(run)
        grow = float(np.max(top) / top[0])
        end = _edge_ratio(run, lr, -1)
        conv = float(L[-1]) / float(L[0])
        ok = grow >= GROWS and end < 1 and conv < CONVERGED
        if grow < GROWS:
            why = (f"the error along the top direction grew only {grow:.2g}×: it grows by |1 − ηλmax(H(0))| = "
                   f"{abs(1 - 2 * own0):.3f} per step, and the kernel moved before it could take over")
        elif end >= 1:
            why = f"λmax(H) did not fall below 2/η: ηλmax(H)/2 = {end:.3f} at the end"
        else:
            why = f"the loss did not converge: final loss {conv:.2g} × its start"
        out.append(claim("1.3.catapult", st, holds=ok, measured=end, predicted=1.0,
                         tolerance=f"top-direction error grows ≥ 2× ({grow:.2g}×), final ηλmax(H)/2 below 1 (started at "
                                   f"{own0:.3f}), final loss below 10⁻³ × its start ({conv:.2g})", why=why))
    st = "Its Gram matrix moves several times further (at least 3×) than at the stable step η = 0.5 × 2/λmax."
    if diverged:
        out.append(not_applicable("1.3.kernel-leaves", st, why_div))
    else:
        ratio = float(np.max(run["drift"]) / np.max(ref["drift"]))
        out.append(claim("1.3.kernel-leaves", st, holds=ratio >= FURTHER, measured=ratio, predicted=FURTHER,
                         tolerance="largest drift ‖H(k) − H(0)‖, ratio to the stable run's, at least 3",
                         why=f"its kernel moved only {ratio:.2g}× as far as at the stable step (largest drift "
                             f"{np.max(run['drift']) / margin:.2g} vs {np.max(ref['drift']) / margin:.2g} × λ₀/4)"))
    return out


def numbers(res: dict) -> dict:
    run, ref, lr = res["run"], res["reference"], res["lr"]
    margin = res["lambda_0"] / 4
    L = run["loss"]
    out = {"width m": res["width"], "step size η": lr, "η × λmax(G) / 2": res["lr_fraction"],
           "η × λmax(H(0)) / 2 (this network)": _edge_ratio(run, lr, 0),
           "η × λmax(H) / 2 at the last recorded step": _edge_ratio(run, lr, -1),
           "growth of the dashed line's top direction per step": abs(1 - lr * float(run["lam_H0"][-1])),
           "top direction's error: peak / start": float(np.max(top_coefficient(run)) / top_coefficient(run)[0]),
           "peak loss / starting loss": float(np.max(L) / L[0]), "step of the peak": int(run["steps"][np.argmax(L)]),
           "final loss": float(L[-1]), "diverged at step": run["diverged_at"] if run["diverged"] else "–",
           "largest drift / (λ₀/4): this η, stable η": [float(np.max(run["drift"])) / margin,
                                                       float(np.max(ref["drift"])) / margin],
           "largest neuron movement: this η, stable η": [float(np.nanmax(run["movement"])),
                                                        float(np.nanmax(ref["movement"]))]}
    return out


def headline(res: dict) -> str:
    run, lr = res["run"], res["lr"]
    own0 = _edge_ratio(run, lr, 0)
    if run["diverged"]:
        return (f"Diverged at step {run['diverged_at']}: η = {res['lr_fraction']:.2f} × 2/λmax, past the stability edge; "
                f"the loss overflowed before λmax(H) could fall below 2/η (training stopped, its record is kept).")
    end = _edge_ratio(run, lr, -1)
    return (f"η = {res['lr_fraction']:.2f} × 2/λmax of G (ηλmax(H(0))/2 = {own0:.3f} for this network): "
            f"{'past' if own0 > 1 else 'below'} its own edge at the start, ηλmax(H)/2 = {end:.3f} at the end; "
            f"final loss {run['loss'][-1]:.3g}")


def draw(res: dict):
    fig, (ax1, ax2, ax3) = plots.new_figure(3, width=4.2)
    runs = list(res["runs"])
    fracs = [res["lr_fraction"], REFERENCE_FRACTION]
    labels = [f"η = {fracs[0]:.2f} × 2/λmax", f"η = {REFERENCE_FRACTION} × 2/λmax (stable)"]
    styles = [dict(color=plots.color(3), marker=plots.marker(3)), dict(color=plots.color(0), marker=plots.marker(0))]
    for r, lab, sty in zip(runs, labels, styles):
        s, v = plots.finite_part(r["steps"], r["loss"])
        ax1.plot(s, v, markevery=max(1, len(s) // 8), markersize=4, label=lab, **sty)
    if res.get("live") is not None:
        f, hist = res["live"]
        sty = styles[len(runs)] if len(runs) < 2 else styles[-1]
        s, v = plots.finite_part(hist.steps, hist["loss"][:, 0])
        ax1.plot(s, v, markersize=4, label=f"η = {f:.2f} × 2/λmax (training...)", **sty)
    ax1.set_yscale("log")
    if not res["partial"]:
        run = res["run"]
        L0 = float(run["loss"][0])
        lows = [np.nanmin(r["loss"][r["loss"] > 0]) for r in runs]
        k = np.arange(len(run["pred_loss"]))
        pred = run["pred_loss"]
        top = 1e3 * max(float(np.nanmax(run["loss"])), L0)
        keep = np.isfinite(pred) & (pred <= top)
        plots.plot_theory(ax1, k[keep], pred[keep], label=f"linearized at η = {fracs[0]:.2f} × 2/λmax (own H(0))")
        ax1.set_ylim(max(min(lows) / 10, L0 * 1e-14), top)
        if run["diverged"]:
            ax1.text(0.97, 0.55, f"diverged at step {run['diverged_at']}\n(training stopped)", transform=ax1.transAxes,
                     ha="right", va="top", fontsize=8, color="crimson")
    ax1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²", title=f"loss vs step (width {res['width']})")
    ax1.legend(fontsize=6.5, loc="upper right")
    plots.time_axis(ax1)
    if res["partial"]:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    margin = res["lambda_0"] / 4
    for r, f, lab, sty in zip(runs, fracs, labels, styles):
        fr = np.asarray(r["frames"])
        keep = fr > 0
        lr = f * 2 / res["lambda_max"]
        ax2.plot(fr[keep], lr * np.asarray(r["lam_max_H"])[keep] / 2, markersize=3, label=lab, **sty)
        ax3.plot(fr[keep], np.asarray(r["drift"])[keep], markersize=3, label=lab, **sty)
    ax2.axhline(1.0, color="black", linestyle="--", linewidth=1.3, label="1: the network's own edge")
    ax2.set(xscale="log", xlabel="GD step k", ylabel="η λmax(H(k)) / 2",
            title="its own top eigenvalue against 2/η")
    ax2.legend(fontsize=6.5, loc="center left")
    plots.time_axis(ax2)
    ax3.axhline(margin, color="black", linestyle="-.", linewidth=1.3, label="λ₀/4")
    ax3.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="‖H(k) − H(0)‖₂", title="how far the kernel moved")
    ax3.legend(fontsize=6.5, loc="upper left")
    plots.time_axis(ax3)
    return fig


def state(ax, res: dict):
    """The residual's coefficients on the eigenvectors of the network's H(0) (filled) against the linearized
    prediction at this step size (dashed: the top direction grows, the others decay), and the drift gauge."""
    return state_panel(ax, res["run"], res["lambda_0"])


def frames(res: dict) -> list[int]:
    return log_frames(res["run"]["frames"], FRAMES)


def key_steps(res: dict) -> list[int]:
    run = res["run"]
    fr = run["frames"]
    peak = int(run["steps"][np.argmax(top_coefficient(run))])
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({0, near(max(1, peak // 3)), near(max(1, peak)), near(3 * max(1, peak)), fr[-1]})


def alt(res: dict) -> str:
    return (f"Left: training loss of a width-{res['width']} network at η = {res['lr_fraction']:.2f} × 2/λmax and at the "
            "stable step, with the linearized prediction; middle: η λmax(H(k)) / 2 against 1 (the network's own "
            "edge); right: the kernel drift of both runs.")


EXPERIMENT = Experiment(
    id="1.3", title="Past the stability edge", run=edge_experiment, draw=draw, claims=claims,
    controls={"lr_fraction": real("step η × λmax/2", EDGE_DEFAULTS["lr_fraction"], 1.0, 2.0, 0.05),
              "width": select("width m", EDGE_DEFAULTS["width"], powers_of_two(6, 13)),
              "seed": integer("seed", EDGE_DEFAULTS["seed"], 0, 20)},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"catapult": {}, "diverged": {"lr_fraction": 2.0}},
)


def edge_dashboard(**overrides):
    """Experiment 1.3's dashboard: step size past the edge (1 to 2 x 2/λmax), width, seed."""
    return EXPERIMENT.dashboard(**overrides)
