"""Experiment 6.3: the gradient correction, seen on a 2-D quadratic.

f(x) = (x1^2 + x2^2 / kappa) / 2: a stiff direction (lambda = 1) and a flat one (lambda = 1/kappa), the two
ends of a Gram spectrum, with the same eta and beta for GD, heavy ball and Nesterov. The iterates are
computed with each method's own update rule (:func:`.core.quadratic_paths`); the dashed envelopes are each
mode's root modulus rho^k from the characteristic polynomial (:func:`course_lib.theory.mode_rate`).
"""
from __future__ import annotations

import numpy as np

from ... import plots, theory
from ..._validate import check_float, check_int
from ...claims import claim, fmt, log_rate_error, not_applicable
from .core import (
    COLORS,
    LABELS,
    MARKERS,
    METHODS,
    momentum_of,
    peak_rate,
    quadratic_paths,
    stability_limit,
)

DEFAULTS = dict(lr_fraction=0.9, beta=0.8, kappa=25.0, steps=60)
FLAT_TOL = 0.05  # the flat coordinate: within 5% in -log rate (fewer periods in 60 steps than the stiff one)
MODE_TOL = 0.02  # a simulated mode decays at its root modulus: within 2% in -log rate (the envelope fit)
START = (1.0, 1.0)
BOX = 1.6  # the plane drawn: [-1.6, 1.6]^2


def experiment_quadratic(lr_fraction: float = DEFAULTS["lr_fraction"], beta: float = DEFAULTS["beta"],
                         kappa: float = DEFAULTS["kappa"], steps: int = DEFAULTS["steps"], start=START,
                         live=None) -> dict:
    """GD, HB and NAG on f(x) = (L x1^2 + mu x2^2) / 2 with L = 1 (stiff) and mu = 1/kappa (flat)."""
    lr_fraction = check_float("lr_fraction", lr_fraction, min_value=0.0, max_value=4.0, min_inclusive=False)
    beta = check_float("beta", beta, min_value=0.0, max_value=1.0, max_inclusive=False)
    kappa = check_float("kappa", kappa, min_value=1.0)
    steps = check_int("steps", steps, min_value=1)
    lam = np.array([1.0, 1.0 / kappa])
    lr = lr_fraction / lam[0]
    paths = quadratic_paths(lam, lr, beta, steps, start)
    rates = {m: {"stiff": float(theory.mode_rate(lam[:1], lr, momentum_of(m, beta), m)[0]),
                 "flat": float(theory.mode_rate(lam[1:], lr, momentum_of(m, beta), m)[0])} for m in METHODS}
    measured = {m: {"stiff": peak_rate(paths[m][:, 0]), "flat": peak_rate(paths[m][:, 1])} for m in METHODS}
    return {"traj": paths, "lam": lam, "lr": lr, "lr_fraction": lr_fraction, "beta": beta, "kappa": kappa,
            "rates": rates, "measured": measured, "steps": steps,
            "limits": {m: stability_limit(m, momentum_of(m, beta)) for m in METHODS}}


def _mode_claim(res: dict, m: str, cid: str, statement: str):
    pred, meas = res["rates"][m]["stiff"], res["measured"][m]["stiff"]
    tol = f"within {MODE_TOL:.0%} in −log rate (a fit through the peaks of |x₁|)"
    if abs(pred - 1) < 0.01:
        return not_applicable(cid, statement, f"the stiff mode's root modulus is {fmt(pred, 4)}: at the edge of "
                              "stability it neither shrinks nor grows measurably", measured=meas, predicted=pred)
    if not np.isfinite(meas):
        return not_applicable(cid, statement, f"{LABELS[m]}'s stiff coordinate left the float range", predicted=pred)
    err = log_rate_error(meas, pred)
    return claim(cid, statement, holds=err <= MODE_TOL, measured=meas, predicted=pred, tolerance=tol)


