"""Experiment 4.4: training speed, each network against its own linearized dynamics.

The course's setting (kernel regime by construction). n = 8 unit points spanning a d'-dimensional subspace
of R^10, labels +-1, one two-layer net per activation, first layer trained by full-batch GD on
(1/2)||u - y||^2 with the same step for all, eta = 1 / max_phi lambda_max(G^inf_phi) (every mode then
decays monotonically, by 1 - eta lambda_i per step). Two changes to the standard network keep it in the
kernel regime whatever its width:

* an antisymmetric start: neuron r + m/2 copies neuron r's weights with the opposite output sign, so
  u(0) = 0 exactly (and the initial residual is -y, the same for every activation);
* an output scale alpha: f = (alpha / sqrt m) sum_r a_r phi(w_r . x), trained with step eta / alpha^2.
  The function-space dynamics are those of the alpha = 1 network (its Gram matrix is alpha^2 G, the step
  eta / alpha^2), but the weights move alpha times less, so the Gram matrix moves alpha times less
  (for ReLU: fewer activation patterns flip). alpha = 1 is the standard scale.

The networks train in float64 (they are tiny): the rounding floor of the loss is far below every curve
except where the prediction itself falls below it (drawn dotted, estimated from the step's resolution).

Prediction (dashed): this network's own linearized dynamics, r(k) = (I - eta G(0))^k r(0), G(0) its Gram
matrix at initialization (divided by alpha^2); dotted: the same with G^inf. What breaks it is measured:
the drift ||G(k) - G(0)||_2 against lambda_T / 4, lambda_T = 1 / (eta T) the smallest eigenvalue whose
mode a run of T steps fits (Weyl: the fitted modes' rates then move by under 25%).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ... import data, kernels, plots, theory
from ..._validate import check_int
from ...claims import claim, fmt, not_applicable
from ...experiment import Experiment, integer, log_frames, log_record_steps, multi, select
from ...models import TwoLayer
from ...runtime import float64_device, get_device, make_generator, scaled_steps
from ...train import History, train
from .core import ACTIVATIONS, check_acts, floor_of, gram_matrix, spectrum, style

f64 = torch.float64
TRAIN_ACTS = ("relu", "elu", "tanh", "swish")
ALPHAS = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (64, 128, 256, 512, 1024, 2048)  # wider runs take over a second: not offered
STEPS = (50, 100, 200, 400)
N_POINTS, DIM = 8, 10
OVERLAY_FACTOR = 1.2  # "within 20%"
RANK_MARGIN = 1.5  # pairs whose G^inf predictions differ by more than 1.5x must keep their order
MODE_SHARE = 0.05  # modes carrying at least 5% of ||y|| (in norm) count in the "which modes are fit" claim
FIT_LEFT = math.exp(-1)  # a mode is "fit" once less than 1/e of its label component is left
FRAMES = 30  # log-spaced records: the loss curve's points and the time slider's frames


def _antisymmetric(params: dict, alpha: float) -> dict:
    """Neuron r + m/2 copies neuron r with the opposite output sign (u(0) = 0); output weights times alpha."""
    W, a = params["W"].clone(), params["a"].clone()
    h = W.shape[1] // 2
    W[:, h:] = W[:, :h]
    a[:, h:] = -a[:, :h]
    return {"W": W, "a": a * alpha}


class StackedTwoLayer:
    """E two-layer nets trained together, net e with activation ``activations[e]``: the same model as
    :class:`course_lib.models.TwoLayer` (first layer trained, square loss (1/2)||u - y||^2), batched over the
    activations so that one ``train`` call runs them all (a TwoLayer holds a single activation). The tests check
    its loss and gradient against TwoLayer's, net by net."""

    names = ("W", "a")
    trainable = ("W",)
    loss_kind = "half_sum"

    def __init__(self, width: int, activations: Sequence[str]):
        self.width = check_int("width", width, min_value=1)
        self.nets = [TwoLayer(width, a) for a in activations]

    def _phi(self, pre: torch.Tensor, derivative: bool = False) -> torch.Tensor:
        fns = [(net.activation.dphi if derivative else net.activation.phi) for net in self.nets]
        return torch.stack([f(pre[e]) for e, f in enumerate(fns)])

    def apply(self, params, X) -> torch.Tensor:
        X = X.to(params["W"])
        pre = torch.matmul(X, params["W"].transpose(1, 2))  # (E, n, m)
        return torch.matmul(self._phi(pre), params["a"].unsqueeze(-1)).squeeze(-1) / math.sqrt(self.width)

    def loss_and_grad(self, params, X, y):
        W, a = params["W"], params["a"]
        X = X.to(W)
        scale = 1.0 / math.sqrt(self.width)
        pre = torch.matmul(W, X.T)  # (E, m, n)
        u = torch.matmul(a.unsqueeze(1), self._phi(pre)).squeeze(1) * scale  # (E, n)
        r = u - y
        coef = self._phi(pre, derivative=True) * r.unsqueeze(1)  # phi'(w_r . x_i) r_i
        grad = torch.matmul(coef, X) * (a * scale).unsqueeze(-1)  # dL/dw_r = (a_r / sqrt m) sum_i r_i phi' x_i
        return 0.5 * (r * r).sum(1), {"W": grad}, u

    def member(self, params, e: int) -> tuple[TwoLayer, dict]:
        """Net e as a TwoLayer and its parameters (for course_lib.kernels.empirical_gram)."""
        return self.nets[e], {k: v[e:e + 1] for k, v in params.items()}


