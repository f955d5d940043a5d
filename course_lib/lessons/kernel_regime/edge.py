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
from ...claims import claim, log_rate_error, not_applicable
from ...experiment import Experiment, integer, log_frames, powers_of_two, real, select
from ...runtime import get_device, scaled_steps
from .core import problem
from . import gd
from .gd import FRAMES, LATE_EVERY, state_panel, train_against_linearization

EDGE_DEFAULTS = dict(lr_fraction=1.1, width=1024, seed=0, n=50, d=10, steps=200)
REFERENCE_FRACTION = 0.5
CONVERGED = 1e-3  # "converges": the final loss below 1e-3 x its start
FURTHER = 3.0     # "several times further": the largest drift at least 3x the reference run's
GROWS = 2.0       # "grows several-fold": the top direction's error reaches at least 2x its start
RATE_TOL = 0.15   # "about 1 - eta lambda_min(H(k))": within 15% in -log rate (the kernel still drifts slowly in the
                  # window, and the next directions still contribute; a factor 2 in the step is 100%)


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
    res["run"] = train_against_linearization(width, prob, lr, steps, seed, device=device, live=feed)
    res["reference"] = _reference(width, seed, n, d, steps, str(device))
    res["runs"] = [res["run"], res["reference"]]
    res["partial"] = False
    return res


@functools.lru_cache(maxsize=8)
def _reference(width: int, seed: int, n: int, d: int, steps: int, device: str) -> dict:
    """The same network at the stable step (cached: moving the step slider does not retrain it)."""
    prob = problem(n, d, seed, "relu", False)
    lr = REFERENCE_FRACTION * 2.0 / float(prob["lam"][-1])
    return train_against_linearization(width, prob, lr, steps, seed, device=device)


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def top_coefficient(run: dict) -> np.ndarray:
    """|v_top . (u(k) - y)| at the recorded steps: the error along the top eigenvector of the network's H(0)."""
    return np.abs(run["residual"] @ run["V"][:, -1])


def _edge_ratio(run, lr, i) -> float:
    """eta lambda_max(H(k)) / 2 at recorded frame i: above 1, the step is past the network's own edge."""
    return float(lr * run["lam_max_H"][i] / 2)


def diverged_why(run: dict, lr: float) -> str:
    """Why a run past the edge diverged, from what the middle panel shows: eta lambda_max(H(k)) / 2 over the frames
    recorded before the loss overflowed."""
    e = lr * np.asarray(run["lam_max_H"], float) / 2
    fr = np.asarray(run["frames"])
    head = f"the network diverged at step {run['diverged_at']}"
    if len(e) < 2:
        return head + ": its loss overflowed before its own top eigenvalue could move"
    i = int(np.argmin(e))
    if e[i] < 1:
        return (head + f": its own top eigenvalue did fall below 2/η (ηλmax(H)/2 = {e[i]:.2f} at step {fr[i]}), but the "
                "error along it had already grown too large")
    j = i + int(np.argmax(e[i:]))
    turn = f", then rose to {e[j]:.2f} (step {fr[j]}) as the loss grew" if e[j] > e[i] * 1.01 else ""
    return (head + f": its own top eigenvalue never fell below 2/η: ηλmax(H(k))/2 went from {e[0]:.2f} down to "
            f"{e[i]:.2f} (step {fr[i]}){turn}")


def late_decay(run: dict, lr: float) -> dict | None:
    """The late rate of ||u - y|| (fitted above the float32 floor) against 1 - eta lambda_min(H(k)) of the network's
    own kernel at the end of the fit window (None if no window)."""
    w, rate, _ = (run.get("window"), run.get("rate"), None)
    if run["diverged"] or w is None:
        return None
    fr = np.asarray(run["frames"])
    j = int(np.flatnonzero(fr <= w[1])[-1])
    lam = float(run["lam_min_H"][j])
    return {"window": w, "rate": rate, "own": 1 - lr * lam, "lam_min": lam, "error": log_rate_error(rate, 1 - lr * lam)}


