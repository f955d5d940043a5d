"""Experiments 6.1 and 6.5: GD, heavy ball and Nesterov on the same two-layer ReLU network.

One initialization, trained full batch by each method with the same step eta = ``lr_fraction`` /
lambda_max(H^inf) and momentum beta. The dashed curves are this network's own linearized dynamics: its
Gram matrix H(0) at initialization and its own starting error u(0) - y, evolved mode by mode
(:func:`.core.mode_coefficients`). The run also records, at log-spaced steps, the Gram matrix H(k) the
network actually has (its extreme eigenvalues and its drift ||H(k) - H(0)||_2), so that where the
prediction fails, the figure shows why.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ... import theory
from ..._validate import check_choice, check_float, check_int
from ...claims import claim, fmt, log_rate_error, not_applicable
from ...experiment import log_record_steps
from ...models import TwoLayer
from ...runtime import get_device, scaled_steps, to_float64, torch_threads
from ...train import History, train
from .core import (
    FIT_HI,
    LABELS,
    METHODS,
    SHORT,
    TOLERANCE,
    envelope,
    gram64,
    measured_rate,
    mode_coefficients,
    momentum_of,
    problem,
    stability_limit,
    steps_to_tolerance,
    window_rate,
)

DEFAULTS = dict(dataset="sphere", width=1024, seed=0, lr_fraction=1.0, beta=0.8, steps=200)
RATE_TOL = 0.10  # "sits on its prediction": within 10% in -log rate (HB and NAG differ by 23% at the defaults)
EDGE = 0.95  # a method whose eta lambda_max(H(0)) is within 5% of its stability limit is "at the edge"
FOLLOW_FACTOR = 1.5  # "stays within 50% of its dashed prediction"
STEPS_TOL = 0.10  # "the steps each method needs are those predicted": within 10%
PLATEAU_MARGIN = 10.0  # the fitted window ends 10x or more above the level where the curve stops falling (float32)
LIVE_WIDTH = 2048  # runs at this width and wider redraw a live curve while they train
RECORD_STRIDE = 2  # the loss is recorded every 2 steps (recording cost as much as training at every step)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def experiment(dataset: str = DEFAULTS["dataset"], width: int = DEFAULTS["width"], *,
               lr_fraction: float = DEFAULTS["lr_fraction"], beta: float = DEFAULTS["beta"],
               steps: int = DEFAULTS["steps"], seed: int = DEFAULTS["seed"], methods=METHODS,
               device=None, live=None) -> dict:
    """Train one network (the same initialization) with each method; measure the rates and predict them.

    Returns a dict with ``runs[method]`` (``steps``, ``norms`` = ||u - y|| at every step, ``residual``,
    ``linearized`` (the norms of the linearized dynamics on H(0)), ``lin_coef``, ``measured_rate`` and
    ``linearized_rate`` over the same window ``fit_mask``, ``predicted_rate_H0`` / ``_HT`` / ``_Hinf``,
    ``gram`` (the eigenvalues and drift of H(k) at the recorded ``gram_steps``), ``steps_to_tol``...),
    the spectrum ``lam0`` and eigenvectors ``V0`` of H(0), ``lam_inf``, ``lr``, ``frames``.
    """
    with torch_threads(1):  # small networks: see runtime.torch_threads
        return _experiment(dataset, width, lr_fraction, beta, steps, seed, methods, device, live)


def _gram_metric(model, X, H0: torch.Tensor, frame_steps: set[int]):
    """(lambda_min, lambda_max, ||H(k) - H(0)||_2) of each network's Gram matrix at the steps in ``frames``."""
    def metric(params, ctx):
        E = params["W"].shape[0]
        if ctx.step not in frame_steps:
            return torch.full((E, 3), float("nan"), dtype=torch.float64)
        H = gram64(model, params, X)
        lam = torch.linalg.eigvalsh(H)
        drift = torch.linalg.eigvalsh(H - H0).abs().max(dim=-1).values  # ||.||_2 of a symmetric matrix
        return torch.stack([lam[:, 0], lam[:, -1], drift], dim=1)
    return metric


