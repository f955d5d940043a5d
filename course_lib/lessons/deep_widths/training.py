"""Experiment 5.2: gradient descent on all layers; sigma_min of the last hidden features against lambda_F / 2.

``ensemble`` networks (seeds) trained by full-batch GD, step eta = fraction x 2 / beta per network (beta =
lambda_max of its NTK at initialization). Recorded at log-spaced steps: the loss, the N singular values of
F_{L-1}(k) (the state panel) and the extreme eigenvalues of the NTK (how far the network leaves the kernel
regime). Drawn against this run's own predictions: the kernel regime's (the linearized dynamics of each
network's NTK(0) and its own u(0) - y, dashed) and the guarantee L(0)(1 - eta lambda_F^2 / 4)^k (dotted: a
worst case, valid while sigma_min >= lambda_F / 2 and eta <= 1/beta(k), beta(k) = lambda_max(NTK(k)) tracked at
the recorded steps: the step is set from beta(0), and beta(k) grows as all layers move, so the second premise
ends at a step the run measures).
"""
from __future__ import annotations

import numpy as np
import torch

from ... import plots, theory
from ..._validate import check_choice, check_float, check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import (
    Experiment,
    dropdown,
    integer,
    log_frames,
    log_record_steps,
    real,
    select,
)
from ...runtime import get_device, scaled_steps, to_float64, torch_threads
from ...train import train
from .core import (
    DATASETS,
    DEFAULTS,
    INITS,
    LOSS_FLOOR,
    LR_FRACTION,
    OTHER_OPTIONS,
    WIDE_OPTIONS,
    dead_units,
    guarantee,
    silenced_inputs,
    silenced_text,
    lambda_F,
    make_model,
    ntk_blocks,
    ntk_extremes,
    problem,
    singular_values,
)

STEP_OPTIONS = (100, 200, 400)
FALL = 1e-2  # "falls by more than 100x"
STUCK = 0.5  # a seed whose loss fell by less than 2x is stuck


def _metrics(model, X):
    def sv(p, ctx):
        return torch.from_numpy(singular_values(model.features(p, X)))

    def ntk(p, ctx):
        ex = ntk_extremes(ntk_blocks(model, p, X))
        return torch.from_numpy(np.stack([ex["lam_min"], ex["beta"]], axis=1))

    def silent(p, ctx):  # inputs whose last hidden features are all zero (silenced: their output is stuck at 0)
        return (model.features(p, X).amax(dim=-1) <= 0).sum(-1).to(torch.float32)

    return {"sv": sv, "ntk": ntk, "silent": silent}


def experiment(dataset: str = DEFAULTS["dataset"], wide: int = DEFAULTS["wide"], depth: int = DEFAULTS["depth"],
               init: str = DEFAULTS["init"], *, n: int = DEFAULTS["n"], d: int = DEFAULTS["d"],
               other: int = DEFAULTS["other"], lr_fraction: float | None = None, steps: int = DEFAULTS["steps"],
               seed: int = DEFAULTS["seed"], ensemble: int = DEFAULTS["ensemble"], device=None, live=None) -> dict:
    """Train ``ensemble`` networks (seeds) by full-batch GD on all layers; record the loss, the singular values
    of F_{L-1} and the NTK's extreme eigenvalues at log-spaced steps. Step eta = lr_fraction x 2 / beta per
    network (``lr_fraction=None``: the data set's default, 0.25 on the sphere, 0.1 on the digits)."""
    dataset = check_choice("dataset", dataset, DATASETS)
    lr_fraction = LR_FRACTION[dataset] if lr_fraction is None else lr_fraction
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=2.0, min_inclusive=False)
    steps = scaled_steps(check_int("steps", steps, min_value=1))
    ensemble = check_int("ensemble", ensemble, min_value=1, max_value=16)
    device = get_device(device)
    X, y = problem(dataset, n, d, seed, device=device)
    model = make_model(depth, wide, other, init)
    with torch_threads():
        params = model.init(X.shape[1], ensemble=ensemble, seed=seed, device=device)
        lam0, floor0 = lambda_F(model, params, X)
        blocks0 = ntk_blocks(model, params, X)
        ex0 = ntk_extremes(blocks0)
        beta = ex0["beta"]
        lrs = lr_fraction * 2.0 / beta
        callback = None
        if live is not None:
            callback = lambda hist, step: live({"partial": True, "history": hist, "wide": wide, "n": X.shape[0],
                                                "depth": depth, "init": init, "dataset": dataset, "steps": steps,
                                                "lr_fraction": lr_fraction, "lambda_F": lam0, "floor": floor0})
        record = log_record_steps(steps, 60)
        h = train(model, params, X, y, steps=steps, lr=lrs.tolist(), metrics=_metrics(model, X), record_steps=record,
                  callback=callback, progress=False, lr_limit=float(2.0 / beta[0]))
        # this run's kernel-regime prediction: each network's own NTK(0) and its own u(0) - y
        r0 = to_float64(model.apply(params, X) - y).cpu()
        pred = []
        for e in range(ensemble):
            _, _, coef = theory.linearized_modes(blocks0[e].sum(0), r0[e], float(lrs[e]), steps)
            pred.append(0.5 * (coef**2).sum(1))
        dead0 = dead_units(model, params, X)
        dead = dead_units(model, h.params, X)
        silenced = silenced_inputs(model, h.params, X)
    guar = [guarantee(float(h["loss"][0, e]), float(lrs[e]), float(lam0[e]), steps) for e in range(ensemble)]
    return {"partial": False, "history": h, "dataset": dataset, "wide": wide, "depth": depth, "init": init,
            "n": X.shape[0], "other": other, "lrs": lrs.tolist(), "lr_fraction": lr_fraction, "steps": steps,
            "beta": beta, "lambda_F": lam0, "floor": floor0, "guarantee": guar, "prediction": np.array(pred),
            "ntk0": ex0, "dead0": dead0, "dead": dead, "silenced": silenced, "y": y.cpu().numpy(), "frames": record}