def _snapshot(params, ctx):
    """Metric: the first-layer weights at a record (every record is a time-slider frame); the Gram matrices,
    residuals and flipped patterns at the frames are computed from them afterwards, in one batched call."""
    return params["W"].detach().clone()


def _replay(model, hist, alpha: float, X: torch.Tensor, y: torch.Tensor, G0: torch.Tensor) -> None:
    """From the recorded weights: G(k) = H(k) / alpha^2 (records, 1, n, n), its spectrum and drift ||G(k) - G(0)||_2,
    the residual u(k) - y and the fraction of pre-activations whose sign changed since the start (ReLU's
    activation patterns), stored as metrics of ``hist`` (the weights themselves are dropped)."""
    W = torch.as_tensor(hist.metrics.pop("W")[:, 0], dtype=f64, device=X.device)  # (frames, m, d)
    a = hist.params0["a"].to(f64).expand(W.shape[0], -1)
    frames = {"W": W, "a": a}
    Gk = (kernels.empirical_gram(model, frames, X) / alpha**2).cpu().numpy()
    hist.metrics["gram"] = Gk[:, None]
    hist.metrics["gram_eigs"] = np.linalg.eigvalsh(0.5 * (Gk + np.swapaxes(Gk, 1, 2)))[:, None]
    hist.metrics["drift"] = np.linalg.norm(Gk - G0.numpy()[None], ord=2, axis=(1, 2))[:, None]
    with torch.no_grad():
        hist.metrics["residual"] = (model.apply(frames, X) - y).cpu().numpy()[:, None]
        signs = model.preactivations(frames, X) >= 0  # (frames, n, m)
    hist.metrics["flips"] = (signs != signs[:1]).to(f64).mean(dim=(1, 2)).cpu().numpy()[:, None]