def _residual(model, y, frame_steps: set[int]):
    """u - y of each network at the steps in ``frames`` (the state panel's data; NaN at the other records)."""
    def metric(params, ctx):
        if ctx.step not in frame_steps:
            return torch.full((params["W"].shape[0], y.shape[0]), float("nan"))
        return model.apply(params, ctx.X) - y
    return metric


def _experiment(dataset, width, lr_fraction, beta, steps, seed, methods, device, live) -> dict:
    width = check_int("width", width, min_value=1)
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=4.0, min_inclusive=False)
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    methods = tuple(check_choice("methods", m, METHODS) for m in methods)
    steps = scaled_steps(check_int("steps", steps, min_value=1))
    device = get_device(device)
    X, y, Hinf, lam_inf = problem(dataset, seed, device)
    lr = lr_fraction / float(lam_inf[-1])
    model = TwoLayer(width)
    params = model.init(X.shape[1], seed=seed, device=device)
    H0 = gram64(model, params, X)[0]
    lam0, V0 = (a.numpy() for a in torch.linalg.eigh(H0))
    r0 = to_float64(model.apply(params, X)[0].detach().cpu()) - to_float64(y.detach().cpu())
    r0 = r0.numpy()
    c0 = V0.T @ r0
    frame_steps = sorted(set(log_record_steps(steps, 40)))
    metrics = {"residual": _residual(model, y, set(frame_steps)), "gram": _gram_metric(model, X, H0, set(frame_steps))}
    # the loss every RECORD_STRIDE steps (rates, steps to 10^-4) and at every frame of the replay
    record = sorted(set(range(0, steps + 1, RECORD_STRIDE)) | set(frame_steps))
    limit = 2.0 / float(lam_inf[-1])
    histories: dict[str, History] = {}

    def callback(name):
        # a live curve only where a run is slow (wide nets): with a record at every step, train() builds a
        # snapshot of the history for each callback, which costs more than a narrow run itself
        if live is None or width < LIVE_WIDTH:
            return None

        def cb(hist, step):  # a live curve of the run in progress
            live({"partial": True, "histories": {**histories, name: hist}, "methods": methods, "width": width,
                  "dataset": dataset, "lr_fraction": lr_fraction, "beta": beta})
        return cb

    pair = [m for m in methods if m in ("gd", "hb")]
    if pair:  # GD is HB with beta = 0: one batched run trains both from the same initialization
        both = {k: v.expand(len(pair), *v.shape[1:]).clone() for k, v in params.items()}
        h = train(model, both, X, y, steps=steps, lr=lr, method="hb", momentum=[momentum_of(m, beta) for m in pair],
                  record_steps=record, metrics=metrics, callback=callback("gd+hb"), lr_limit=limit, progress=False)
        for i, m in enumerate(pair):
            histories[m] = _member(h, i)
    if "nag" in methods:
        histories["nag"] = train(model, params, X, y, steps=steps, lr=lr, method="nag", momentum=beta, record_steps=record,
                                 metrics=metrics, callback=callback("nag"), lr_limit=limit, progress=False)
    runs = {}
    for m in methods:
        runs[m] = _analyse(histories[m], m, model, X, lam0, c0, lam_inf, lr, beta, steps)
    return {"partial": False, "dataset": dataset, "width": width, "lr": lr, "lr_fraction": lr_fraction, "beta": beta,
            "steps": steps, "seed": seed, "methods": methods, "runs": runs, "histories": histories,
            "lam0": lam0, "V0": V0, "c0": c0, "lam_inf": lam_inf, "norm0": float(np.linalg.norm(r0)),
            "y_norm": float(torch.linalg.vector_norm(to_float64(y.detach().cpu()))), "frames": frame_steps,
            "lambda0_inf": float(lam_inf[0]),
            "gram_init_error": float(torch.linalg.matrix_norm(H0 - Hinf, ord=2))}


