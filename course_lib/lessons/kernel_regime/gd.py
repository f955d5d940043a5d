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
from ..._validate import PSD_RTOL, check_choice, check_float, check_int
from ...claims import claim, fmt, not_applicable
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
INF_FACTOR = 2.0      # "stays within a factor 2": far closer than the measured loss ends to its dashed line (60x)
JUMP = 2.0            # "the loss jumps up": it rises to twice its lowest value so far
EDGE_TOL = 0.05       # H(k) is recorded at the frames only: "reached its edge" = a recorded ηλmax(H(k))/2 ≥ 0.95
LIVE_EVERY = 20       # steps between live updates of a long run
RECORD_EVERY = 4      # record loss and residual every 4 steps (and every step up to EARLY, and at the frames)
FRAMES = 30           # log-spaced frames at which the kernel is recorded (the time control's steps) ...
LATE_EVERY = 20       # ... and every 20 steps (the slow late phase gets frames too)


# ----------------------------------------------------------------------------------------------
# Training one network against its own linearization
# ----------------------------------------------------------------------------------------------
def gram_steps(steps: int) -> list[int]:
    """The steps at which the kernel (drift, lambda_min, lambda_max of H(k)) is recorded: log-spaced, and every
    LATE_EVERY steps (a multiple of RECORD_EVERY, so the residual is recorded there too)."""
    return sorted(set(log_record_steps(steps, FRAMES)) | set(range(0, steps + 1, LATE_EVERY)))


def train_against_linearization(m: int, prob: dict, lr: float, steps: int, seed: int, *, activation: str = "relu",
                                train_output: bool = False, device=None, state: bool = True, live=None) -> dict:
    """Train one network of width ``m`` on ``prob`` (from :func:`core.problem`) and compute its own linearized
    prediction. With ``state``: the residual (every step up to EARLY, every RECORD_EVERY steps after) and, at
    :func:`gram_steps`, the kernel drift ||H(k) - H(0)||_2, lambda_min(H(k)) and lambda_max(H(k)): what the time
    control replays."""
    device = get_device(device)
    d = prob["X"].shape[1]
    X, y = prob["X"].to(device), prob["y"].to(device)
    model = TwoLayer(m, activation, train_output=train_output)
    params = model.init(d, seed=seed, device=device)
    H0 = kernels.empirical_gram(model, params, X).cpu()  # (1, n, n), float64
    metrics = {"movement": neuron_movement}
    if state:
        metrics["residual"] = residual
        metrics["gram"] = gram_metric(H0, gram_steps(steps))
    callback = None
    if live is not None:
        def callback(hist, step):
            if step % LIVE_EVERY < RECORD_EVERY:
                live(hist)
    # records: every step up to EARLY (the early match), every RECORD_EVERY steps after, and the kernel's frames
    record = sorted(set(range(min(EARLY, steps) + 1)) | set(range(0, steps + 1, RECORD_EVERY)) | set(gram_steps(steps)))
    hist = train(model, params, X, y, steps=steps, lr=lr, record_steps=record, progress=False, metrics=metrics,
                 callback=callback)
    r0 = to_float64(model.apply(params, X)[0] - y).cpu()
    lam, V, coef = theory.linearized_modes(H0[0], r0, lr, steps)
    loss = hist["loss"][:, 0]
    out = {"width": m, "history": hist, "steps": hist.steps, "loss": loss,
           "movement": hist["movement"][:, 0], "diverged": hist.diverged, "message": hist.message,
           "diverged_at": int(hist.diverged_at[0]),
           # H(0) is positive semi-definite: its eigenvalues for labels and numbers, rounding level as 0
           "lam_H0": psd_eigenvalues(H0[0]), "pred_loss": 0.5 * (coef**2).sum(1), "r0": r0.numpy()}
    if state:
        g = hist["gram"][:, 0]
        keep = np.isfinite(g[:, 0])
        out.update(V=V, pred_coef=coef, residual=hist["residual"][:, 0], frames=hist.steps[keep].tolist(),
                   drift=g[keep, 0], lam_min_H=g[keep, 1], lam_max_H=g[keep, 2])
    out.update(zip(("window", "rate", "pred_rate"), late_rates(out)))
    return out