def training_experiment(activations: Sequence[str] = TRAIN_ACTS, d_sub: int = 2, width: int = 512,
                        alpha: float = 4096, steps: int = 200, seed: int = 0, n: int = N_POINTS, d: int = DIM,
                        lr_fraction: float = 0.5, device=None, live=None) -> dict:
    """Train one two-layer net per activation (antisymmetric start, output scale ``alpha``, first layer, full
    batch GD, step lr_fraction x 2 / max_a lambda_max(G^inf_a) / alpha^2, float64) on n points of a
    d'-dim subspace with random +-1 labels; linearized predictions from each net's G(0) and from G^inf."""
    acts = check_acts(activations)
    n = check_int("n", n, min_value=2, max_value=200)
    d = check_int("d", d, min_value=2, max_value=256)
    d_sub = check_int("d_sub", d_sub, min_value=2, max_value=d)
    width = check_int("width", width, min_value=2, max_value=65536)
    if width % 2:
        raise ValueError(f"width must be even (neurons come in antisymmetric pairs); got {width}")
    if not (isinstance(alpha, (int, float)) and 1 <= alpha <= 1e6):
        raise ValueError(f"alpha must be a number in [1, 1e6]; got {alpha!r}")
    alpha = float(alpha)
    if not 0 < lr_fraction < 1:
        raise ValueError(f"lr_fraction must be in (0, 1) (a fraction of the stability limit 2/lambda_max); got {lr_fraction}")
    steps = scaled_steps(check_int("steps", steps, min_value=1, max_value=100_000))
    seed = check_int("seed", seed, min_value=0)
    dev = float64_device(get_device(device))  # float64 where the device has it, else the CPU
    X = data.subspace_data(n, d, d_sub, seed=seed, dtype=f64, device="cpu")
    y = torch.randint(0, 2, (n,), generator=make_generator(10_000 + seed)).to(f64) * 2 - 1
    grams = {a: gram_matrix(X, a) for a in acts}
    eigs = {a: spectrum(G) for a, G in grams.items()}
    lr = lr_fraction * 2.0 / max(float(e[-1]) for e in eigs.values())
    frames = set(log_record_steps(steps, FRAMES))
    record = sorted(frames)  # log-spaced: the fast start and the slow end both get records
    Xd, yd = X.to(dev), y.to(dev)
    res = {"kind": "training", "partial": True, "acts": acts, "n": n, "d": d, "d_sub": d_sub, "width": width,
           "alpha": alpha, "steps": steps, "seed": seed, "lr": lr, "lambda_T": 1.0 / (lr * steps),
           "eigs_inf": eigs, "frames": sorted(frames), "y": y.numpy(), "history": {}, "G0": {}, "lam0": {},
           "V0": {}, "prediction": {}, "prediction_inf": {}, "pred_coef": {}, "u0": {}}
    # the loss cannot be set finer than about eps x alpha sqrt(m) / eta per point: the step's resolution in
    # float64 (the course's estimate; measured floors sit 10-1000x below it)
    res["floor"] = 0.5 * n * (np.finfo(np.float64).eps * alpha * math.sqrt(width) / lr) ** 2
    # one initialization (seed) for every activation, trained together
    base = _antisymmetric(TwoLayer(width).init(d, seed=seed, device=dev, dtype=f64), alpha)
    params = {k: v.expand(len(acts), *v.shape[1:]).clone() for k, v in base.items()}
    model = StackedTwoLayer(width, acts)
    G0s = [kernels.empirical_gram(*model.member(params, e), Xd)[0].cpu() / alpha**2 for e in range(len(acts))]
    u0s = model.apply(params, Xd).cpu()
    hist = train(model, params, Xd, yd, steps=steps, lr=lr / alpha**2, record_steps=record, progress=False,
                 metrics={"W": _snapshot})
    W = hist.metrics.pop("W")
    for e, a in enumerate(acts):
        net, _ = model.member(params, e)
        h = History(steps=hist.steps, metrics={k: v[:, e:e + 1] for k, v in hist.metrics.items()},
                    params={k: v[e:e + 1] for k, v in hist.params.items()},
                    params0={k: v[e:e + 1] for k, v in hist.params0.items()},
                    diverged_at=hist.diverged_at[e:e + 1], message=hist.message, config=dict(hist.config))
        h.metrics["W"] = W[:, e:e + 1]
        _replay(net, h, alpha, Xd, yd, G0s[e])
        r0 = u0s[e] - y
        lam0, V0, coef = theory.linearized_modes(G0s[e], r0, lr, steps)
        _, _, coef_inf = theory.linearized_modes(grams[a], r0, lr, steps)
        res["history"][a] = h
        res["G0"][a], res["lam0"][a], res["V0"][a], res["pred_coef"][a] = G0s[e].numpy(), lam0, V0, coef
        res["prediction"][a] = 0.5 * (coef**2).sum(1)
        res["prediction_inf"][a] = 0.5 * (coef_inf**2).sum(1)
        res["u0"][a] = u0s[e].numpy()
    res["partial"] = False
    return res


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def _frames_of(h, name: str):
    """(steps, values) of a frame-only metric (the records where it is finite)."""
    v = h[name][:, 0]
    keep = np.isfinite(v if v.ndim == 1 else v[:, 0])
    return h.steps[keep], v[keep]