def _analyse(h: History, m: str, model, X, lam0, c0, lam_inf, lr, beta, steps) -> dict:
    b = momentum_of(m, beta)
    resid = h["residual"][:, 0]  # (records, n), float64, at the frames only (NaN elsewhere)
    norms = np.sqrt(2.0 * h["loss"][:, 0])  # ||u - y|| at every step
    norms[~np.isfinite(norms)] = np.nan
    lin_coef = mode_coefficients(lam0, c0, lr, beta, m, steps)
    with np.errstate(over="ignore", invalid="ignore"):
        lin = np.linalg.norm(lin_coef, axis=1)
    rate, used = measured_rate(h.steps, norms)
    lin_rate = window_rate(h.steps, lin[h.steps], used)
    g = h["gram"][:, 0]  # (records, 3)
    keep = np.isfinite(g[:, 0])
    if h.diverged:
        rho_T = float("nan")
        lamT_min = lamT_max = float("nan")
    else:
        lamT_min, lamT_max = float(g[keep][-1, 0]), float(g[keep][-1, 1])
        HT = gram64(model, h.params, X)[0]
        rho_T = theory.predicted_rate(torch.linalg.eigvalsh(HT).numpy(), lr, b, m)
    return {
        "steps": h.steps, "norms": norms, "residual": resid, "linearized": lin, "lin_coef": lin_coef, "fit_mask": used,
        "measured_rate": rate, "linearized_rate": lin_rate,
        "predicted_rate_H0": theory.predicted_rate(lam0, lr, b, m),
        "predicted_rate_Hinf": theory.predicted_rate(lam_inf, lr, b, m),
        "predicted_rate_HT": rho_T, "lambda_min_HT": lamT_min, "lambda_max_HT": lamT_max,
        "gram_steps": h.steps[keep], "gram_lambda_min": g[keep, 0], "gram_lambda_max": g[keep, 1],
        "gram_drift": g[keep, 2], "limit": stability_limit(m, b),
        "steps_to_tol": steps_to_tolerance(h.steps, norms), "steps_to_tol_predicted": steps_to_tolerance(
            np.arange(len(lin)), lin), "diverged": h.diverged, "diverged_at": int(h.diverged_at[0]), "message": h.message,
    }


def _member(h: History, i: int) -> History:
    """Network i of an ensemble History, as a one-network History."""
    return History(steps=h.steps, metrics={k: v[:, i:i + 1] for k, v in h.metrics.items()},
                   params={k: v[i:i + 1] for k, v in h.params.items()},
                   params0={k: v[i:i + 1] for k, v in h.params0.items()}, diverged_at=h.diverged_at[i:i + 1],
                   message=h.message if h.diverged_at[i] >= 0 else "", stopped_early=h.stopped_early,
                   wall_time=h.wall_time, config=h.config)


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def at_edge(res: dict, m: str) -> bool:
    """Is method m's eta lambda_max(H(0)) within 5% of (or past) its stability limit?"""
    r = res["runs"][m]
    return res["lr"] * float(res["lam0"][-1]) >= EDGE * r["limit"]


def _edge_text(res: dict, m: str) -> str:
    r = res["runs"][m]
    return (f"on H(0) {LABELS[m]} is {'past' if res['lr'] * res['lam0'][-1] >= r['limit'] else 'at'} its stability "
            f"limit (ηλmax = {fmt(res['lr'] * res['lam0'][-1])} vs {fmt(r['limit'])}"
            f"{'' if res['lr'] * res['lam0'][-1] >= r['limit'] else f', within {1 - EDGE:.0%}'})")


def _reached_window(r: dict) -> bool:
    rel = r["norms"] / r["norms"][0]
    return bool(np.nanmin(rel) <= FIT_HI and r["fit_mask"].sum() >= 8)