# ----------------------------------------------------------------------------------------------
# what the run shows
# ----------------------------------------------------------------------------------------------
def _alive(res) -> np.ndarray:
    return res["history"].diverged_at < 0


def has_bar(res) -> np.ndarray:
    """Per network: lambda_F above the float64 floor (the proof has a bar to keep)."""
    return np.asarray(res["lambda_F"]) > np.asarray(res["floor"])


def sigma_ratio(res) -> np.ndarray:
    """sigma_min(F_{L-1}(k)) / lambda_F, shape (records, E) (NaN where lambda_F = 0)."""
    s = res["history"]["sv"][:, :, -1]
    lam = np.asarray(res["lambda_F"])
    return s / np.where(has_bar(res), lam, np.nan)[None, :]


def step_times_beta(res) -> np.ndarray:
    """eta x beta(k) per recorded step and seed, beta(k) = lambda_max(NTK(k)): the guarantee needs it <= 1, the
    linearized dynamics are stable below 2."""
    return np.asarray(res["lrs"])[None, :] * res["history"]["ntk"][:, :, 1]


def step_premise_end(res) -> np.ndarray:
    """Per seed, the index of the last recorded step up to which eta beta(j) <= 1 at every recorded j (-1: not even
    at k = 0)."""
    ok = step_times_beta(res) <= 1.0
    bad = ~ok
    first_bad = np.where(bad.any(0), bad.argmax(0), ok.shape[0])
    return first_bad - 1


def seed_story(res, e: int) -> str:
    """Why seed e did not fall by 100x, in the learner's words."""
    h = res["history"]
    if h.diverged_at[e] >= 0:
        return f"seed {e} diverged at step {h.diverged_at[e]} (η is {res['lr_fraction']} x 2/β: too large for it)"
    r = float(h["loss"][-1, e] / h["loss"][0, e])
    s_end = float(h["sv"][-1, e, -1])
    sil = res.get("silenced", [[]] * (e + 1))[e]
    if sil:  # an input whose features are all zero: its output is stuck at 0 (the real cause, whatever else died)
        text = f"seed {e} " + ("is stuck" if r > STUCK else "is held") + f" at {r:.2g} of its start: "
        return text + silenced_text(sil, res.get("y"))
    if r > STUCK and res["dead"][e] > 0:
        return (f"seed {e} is stuck at {r:.2g} of its start: {res['dead'][e]} of {res['wide']} ReLUs of the last "
                f"hidden layer died (silent on every input) and σ_min fell to {s_end:.1g}")
    if r > STUCK:
        return f"seed {e} is stuck at {r:.2g} of its start (σ_min = {s_end:.2g})"
    slow = f"seed {e} is still falling but slowly ({r:.2g} of its start after {h.steps[-1]} steps)"
    if res["wide"] >= 4 * res["n"]:
        return (slow + f": η = {res['lr_fraction']} x 2/β with β = {res['beta'][e]:.3g}, and β grows with the width "
                "(experiment 5.3)")
    if res["wide"] < res["n"]:
        return slow + ": with w < N the lower layers must do the fitting"
    return slow + ": a longer run goes further"