def claims(res: dict) -> list:
    hb = _mode_claim(res, "hb", "6.3.hb-stiff", "Heavy ball's stiff coordinate changes per step by its root modulus: "
                     "√β while the roots are complex.")
    nag = _mode_claim(res, "nag", "6.3.nag-stiff", "Nesterov's stiff coordinate changes per step by its root modulus: "
                      "√(β(1−ηλ)) while the roots are complex, damped by the gradient correction (1−ηλ).")
    # stability: a stiff coordinate grows exactly past the method's limit
    eta = res["lr"] * res["lam"][0]
    rows, bad = [], []
    for m in ("hb", "nag"):
        x = np.abs(res["traj"][m][:, 0])
        grows = bool(not np.isfinite(x[-1]) or x[-1] > x[0])
        past = eta >= res["limits"][m]
        rows.append((m, grows, past))
        if grows != past:
            bad.append(f"{LABELS[m]}: ηλ = {fmt(eta)} {'≥' if past else '<'} its limit {fmt(res['limits'][m])} but its "
                       f"stiff coordinate {'grows' if grows else 'shrinks'}")
    statement = ("A stiff coordinate grows exactly when ηλ is past the method's limit: NAG's 2(1+β)/(1+2β), "
                 "heavy ball's 2(1+β).")
    edge = [m for m in ("hb", "nag") if abs(res["rates"][m]["stiff"] - 1) < 0.01]
    if edge:
        stab = not_applicable("6.3.stability", statement, f"{LABELS[edge[0]]}'s stiff mode has root modulus "
                              f"{fmt(res['rates'][edge[0]]['stiff'], 4)}: at its edge")
    else:
        stab = claim("6.3.stability", statement, holds=not bad, measured=eta, predicted=res["limits"]["nag"],
                     tolerance="grows ⇔ ηλ ≥ limit, for both methods", why="; ".join(bad))
    return [hb, nag, flat_claim(res), stab]


def _flat_roots(res: dict, m: str) -> np.ndarray:
    """The two roots of method m's characteristic polynomial on the flat mode (GD: one root, twice)."""
    el = res["lr"] * res["lam"][1]
    b = momentum_of(m, res["beta"])
    if m == "nag":
        return np.roots([1.0, -(1 + b) * (1 - el), b * (1 - el)])
    return np.roots([1.0, -(1 + b - el), b])