def psd_eigenvalues(H) -> np.ndarray:
    """Eigenvalues (ascending) of a positive semi-definite matrix, those at rounding level (below PSD_RTOL x
    lambda_max in magnitude; :func:`course_lib.kernels.psd_spectrum`) as 0."""
    ev = kernels.psd_spectrum(H).numpy()
    return np.where(ev <= PSD_RTOL * ev[-1], 0.0, ev)


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
                                                       live=feed))
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


def early_allowance(run: dict, lr: float, steps: int = EARLY) -> float:
    """How far the kernel's drift lets the loss stray from its dashed line within ``steps`` steps (the course's
    reading of Weyl's inequality): each direction's factor |1 - eta lambda_i| per step of ||u - y|| may differ by
    up to eta ||H(k) - H(0)||_2, so the loss (a square) by a factor up to about exp(2 eta sum_k ||H(k) - H(0)||)."""
    return float(np.exp(2 * lr * sum(drift_at(run, k) for k in range(steps))))


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


def min_eig(run: dict, lambda_0: float) -> dict:
    """The numbers behind ``1.1.min-eig``: lambda_min(H(k)) over the recorded frames against lambda_0 / 2, and
    how far it moved compared with the drift."""
    lm = np.asarray(run["lam_min_H"], float)
    drift = float(np.max(run["drift"]))
    return {"lowest": float(lm.min()) / (lambda_0 / 2), "start": float(lm[0]) / (lambda_0 / 2),
            "end": float(lm[-1]) / (lambda_0 / 2), "lowest_step": int(run["frames"][int(np.argmin(lm))]),
            "moved": float(np.max(np.abs(lm - lm[0])) / drift) if drift > 0 else 0.0}