def claims(res: dict) -> list:
    h = res["history"]
    alive = _alive(res)
    bar = has_bar(res)
    out = []
    # 1. the proof's invariant
    st1 = "σ_min(F_{L−1}) stays above λ_F/2 all along: the proof's invariant holds."
    ratio = sigma_ratio(res)
    if not bar.any():
        out.append(not_applicable("5.2.sigma-stays", st1, f"w = {res['wide']} < N = {res['n']}: λ_F = 0, so there is no "
                                  "bar to keep (the proof does not apply)" if res["wide"] < res["n"] else
                                  "λ_F is numerically 0 for every seed: the proof has no bar to keep"))
        worst = float("nan")
    else:
        use = bar & alive
        worst = float(np.nanmin(ratio[:, use])) if use.any() else float("nan")
        if not use.any():
            out.append(not_applicable("5.2.sigma-stays", st1, "every seed with λ_F > 0 diverged"))
        else:
            e = int(np.flatnonzero(use)[np.nanargmin(np.nanmin(ratio[:, use], axis=0))])
            k = int(h.steps[np.nanargmin(ratio[:, e])])
            sil = res.get("silenced", [[]] * len(bar))[e]
            n_sil = int(h["silent"][np.nanargmin(ratio[:, e]), e]) if "silent" in h.metrics else 0
            live = res["wide"] - int(res["dead"][e])
            cause = (f" (at that step {n_sil} input(s) had all last-hidden features zero: a zero row of F)" if n_sil else
                     f" ({silenced_text(sil)})" if sil and worst <= 1e-6 else
                     f" ({res['dead'][e]} of {res['wide']} last-layer ReLUs died, leaving {live} < N)"
                     if res["dead"][e] and live < res["n"] else
                     f" ({res['dead'][e]} of {res['wide']} last-layer ReLUs died, but {live} ≥ N live ones remain)"
                     if res["dead"][e] else "")
            low = [f"seed {j}: {fmt(float(np.nanmin(ratio[:, j])), 2)}" for j in np.flatnonzero(use)
                   if np.nanmin(ratio[:, j]) < 0.5]
            out.append(claim("5.2.sigma-stays", st1, holds=worst >= 0.5, measured=worst,
                             tolerance="min over steps and seeds of σ_min(k)/λ_F ≥ 0.5 (the bar)",
                             why=f"below the bar: {', '.join(low)}; the lowest, seed {e}, at step {k}" + cause))
    # 2. under the guarantee
    st2 = ("While both premises of the guarantee hold — σ_min ≥ λ_F/2 and η·β(k) ≤ 1, β(k) = λ_max(NTK(k)) — the "
           "loss stays under the guarantee L(0)(1 − ηλ_F²/4)^k (dotted, a worst case).")
    if out[0].verdict != "holds":
        out.append(not_applicable("5.2.under-guarantee", st2, "the guarantee's premise σ_min ≥ λ_F/2 does not hold "
                                  "here (see 5.2.sigma-stays)"))
    elif res["lr_fraction"] > 0.5:
        out.append(not_applicable("5.2.under-guarantee", st2, f"η = {res['lr_fraction']} x 2/β(0) is above 1/β(0): the "
                                  "premise η·β(k) ≤ 1 fails from the first step"))
    else:
        G = np.array([g[h.steps] for g in res["guarantee"]]).T  # (records, E)
        L = h["loss"]
        use = bar & alive
        end_i = step_premise_end(res)
        eb = step_times_beta(res)
        rows = np.arange(len(h.steps))[:, None]
        window = (rows <= end_i[None, :]) & (rows >= 1) & use[None, :]  # k = 0: L = guarantee by construction
        ratio_g = L / G
        worst_in = float(np.max(ratio_g[window])) if window.any() else float("nan")
        over = bool((ratio_g[window] > 1 + 1e-6).any())
        upto = ", ".join(f"{h.steps[end_i[e]]}" if end_i[e] < len(h.steps) - 1 else f"{h.steps[-1]} (the end)"
                         for e in np.flatnonzero(use))
        ends = ", ".join(f"{eb[-1, e]:.2f}" for e in np.flatnonzero(use))
        past = (rows > end_i[None, :]) & use[None, :]
        beyond = float(np.max(ratio_g[past])) if past.any() else float("nan")
        if not window.any():
            out.append(not_applicable("5.2.under-guarantee", st2, "η·β(k) > 1 already at the first recorded steps (β(k) "
                                      "grew at once): the guarantee's step premise never holds here"))
            return out + _rest(res, h, alive, bar)
        out.append(claim("5.2.under-guarantee", st2, holds=not over, measured=worst_in,
                         tolerance=(f"L(k) ≤ guarantee(k) at every recorded step while η·β(k) ≤ 1: up to step {upto} per "
                                    f"seed (measured: the largest L(k)/guarantee(k) there; η·β(T) = {ends}: beyond, the "
                                    f"derivation no longer covers the run" + (f"; there L/guarantee ≤ {fmt(beyond, 2)})" if past.any() else ")")),
                         why="the loss rose above the guarantee while both premises held"))
    return out + _rest(res, h, alive, bar)