def overlay_factor(res: dict, a: str) -> tuple[float, int]:
    """max over recorded steps of max(L/P, P/L), L the measured loss, P the G(0) prediction, where both are
    at least 100x above the rounding floor; and the step where it is reached."""
    h = res["history"][a]
    L, P = h["loss"][:, 0], res["prediction"][a][h.steps]
    ok = (L > 100 * res["floor"]) & (P > 100 * res["floor"])
    if not ok.any():
        return 1.0, 0
    f = np.maximum(L[ok] / P[ok], P[ok] / L[ok])
    j = int(np.argmax(f))
    return float(f[j]), int(h.steps[ok][j])


def max_drift(res: dict, a: str) -> float:
    return float(np.nanmax(res["history"][a]["drift"][:, 0]))


def mode_fit_state(res: dict, a: str):
    """At each frame k: the share of each G(0) mode's label component still left, |v_i . r(k)| / |v_i . r(0)|
    (rows: frames, columns: modes, slowest first), and which modes carry enough label to count."""
    h = res["history"][a]
    V = res["V0"][a]
    c0 = V.T @ (res["u0"][a] - res["y"])
    idx = np.searchsorted(h.steps, res["frames"])
    ck = h["residual"][idx, 0] @ V
    left = np.abs(ck) / np.maximum(np.abs(c0), 1e-300)
    counts = np.abs(c0) >= MODE_SHARE * np.linalg.norm(res["y"])
    return left, counts


def mode_violations(res: dict, a: str) -> tuple[int, int]:
    """Violations of "modes with lambda_i > 2/(eta k) are fit, modes with lambda_i < 1/(2 eta k) are not",
    over the frames k >= 1 and the modes that carry label; and the number of such checks."""
    left, counts = mode_fit_state(res, a)
    lam = res["lam0"][a]
    bad = total = 0
    for row, k in zip(left, res["frames"]):
        if k == 0:
            continue
        fast = (lam > 2 / (res["lr"] * k)) & counts
        slow = (lam < 1 / (2 * res["lr"] * k)) & counts
        bad += int(np.sum(row[fast] >= FIT_LEFT) + np.sum(row[slow] < FIT_LEFT))
        total += int(fast.sum() + slow.sum())
    return bad, total


def _final(res, a):
    return float(res["history"][a]["loss"][-1, 0])