def rate_claim(res: dict, m: str, exp_id: str = "6.1") -> object:
    r = res["runs"][m]
    cid = f"{exp_id}.rate-{m}"
    extra = " (√β when every mode is underdamped)" if m == "hb" else ""
    statement = f"{LABELS[m]}'s measured rate sits on its prediction from H(0){extra}."
    tol = (f"within {RATE_TOL:.0%} in −log rate, over the same window (which ends {PLATEAU_MARGIN:g} times or more above "
           "the curve's float32 plateau)")
    if r["diverged"]:
        return not_applicable(cid, statement, f"{LABELS[m]} diverged at step {r['diverged_at']}: there is no rate to fit")
    if at_edge(res, m):
        return not_applicable(cid, statement, _edge_text(res, m) + ": the linearized prediction on H(0) does not "
                              "describe the run", measured=r["measured_rate"],
                              predicted=r["linearized_rate"], tolerance=tol)
    if not _reached_window(r):
        return not_applicable(cid, statement, f"{LABELS[m]} did not fall to {FIT_HI:g} of its start in {res['steps']} "
                              "steps: the late-time window is not reached", measured=r["measured_rate"],
                              predicted=r["linearized_rate"], tolerance=tol)
    lvl = floor_level(res, m)
    low = float(np.min(r["norms"][r["fit_mask"]] / r["norms"][0]))
    if lvl is not None and low < PLATEAU_MARGIN * lvl:
        return not_applicable(cid, statement, f"{LABELS[m]}'s fitted window reaches down to {fmt(low)} of its start, less "
                              f"than {PLATEAU_MARGIN:g} times above where its curve levels off at float32 round-off "
                              f"({fmt(lvl)})", measured=r["measured_rate"], predicted=r["linearized_rate"], tolerance=tol)
    err = log_rate_error(r["measured_rate"], r["linearized_rate"])
    why = ""
    if not err <= RATE_TOL:
        eig = (f"λmin {fmt(res['lam0'][0])} → {fmt(r['lambda_min_HT'])}, ηλmax {fmt(res['lr'] * res['lam0'][-1])} → "
               f"{fmt(res['lr'] * r['lambda_max_HT'])}")
        why = (f"measured {fmt(r['measured_rate'], 4)} vs {fmt(r['linearized_rate'], 4)} for the linearized dynamics on "
               f"H(0) over the same window ({err:.0%} apart in −log rate): over this window the network's curve is not "
               f"its linearized one (it strays from it by a factor up to {fmt(follow_factor(res, m))})")
        near = [log_rate_error(r["measured_rate"], r[k]) for k in ("predicted_rate_H0", "predicted_rate_HT")]
        if max(near) <= RATE_TOL:
            why += (f". The rate it settles into is still ρ: on H(0) {fmt(r['predicted_rate_H0'], 4)} (the dashed bar, "
                    f"the rate as k → ∞) and on H(T) {fmt(r['predicted_rate_HT'], 4)} (◇) are within {max(near):.0%} in "
                    "−log rate of the measured one; what differs is the path through the window")
        else:
            why += (f": the Gram matrix moved during training ({eig}); on the final H(T) the predicted rate is "
                    f"{fmt(r['predicted_rate_HT'], 4)}")
    return claim(cid, statement, holds=err <= RATE_TOL, measured=r["measured_rate"], predicted=r["linearized_rate"],
                 tolerance=tol, why=why)


def _progress_key(steps_to_tol, norms) -> tuple:
    """How far a run got: (0, steps to 10^-4) if it got there, else (1, final relative norm)."""
    if steps_to_tol is not None:
        return (0, float(steps_to_tol))
    rel = np.asarray(norms, dtype=float) / norms[0]
    return (1, float(rel[-1]) if np.isfinite(rel[-1]) else math.inf)


def _clearly_before(a: tuple, b: tuple) -> bool:
    """Is progress a clearly ahead of b (10% fewer steps, or reached where b did not, or a 2x lower final norm)?"""
    if a[0] != b[0]:
        return a[0] < b[0]
    return a[1] * (1.1 if a[0] == 0 else 2.0) <= b[1]