def own_edges(res: dict) -> list[dict]:
    """Per width: the first step at which the loss has risen to twice its lowest value so far (after step EARLY;
    a run that diverged counts as rising where it stopped), the largest eta lambda_max(H(k)) / 2 recorded up to
    that step, and over the whole run."""
    out = []
    for r in res["runs"]:
        steps, L = np.asarray(r["steps"]), np.asarray(r["loss"], float)
        fin = np.isfinite(L)
        low = np.minimum.accumulate(np.where(fin, L, np.inf))
        rise = np.flatnonzero((steps > EARLY) & fin & (L >= JUMP * low))
        jump = int(steps[rise[0]]) if len(rise) else (int(r["diverged_at"]) if r["diverged"] else None)
        e = res["lr"] * np.asarray(r["lam_max_H"], float) / 2
        fr = np.asarray(r["frames"])
        before = float(np.max(e[fr <= jump])) if jump is not None and (fr <= jump).any() else float("nan")
        out.append({"width": r["width"], "jump": jump, "edge_before": before, "edge": float(np.max(e))})
    return out


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
        allow = early_allowance(run, lr)
        d10 = drift_at(run, EARLY)
        out.append(claim("1.1.early-match", st, holds=factor <= EARLY_FACTOR, measured=factor, predicted=1.0,
                         tolerance="largest ratio loss/dashed (either way) at most 1.2",
                         why=f"the loss strays by a factor {factor:.3g} from its dashed line within {EARLY} steps: "
                             + (f"though its drift is only {d10 / margin:.2g} × λ₀/4 by step {EARLY}, "
                                if d10 < margin else f"its drift reached {d10 / margin:.2g} × λ₀/4 by step {EARLY}; ")
                             + f"each direction's rate per step may differ by up to η‖H(k) − H(0)‖ ({lr * d10:.2g} at "
                               f"η = {lr:.3g}), which over {EARLY} steps lets the loss stray by up to about "
                               f"{fmt(allow, 2)}×"))
    # 2. the infinite-width linearization lies near the network's own
    st = "The dotted line (the same linearization with G, infinite width) stays within a factor 2 of the dashed one."
    q = np.asarray(res["pred_inf_loss"], float) / np.asarray(run["pred_loss"], float)
    apart = float(np.max(np.maximum(q, 1 / q)))
    out.append(claim("1.1.infinite-width", st, holds=apart <= INF_FACTOR, measured=apart, predicted=1.0,
                     tolerance=f"largest ratio dotted/dashed (either way) over the run at most {INF_FACTOR:g}",
                     why=f"the two linearizations end up {apart:.3g}× apart: at width {m} H(0) is far from G (λmin(H(0)) "
                         f"= {run['lam_H0'][0]:.2g}, λ₀ of G = {res['lambda_0']:.2g})"))
    # 3. the kernel moves
    st = "The widest network's Gram matrix moves by more than λ₀/4 during training (middle panel)."
    if diverged:
        out.append(not_applicable("1.1.kernel-moves", st, why_div))
    else:
        dmax = float(np.max(run["drift"]))
        out.append(claim("1.1.kernel-moves", st, holds=dmax > margin, measured=dmax / margin, predicted=1.0,
                         tolerance="largest ‖H(k) − H(0)‖ / (λ₀/4) above 1",
                         why=f"the drift stays below λ₀/4 (at most {dmax / margin:.2g} × λ₀/4): at width {m} the "
                             "kernel stays within the margin of Du et al.'s argument, as the argument needs (the claim "
                             "describes narrower networks, such as width 1024)"))
    # 4. lambda_min(H(k)) stays above lambda_0 / 2: the argument's conclusion, whatever the drift
    st = ("The widest network's λmin(H(k)) stays above λ₀/2 at every recorded step, moving by less than half the "
          "drift (middle panel).")
    if diverged:
        out.append(not_applicable("1.1.min-eig", st, why_div))
    else:
        me = min_eig(run, res["lambda_0"])
        ok = me["lowest"] > 1 and me["moved"] < 0.5
        if me["lowest"] <= 1:
            if me["start"] <= 1:
                why = (f"λmin(H(0)) is already {me['start']:.2g} × λ₀/2" + (" (H(0) is singular)" if me["start"] == 0
                                                                            else "")
                       + f": at width {m} the starting kernel is far from G, so the finite-width error alone breaks "
                         "the margin")
            else:
                why = (f"λmin(H(k)) falls from {me['start']:.2g} to {me['lowest']:.2g} × λ₀/2 (step "
                       f"{me['lowest_step']}): the moving kernel lowered it below the argument's margin")
        else:
            why = (f"λmin(H(k)) moved by {me['moved']:.2g} × the largest drift ‖H(k) − H(0)‖ (Weyl's inequality "
                   "allows up to 1×)")
        out.append(claim("1.1.min-eig", st, holds=ok, measured=me["lowest"], predicted=1.0,
                         tolerance=f"lowest λmin(H(k)) / (λ₀/2) above 1; its largest change / the largest drift below "
                                   f"0.5 ({me['moved']:.2g})", why=why))
    # 5. the loss ends above the dashed line (at its last step above the float32 floor)
    st = "By its last step above the float32 floor, the widest network's loss is above its dashed line."
    if diverged:
        out.append(not_applicable("1.1.ends-above", st, why_div))
    else:
        w = late_rates(run)[0]
        i = int(np.searchsorted(run["steps"], w[1])) if w is not None else len(run["steps"]) - 1
        kend = int(run["steps"][i])
        L_end, P_end = float(run["loss"][i]), float(run["pred_loss"][kend])
        me = min_eig(run, res["lambda_0"])
        out.append(claim("1.1.ends-above", st, holds=L_end > P_end, measured=L_end, predicted=P_end,
                         tolerance=f"loss above the dashed line's at step {kend}",
                         why=f"at step {kend} the loss {L_end:.3g} is below the dashed line's {P_end:.3g}: here the "
                             f"moving kernel sped training up (λmin(H(k)) went from {me['start']:.2g} to "
                             f"{me['end']:.2g} × λ₀/2)"))
    # 6. the late rate of ||u - y||, up to the drift
    st = ("The late rates of ‖u − y‖ and of its dashed line (per step, fitted over the same window above the float32 "
          "floor) differ by at most η × the kernel's drift.")
    w, rm, rp = late_rates(run)
    if diverged:
        out.append(not_applicable("1.1.late-rate", st, why_div))
    elif w is None:
        out.append(not_applicable("1.1.late-rate", st, "the run is too short (or reaches the float32 floor too soon) "
                                  "to fit a late rate over at least 10 steps"))
    else:
        allow = lr * float(np.max(run["drift"][np.asarray(run["frames"]) <= w[1]]))
        out.append(claim("1.1.late-rate", st, holds=abs(rm - rp) <= allow, measured=rm, predicted=rp,
                         tolerance=f"rates of ‖u − y‖ per step: |difference| ≤ η·max‖H(k) − H(0)‖ = {allow:.2g} "
                                   f"(window {w[0]}–{w[1]})",
                         why=f"the rates of ‖u − y‖ differ by {abs(rm - rp):.2g} per step, more than η × drift = "
                             f"{allow:.2g}"))
    # 7. the modes couple
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
    # 8. a narrow network's loss that jumps up has reached its own stability edge
    st = ("Any network whose loss jumps up during training (to twice its lowest value so far) has first reached its "
          "own stability edge: ηλmax(H(k))/2 ≥ 1.")
    edges = own_edges(res)
    jumped = [e for e in edges if e["jump"] is not None]
    top_edge = max(e["edge"] for e in edges)
    if not jumped:
        out.append(claim("1.1.own-edge", st, holds=True, measured=top_edge, predicted=1.0,
                         tolerance=f"no loss jumps at this setting (largest ηλmax(H(k))/2 over all widths: "
                                   f"{top_edge:.2f})"))
    else:
        bad = [e for e in jumped if e["edge_before"] < 1 - EDGE_TOL]
        worst = min(jumped, key=lambda e: e["edge_before"])
        out.append(claim("1.1.own-edge", st, holds=not bad, measured=worst["edge_before"], predicted=1.0,
                         tolerance="for each jump, largest ηλmax(H(k))/2 recorded up to the jump at least "
                                   f"{1 - EDGE_TOL} (H(k) is recorded only at the frames): "
                                   + ", ".join(f"width {e['width']} jumps at step {e['jump']} after "
                                               f"{e['edge_before']:.2f}" for e in jumped),
                         why=f"the width-{worst['width']} network's loss jumps up at step {worst['jump']} while its "
                             f"ηλmax(H(k))/2 has reached only {worst['edge_before']:.2f}"))
    # 9. Du et al.'s guarantee
    st = ("The widest network's loss stays below Du et al.'s guarantee (1 − ηλ₀/2)ᵏ L(0) from its own L(0) "
          "(dash-dotted): a worst case, not a prediction.")
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
    l0 = res["lambda_0"]
    out = {"widths m": res["widths"], "samples n": res["n"], "activation": res["activation"],
           "trained": res["layers"], "step size η": res["lr"], "λ₀ of G (infinite width)": l0,
           "λmax of G": res["lambda_max"], "λ₀ of H(0), widest network": float(top["lam_H0"][0]),
           "slowest direction's rate 1 − ηλ₀ (G)": 1 - res["lr"] * l0,
           "final loss, per width": [float(r["loss"][-1]) for r in runs],
           "final loss of each dashed line (own H(0))": [float(r["pred_loss"][int(r["steps"][-1])]) for r in runs],
           "late-rate window, widest": "–" if top["window"] is None else f"{top['window'][0]}–{top['window'][1]}",
           "late rate of ‖u − y‖ per step, per width (measured)": [late_rates(r)[1] for r in runs],
           "late rate of ‖u − y‖ per step, per width (dashed line, same window)": [late_rates(r)[2] for r in runs],
           "largest drift ‖H(k) − H(0)‖ / (λ₀/4), widest": float(np.max(top["drift"])) / (l0 / 4)}
    if not top["diverged"]:
        me = min_eig(top, l0)
        out.update({"λmin(H(k)) / (λ₀/2), widest: start, lowest, end": [me["start"], me["lowest"], me["end"]],
                    "largest change of λmin(H(k)) / largest drift, widest": me["moved"]})
    out.update({"λmin(H(k)) / λ₀ at the last recorded step, per width": [float(r["lam_min_H"][-1]) / l0 for r in runs],
                "largest η λmax(H(k)) / 2 over the run, per width (above 1: past its own edge)":
                    [res["lr"] * float(np.max(r["lam_max_H"])) / 2 for r in runs],
                "largest neuron movement, per width": [float(np.nanmax(r["movement"])) for r in runs]})
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
ACTIVATION_NAMES = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "elu": "ELU", "selu": "SELU", "gelu": "GELU",
                    "softplus": "softplus", "tanh": "tanh", "swish": "swish", "erf": "erf", "sigmoid": "sigmoid"}