def claims(res: dict) -> list:
    acts = res["acts"]
    lam_T = res["lambda_T"]
    out = []
    # 1. each loss on its own linearized prediction
    facts = {a: overlay_factor(res, a) for a in acts}
    worst = max(acts, key=lambda a: facts[a][0])
    ok = all(f <= OVERLAY_FACTOR for f, _ in facts.values())
    why = ""
    if not ok:
        f, k = facts[worst]
        fl = np.nanmax(res["history"][worst]["flips"][:, 0])
        why = (f"{worst}'s loss strays by a factor {f:.3g} from its prediction (step {k}); its Gram matrix moved by "
               f"{max_drift(res, worst) / (lam_T / 4):.2g} × λ_T/4" + (f" and {fl:.1%} of its activation patterns flipped"
                                                                       if worst == "relu" else "")
               + f": at α = {res['alpha']:g} the network leaves the kernel regime")
    out.append(claim("4.4.overlay", "Each measured loss (solid) follows the dashed prediction from its own network's "
                     "G(0) within 20% at every step (above the rounding floor).", holds=ok, measured=facts[worst][0],
                     predicted=1.0, tolerance=f"within a factor {OVERLAY_FACTOR}", why=why))
    # 2. the Gram matrices stay put
    drifts = {a: max_drift(res, a) / (lam_T / 4) for a in acts}
    worst = max(acts, key=lambda a: drifts[a])
    ok = all(v < 1 for v in drifts.values())
    out.append(claim("4.4.kernel-still", "The Gram matrices barely move: ‖G(k) − G(0)‖ stays below λ_T/4, "
                     "λ_T = 1/(ηT) the smallest eigenvalue a run of T steps fits.", holds=ok, measured=drifts[worst],
                     predicted=1.0, tolerance="drift / (λ_T/4) < 1 for every activation",
                     why="" if ok else f"{worst}'s Gram matrix moved by {drifts[worst]:.3g} × λ_T/4"
                     + (f" ({np.nanmax(res['history'][worst]['flips'][:, 0]):.1%} of its activation patterns flipped)"
                        if worst == "relu" else "")))
    # 3. the plateaus rank as the G^inf predictions do
    T = res["steps"]
    pinf = {a: float(res["prediction_inf"][a][T]) for a in acts}
    pairs = [(a, b) for a in acts for b in acts if a != b and pinf[a] > RANK_MARGIN * pinf[b]]
    st = ("The losses after T steps rank as the G∞ predictions (dotted) rank them: by the label energy left in the "
          "modes slower than about 1/(ηT).")
    if pairs:
        wrong = [(a, b) for a, b in pairs if not _final(res, a) > _final(res, b)]
        out.append(claim("4.4.rank", st, holds=not wrong, measured=len(wrong), predicted=0,
                         tolerance=f"every pair whose predictions differ by more than {RANK_MARGIN}× in the same order",
                         why="" if not wrong else "out of order: " + ", ".join(
                             f"{a} ({fmt(_final(res, a))}) vs {b} ({fmt(_final(res, b))})" for a, b in wrong)))
    else:
        out.append(not_applicable("4.4.rank", st, "select at least two activations to rank them" if len(acts) < 2 else
                                  f"no two predictions differ by more than {RANK_MARGIN}×: nothing to rank"))
    # 4. lambda_min alone does not rank them
    lmin = {a: float(res["eigs_inf"][a][0]) for a in acts}
    inverted = [(a, b) for a, b in pairs if lmin[a] > lmin[b]]
    st = "λmin alone does not rank the plateaus: an activation with the larger λmin can end higher."
    if inverted:
        a, b = max(inverted, key=lambda p: pinf[p[0]] / pinf[p[1]])
        ok = _final(res, a) > _final(res, b)
        out.append(claim("4.4.not-lambda-min", st, holds=ok, measured=_final(res, a) / _final(res, b),
                         predicted=pinf[a] / pinf[b],
                         tolerance=f"{a} (λmin {lmin[a]:.2g}) ends above {b} (λmin {lmin[b]:.2g})",
                         why="" if ok else f"{a} ends at {fmt(_final(res, a))}, below {b} at {fmt(_final(res, b))}"))
    else:
        out.append(not_applicable("4.4.not-lambda-min", st, "select at least two activations to compare them"
                                  if len(acts) < 2 else "here λmin ranks the selected activations the same way as "
                                  "their predicted losses"))
    # 5. which modes are fit at step k (the state panel)
    viol = {a: mode_violations(res, a) for a in acts}
    bad = sum(v for v, _ in viol.values())
    total = sum(t for _, t in viol.values())
    st = ("At every step k the modes with λ_i > 2/(ηk) are fit (less than 1/e of their label component left) and "
          "those with λ_i < 1/(2ηk) are not.")
    if total:
        out.append(claim("4.4.modes-fit", st, holds=bad == 0, measured=bad, predicted=0,
                         tolerance=f"no exception among {total} (mode, step) checks",
                         why="" if bad == 0 else "exceptions: " + ", ".join(f"{a} {v}" for a, (v, _) in viol.items() if v)))
    else:
        out.append(not_applicable("4.4.modes-fit", st, "no mode carries enough of the labels to check"))
    return out