def ranking_claim(res: dict, exp_id: str = "6.1") -> object:
    cid = f"{exp_id}.ranking"
    statement = f"The methods need steps to reach {TOLERANCE:g} of the start in the order their predicted rates give."
    ms = list(res["runs"])
    edge = [m for m in ms if at_edge(res, m)]
    div = [m for m in ms if res["runs"][m]["diverged"]]
    if div:
        return not_applicable(cid, statement, f"{', '.join(LABELS[m] for m in div)} diverged")
    if edge:
        return not_applicable(cid, statement, _edge_text(res, edge[0]) + ": H(0) does not predict its speed")
    pred = {m: _progress_key(res["runs"][m]["steps_to_tol_predicted"], res["runs"][m]["linearized"]) for m in ms}
    meas = {m: _progress_key(res["runs"][m]["steps_to_tol"], res["runs"][m]["norms"]) for m in ms}
    wrong = [(a, b) for a in ms for b in ms if a != b and _clearly_before(pred[a], pred[b]) and not meas[a] < meas[b]]

    def show(k):
        return f"{int(k[1])} steps" if k[0] == 0 else f"not in {res['steps']} steps"

    why = "; ".join(f"{LABELS[a]} was predicted faster than {LABELS[b]} ({show(pred[a])} vs {show(pred[b])}) but took "
                    f"{show(meas[a])} vs {show(meas[b])}" for a, b in wrong)
    return claim(cid, statement, holds=not wrong, tolerance="a pair whose predicted steps "
                 "differ by 10% or more must come in that order", why=why)


def edge_claim(res: dict, exp_id: str = "6.1") -> object:
    cid = f"{exp_id}.edge"
    statement = ("Each method's top Gram eigenvalue ends inside its stability limit; where H(0) put a method past it, "
                 "the eigenvalue fell inside and the method converges at the rate predicted on the final H(T).")
    tol = f"ηλmax(H(T)) below the limit; past it on H(0): the rate within {RATE_TOL:.0%} in −log rate of ρ on H(T)"
    fails, worst_ratio = [], 0.0
    rate_pair = (None, None, -1.0)
    for m, r in res["runs"].items():
        if r["diverged"]:
            fails.append(f"{LABELS[m]} diverged at step {r['diverged_at']}: its top eigenvalue did not fall inside the "
                         "limit in time")
            continue
        top = res["lr"] * r["lambda_max_HT"]
        worst_ratio = max(worst_ratio, top / r["limit"])
        if not top < r["limit"]:
            fails.append(f"{LABELS[m]}: ηλmax(H(T)) = {fmt(top)} is not below its limit {fmt(r['limit'])}")
        elif at_edge(res, m):
            err = log_rate_error(r["measured_rate"], r["predicted_rate_HT"])
            if err > rate_pair[2]:
                rate_pair = (r["measured_rate"], r["predicted_rate_HT"], err)
            if not err <= RATE_TOL:
                fails.append(f"{LABELS[m]}: measured {fmt(r['measured_rate'], 4)} vs {fmt(r['predicted_rate_HT'], 4)} "
                             "predicted on H(T)")
    if rate_pair[0] is not None:  # a method was past its limit on H(0): the rates are what the figure shows
        return claim(cid, statement, holds=not fails, measured=rate_pair[0], predicted=rate_pair[1], tolerance=tol,
                     why="; ".join(fails))
    return claim(cid, statement, holds=not fails, measured=worst_ratio, predicted=1.0,
                 tolerance="ηλmax(H(T)) / limit below 1 for every method", why="; ".join(fails))


