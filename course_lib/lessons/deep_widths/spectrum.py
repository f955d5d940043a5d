"""Experiment 5.1: lambda_F at initialization against the width of the last hidden layer.

Left: the three initializations at one depth; right: several depths at one initialization. Each curve is the
mean of ``seeds`` networks (spread shaded), float64; dashed: the large-width limit sqrt(w lambda_min(M_w)),
evaluated at each width (M_w = s_w^2 k(F_{L-2}); Xavier's variance s_w^2 depends on w). No training: no time
control.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import plots
from ..._validate import check_choice, check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, dropdown, integer, select
from ...runtime import float64_device, get_device, to_float64, torch_threads
from .core import (
    DATASETS,
    DEFAULTS,
    INIT_LABELS,
    INITS,
    OTHER_OPTIONS,
    SPECTRUM_WIDTHS,
    correlation,
    degenerate_inputs,
    lambda_F,
    layer_std,
    limit_kernel,
    make_model,
    predicted_correlation,
    predicted_lambda_F,
    problem,
)

DEPTHS = (2, 3, 4, 6)
N_OPTIONS = (16, 32, 64)
LIMIT_TOL = 0.1  # "within 10% of it at the widest width"
CORR_TOL = 0.1  # "tracking the infinite-width map within 0.1"
SCALE_TOL = 1e-3  # "exactly": the weights are drawn in float32 (relative rounding 6e-8), amplified near w = N
SEPARATED = 1e-6  # lambda_min(M) / lambda_max(M) above this: the layers below keep the inputs apart


def _curve(X, N, init, depth, other, widths, seeds, seed, dev):
    vals, floors, std_last = [], [], []
    for w in widths:
        model = make_model(depth, w, other, init)
        p = model.init(X.shape[1], ensemble=seeds, seed=seed, device=dev, dtype=torch.float64)
        v, f = lambda_F(model, p, X)
        vals.append(v)
        floors.append(f)
        std_last.append([layer_std(model, X.shape[1], l) for l in range(1, depth)])
    vals, floors, stds = np.array(vals), np.array(floors), np.array(std_last)
    # M_w = s_w^2 k(F_{L-2}): the layers below the wide one are drawn first, with shapes that do not depend on
    # w, so k(F_{L-2}) is the same at every width; only the wide layer's variance s_w^2 changes (Xavier)
    k = limit_kernel(model, p, X) / stds[-1, -1] ** 2
    ev = np.linalg.eigvalsh(k)
    s2 = stds[:, -1] ** 2
    lam_min, lam_max = s2[:, None] * ev[None, :, 0], s2[:, None] * ev[None, :, -1]
    # degeneracy (M singular) does not depend on the width either: it is decided by the layers below
    why = degenerate_inputs(model, p, X)
    exact = np.array([bool(s) for s in why])
    # "keeps the inputs apart": lambda_min(M) well above rounding; in between (a nearly merged pair) the
    # large-width picture needs widths far beyond those drawn, and the claims say so
    apart = ~exact & (ev[:, 0] > SEPARATED * ev[:, -1])
    lam_for_pred = lam_min[:, apart].mean(axis=1) if apart.any() else np.zeros(len(widths))
    C = correlation(model.features(p, X)).cpu().numpy()  # at the widest width
    off = ~np.eye(N, dtype=bool)
    return {"values": vals, "floors": floors, "lam_min_M": lam_min, "lam_max_M": lam_max, "degenerate": why,
            "exact": exact, "ok": apart, "prediction": predicted_lambda_F(widths, lam_for_pred, N),
            "corr": float(np.mean([c[off].mean() for c in C])), "stds": stds}


def experiment_spectrum(dataset: str = DEFAULTS["dataset"], n: int = DEFAULTS["n"], depth: int = DEFAULTS["depth"],
                        init: str = DEFAULTS["init"], other: int = DEFAULTS["other"], *, widths=SPECTRUM_WIDTHS,
                        depths=DEPTHS, seeds: int = 3, seed: int = 0, device=None, live=None) -> dict:
    """lambda_F at initialization against the last hidden width: (a) the three inits at ``depth``;
    (b) the ``depths`` at ``init``. ``seeds`` networks each; the large-width limit at every width.
    float64 throughout, on ``runtime.float64_device`` (the CPU on Apple's MPS)."""
    init = check_choice("init", init, INITS)
    depth = check_int("depth", depth, min_value=2, max_value=8)
    widths = sorted({check_int("widths", w, min_value=1) for w in widths})
    depths = sorted({check_int("depths", L, min_value=2, max_value=8) for L in depths})
    seeds = check_int("seeds", seeds, min_value=1)
    dev = float64_device(get_device(device))
    X, _ = problem(dataset, n, DEFAULTS["d"], seed, device="cpu")
    X = to_float64(X).to(dev)  # X is on the CPU here; float64 work on float64_device (the CPU on MPS)
    N = X.shape[0]
    with torch_threads():
        by_init = {i: _curve(X, N, i, depth, other, widths, seeds, seed, dev) for i in INITS}
        by_depth = {L: (by_init[init] if L == depth else _curve(X, N, init, L, other, widths, seeds, seed, dev))
                    for L in depths}
        corr_pred = {L: float(predicted_correlation(X, L)[~np.eye(N, dtype=bool)].mean()) for L in depths}
    return {"dataset": dataset, "n": N, "depth": depth, "init": init, "other": other, "widths": widths,
            "by_init": by_init, "by_depth": by_depth, "seeds": seeds, "corr_pred": corr_pred}


# ----------------------------------------------------------------------------------------------
# claims
# ----------------------------------------------------------------------------------------------
def _curves(res):
    yield from ((f"{INIT_LABELS[i].split(' ')[0]}, L = {res['depth']}", c) for i, c in res["by_init"].items())
    yield from ((f"{INIT_LABELS[res['init']].split(' ')[0]}, L = {L}", c) for L, c in res["by_depth"].items()
                if L != res["depth"])


def _ratio_to_limit(res, c):
    """Per width >= N: mean over the non-degenerate seeds of lambda_F / sqrt(w lambda_min(M_w)); NaN below N."""
    w = np.asarray(res["widths"], dtype=float)
    ok = c["ok"]
    out = np.full(len(w), np.nan)
    if not ok.any():
        return out
    lim = np.sqrt(w[:, None] * np.clip(c["lam_min_M"][:, ok], 1e-300, None))
    r = (c["values"][:, ok] / lim).mean(axis=1)
    out[w >= res["n"]] = r[w >= res["n"]]
    return out


def claims(res: dict) -> list:
    N, w = res["n"], np.asarray(res["widths"])
    out = []
    # 1. zero below N
    below = w < N
    worst, where = 0.0, ""
    for name, c in _curves(res):
        if below.any():
            r = (c["values"][below] / c["floors"][below]).max()
            if r > worst:
                worst, where = float(r), name
    out.append(claim(
        "5.1.zero-below-n", "Below w = N every λ_F sits at the float64 floor: F has fewer columns than rows.",
        holds=worst <= 1.0, measured=worst, tolerance="measured: the largest λ_F / float64 floor at w < N; it must be ≤ 1",
        why=f"{where}: a value below N is {worst:.3g} x the float64 floor"))
    # 2. grows beyond N, exactly when the layers below keep the inputs apart
    bad, n_exact, n_near, n_all, which = [], 0, 0, 0, []
    for name, c in _curves(res):
        pos = c["values"] > c["floors"]
        for e in range(len(c["ok"])):
            n_all += 1
            if c["exact"][e]:
                n_exact += 1
                which.append(f"{name} seed {e} ({c['degenerate'][e]})")
                if pos[:, e].any():
                    bad.append(f"{name}, seed {e}: the layers below merge inputs ({c['degenerate'][e]}) yet λ_F > 0")
            elif c["ok"][e]:
                if not pos[-1, e]:
                    bad.append(f"{name}, seed {e}: λ_F = 0 at w = {w[-1]} although λ_min(M) > 0")
            else:
                n_near += 1
        if c["ok"].any():
            k2 = int(np.searchsorted(w, 2 * N))
            m = c["values"][:, c["ok"]].mean(axis=1)
            if k2 < len(w) - 1 and not m[-1] > m[k2]:
                bad.append(f"{name}: the mean λ_F does not rise from w = {w[k2]} to w = {w[-1]}")
    decided = n_all - n_near
    note = (f"{n_exact} of {n_all} networks have an input silenced or two inputs merged by the layers below"
            + (": " + "; ".join(which[:4]) + ("; …" if len(which) > 4 else "") if which else "")
            + (f"; {n_near} nearly merged (λ_min(M) < {SEPARATED:g} λ_max(M)) need far wider layers and are not "
               "counted" if n_near else ""))
    statement = ("Beyond N, λ_F > 0 and grows with w — wherever the layers below keep the inputs apart "
                 "(λ_min(M) > 0); where they silence an input or make two inputs' features parallel, λ_F = 0 at "
                 "every width.")
    if decided == 0:
        out.append(not_applicable("5.1.grows-beyond-n", statement, "every network's layers below nearly merge two "
                                  f"inputs (λ_min(M) < {SEPARATED:g} λ_max(M)): no width drawn here is wide enough"))
    else:
        out.append(claim("5.1.grows-beyond-n", statement, holds=not bad, measured=len(bad),
                         tolerance=f"measured: networks that break it, must be 0 ({note})", why="; ".join(bad[:3])))
    # 3. the large-width limit, approached from below
    lo_end, above, where = np.inf, [], ""
    upto = w <= 8 * N
    for name, c in _curves(res):
        r = _ratio_to_limit(res, c)
        if np.isfinite(r[-1]) and (not np.isfinite(lo_end) or abs(r[-1] - 1) > abs(lo_end - 1)):
            lo_end, where = float(r[-1]), name
        over = np.nanmax(r[upto]) if np.isfinite(r[upto]).any() else np.nan
        if over > 1:
            above.append(f"{name}: {over:.3g} x the limit at w = {w[upto][np.nanargmax(r[upto])]}")
    lo_end = float("nan") if not np.isfinite(lo_end) else lo_end
    out.append(claim(
        "5.1.limit-from-below", f"λ_F rises towards its large-width limit √(w λ_min(M)) (dashed, computed at each "
        f"width) from below: under it up to w = 8N, within {round(LIMIT_TOL * 100)}% of it at the widest width.",
        holds=not above and abs(lo_end - 1) <= LIMIT_TOL, measured=lo_end, predicted=1.0,
        tolerance=f"λ_F / limit ≤ 1 for N ≤ w ≤ 8N, within {LIMIT_TOL} of 1 at w = {w[-1]} (worst curve)",
        why=("; ".join(above) if above else f"{where}: λ_F is {fmt(lo_end)} of the limit at w = {w[-1]}")))
    # 4. the initialization sets the scale only
    ref = res["by_init"]["lecun"]
    dev_max = 0.0
    for i in ("he", "xavier"):
        c = res["by_init"][i]
        scale = np.prod(c["stds"] / ref["stds"], axis=1)  # one number per width (Xavier: depends on w)
        both = (c["values"] > c["floors"]) & (ref["values"] > ref["floors"])
        if both.any():
            rel = np.abs(c["values"] / np.where(both, ref["values"], 1.0) / scale[:, None] - 1)[both]
            dev_max = max(dev_max, float(rel.max()))
    he_scale = float(2 ** ((res["depth"] - 1) / 2))
    out.append(claim(
        "5.1.init-scale", "The initialization only sets the scale: He's λ_F is exactly 2^((L−1)/2) times LeCun's; "
        "Xavier's differs by the ratio of its standard deviations, which shrinks as the wide layer grows.",
        holds=dev_max <= SCALE_TOL, measured=dev_max,
        tolerance=f"measured: the largest relative deviation from the scaled LeCun curve; within {SCALE_TOL:.1%} of the ratio of standard deviations (weights drawn in float32; He/LeCun = "
                  f"{he_scale:.4g} at L = {res['depth']})",
        why=f"λ_F differs from the scaled LeCun curve by {dev_max:.3g} (relative)"))
    # 5. correlations rise with depth, as the arc-cosine map predicts
    Ls = sorted(res["by_depth"])
    meas = np.array([res["by_depth"][L]["corr"] for L in Ls])
    pred = np.array([res["corr_pred"][L] for L in Ls])
    gap = float(np.max(np.abs(meas - pred)))
    rising = bool((np.diff(meas) > 0).all())
    out.append(claim(
        "5.1.depth-correlation", f"Through each ReLU layer the inputs' features grow more alike: their mean "
        f"correlation rises with depth, tracking the infinite-width arc-cosine map within {CORR_TOL}.",
        holds=rising and gap <= CORR_TOL, measured=float(meas[-1]), predicted=float(pred[-1]),
        tolerance=f"rising with depth, |measured − predicted| ≤ {CORR_TOL} at every depth (largest gap {gap:.2g})",
        why=(f"mean correlations {', '.join(f'{m:.3f}' for m in meas)} at depths {Ls}, predicted "
             f"{', '.join(f'{p:.3f}' for p in pred)}")))
    # 6. the deepest network has the smallest lambda_F
    deepest = Ls[-1]
    fail = []
    for k in np.flatnonzero(w >= 2 * N):
        means = {L: res["by_depth"][L]["values"][k].mean() for L in Ls}
        if min(means, key=means.get) != deepest:
            fail.append(int(w[k]))
    m_deep = float(res["by_depth"][deepest]["values"][-1].mean())
    m_next = float(min(res["by_depth"][L]["values"][-1].mean() for L in Ls[:-1]))
    out.append(claim(
        "5.1.depth-lowers", f"So depth lowers λ_F: the deepest network (L = {deepest}) has the smallest λ_F at every "
        "width ≥ 2N.", holds=not fail, measured=m_deep,
        tolerance=f"smallest of the depths at every w ≥ 2N (measured: mean λ_F of L = {deepest} at w = {w[-1]}; the "
                  f"next smallest depth's is {fmt(m_next)})",
        why=f"at w = {fail[:3]} another depth has a smaller mean λ_F"))
    return out


def numbers(res: dict) -> dict:
    out = {"samples N": res["n"], "data": res["dataset"], "other hidden widths": res["other"],
           "widest w": res["widths"][-1]}
    for i, c in res["by_init"].items():
        out[f"λ_F at w = {res['widths'][-1]}, {i}, L = {res['depth']} (mean of seeds)"] = float(c["values"][-1].mean())
        r = _ratio_to_limit(res, c)
        out[f"λ_F / limit at w = {res['widths'][-1]}, {i}"] = float(r[-1])
    for L, c in res["by_depth"].items():
        out[f"mean correlation of the features, L = {L} (predicted)"] = f"{c['corr']:.3f} ({res['corr_pred'][L]:.3f})"
    out["networks whose layers below merge two inputs (λ_min(M) = 0)"] = sum(int(c["exact"].sum()) for _, c in _curves(res))
    out["networks with nearly merged inputs (λ_min(M) < 1e-6 λ_max(M))"] = sum(
        int((~c["exact"] & ~c["ok"]).sum()) for _, c in _curves(res))
    return out


def headline(res: dict) -> str:
    N, w = res["n"], res["widths"]
    c = res["by_init"][res["init"]]
    r = _ratio_to_limit(res, c)[-1]
    deg = [(name, e, why) for name, cc in _curves(res) for e, why in enumerate(cc["degenerate"]) if why]
    n_all = sum(len(cc["ok"]) for _, cc in _curves(res))
    text = (f"N = {N}: below N every λ_F is at the float64 floor; at w = {w[-1]} ({res['init']}, L = {res['depth']}) "
            f"λ_F is {fmt(float(r))} of its large-width limit")
    if deg:
        name, e, why = deg[0]
        text += (f". {len(deg)} of the {n_all} networks drawn have layers below that silence an input or merge two "
                 f"(e.g. {name}, "
                 f"seed {e}: {why}): their λ_F is 0 at every width")
    return text


# ----------------------------------------------------------------------------------------------
# figure
# ----------------------------------------------------------------------------------------------
def _draw_curve(ax, res, c, i, label):
    """The mean over the networks whose layers below keep the inputs apart (all, if none does), their spread, the
    limit (dashed); networks whose layers below merge inputs as crosses on the floor (their lambda_F is 0)."""
    w = np.asarray(res["widths"], dtype=float)
    use = c["ok"] if c["ok"].any() else np.ones(len(c["ok"]), dtype=bool)
    v, fl = c["values"][:, use], c["floors"][:, use]
    col, mk = plots.color(i), plots.marker(i)
    pos = v > fl
    zero = ~pos.any(axis=1)
    with np.errstate(invalid="ignore"):
        mean = np.where(pos, v, 0.0).sum(axis=1) / pos.sum(axis=1)  # the mean of the seeds above the floor
    ax.plot(w[~zero], mean[~zero], "-", marker=mk, color=col, label=label, ms=4)
    some = pos.any(axis=1) & ~pos.all(axis=1)  # some seeds numerically zero (at w = N: a unit silent on every input)
    if some.any():
        ax.plot(w[some], mean[some], linestyle="none", marker=mk, mfc="white", mec=col, ms=4)
    part = zero | some  # numerically zero values: drawn at the float64 floor, open markers
    if part.any():
        ax.plot(w[part], fl[part].max(axis=1),
                linestyle="none", marker=mk, mfc="none", color=col, ms=6)
    spread = (v > fl).all(axis=1)  # the seeds' spread, where every seed is above the floor
    ax.fill_between(w[spread], v[spread].min(axis=1), v[spread].max(axis=1), color=col, alpha=0.15, lw=0)
    keep = (w >= res["n"]) & (c["prediction"] > 0)
    ax.plot(w[keep], c["prediction"][keep], color=col, linestyle="--", lw=1.2)
    for e in np.flatnonzero(c["exact"]):
        ax.plot(w[w >= res["n"]], c["floors"][w >= res["n"], e], linestyle="none", marker="x", color=col, ms=5)
    return bool(c["exact"].any())


DEPTH_COLORS = (3, 4, 5, 6)  # vermillion, reddish purple, sky blue, yellow (the last only when 4 are needed)


def draw_spectrum(res: dict, spec: dict | None = None):
    fig, (a1, a2) = plots.new_figure(2, width=5.0, height=4.2)
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.2, top=0.89, wspace=0.22)
    N = res["n"]
    merged = False
    for k, (i, c) in enumerate(res["by_init"].items()):
        merged |= _draw_curve(a1, res, c, k, INIT_LABELS[i])
    spare = iter(DEPTH_COLORS)
    for L, c in res["by_depth"].items():
        # the curve both panels share (the left depth at the right init) keeps its left colour
        col = INITS.index(res["init"]) if L == res["depth"] else next(spare)
        merged |= _draw_curve(a2, res, c, col, f"depth L = {L}" + (" (also left)" if L == res["depth"] else ""))
    curves = list(res["by_init"].values()) + list(res["by_depth"].values())
    floor_hi = max(float(c["floors"].max()) for c in curves)
    floor_lo = min(float(c["floors"].min()) for c in curves)
    top = max(float(np.nanmax(np.r_[c["values"].max(), c["prediction"].max()])) for c in curves)
    what = (f"N = {N} {'points on the sphere' if res['dataset'] == 'sphere' else 'digit images'}, "
            f"other widths {res['other']}, {res['seeds']} seeds per width")
    name = INIT_LABELS[res["init"]].split(" ")[0]
    for ax, title in ((a1, f"three initializations, depth L = {res['depth']}"), (a2, f"{name} init, several depths")):
        ax.set(xscale="log", yscale="log", ylim=(floor_lo / 5, top * 30),
               xlim=(res["widths"][0] / 1.3, res["widths"][-1] * 1.3))
        ax.axvline(N, color="grey", lw=1)
        ax.text(N * 1.05, 0.03, f"w = N = {N}", transform=ax.get_xaxis_transform(), va="bottom", fontsize=8,
                color="dimgrey")
        ax.axhspan(floor_lo / 5, floor_hi * 1.5, color="grey", alpha=0.12)
        ax.set(xlabel="width of the last hidden layer $w = n_{L-1}$", ylabel="$\\lambda_F = \\sigma_{\\min}(F_{L-1})$ at init",
               title=f"{title}\n{what}")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    # what the symbols mean, once for both panels, below them (never over the data)
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], marker="o", mfc="none", color="grey", linestyle="none",
                   label="numerically 0 (below the float64 floor, shaded)"),
            Line2D([], [], color="grey", linestyle="--", lw=1.2, label="large-width limit √(w·λ_min(M)) at each width"),
            Line2D([], [], color="grey", marker="o", ms=4, label="measured: mean of the seeds above the floor (spread shaded)")]
    if any(((c["values"] > c["floors"]).any(axis=1) & ~(c["values"] > c["floors"]).all(axis=1)).any() for c in curves):
        keys.append(Line2D([], [], color="grey", marker="o", mfc="white", ms=4, linestyle="none",
                           label="white: some seeds numerically 0 (open marker on the floor), the mean of the others"))
    if merged:
        keys.append(Line2D([], [], marker="x", color="grey", linestyle="none",
                           label="a network whose layers below merge inputs: λ_F = 0 at every width"))
    fig.legend(handles=keys, loc="lower center", ncol=2, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return plots.fast_log_axes(fig)


def alt(res: dict) -> str:
    return (f"Two log-log panels of λ_F at initialization against the last hidden width (N = {res['n']}): left, LeCun, "
            f"He and Xavier at depth {res['depth']}; right, depths {sorted(res['by_depth'])} with {res['init']} init; "
            "dashed, the large-width limit at each width.")


def _run(dataset, n, depth, init, other, live=None):
    return experiment_spectrum(dataset, n, depth, init, other, live=live)


EXPERIMENT = Experiment(
    id="5.1", title="λ_F against the width of the last hidden layer", run=_run, draw=draw_spectrum, claims=claims,
    controls={"depth": integer("depth L (left)", DEFAULTS["depth"], 2, 6),
              "init": dropdown("init (right)", DEFAULTS["init"], INITS),
              "n": select("samples N", DEFAULTS["n"], N_OPTIONS),
              "other": select("other widths", DEFAULTS["other"], OTHER_OPTIONS),
              "dataset": dropdown("data", DEFAULTS["dataset"], DATASETS)},
    numbers=numbers, headline=headline, alt=alt,
    reproduce={"sphere": {}, "digits": {"dataset": "digits"}, "he": {"init": "he"}},
)


def spectrum_dashboard(dataset: str = DEFAULTS["dataset"], **overrides):
    """Controls: depth (left panel), init (right panel), N, the other widths, data set."""
    return EXPERIMENT.dashboard(dataset=dataset, **overrides)