def _rest(res, h, alive, bar) -> list:
    out = []
    # 3. faster than the kernel regime: the NTK moves
    st3 = ("The loss falls faster than the kernel-regime prediction from NTK(0) (dashed): all layers move and the "
           "NTK's smallest eigenvalue grows.")
    stuck = [e for e in range(len(alive)) if alive[e] and h["loss"][-1, e] / h["loss"][0, e] > STUCK]
    if not alive.all():
        out.append(not_applicable("5.2.beats-kernel", st3, seed_story(res, int(np.argmin(alive)))))
    elif res["lr_fraction"] >= 1.0:
        out.append(not_applicable("5.2.beats-kernel", st3, f"η = {res['lr_fraction']} x 2/β is at or past the kernel "
                                  "regime's stability edge 2/β: the linearized dynamics would not converge at all"))
    else:
        P = res["prediction"][:, h.steps[-1]]
        L = h["loss"][-1]
        lmin = h["ntk"][:, :, 0]
        grew = lmin[-1] > lmin[0]
        floor = 1e-12 * h["loss"][0]  # float32 training floors near 1e-13 of the start
        faster = (L < P) | ((L <= floor) & (P <= floor))
        e = int(np.argmax(L / P))
        rel = np.clip(lmin[-1], 0.0, None) / lmin[0]
        fine = lmin[0] > 1e-9 * h["ntk"][0, :, 1]
        grow_txt = (f"λ_min(NTK) grew {fmt(float(rel[fine].min()))}–{fmt(float(rel[fine].max()))}x" if fine.any()
                    else "λ_min(NTK(0)) is 0 (an input silenced at the start)")
        why = (seed_story(res, stuck[0]) if stuck else
               f"seed {e}: final loss {L[e]:.3g} vs kernel prediction {P[e]:.3g}" if not faster.all() else
               f"λ_min(NTK) did not grow for seed {int(np.argmin(grew))}")
        out.append(claim("5.2.beats-kernel", st3, holds=bool(faster.all() and grew.all()),
                         measured=float(np.max(L / P)),
                         tolerance=f"L(T) below the prediction for every seed (worst L(T)/prediction shown); {grow_txt}",
                         why=why))
    # 4. the loss falls by 100x for every seed (dead ReLUs, divergence and slowness said)
    st4 = f"Every seed's loss falls by more than {round(1 / FALL)}× within the run."
    r = h["loss"][-1] / h["loss"][0]
    bad = [e for e in range(len(r)) if not (alive[e] and r[e] <= FALL)]
    worst_r = float(np.nanmax(np.where(alive, r, np.inf)))
    out.append(claim("5.2.converges", st4, holds=not bad, measured=worst_r,
                     tolerance=f"L(T)/L(0) ≤ {FALL:g} for every seed (worst seed shown)",
                     why="; ".join(seed_story(res, e) for e in bad)))
    return out


def _nanmin(v) -> float | None:
    v = np.asarray(v, dtype=float)
    return float(np.nanmin(v)) if np.isfinite(v).any() else None