def flat_rate(res: dict, m: str) -> tuple[float, str]:
    """The flat coordinate's measured per-step rate, and how it was fitted: through the peaks of |x₂| when the
    roots are complex (an oscillation), the log-slope over the second half of the run when they are real (two
    geometric sequences; by then the slower dominates). NaN with a reason where neither fits in the run."""
    x = np.abs(res["traj"][m][:, 1])
    z = _flat_roots(res, m)
    if np.iscomplexobj(z) and abs(z[0].imag) > 1e-12:
        theta = abs(np.angle(z[0]))
        if np.pi / theta > res["steps"] / 2.5:  # |x2| peaks twice a period: 2.5 swings at least
            return float("nan"), (f"its flat mode oscillates with a period of {2 * np.pi / theta:.0f} steps: fewer than "
                                  f"2.5 swings in {res['steps']} steps, too few to fit its modulus")
        return peak_rate(x), "peaks"
    k = np.arange(len(x))
    half = (k >= len(x) // 2) & np.isfinite(x) & (x > 1e-250)
    if half.sum() < 3:
        return float("nan"), "its flat coordinate left the float range"
    return float(np.exp(np.polyfit(k[half], np.log(x[half]), 1)[0])), "slope"


def _swings(res: dict, m: str) -> float:
    """How many half-periods of the flat mode's oscillation the run holds."""
    return res["steps"] * abs(float(np.angle(_flat_roots(res, m)[0]))) / np.pi


def flat_claim(res: dict):
    cid = "6.3.flat"
    statement = ("Each method's flat coordinate falls at the slope of its dashed ρᵏ (its root modulus); with real roots "
                 "ρᵏ gives the slope, not a bound.")
    tol = (f"within {FLAT_TOL:.0%} in −log rate (complex roots: a fit through the peaks of |x₂|; real roots: the slope "
           "over the second half of the run)")
    why, worst = [], (None, None, -1.0)
    for m in METHODS:
        pred = res["rates"][m]["flat"]
        meas, how = flat_rate(res, m)
        if abs(pred - 1) < 1e-3:
            return not_applicable(cid, statement, f"{LABELS[m]}'s flat root modulus is {fmt(pred, 4)}: it neither shrinks "
                                  f"nor grows measurably in {res['steps']} steps", tolerance=tol)
        if not np.isfinite(meas):
            return not_applicable(cid, statement, f"{LABELS[m]}: {how}", tolerance=tol)
        err = log_rate_error(meas, pred)
        if err > worst[2]:
            worst = (meas, pred, err)
        if err > FLAT_TOL:
            z = np.abs(_flat_roots(res, m))
            why.append(f"{LABELS[m]}'s flat coordinate falls at {fmt(meas, 4)} per step vs {fmt(pred, 4)} predicted "
                       f"({err:.0%} apart in −log rate)" + (
                           f": its two real roots ({fmt(z.min(), 3)}, {fmt(z.max(), 3)}) are still mixed after "
                           f"{res['steps']} steps" if how == "slope" else
                           f": {res['steps']} steps hold only {_swings(res, m):.1f} swings of |x₂| to fit its decay through"))
    return claim(cid, statement, holds=not why, measured=worst[0], predicted=worst[1], tolerance=tol, why="; ".join(why))


def numbers(res: dict) -> dict:
    out = {"η (λ_stiff = 1)": res["lr"], "β": res["beta"], "κ": res["kappa"],
           "limits: GD, HB, NAG": (res["limits"]["gd"], res["limits"]["hb"], res["limits"]["nag"])}
    for m in METHODS:
        r, s = res["rates"][m], res["measured"][m]
        out[f"{LABELS[m]}: stiff root modulus, measured"] = (r["stiff"], s["stiff"])
        out[f"{LABELS[m]}: flat root modulus, measured"] = (r["flat"], s["flat"])
    return out


def headline(res: dict) -> str:
    parts = [f"{LABELS[m]} stiff {fmt(r['stiff'], 3)}, flat {fmt(r['flat'], 3)}" for m, r in res["rates"].items()]
    return (f"η = {fmt(res['lr_fraction'])}, β = {fmt(res['beta'])}, κ = {fmt(res['kappa'])}: per-step root modulus — "
            + "; ".join(parts))


def _title(ax, text):
    ax.set_title(text, y=1.01, fontsize=9)


def draw(res: dict):
    from matplotlib.lines import Line2D

    fig, axes = plots.new_figure(2, width=4.6, height=3.6)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.24, top=0.87, wspace=0.28)
    k = np.arange(res["steps"] + 1)
    for ax, j, name in ((axes[0], 0, "stiff direction x₁ (λ = 1)"), (axes[1], 1, f"flat direction x₂ (λ = 1/{fmt(res['kappa'])})")):
        lows = []
        for m in METHODS:
            p = res["traj"][m][:, j]
            s, v = plots.finite_part(k, np.abs(p))
            ax.plot(s, v, color=COLORS[m], lw=1.4, marker=MARKERS[m], ms=3, markevery=max(1, len(s) // 12))
            rho = res["rates"][m]["stiff" if j == 0 else "flat"]
            with np.errstate(over="ignore", under="ignore"):
                env = abs(START[j]) * np.maximum(rho, 1e-300) ** k
            s2, v2 = plots.finite_part(k, env)
            ax.plot(s2, v2, color=COLORS[m], lw=1.0, ls="--")
            lows.extend(v[v > 0].tolist())
        lo = max(1e-30, min(lows) if lows else 1e-30)
        hi = max(lows + [1.0]) if lows else 1.0
        ax.set(yscale="log", ylim=(lo / 3, min(hi, 1e6) * 5), xlim=(0, res["steps"]), xlabel="step k", ylabel="|coordinate|")
        _title(ax, name)
        plots.time_axis(ax)
    handles = [Line2D([], [], color=COLORS[m], marker=MARKERS[m], ms=4, label=LABELS[m]) for m in METHODS]
    handles.append(Line2D([], [], color="black", ls="--", lw=1, label="ρᵏ, ρ the mode's root modulus: its slope "
                          "(not a bound)"))
    fig.legend(handles=handles, fontsize=7.5, loc="lower center", ncol=4, frameon=False)
    fig.suptitle(f"f(x) = (x₁² + x₂²/κ)/2 with η = {fmt(res['lr_fraction'])} (λ_stiff = 1), β = {fmt(res['beta'])}, κ = "
                 f"{fmt(res['kappa'])}: each coordinate against the step", fontsize=9, y=0.995)
    return plots.fast_log_axes(fig)


def state(ax, res: dict):
    """The iterates of GD, heavy ball and Nesterov in the plane up to step k (trails), on the level sets of f."""
    lam = res["lam"]
    g = np.linspace(-BOX, BOX, 60)
    G1, G2 = np.meshgrid(g, g)
    ax.contour(G1, G2, 0.5 * (lam[0] * G1**2 + lam[1] * G2**2), levels=10, colors="lightgrey", linewidths=0.7)
    arts = {}
    for m in METHODS:
        p = np.array(res["traj"][m], dtype=float)
        out = ~np.all(np.isfinite(p) & (np.abs(p) <= BOX), axis=1)
        if out.any():  # the trail stops where the iterate leaves the plot (it is not drawn back across the plane)
            p[int(np.argmax(out)):] = np.nan
        trail, = ax.plot([], [], color=COLORS[m], lw=1.0, marker=MARKERS[m], ms=2.5)
        head = ax.scatter([p[0, 0]], [p[0, 1]], s=60, color=COLORS[m], marker=MARKERS[m], edgecolors="black",
                          zorder=4, label=LABELS[m])
        arts[m] = (p, trail, head)
    ax.plot([0], [0], marker="+", color="black", ms=10)
    ax.set(xlim=(-BOX, BOX), ylim=(-BOX, BOX), xlabel="stiff x₁ (λ = 1)",
           ylabel=f"flat x₂ (λ = 1/{fmt(res['kappa'])})", aspect="equal")
    ax.legend(fontsize=7, loc="lower left")
    note = ax.text(0.98, 0.98, "", transform=ax.transAxes, ha="right", va="top", fontsize=7, color="crimson")

    def update(k: int):
        out, away = [], []
        for m, (p, trail, head) in arts.items():
            kk = min(k, len(p) - 1)
            trail.set_data(p[: kk + 1, 0], p[: kk + 1, 1])
            head.set_offsets(p[kk: kk + 1])
            if not np.all(np.abs(p[kk]) <= BOX):
                away.append(LABELS[m])
            out += [trail, head]
        note.set_text(f"{', '.join(away)}: outside the plot" if away else "")
        return out + [note]

    return update


def frames(res: dict) -> list[int]:
    return list(range(res["steps"] + 1))


def key_steps(res: dict) -> list[int]:
    s = res["steps"]
    return sorted({0, min(5, s), min(15, s), s})


def alt(res: dict) -> str:
    return (f"The stiff and the flat coordinate of GD, heavy ball and Nesterov on a 2-D quadratic (η = "
            f"{fmt(res['lr_fraction'])}, β = {fmt(res['beta'])}, κ = {fmt(res['kappa'])}) against the step, with each "
            "mode's predicted envelope ρᵏ.")