LEGEND = dict(fontsize=7.5, frameon=False, loc="upper center", borderaxespad=0.0)


def setting_text(res: dict) -> str:
    """The setting that distinguishes one figure from another, for titles and legends."""
    trained = "both layers trained" if res.get("layers") == "both layers" else "first layer trained"
    return (f"{ACTIVATION_NAMES.get(res.get('activation', 'relu'), res.get('activation'))}, {trained}, "
            f"n = {res['n']}, η = {res['lr_fraction']:.2f} × 2/λmax(G), seed {res['seed']}")


def state_setting(res: dict, width: int) -> str:
    """The setting in three short lines, for a state panel."""
    act = ACTIVATION_NAMES.get(res.get("activation", "relu"), res.get("activation"))
    trained = "both layers" if res.get("layers") == "both layers" else "first layer"
    return (f"m = {width}, {act}, {trained}\nn = {res['n']}, seed {res['seed']}\n"
            f"η = {res['lr_fraction']:.2f} × 2/λmax(G)")


def legend_below(ax, ncol: int = 1, offset: float = -0.2):
    """The legend under the axes (it never hides data)."""
    return ax.legend(ncol=ncol, bbox_to_anchor=(0.5, offset), **LEGEND)


def ticks_125(ax, which: str = "y") -> None:
    """On a log axis spanning under 3.5 decades, labelled ticks at 1, 2 and 5 x 10^k (set after the limits)."""
    from matplotlib.ticker import LogLocator

    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if which == "y" else ax.get_xlim())
    if lo > 0 and np.log10(hi / lo) < 3.5:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))