def numbers(res: dict) -> dict:
    h = res["history"]
    lam = np.asarray(res["lambda_F"])
    r = h["loss"][-1] / h["loss"][0]
    out = {"data": res["dataset"], "samples N": res["n"], "wide layer w": res["wide"], "depth L": res["depth"],
           "init": res["init"], "steps": int(h.steps[-1]), "η × β / 2": res["lr_fraction"],
           "β = λ_max(NTK(0)) per seed": [float(b) for b in res["beta"]],
           "λ_F per seed (0: below the float64 floor)": [float(v) if b else 0.0 for v, b in zip(lam, has_bar(res))],
           "min σ_min(k) / λ_F per seed (– where λ_F = 0)": [_nanmin(v) for v in sigma_ratio(res).T],
           "L(T) / L(0) per seed": [float(v) for v in r],
           "kernel prediction L(T) / L(0) per seed": (
               [float(res["prediction"][e, h.steps[-1]] / res["prediction"][e, 0]) for e in range(len(r))]
               if res["lr_fraction"] < 1.0 else "– (η ≥ 2/β(0): the linearized dynamics diverge)"),
           "λ_F² / β(0) per seed": [float(v) for v in lam**2 / np.asarray(res["beta"])],
           "guarantee's per-step factor 1 − ηλ_F²/4 per seed": [float(1 - lr * v**2 / 4) for lr, v in zip(res["lrs"], lam)],
           "η·β(k): at k = 0, largest, at the end, per seed": "; ".join(
               f"{a:.2f}, {b:.2f}, {c:.2f}" for a, b, c in zip(*(lambda eb: (eb[0], np.nanmax(eb, 0), eb[-1]))(
                   step_times_beta(res)))),
           "η·β(k) ≤ 1 (the guarantee's step premise) up to step, per seed": [
               int(h.steps[i]) if i >= 0 else None for i in step_premise_end(res)],
           "λ_min(NTK(T)) / λ_min(NTK(0)) per seed": [float(v) for v in h["ntk"][-1, :, 0] / h["ntk"][0, :, 0]],
           "dead last-layer ReLUs at the end (at init)": ", ".join(f"{a} ({b})" for a, b in zip(res["dead"], res["dead0"])),
           "inputs silenced at the end (all features zero)": "; ".join(
               f"seed {e}: " + (", ".join(f"input {i} at layer {l}" for i, l in sil) or "none")
               for e, sil in enumerate(res.get("silenced", []))),
           "diverged": h.diverged}
    return out


def headline(res: dict) -> str:
    h = res["history"]
    alive = _alive(res)
    r = h["loss"][-1] / h["loss"][0]
    parts = []
    for e in range(len(r)):
        if not alive[e]:
            parts.append(f"seed {e} diverged")
        elif r[e] > STUCK:
            sil = res.get("silenced", [[]] * len(r))[e]
            parts.append(f"seed {e} stuck at {r[e]:.2g} of its start" +
                         (f" (input {sil[0][0]} silenced)" if sil else
                          f" ({res['dead'][e]} ReLUs died)" if res["dead"][e] else ""))
        else:
            parts.append(f"seed {e}: loss fell {1 / r[e]:.3g}×")
    bar = "λ_F = 0 (w < N)" if not has_bar(res).any() else "min σ_min/λ_F = " + fmt(_nanmin(sigma_ratio(res)))
    return f"w = {res['wide']}, N = {res['n']}, {h.steps[-1]} steps: " + "; ".join(parts) + f"; {bar}"


# ----------------------------------------------------------------------------------------------
# figure and state panel
# ----------------------------------------------------------------------------------------------
def _title(res) -> str:
    data = "sphere" if res["dataset"] == "sphere" else "digits"
    other = f", other widths {res['other']}" if res["depth"] > 2 else ""
    return (f"w = {res['wide']}, N = {res['n']} ({data}), L = {res['depth']}{other}, {res['init']}, "
            f"η = {res['lr_fraction']:g}·2/β(0)")