def claims(res: dict) -> list:
    run, ref, lr = res["run"], res["reference"], res["lr"]
    margin = res["lambda_0"] / 4
    L = run["loss"]
    own0 = _edge_ratio(run, lr, 0)
    diverged = run["diverged"]
    why_div = diverged_why(run, lr) if diverged else ""
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
                   f"{abs(1 - 2 * own0):.3f} per step, so slowly that the kernel moved (and λmax(H(k)) fell below 2/η) "
                   "before that error could take over")
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
                             f"{np.max(run['drift']) / margin:.2g} vs {np.max(ref['drift']) / margin:.2g} × λ₀/4)"
                             + (": without a catapult, the larger step moves the kernel only a little further"
                                if top_coefficient(run).max() < GROWS * top_coefficient(run)[0] else "")))
    st = ("Late in training each run's ‖u − y‖ decays at about 1 − ηλmin(H(k)) per step, with its own η and its own "
          "kernel (within 15% in −log rate), and the kernels' λmin differ by less than the steps: the larger step, not "
          "the catapult, makes this run end far lower.")
    mine, stable = late_decay(run, lr), late_decay(ref, REFERENCE_FRACTION * 2 / res["lambda_max"])
    if diverged:
        out.append(not_applicable("1.3.step-speeds", st, why_div))
    elif mine is None or stable is None:
        out.append(not_applicable("1.3.step-speeds", st, "a run is too short (or reaches the float32 floor too soon) to "
                                  "fit a late rate over at least 10 steps"))
    else:
        steps_ratio = res["lr_fraction"] / REFERENCE_FRACTION
        lam_ratio = mine["lam_min"] / stable["lam_min"]
        worst = max(mine["error"], stable["error"])
        ok = worst <= RATE_TOL and max(lam_ratio, 1 / lam_ratio) < steps_ratio
        if worst > RATE_TOL:
            bad = mine if mine["error"] >= stable["error"] else stable
            which = "this run" if bad is mine else "the stable run"
            why = (f"{which} decays at {bad['rate']:.4f} per step over steps {bad['window'][0]}–{bad['window'][1]}, not "
                   f"at 1 − ηλmin(H) = {bad['own']:.4f}: " +
                   ("faster, so directions other than the slowest still carry the residual in that window"
                    if bad["rate"] < bad["own"] else "slower, so its kernel was still moving in that window"))
        else:
            why = (f"the kernels' λmin differ by a factor {max(lam_ratio, 1 / lam_ratio):.2f}, not less than the "
                   f"steps' {steps_ratio:.2f}")
        out.append(claim("1.3.step-speeds", st, holds=ok, measured=mine["rate"], predicted=mine["own"],
                         tolerance=f"late rate vs 1 − ηλmin(H) within {RATE_TOL:.0%} in −log rate for this run "
                                   f"({mine['error']:.1%}) and the stable run ({stable['rate']:.4f} vs "
                                   f"{stable['own']:.4f}, {stable['error']:.1%}); λmin(H) ratio {lam_ratio:.2f} (this "
                                   f"run / stable), below the step ratio {steps_ratio:.2f} either way", why=why))
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
           "final loss: this η, stable η": [float(L[-1]), float(ref["loss"][-1])],
           "diverged at step": run["diverged_at"] if run["diverged"] else "–",
           "largest drift / (λ₀/4): this η, stable η": [float(np.max(run["drift"])) / margin,
                                                       float(np.max(ref["drift"])) / margin],
           "largest neuron movement: this η, stable η": [float(np.nanmax(run["movement"])),
                                                        float(np.nanmax(ref["movement"]))]}
    mine, stable = late_decay(run, lr), late_decay(ref, REFERENCE_FRACTION * 2 / res["lambda_max"])
    if mine is not None and stable is not None:
        out.update({"late rate of ‖u − y‖ per step: this η, stable η": [mine["rate"], stable["rate"]],
                    "1 − ηλmin(H) at the window's end: this η, stable η": [mine["own"], stable["own"]],
                    "λmin(H) at the window's end / λ₀: this η, stable η": [mine["lam_min"] / res["lambda_0"],
                                                                            stable["lam_min"] / res["lambda_0"]]})
    return out