def numbers(res: dict) -> dict:
    out = {"width m": res["width"], "output scale α": res["alpha"], "step η (× 1/α²)": res["lr"],
           "steps T": res["steps"], "λ_T = 1/(ηT)": res["lambda_T"], "rounding floor of the loss": res["floor"]}
    for a in res["acts"]:
        h = res["history"][a]
        out[f"{a}: λmin of G∞ / of G(0)"] = (f"{fmt(res['eigs_inf'][a][0], floor=float(floor_of(res['eigs_inf'][a])))}"
                                            f" / {fmt(res['lam0'][a][0], floor=float(floor_of(res['lam0'][a])))}")
        out[f"{a}: final loss"] = float(h["loss"][-1, 0])
        out[f"{a}: predicted from G(0) / from G∞"] = (f"{fmt(res['prediction'][a][-1], floor=res['floor'])} / "
                                                    f"{fmt(res['prediction_inf'][a][-1], floor=res['floor'])}")
        out[f"{a}: max drift ‖G(k) − G(0)‖ / (λ_T/4)"] = max_drift(res, a) / (res["lambda_T"] / 4)
        if a == "relu":
            out["relu: activation patterns flipped"] = f"{np.nanmax(h['flips'][:, 0]):.2%}"
    return out


def headline(res: dict) -> str:
    return (f"width {res['width']}, α = {res['alpha']:g}, η = {res['lr']:.3g}, T = {res['steps']}: final loss "
            + ", ".join(f"{a} {fmt(_final(res, a))}" for a in res["acts"]))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def _eq(value: str) -> str:
    """'= 0.02', or '< 1e-11' for a value at the float64 floor (never '= < 1e-11')."""
    return value if value.startswith("<") else f"= {value}"