def step_axis(ax, last: int) -> None:
    """A step axis that is logarithmic beyond step 1 and linear below it (symlog), so step 0 (and the time
    control's cursor there) stays in view; plain tick labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(0, last * 1.15)
    ticks = [t for t in (0, 1, 3, 10, 30, 100, 300, 1000) if t <= last]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(FixedLocator([]))


def _floor_band(ax, loss0: float, lowest: float) -> None:
    """Shade the loss range below the fit floor (float32 round-off region) when the curves get near it."""
    level = FIT_FLOOR**2 * loss0  # the loss where ||u - y|| = FIT_FLOOR x ||u(0) - y||
    if lowest < 10 * level:  # the axis reaches down to lowest / 10: the band is in view
        ax.axhspan(level * 1e-6, level, color="0.85", zorder=0, label="grey: near float32 round-off (not fitted)")


def _late_window(ax, run, label: bool = True) -> None:
    if run.get("window") is not None:
        a, b = run["window"]
        ax.axvspan(a, b, color=plots.color(5), alpha=0.12, zorder=0,
                   label=f"late-rate window ({a}–{b})" if label else None)


def kernel_panel(ax, run: dict, lambda_0: float, *, label: str = "") -> None:
    """The kernel during training: the drift ||H(k) - H(0)|| against lambda_0 / 4 (the margin of the argument) and
    lambda_min(H(k)) against lambda_0 / 2 (what the margin protects), on a step axis that shows step 0."""
    fr = np.asarray(run["frames"])
    dr, lm = np.asarray(run["drift"]), np.asarray(run["lam_min_H"])
    c_d, c_l = plots.color(0), plots.color(2)
    keep = dr > 0
    ax.plot(fr[keep], dr[keep], color=c_d, marker="o", markersize=3, label=f"drift ‖H(k) − H(0)‖₂{label}")
    ax.axhline(lambda_0 / 4, color=c_d, linestyle="--", linewidth=1.3, label="λ₀/4: the margin the argument needs")
    pos = lm > 0
    ax.plot(fr[pos], lm[pos], color=c_l, marker="^", markersize=3, label=f"λmin(H(k)){label}")
    ax.axhline(lambda_0 / 2, color=c_l, linestyle="--", linewidth=1.3, label="λ₀/2: what the margin protects")
    last = int(fr[-1]) if len(fr) else 1
    step_axis(ax, max(last, 1))
    for level, text, c, va in ((lambda_0 / 4, "λ₀/4", c_d, "top"), (lambda_0 / 2, "λ₀/2", c_l, "bottom")):
        ax.text(1.0, level, " " + text, transform=ax.get_yaxis_transform(), va=va, ha="left", fontsize=8, color=c)
    vals = np.concatenate([dr[keep], lm[pos], [lambda_0 / 4, lambda_0 / 2]])
    ax.set(yscale="log", ylabel="operator norm / eigenvalue", ylim=(vals.min() / 2, vals.max() * 2))
    if not pos.all():
        ax.text(0.03, 0.03, "λmin(H(k)) = 0 at some steps (not on a log axis)", transform=ax.transAxes, fontsize=7.5,
                color=c_l)
    ticks_125(ax)


def draw(res: dict):
    fig, (ax1, ax2, ax3) = plots.new_figure(3, width=4.2, height=4.6)
    fig.subplots_adjust(top=0.87, bottom=0.37, wspace=0.32)
    runs = list(res["runs"])
    live = res.get("live")
    top_width = res["widths"][-1]
    fig.suptitle(setting_text(res), fontsize=10, y=0.985)
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
        plots.plot_theory(ax1, k, top["pred_loss"], label=f"dashed: linearized, own H(0), width {top_width}")
        plots.plot_theory(ax1, k, res["pred_inf_loss"], label="dotted: linearized with G (m → ∞), same start",
                          style=dict(color="black", linestyle=":", linewidth=1.3))
        if "du_bound" in res:
            plots.plot_theory(ax1, k, res["du_bound"], label=f"Du et al.'s guarantee, width {top_width} (worst case)",
                              style=dict(color="0.45", linestyle="-.", linewidth=1.3))
        _late_window(ax1, top)
        _floor_band(ax1, float(top["loss"][0]), lowest)
        if top["diverged"]:
            plots.mark_divergence(ax1, top["history"])
        lo = max(lowest / 10, 1e-14 * top["loss"][0])
        ax1.set_ylim(lo, 3 * max(r["loss"][0] for r in runs))
    ax1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²", title=f"loss, widths {res['widths'][0]}–{top_width}" if len(res["widths"]) > 1 else f"loss, width {top_width}")
    legend_below(ax1)
    plots.time_axis(ax1)
    if res["partial"]:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    top = runs[-1]
    # 2. the kernel during training: its drift against lambda_0 / 4, lambda_min(H(k)) against lambda_0 / 2
    kernel_panel(ax2, top, res["lambda_0"])
    ax2.set(xlabel="GD step k (log scale beyond 1)", title=f"the kernel of width {top_width} during training")
    legend_below(ax2, ncol=1)
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
    _late_window(ax3, top, label=False)
    ax3.set(xlabel="GD step k", ylabel="‖coefficients‖ on eigenvectors of H(0)",
            title=f"residual by direction (width {top_width})")
    legend_below(ax3)
    plots.time_axis(ax3)
    return fig


def state(ax, res: dict):
    """The state at step k: the residual's coefficients on the eigenvectors of the widest network's H(0)
    (filled bars, slowest direction on the left) against the linearized prediction (1 - eta lambda_i)^k c_i(0)
    (dashed outline), and the kernel's drift ||H(k) - H(0)|| against lambda_0 / 4 with lambda_min(H(k)) against
    lambda_0 / 2 (gauge, top right)."""
    res_w = res["runs"][-1]["width"]
    return state_panel(ax, res["runs"][-1], res["lambda_0"], mode_groups(res["n"]),
                       setting=state_setting(res, res_w))


def state_panel(ax, run: dict, lambda_0: float, groups: dict | None = None, *, setting: str = "",
                highlight: int | None = None):
    """``groups``: bands of directions named under the axis; ``highlight``: one direction (e.g. the top one past
    the stability edge) drawn in its own colour."""
    from matplotlib.patches import Rectangle

    steps = np.asarray(run["steps"])
    coef = np.abs(run["residual"] @ run["V"])  # (records, n)
    pred = np.abs(run["pred_coef"][: int(steps[-1]) + 1])
    n = coef.shape[1]
    edges = np.arange(n + 1) - 0.5
    positive = coef[coef > 0]
    top = float(coef.max()) * 1e6  # headroom (the top 40% of the axes) for the setting, the legend and the gauge
    floor = max(float(positive.min()) / 3 if len(positive) else top * 1e-15, top * 1e-15)
    if groups:
        names, centers = [], []
        for g, idx in groups.items():
            c = plots.color(GROUP_STYLE[g])
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color=c, alpha=0.12, zorder=0)
            names.append(f"{len(idx)} {g}")
            centers.append(float(np.mean(idx)))
        # the bands named under the axis, in their colour (the names, not only the colour, say which is which)
        ax.set_xticks(centers, names, minor=True)
        ax.tick_params(axis="x", which="minor", length=0, pad=15, labelsize=7)
        for lab, g in zip(ax.get_xticklabels(minor=True), groups):
            lab.set_color(plots.color(GROUP_STYLE[g]))
    bars = ax.stairs(np.full(n, floor), edges, baseline=floor, fill=True, color=plots.color(0), alpha=0.75,
                     label="measured")
    arts = [bars]
    hbar = None
    if highlight is not None:
        hedge = edges[[highlight % n, highlight % n + 1]]
        hbar = ax.stairs([floor], hedge, baseline=floor, fill=True, color=plots.color(3), alpha=0.9,
                         label="top direction (measured)")
        arts.append(hbar)
    line = ax.stairs(np.full(n, np.nan), edges, baseline=None, **plots.THEORY_STYLE, label="linearized")
    below = ax.scatter([], [], marker="v", s=14, color="black", zorder=5, clip_on=False,
                       label="linearized: below the axis")
    ax.set(yscale="log", ylim=(floor, top), xlim=(edges[0] - 1, edges[-1] + 1),
           xlabel="eigen-direction i of H(0) (slowest first)", ylabel="|vᵢ · (u − y)|")
    if setting:
        ax.text(0.02, 0.975, setting, transform=ax.transAxes, fontsize=6.5, va="top", ha="left", linespacing=1.15)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(0.0, 0.84 if setting else 1.0), frameon=False)
    # the kernel gauge (drawn in axes coordinates, no inset axes: cheaper to draw): the drift on a log scale in
    # units of lambda_0 / 4 from lo to hi, with the margin marked at 1; lambda_min(H(k)) in units of lambda_0 / 2
    margin = lambda_0 / 4
    ratios = np.asarray(run["drift"]) / margin
    mins = np.asarray(run["lam_min_H"]) / (lambda_0 / 2)
    lo, hi = 0.05, max(4.0, float(np.nanmax(ratios)) * 1.3) if len(ratios) else 4.0
    x0, y0, width, height = 0.56, 0.83, 0.38, 0.04
    at = lambda r: x0 + width * np.log(max(r, lo) / lo) / np.log(hi / lo)  # noqa: E731
    ax.add_patch(Rectangle((x0, y0), width, height, transform=ax.transAxes, facecolor="white", edgecolor="black",
                           linewidth=0.8, zorder=3))
    bar = ax.add_patch(Rectangle((x0, y0), 0.0, height, transform=ax.transAxes, facecolor="0.45", zorder=4))
    ax.plot([at(1.0)] * 2, [y0 - 0.01, y0 + height + 0.01], transform=ax.transAxes, color="black", linestyle="--",
            linewidth=1.2, zorder=5)
    ax.text(at(1.0), y0 - 0.015, "λ₀/4", transform=ax.transAxes, fontsize=6, ha="center", va="top")
    ax.text(x0, y0 - 0.015, f"{lo:g}×", transform=ax.transAxes, fontsize=6, ha="left", va="top")
    ax.text(x0 + width, y0 - 0.015, f"{hi:.0f}×" if hi >= 10 else f"{hi:.2g}×", transform=ax.transAxes, fontsize=6,
            ha="right", va="top")
    ax.text(x0 + width / 2, y0 - 0.06, "(log scale)", transform=ax.transAxes, fontsize=6, ha="center", va="top",
            color="0.3")
    text = ax.text(x0, y0 + height + 0.015, "", transform=ax.transAxes, fontsize=6.5, va="bottom", linespacing=1.1)
    frames = np.asarray(run["frames"])

    def update(k: int):
        k = int(min(max(k, steps[0]), steps[-1]))
        i = int(np.searchsorted(steps, k))
        bars.set_data(np.clip(coef[i], floor, None))
        p = pred[k]
        shown = np.where(p >= floor, np.minimum(p, top * 10), np.nan)
        line.set_data(shown)
        hidden = np.flatnonzero(p < floor)
        below.set_offsets(np.column_stack([hidden, np.full(len(hidden), floor)]) if len(hidden) else np.empty((0, 2)))
        out = [bars, line, below, bar, text]
        if hbar is not None:
            hbar.set_data([max(coef[i, highlight], floor)])
            out.append(hbar)
        r = float(np.interp(k, frames, ratios)) if len(frames) else float("nan")
        q = float(np.interp(k, frames, mins)) if len(frames) else float("nan")
        bar.set_width(at(min(r, hi)) - x0 if np.isfinite(r) and r > lo else 0.0)
        text.set_text(f"λmin(H(k)) = {q:.2g} × λ₀/2\n‖H(k) − H(0)‖ = {r:.2g} × λ₀/4")
        return out

    return update


def frames(res: dict) -> list[int]:
    """Log-spaced frames (the fast early phase) and every LATE_EVERY steps (the slow late phase)."""
    fr = res["runs"][-1]["frames"]
    late = {k for k in fr if k % LATE_EVERY == 0}
    return sorted(set(log_frames(fr, FRAMES)) | late)


def key_steps(res: dict) -> list[int]:
    fr = res["runs"][-1]["frames"]
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({0, near(3), near(30), fr[-1]})


def alt(res: dict) -> str:
    return (f"Setting: {setting_text(res)}. Left: training loss of widths {', '.join(map(str, res['widths']))} "
            "against the widest network's own linearized prediction (dashed), the infinite-width one (dotted) and Du "
            "et al.'s guarantee from the widest network's L(0); middle: the widest network's kernel drift against "
            "λ₀/4 and its λmin(H(k)) against λ₀/2; right: its residual on the slowest, middle and fastest "
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
    paper={"du-setting-wide": {"width": 16384, "n": 100, "steps": 1000}},
    paper_note=("the course's closest analogue of Du et al. (2019)'s setting (first layer trained, a_r = ±1 fixed, "
                "unit-norm inputs, square loss): widths 256, 2048 and 16384 on n = 100 points for 1000 steps, each "
                "against its own linearization; the course's sources confirm no experiment of that paper to reproduce"),
)


def dashboard(**overrides):
    """Experiment 1.1's dashboard: width, step size (fraction of 2/λmax, below the stability edge), n,
    activation, layers trained, seed."""
    return EXPERIMENT.dashboard(**overrides)