def floor_level(res: dict, m: str) -> float | None:
    """The level (relative to ||u(0) - y||) where method m's curve stopped falling at the float32 floor (None if it
    did not): below 10^-4 of the start, it fell less than 10x over the last quarter of the run while its own fitted
    rate would have taken it down 30x or more. The level is the median of its last 20 records."""
    r = res["runs"][m]
    rel = r["norms"] / r["norms"][0]
    steps = np.asarray(r["steps"])
    q_start = int(np.searchsorted(steps, steps[-1] - steps[-1] // 4))  # the last quarter of the run
    span = int(steps[-1] - steps[q_start])
    if r["diverged"] or span < 10 or not np.all(np.isfinite(rel[q_start:])) or not np.isfinite(r["measured_rate"]):
        return None
    late = float(np.median(rel[steps >= steps[-1] - 40]))
    if late < TOLERANCE and min(r["measured_rate"], 1.0) ** span < 0.03 and rel[-1] > 0.1 * rel[q_start]:
        return late
    return None


def follow_factor(res: dict, m: str) -> float:
    """How far the measured curve strays from its dashed prediction down to 10^-4 of the start: the largest
    ratio (either way) of their envelopes (running max over +-15 steps; heavy ball's oscillations would
    otherwise compare phases)."""
    r = res["runs"][m]
    lin = r["linearized"][r["steps"]]
    rel = r["norms"] / r["norms"][0]
    keep = np.isfinite(rel) & (rel >= TOLERANCE)
    a, b = envelope(r["norms"], r["steps"])[keep], envelope(lin, r["steps"])[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.exp(np.nanmax(np.abs(np.log(a / b))))) if keep.any() else float("nan")


def follows_claim(res: dict, exp_id: str = "6.1") -> object:
    cid = f"{exp_id}.follows"
    statement = (f"Each measured curve of a method inside its stability limit on H(0) stays within "
                 f"{FOLLOW_FACTOR - 1:.0%} of its dashed prediction down to {TOLERANCE:g} of its start.")
    tol = f"a factor {FOLLOW_FACTOR} either way (envelopes over ±15 steps)"
    left = {m: (f"diverged at step {r['diverged_at']}" if r["diverged"] else _edge_text(res, m))
            for m, r in res["runs"].items() if r["diverged"] or at_edge(res, m)}
    ms = [m for m in res["runs"] if m not in left]
    if not ms:
        return not_applicable(cid, statement, "no method to compare: " + "; ".join(
            f"{LABELS[m]}: {t}" if t.startswith("diverged") else t for m, t in left.items()))
    if left:  # say which curves the claim leaves out, and why
        tol += "; left out: " + "; ".join(f"{LABELS[m]} ({t})" if t.startswith("diverged") else t
                                          for m, t in left.items())
    factors = {m: follow_factor(res, m) for m in ms}
    worst = max(ms, key=lambda m: factors[m] if np.isfinite(factors[m]) else math.inf)
    f = factors[worst]
    r = res["runs"][worst]
    drift = float(np.nanmax(r["gram_drift"])) if len(r["gram_drift"]) else float("nan")
    why = (f"{LABELS[worst]}'s curve strays by a factor {fmt(f)} from its prediction (meanwhile its Gram matrix moved by "
           f"‖H(k) − H(0)‖ = {fmt(drift)} = {fmt(drift / (res['lambda0_inf'] / 4))} × λ₀/4)")
    return claim(cid, statement, holds=f <= FOLLOW_FACTOR, measured=f, predicted=1.0, tolerance=tol,
                 why="" if f <= FOLLOW_FACTOR else why)


def steps_claim(res: dict, exp_id: str = "6.5") -> object:
    cid = f"{exp_id}.steps"
    statement = (f"The steps each method needs to reach {TOLERANCE:g} of its start are those predicted from H(0) before "
                 f"training (or, as predicted, it does not get there in the run).")
    tol = f"within {STEPS_TOL:.0%}"
    bad, worst = [], (None, None, -1.0)
    for m, r in res["runs"].items():
        if r["diverged"] or at_edge(res, m):
            bad.append(f"{LABELS[m]}: {'diverged' if r['diverged'] else _edge_text(res, m)}")
            continue
        p, s = r["steps_to_tol_predicted"], r["steps_to_tol"]
        if p is None and s is None:
            continue
        if p is None or s is None:
            bad.append(f"{LABELS[m]}: predicted {p if p is not None else 'never'}, measured {s if s is not None else 'never'} "
                       f"(in {res['steps']} steps)")
            continue
        err = abs(s / p - 1)
        if err > worst[2]:
            worst = (s, p, err)
        if err > STEPS_TOL:
            bad.append(f"{LABELS[m]}: {s} steps, predicted {p}")
    if bad and all(("diverged" in b or "stability" in b) for b in bad) and len(bad) == len(res["runs"]):
        return not_applicable(cid, statement, "; ".join(bad))
    return claim(cid, statement, holds=not bad, measured=worst[0], predicted=worst[1], tolerance=tol, why="; ".join(bad))


def claims_61(res: dict) -> list:
    return [*(rate_claim(res, m, "6.1") for m in res["runs"]), ranking_claim(res, "6.1"), edge_claim(res, "6.1"),
            follows_claim(res, "6.1")]


def margin_claim(res: dict, exp_id: str = "6.5") -> object:
    """Lesson 1's margin lambda_0/4 is sufficient, not necessary: every method's Gram matrix moves past it."""
    cid = f"{exp_id}.margin"
    statement = "Every method's Gram matrix moves further than λ₀/4 from H(0) (bottom left)."
    quarter = res["lambda0_inf"] / 4
    drift = {m: float(np.nanmax(r["gram_drift"])) if len(r["gram_drift"]) else float("nan") for m, r in res["runs"].items()}
    div = [m for m, r in res["runs"].items() if r["diverged"]]
    if div:
        return not_applicable(cid, statement, f"{', '.join(LABELS[m] for m in div)} diverged")
    low = min(drift, key=lambda m: drift[m])
    return claim(cid, statement, holds=drift[low] > quarter, measured=drift[low] / quarter, predicted=1.0,
                 tolerance="the smallest largest-drift ‖H(k) − H(0)‖₂ / (λ₀/4) above 1",
                 why=f"{LABELS[low]}'s Gram matrix stays within λ₀/4 of H(0) (largest drift {fmt(drift[low])} vs "
                     f"{fmt(quarter)}): here lesson 1's margin holds")


def claims_65(res: dict) -> list:
    return [*(rate_claim(res, m, "6.5") for m in res["runs"]), steps_claim(res, "6.5"), margin_claim(res, "6.5")]


def numbers(res: dict) -> dict:
    lam0 = res["lam0"]
    out = {"data": res["dataset"], "width m": res["width"], "step η × λmax(H∞)": res["lr_fraction"], "momentum β": res["beta"],
           "λmin, λmax of H(0)": (float(lam0[0]), float(lam0[-1])), "κ of H(0)": float(lam0[-1] / lam0[0]),
           "ηλmax(H(0))": res["lr"] * float(lam0[-1]), "‖H(0) − H∞‖₂": res["gram_init_error"],
           "λ₀/4 (λ₀ = λmin(H∞))": res["lambda0_inf"] / 4}
    for m, r in res["runs"].items():
        L = SHORT[m]
        out[f"{L}: measured rate"] = r["measured_rate"]
        out[f"{L}: linearized on H(0), same window"] = r["linearized_rate"]
        out[f"{L}: ρ on H(0) / H(T) / H∞"] = (r["predicted_rate_H0"], r["predicted_rate_HT"], r["predicted_rate_Hinf"])
        out[f"{L}: steps to {TOLERANCE:g} measured / predicted"] = (
            r["steps_to_tol"] if r["steps_to_tol"] is not None else "never",
            r["steps_to_tol_predicted"] if r["steps_to_tol_predicted"] is not None else "never")
        out[f"{L}: largest ‖H(k) − H(0)‖₂"] = float(np.nanmax(r["gram_drift"])) if len(r["gram_drift"]) else None
        out[f"{L}: ηλmax(H(T)) vs its limit"] = (res["lr"] * r["lambda_max_HT"], r["limit"])
    return out


def headline(res: dict) -> str:
    parts = []
    for m, r in res["runs"].items():
        if r["diverged"]:
            parts.append(f"{LABELS[m]} diverged at step {r['diverged_at']}")
        else:
            s = r["steps_to_tol"]
            parts.append(f"{LABELS[m]} {s if s is not None else 'not'}")
    text = (f"{res['dataset']}, width {res['width']}, η = {fmt(res['lr_fraction'])}/λmax(H∞), β = {fmt(res['beta'])}: "
            f"steps to {TOLERANCE:g} of the start — " + ", ".join(parts))
    edge = [m for m in res["runs"] if at_edge(res, m)]
    if not edge:
        return text
    groups: dict = {}
    for m in edge:
        groups.setdefault(round(res["runs"][m]["limit"], 6), []).append(LABELS[m])
    top = res["lr"] * float(res["lam0"][-1])
    return text + "".join(f"; on H(0), {', '.join(names)} {'is' if len(names) == 1 else 'are'} "
                          f"{'past' if top >= lim else 'at'} the stability limit (ηλmax = {fmt(top)} vs {fmt(lim)})"
                          for lim, names in groups.items())


from .network_views import alt, draw, frames, key_steps, state  # noqa: F401  (the figures of this run)