def draw(res: dict, spec: dict | None = None):
    fig, (a1, a2, a3) = plots.new_figure(3, width=4.3, height=3.6)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.14, top=0.83, wspace=0.3)
    h = res["history"]
    E = h["loss"].shape[1]
    partial = res.get("partial", False)
    for e in range(E):
        s, v = plots.finite_part(h.steps, h["loss"][:, e])
        a1.plot(s, v, color=plots.color(e), marker=plots.marker(e), ms=3, markevery=max(1, len(s) // 8),
                label=f"seed {e}")
    lam, fl = np.asarray(res["lambda_F"]), np.asarray(res["floor"])
    kernel_ok = res["lr_fraction"] < 1.0  # at eta >= 2/beta(0) the linearized dynamics diverge: not drawn
    if not partial:
        k = np.arange(res["steps"] + 1)
        ends = step_premise_end(res)
        drawn = False
        for e in range(E):
            if kernel_ok:
                a1.plot(*plots.finite_part(k, res["prediction"][e]), color=plots.color(e), linestyle="--", lw=1.2)
            if lam[e] > fl[e] and ends[e] >= 0:  # the guarantee while eta beta(k) <= 1, faint beyond
                kk = int(h.steps[ends[e]])
                a1.plot(*plots.finite_part(k[:kk + 1], res["guarantee"][e][:kk + 1]), color=plots.color(e),
                        linestyle=":", lw=1.6)
                if kk < res["steps"]:
                    a1.plot(*plots.finite_part(k[kk:], res["guarantee"][e][kk:]), color=plots.color(e),
                            linestyle=":", lw=0.8, alpha=0.4)
                drawn = True
        if kernel_ok:
            a1.plot([], [], color="black", linestyle="--", label="kernel regime: NTK(0), linearized")
        else:
            a1.text(0.98, 0.97, "kernel regime not drawn:\nη ≥ 2/β(0), it diverges", transform=a1.transAxes,
                    ha="right", va="top", fontsize=7, color="dimgrey")
        if drawn:
            a1.plot([], [], color="black", linestyle=":", label="guarantee L(0)(1−ηλ_F²/4)^k (worst case;\n"
                    "faint where η·β(k) > 1)")
    a1.set_yscale("log")
    lo = np.nanmin(np.where(h["loss"] > 0, h["loss"], np.nan))
    a1.set_ylim(max(lo / 10, 1e-16), np.nanmax(h["loss"]) * 30)
    floor = LOSS_FLOOR * float(np.nanmax(h["loss"][0]))
    if lo / 10 < floor:
        a1.axhspan(max(lo / 10, 1e-16), floor, color="grey", alpha=0.12, label="float32 floor (shaded)")
    plots.mark_divergence(a1, h)
    a1.set(xlabel="GD step k", ylabel="training loss ½‖u − y‖²", title="loss: measured (solid) vs predictions")
    a1.legend(fontsize=6.5, loc="lower left", framealpha=0.9)
    plots.time_axis(a1)
    # sigma_min along training
    bar = has_bar(res)
    if bar.any():
        ratio = sigma_ratio(res)
        for e in range(E):
            if bar[e]:
                a2.plot(h.steps, ratio[:, e], color=plots.color(e), marker=plots.marker(e), ms=3,
                        markevery=max(1, len(h.steps) // 8), label=f"seed {e}")
        for e in np.flatnonzero(~bar):
            a2.plot([], [], color=plots.color(e), marker=plots.marker(e), label=f"seed {e}: λ_F = 0, not drawn")
        a2.axhline(0.5, **plots.THEORY_STYLE, label="λ_F/2: the proof's bar")
        top = np.nanmax(ratio)
        a2.set(ylim=(0, max(1.2, top) * 1.6), ylabel="$\\sigma_{\\min}(F_{L-1}(k))\\,/\\,\\lambda_F$")  # headroom: legend
    else:
        for e in range(E):
            a2.plot(h.steps, h["sv"][:, e, -1], color=plots.color(e), marker=plots.marker(e), ms=3,
                    markevery=max(1, len(h.steps) // 8), label=f"seed {e}")
        a2.set(ylim=(0, max(1e-3, float(np.nanmax(h["sv"][:, :, -1]))) * 1.6), ylabel="$\\sigma_{\\min}(F_{L-1}(k))$")
        a2.text(0.5, 0.55, f"w = {res['wide']} < N = {res['n']}: λ_F = 0,\nno bar to keep: the proof does not apply"
                if res["wide"] < res["n"] else "λ_F = 0: no bar to keep", transform=a2.transAxes, ha="center",
                va="center", color="#D55E00", fontsize=8)
    a2.set(xlabel="GD step k", title="smallest singular value of the last hidden features")
    a2.legend(fontsize=6.5, loc="upper right", framealpha=0.9)
    plots.time_axis(a2)
    # the NTK moves
    nt = h["ntk"]
    rel = nt / nt[:1]
    for e in range(E):
        a3.plot(h.steps, rel[:, e, 0], color=plots.color(e), marker=plots.marker(e), ms=3,
                markevery=max(1, len(h.steps) // 8))
        a3.plot(h.steps, rel[:, e, 1], color=plots.color(e), lw=0.8, alpha=0.7)
    a3.plot([], [], color="grey", marker="o", ms=3, label="λ_min (with markers; colour = seed)")
    a3.plot([], [], color="grey", lw=0.8, label="λ_max = β(k) (thin)")
    a3.axhline(1.0, color="grey", lw=0.8, linestyle="-")
    f = res["lr_fraction"]  # eta = f 2 / beta(0), so eta beta(k) = 2 f beta(k)/beta(0): one line for all seeds
    a3.axhline(1 / (2 * f), color="black", lw=1.0, linestyle="-.", label="β(k) at which η·β(k) = 1 (the guarantee's premise)")
    a3.axhline(1 / f, color="black", lw=1.0, linestyle=(0, (1, 1)), label="β(k) at which η·β(k) = 2 (stability edge)")
    a3.set_yscale("log")
    good = rel[np.isfinite(rel) & (rel > 0)]
    lo_rel = max(float(good.min()) if good.size else 1.0, 0.05)
    hi_rel = max(float(good.max()) if good.size else 1.0, 1.0, 1 / f)
    a3.set_ylim(min(lo_rel, 1.0, 1 / (2 * f)) / 4, hi_rel * 12)  # headroom above: the legend
    dips = bool((rel[np.isfinite(rel)] < 0.05).any())
    if dips:
        a3.text(0.98, 0.03, "λ_min(NTK) dips below the axis (to 0:\nan input's features were silenced)",
                ha="right", transform=a3.transAxes, fontsize=7, color="#D55E00")
    a3.set(xlabel="GD step k", ylabel="eigenvalue of NTK(k) / at k = 0", title="how far the NTK moves")
    a3.legend(fontsize=6, loc="upper left", framealpha=0.9)
    plots.time_axis(a3)
    fig.suptitle(_title(res), fontsize=10, y=0.985)
    return plots.fast_log_axes(fig)


def state(ax, res: dict):
    """The N singular values of F_{L-1}(k), largest first, for every seed: divided by lambda_F (the proof's bar
    lambda_F/2 is then one line for all seeds), or absolute where lambda_F = 0."""
    h = res["history"]
    sv = h["sv"]  # (records, E, N)
    E, N = sv.shape[1], sv.shape[2]
    bar = has_bar(res)
    norm = bar.all()
    scale = np.where(norm, np.asarray(res["lambda_F"]), 1.0)
    vals = sv / scale[None, :, None]
    finite = vals[np.isfinite(vals) & (vals > 0)]
    lo = max(float(finite.min()) / 3 if finite.size else 1e-8, 1e-8)
    if norm:  # the bar at 1/2 visible, a decade below it for the legend; under 1e-3 lambda_F is drawn on the edge
        lo = min(max(lo, 1e-3), 0.05)
    hi = float(finite.max()) * (30 if norm else 1e3) if finite.size else 1.0  # headroom: the text
    edges = np.arange(N + 1) + 0.5
    arts = [ax.stairs(np.full(N, lo), edges, baseline=None, color=plots.color(e), lw=1.6, label=f"seed {e}")
            for e in range(E)]
    if norm:
        ax.axhline(0.5, **plots.THEORY_STYLE, label="λ_F/2: the proof's bar")
        ax.axhline(1.0, color="grey", lw=0.8, linestyle="-", label="λ_F = σ_min at k = 0")
        ylabel, note = "$\\sigma_i(F_{L-1}(k))\\,/\\,\\lambda_F$", ""
    else:
        ylabel = "$\\sigma_i(F_{L-1}(k))$"
        lam = np.asarray(res["lambda_F"])
        for e in np.flatnonzero(bar):  # the bar of each seed that has one, in its colour, at the right end
            ax.hlines(lam[e] / 2, N - 5.5, N + 0.5, colors=plots.color(e), linestyles="--", lw=1.2)
        none = [str(e) for e in range(E) if not bar[e]]
        note = ("λ_F = 0 (w < N): no bar to keep\n" if res["wide"] < res["n"] else
                f"seed {', '.join(none)}: λ_F = 0, no bar\ndashed: the others' λ_F/2\n")
        floor = float(np.sqrt(N * np.finfo(float).eps) * np.nanmax(sv[:, :, 0]))
        if floor > lo:
            ax.axhspan(lo, floor, color="grey", alpha=0.12)
    ax.set(yscale="log", ylim=(lo, hi), xlim=(0.5, N + 0.5), xlabel="i (largest first; σ_min = σ_N on the right)",
           ylabel=ylabel)
    ax.legend(fontsize=6, loc="lower left", framealpha=0.9, ncol=2 if norm else 1)
    if norm and (np.nan_to_num(vals, nan=np.inf) < lo).any():
        note = f"under {fmt(lo)}: drawn on the bottom edge\n" + note
    data = "sphere" if res["dataset"] == "sphere" else "digits"
    note = f"w = {res['wide']}, N = {N} ({data}), L = {res['depth']}, η = {res['lr_fraction']:g}·2/β(0)\n" + note
    text = ax.text(0.03, 0.97, "", transform=ax.transAxes, fontsize=7, va="top")
    markers = [ax.plot([N], [lo], linestyle="none", marker=plots.marker(e), color=plots.color(e), ms=6)[0]
               for e in range(E)]

    def update(k: int):
        i = int(np.searchsorted(h.steps, k))
        i = min(i, len(h.steps) - 1)
        for e in range(E):
            v = np.nan_to_num(vals[i, e], nan=lo)
            arts[e].set_data(np.maximum(v, lo))
            markers[e].set_data([N], [max(float(v[-1]), lo)])
        loss = h["loss"][i] / h["loss"][0]
        mins = ", ".join(fmt(float(v), 2) for v in vals[i, :, -1])
        text.set_text(note + f"σ_min{'/λ_F' if norm else ''} = {mins}\nL(k)/L(0) = " + ", ".join(fmt(float(v), 2) for v in loss))
        return [*arts, *markers, text]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], 50)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    T = fr[-1]
    return sorted({0, min(fr, key=lambda k: abs(k - 10)), min(fr, key=lambda k: abs(k - T // 4)), T})


def alt(res: dict) -> str:
    return (f"Three panels for w = {res['wide']}, N = {res['n']}: the training loss of {len(res['lrs'])} seeds against "
            "the kernel-regime prediction (dashed) and the guarantee (dotted); σ_min of the last hidden features "
            "divided by λ_F against the bar 1/2; the NTK's extreme eigenvalues relative to their start.")


def _run(dataset, wide, depth, init, other, lr_fraction, steps, live=None):
    return experiment(dataset, wide, depth, init, other=other, lr_fraction=lr_fraction, steps=steps, live=live)


EXPERIMENT = Experiment(
    id="5.2", title="gradient descent on all layers", run=_run, draw=draw, claims=claims,
    controls={"wide": select("wide layer width w", DEFAULTS["wide"], WIDE_OPTIONS),
              "depth": integer("depth L", DEFAULTS["depth"], 2, 5),
              "init": dropdown("init", DEFAULTS["init"], INITS),
              "lr_fraction": real("η × β / 2", LR_FRACTION["sphere"], 0.05, 1.5, 0.05),
              "steps": select("steps", DEFAULTS["steps"], STEP_OPTIONS),
              "other": select("other widths", DEFAULTS["other"], OTHER_OPTIONS)},
    fixed={"dataset": DEFAULTS["dataset"]},
    numbers=numbers, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    floors={},
    reproduce={"w64": {}, "w16": {"wide": 16}, "w512": {"wide": 512},
               "digits_w64": {"dataset": "digits", "lr_fraction": 0.1}},
    paper={"two_layer_N2": {"depth": 2, "wide": 1024}},
    paper_note=("The experiments are the course's own. The course's analogue of its quadratic case: a two-layer ReLU net, "
                "both layers trained, LeCun init, at the width N² = 1024 for N = 32 (the order with constant 1)."),
)


def dashboard(dataset: str = DEFAULTS["dataset"], **overrides):
    """Controls: width of the wide (last hidden) layer, depth, init, step size, steps, other widths. On the digits
    the step starts at 0.1 x 2/beta (larger ones diverge for some seeds)."""
    overrides.setdefault("lr_fraction", LR_FRACTION[check_choice("dataset", dataset, DATASETS)])
    return EXPERIMENT.dashboard(dataset=dataset, **overrides)