def draw(res: dict):
    fig, (ax1, ax2) = plots.new_figure(2, width=5.0, height=4.0)
    done = [a for a in res["acts"] if a in res["history"]]
    lo = np.inf
    for a in done:
        st = style(a)
        h = res["history"][a]
        s, v = plots.finite_part(h.steps, h["loss"][:, 0])
        ax1.plot(s, v, "-", color=st["color"], marker=st["marker"], markevery=max(1, len(s) // 8), ms=4,
                 label=f"{a}: λmin(G∞) " + _eq(fmt(res['eigs_inf'][a][0], floor=float(floor_of(res['eigs_inf'][a])))))
        k = np.arange(len(res["prediction"][a]))
        plots.plot_theory(ax1, k, res["prediction"][a], label=None, style=dict(color=st["color"], ls="--", lw=1.3))
        plots.plot_theory(ax1, k, res["prediction_inf"][a], label=None, style=dict(color=st["color"], ls=":", lw=1.3))
        lo = min(lo, v.min() if len(v) else np.inf, res["prediction"][a].min())
    ax1.plot([], [], "k--", lw=1.3, label="linearized, this net's G(0)")
    ax1.plot([], [], "k:", lw=1.3, label="linearized, G∞")
    top = 0.5 * float(np.sum(res["y"] ** 2)) * 3
    bottom = max(lo / 3, res["floor"] / 100)
    if bottom <= res["floor"] * 10:
        ax1.axhline(res["floor"], color="grey", lw=1, ls="-.", label="rounding estimate: losses bend away near it")
    # headroom for the legend: the data fill the lower ~70% of the (log) height, whatever the number of decades
    ax1.set(yscale="log", xlabel="GD step k", ylabel="training loss ½‖u − y‖²", ylim=(bottom, top * (top / bottom) ** 0.45),
            title=f"n = {res['n']}, d′ = {res['d_sub']}, width {res['width']}, α = {res['alpha']:g}, η = {res['lr']:.3g}")
    ax1.legend(fontsize=7, loc="upper right", ncol=2)
    plots.time_axis(ax1)
    if res.get("partial"):
        ax2.text(0.5, 0.5, "training...", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
        return fig
    margin = res["lambda_T"] / 4
    vals, zeros = [], []
    for a in done:
        st = style(a)
        s, dr = _frames_of(res["history"][a], "drift")
        rel = dr / margin
        pos = (s > 0) & (rel > 0)
        ax2.plot(s[pos], rel[pos], "-", color=st["color"], marker=st["marker"], ms=3, label=a)
        zeros.append((s[(s > 0) & (rel <= 0)], st, a))
        vals.extend(rel[pos])
    ax2.axhline(1.0, **plots.THEORY_STYLE, label="λ_T/4: the margin, λ_T = 1/(ηT)")
    lo = min([1e-8] + [v / 3 for v in vals])
    hi = max([1e4] + [v * 1e3 for v in vals])  # headroom: the legend sits above the margin line
    for s, st, a in zeros:  # exactly 0 (no ReLU pattern flipped): hollow, on the bottom edge
        if len(s):
            ax2.plot(s, np.full(len(s), lo * 1.5), ls="none", marker=st["marker"], mfc="none", ms=5, color=st["color"],
                     label=f"{a}: exactly 0 (hollow)")
    ax2.set(xscale="log", yscale="log", xlabel="GD step k", ylabel="‖G(k) − G(0)‖₂ / (λ_T/4)", ylim=(lo, hi),
            xlim=(0.8, res["steps"] * 1.3), title=f"how far each Gram matrix moved (α = {res['alpha']:g})")
    ax2.legend(fontsize=7, loc="upper left", ncol=2)
    plots.time_axis(ax2)
    return fig


def state(ax, res: dict):
    """The Gram spectrum of each trained network at step k (markers) against G^inf's (dashed), and which
    modes of the labels are fit by then (filled: less than 1/e of the mode's label component left; hollow:
    not yet; marker area: the mode's share of the labels), with the line 1/(eta k)."""
    acts = res["acts"]
    n = res["n"]
    idx = np.arange(1, n + 1)
    offsets = {a: (j - (len(acts) - 1) / 2) * 0.16 for j, a in enumerate(acts)}
    lo = min(float(floor_of(res["eigs_inf"][a])) for a in acts)
    allv = np.concatenate([res["eigs_inf"][a] for a in acts] + [res["lam0"][a] for a in acts])
    hi = float(np.max(allv)) * 30
    lo = max(lo, float(np.min(allv[allv > 0])) / 3) if np.any(allv > 0) else lo
    lo = min(lo, res["lambda_T"] / 3)  # the line 1/(eta k) stays in view down to the last step
    ax.set(yscale="log", ylim=(lo, hi * 100), xlim=(0.4, n + 0.6), xlabel="mode i of the Gram matrix (slowest first)",
           ylabel="eigenvalue λ_i")
    ax.set_xticks(idx if n <= 12 else idx[idx % 5 == 0])
    ax.text(0.98, 0.03, f"n = {n}, d′ = {res['d_sub']}, width {res['width']}, α = {res['alpha']:g}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    data_by_act, arts = {}, []
    for a in acts:
        st = style(a)
        x = idx + offsets[a]
        ax.plot(x, np.clip(res["eigs_inf"][a], lo, None), ls="--", lw=1, color=st["color"])
        h = res["history"][a]
        fsteps, feigs = _frames_of(h, "gram_eigs")
        left, _ = mode_fit_state(res, a)
        share = np.abs(res["V0"][a].T @ res["y"]) / np.linalg.norm(res["y"])
        sizes = 12 + 110 * share**2 / max(float(np.max(share**2)), 1e-12)
        filled = ax.scatter([], [], s=[], marker=st["marker"], color=st["color"])
        ax.scatter([], [], s=30, marker=st["marker"], color=st["color"], label=a)
        hollow = ax.scatter([], [], s=[], marker=st["marker"], facecolors="none", edgecolors=st["color"])
        data_by_act[a] = (x, fsteps, feigs, left, sizes, filled, hollow)
        arts += [filled, hollow]
    ax.plot([], [], "k--", lw=1, label="G∞ spectrum (dashed)")
    ax.scatter([], [], s=30, marker="o", color="grey", label="filled: fit (< 1/e left)")
    ax.scatter([], [], s=30, marker="o", facecolors="none", edgecolors="grey", label="hollow: not yet")
    from matplotlib.patches import Rectangle

    # the band 1/(2ηk) .. 2/(ηk) around the line, where the claim allows a mode to be either fit or not
    band = ax.add_patch(Rectangle((0, hi), 1, 0, transform=ax.get_yaxis_transform(), color="grey", alpha=0.18, lw=0,
                                  label="1/(2ηk)–2/(ηk): either"))
    cut = ax.axhline(hi, color="black", lw=1.2, ls="-.", label="1/(ηk): above it, fit")
    ax.legend(fontsize=6.5, loc="upper left", ncol=2, markerscale=1.5)

    def update(k: int):
        for a in acts:
            x, fsteps, feigs, left, sizes, filled, hollow = data_by_act[a]
            j = int(np.searchsorted(fsteps, k))
            j = min(j, len(fsteps) - 1)
            ev = np.clip(feigs[j], lo, None)
            fit = left[j] < FIT_LEFT
            filled.set_offsets(np.c_[x[fit], ev[fit]])
            filled.set_sizes(sizes[fit])
            hollow.set_offsets(np.c_[x[~fit], ev[~fit]])
            hollow.set_sizes(sizes[~fit])
        line = np.nan if k == 0 else 1.0 / (res["lr"] * k)  # 1/(η·0) is infinite: no line at step 0
        cut.set_ydata([line, line])
        band.set_visible(k > 0)
        if k > 0:
            band.set_y(line / 2)
            band.set_height(1.5 * line)  # from 1/(2ηk) to 2/(ηk)
        return [*arts, band, cut]

    return update


def frames(res: dict) -> list[int]:
    return log_frames(res["frames"], FRAMES)


def key_steps(res: dict) -> list[int]:
    fr = res["frames"]
    T = fr[-1]
    near = lambda t: min(fr, key=lambda k: abs(k - t))  # noqa: E731
    return sorted({0, near(max(1, T // 40)), near(T // 5), T})


def alt(res: dict) -> str:
    return (f"Left: training loss of one width-{res['width']} net per activation ({', '.join(res['acts'])}) against "
            "its linearized predictions from G(0) (dashed) and G∞ (dotted); right: how far each Gram matrix moved, "
            "in units of λ_T/4.")


TRAINING = Experiment(
    id="4.4", title="Training speed follows the Gram spectrum", run=training_experiment, draw=draw, claims=claims,
    controls={"activations": multi("activations", TRAIN_ACTS, ACTIVATIONS),
              "d_sub": integer("data dimension d′", 2, 2, 10),
              "width": select("width m", 512, WIDTHS),
              "alpha": select("output scale α", 4096, ALPHAS),
              "steps": select("GD steps T", 200, STEPS),
              "seed": integer("seed", 0, 0, 10)},
    numbers=numbers, floors={}, headline=headline, state=state, frames=frames, key_steps=key_steps, alt=alt,
    reproduce={"alpha4096": {}, "alpha1": {"alpha": 1}, "d10": {"d_sub": 10}},
    paper={"n10": {"n": 10}, "n50": {"n": 50}},
    paper_note=("the course's closest analogue of the paper's Figure 1 (synthetic data; rate of convergence of a "
                "2-layer net per activation, and the G-matrix eigenvalues at initialization, for n = 10 and n = 50): "
                "the loss curves are the figure, the state figure's first panel (step 0) is each net's G(0) spectrum at "
                "initialization on G∞'s. The data, width and step are the course's setting: n random unit points "
                "spanning a plane (d′ = 2) of R^10 with random ±1 labels, width 512, antisymmetric start and output "
                "scale α = 4096 (the kernel regime by construction), full-batch GD on the first layer with one step "
                "η = 1/max_φ λmax(G∞_φ) for all activations, T = 200 steps"),
)