def headline(res: dict) -> str:
    run, lr = res["run"], res["lr"]
    own0 = _edge_ratio(run, lr, 0)
    if run["diverged"]:
        return (f"Diverged: η = {res['lr_fraction']:.2f} × 2/λmax, past the stability edge; "
                f"{diverged_why(run, lr)} (training stopped, its record is kept).")
    end = _edge_ratio(run, lr, -1)
    return (f"η = {res['lr_fraction']:.2f} × 2/λmax of G (ηλmax(H(0))/2 = {own0:.3f} for this network): "
            f"{'past' if own0 > 1 else 'below'} its own edge at the start, ηλmax(H)/2 = {end:.3f} at the end; "
            f"final loss {run['loss'][-1]:.3g}")


def setting_text(res: dict) -> str:
    return f"ReLU, first layer trained, width {res['width']}, n = {res['n']}, seed {res['seed']}"


def draw(res: dict):
    fig, (ax1, ax2, ax3) = plots.new_figure(3, width=4.2, height=4.3)
    fig.subplots_adjust(top=0.86, bottom=0.33, wspace=0.32)
    fig.suptitle(setting_text(res), fontsize=10, y=0.985)
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
    ax1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²", title="loss vs step")
    gd.legend_below(ax1)
    plots.time_axis(ax1)
    if res["partial"]:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    margin = res["lambda_0"] / 4
    last = max(int(r["frames"][-1]) for r in runs)
    for r, f, lab, sty in zip(runs, fracs, labels, styles):
        fr = np.asarray(r["frames"])
        lr = f * 2 / res["lambda_max"]
        ax2.plot(fr, lr * np.asarray(r["lam_max_H"]) / 2, markersize=3, label=lab, **sty)
        keep = fr > 0
        ax3.plot(fr[keep], np.asarray(r["drift"])[keep], markersize=3, label=lab, **sty)
    ax2.axhline(1.0, color="black", linestyle="--", linewidth=1.3, label="1: the network's own edge")
    gd.step_axis(ax2, last)
    ax2.set(xlabel="GD step k (log scale beyond 1)", ylabel="η λmax(H(k)) / 2",
            title="its own top eigenvalue against 2/η")
    gd.legend_below(ax2)
    plots.time_axis(ax2)
    ax3.axhline(margin, color="black", linestyle="--", linewidth=1.3, label="λ₀/4")
    gd.step_axis(ax3, last)
    ax3.set(yscale="log", xlabel="GD step k (log scale beyond 1)", ylabel="‖H(k) − H(0)‖₂",
            title="how far the kernel moved")
    gd.ticks_125(ax3)
    gd.legend_below(ax3)
    plots.time_axis(ax3)
    return fig


def state(ax, res: dict):
    """The residual's coefficients on the eigenvectors of the network's H(0) (filled; the top direction in its own
    colour) against the linearized prediction at this step size (dashed: the top direction grows, the others
    decay), and the kernel gauge."""
    return state_panel(ax, res["run"], res["lambda_0"], highlight=-1,
                       setting=f"m = {res['width']}, ReLU, first layer\nn = {res['n']}, seed {res['seed']}\n"
                               f"η = {res['lr_fraction']:.2f} × 2/λmax(G)")


def frames(res: dict) -> list[int]:
    fr = res["run"]["frames"]
    return sorted(set(log_frames(fr, FRAMES)) | {k for k in fr if k % LATE_EVERY == 0})


def key_steps(res: dict) -> list[int]:
    run = res["run"]
    fr = run["frames"]
    peak = int(run["steps"][np.argmax(top_coefficient(run))])
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({0, near(max(1, peak // 3)), near(max(1, peak)), near(3 * max(1, peak)), fr[-1]})


def alt(res: dict) -> str:
    return (f"Setting: {setting_text(res)}. Left: training loss at η = {res['lr_fraction']:.2f} × 2/λmax and at the "
            "stable step, with the linearized prediction; middle: η λmax(H(k)) / 2 against 1 (the network's own "
            "edge); right: the kernel drift of both runs against λ₀/4.")


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
