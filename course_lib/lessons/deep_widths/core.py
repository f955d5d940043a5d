"""Lesson 5's closed forms, data and measurements (no figures, no claims).

Network (Nguyen 2021's setting): F_0 = X, F_l = relu(F_{l-1} W_l) for l = 1 .. L-1, output u = F_{L-1} W_L,
standard parameterization (W_l ~ N(0, s_l^2), LeCun s^2 = 1/fan_in, He 2/fan_in, Xavier 2/(fan_in + fan_out)),
square loss (1/2)||u - y||^2, all layers trained by full-batch GD.

* lambda_F = sigma_min(F_{L-1}) at initialization = sqrt(lambda_min(F F^T)) (float64): :func:`lambda_F`;
* the large-width limit: given F_{L-2}, F F^T / w -> M = s^2 k(F_{L-2}) (k: the arc-cosine kernel), so
  lambda_F ~ sqrt(w lambda_min(M)), with s^2 the variance of the wide layer AT THAT WIDTH (Xavier's depends on
  w): :func:`limit_kernel`; M is singular exactly when the layers below silence an input or make two inputs'
  features parallel, and then lambda_F = 0 at every width: :func:`degenerate_inputs`;
* the NTK of all layers in closed form, one block per layer: :func:`ntk_blocks`; its largest eigenvalue beta
  ties the step, eta = fraction x 2 / beta;
* the guarantee (the course's derivation of the mechanism): if sigma_min(F_{L-1}) >= lambda_F / 2 all along
  and eta <= 1/beta, L(k+1) <= (1 - eta lambda_F^2 / 4) L(k): :func:`guarantee`;
* networks of several widths trained as one ensemble (zero-padded to the widest; padded units stay zero):
  :func:`stacked_widths`.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ... import data, kernels
from ..._validate import check_choice, check_int
from ...models import DeepMLP, autograd_loss_and_grad, check_params
from ...runtime import get_device, to_float64

INITS = ("lecun", "he", "xavier")
INIT_LABELS = {"lecun": "LeCun (1/fan-in)", "he": "He (2/fan-in)", "xavier": "Xavier (2/(fan-in + fan-out))"}
DATASETS = ("sphere", "digits")
DEFAULTS = {"dataset": "sphere", "n": 32, "d": 8, "depth": 3, "wide": 64, "other": 32, "init": "lecun",
            "lr_fraction": 0.25, "steps": 200, "seed": 0, "ensemble": 3}
# eta = fraction x 2 / lambda_max(NTK at init). The NTK grows in the first steps (all layers move), so a step
# near the linearized limit can blow up: on the digits (nearly collinear images) 0.3 diverged for some seeds at
# widths 16-64, 0.1 did not; on the sphere 0.25 is safe. These are the defaults per data set.
LR_FRACTION = {"sphere": 0.25, "digits": 0.1}
WIDE_OPTIONS = (4, 8, 16, 24, 32, 40, 48, 64, 96, 128, 256, 512)
SPECTRUM_WIDTHS = (4, 8, 16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024)
OTHER_OPTIONS = (8, 16, 32, 64)
EPS64 = float(np.finfo(np.float64).eps)
LOSS_FLOOR = 1e-13  # float32 training: the loss levels off near 1e-13 of its start (residual ~ 1e-7 relative)
# the paper's three sufficient orders for one wide layer, with the setting each belongs to (PAPERS.md)
PAPER_ORDERS = {
    1: ("linear, Ω(N)", "a non-standard initialization"),
    2: ("quadratic, Ω(N²)", "two-layer net, both layers trained,\n   LeCun init (the paper's Section 3.2)"),
    3: ("cubic, Ω(N³)", "deep net, one wide hidden layer,\n   LeCun-type init"),
}


def paper_order(depth: int) -> int:
    """The power of N in the paper's width for a net of ``depth`` weight layers with LeCun init: 2 for the
    two-layer net (quadratic), 3 for deep nets (cubic)."""
    return 2 if depth == 2 else 3


# ----------------------------------------------------------------------------------------------
# data and model
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _problem_cpu(dataset: str, n: int, d: int, seed: int):
    if dataset == "sphere":
        X = data.unit_sphere(n, d, seed=seed)
        gen = torch.Generator().manual_seed(10_000 + seed)
        y = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)  # arbitrary labels: the theorem needs none
        return X, y
    return data.digits((3, 8), n, seed=seed)  # 64 pixels, labels -1 (a 3) / +1 (an 8)


def problem(dataset: str = DEFAULTS["dataset"], n: int = DEFAULTS["n"], d: int = DEFAULTS["d"], seed: int = 0,
            device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y): ``sphere``: n unit vectors in R^d with random +-1 labels; ``digits``: n images of 3s and 8s
    (scikit-learn's 8x8 digits, centered, unit-normalized; d = 64 regardless of ``d``), labels +-1."""
    dataset = check_choice("dataset", dataset, DATASETS)
    n = check_int("n", n, min_value=2, max_value=2000 if dataset == "sphere" else 357)
    d = check_int("d", d, min_value=1)
    X, y = _problem_cpu(dataset, n, d, int(seed))
    dev = get_device(device)
    return X.to(dev), y.to(dev)


class ReluNet(DeepMLP):
    """:class:`course_lib.models.DeepMLP` (ReLU, standard parameterization) with its gradient in closed form
    (backpropagation written out: 2-4x faster than autograd for these small networks; the tests check it
    against autograd)."""

    def loss_and_grad(self, params, X, y):
        if self.init_scheme not in INITS or self.out_dim != 1 or self.loss_kind != "half_sum":
            return autograd_loss_and_grad(self, params, X, y)
        check_params(params, self.names)
        L = self.depth
        Fs, masks = [X], []
        F = X
        for l in range(1, L):
            z = F @ params[f"W{l}"]
            masks.append(z > 0)
            F = z.clamp_min(0.0)
            Fs.append(F)
        u = (F @ params[f"W{L}"]).squeeze(-1)
        r = u - y
        loss = 0.5 * (r * r).sum(-1)
        delta = r.unsqueeze(-1)  # d loss / d (pre-activation of layer l), starting at the output
        grads = {}
        for l in range(L, 0, -1):
            grads[f"W{l}"] = Fs[l - 1].transpose(-1, -2) @ delta
            if l > 1:
                delta = (delta @ params[f"W{l}"].transpose(-1, -2)) * masks[l - 2]
        return loss, grads, u


def make_model(depth: int = DEFAULTS["depth"], wide: int = DEFAULTS["wide"], other: int = DEFAULTS["other"],
               init: str = DEFAULTS["init"]) -> ReluNet:
    """L = ``depth`` weight layers: hidden widths [other] * (L - 2) + [wide]; the last hidden layer is the wide one."""
    depth = check_int("depth", depth, min_value=2, max_value=8)
    wide = check_int("wide", wide, min_value=1)
    other = check_int("other", other, min_value=1)
    return ReluNet([other] * (depth - 2) + [wide], init=check_choice("init", init, INITS))


def layer_std(model: DeepMLP, d: int, layer: int) -> float:
    """The initial standard deviation of W_layer (1-based) for inputs of dimension ``d``."""
    dims = model._dims(d)
    std, mult = model._std_and_mult(dims[layer - 1], dims[layer], layer == model.depth)
    return std * mult


# ----------------------------------------------------------------------------------------------
# lambda_F and its large-width limit
# ----------------------------------------------------------------------------------------------
def _f64(params) -> dict:
    return {k: to_float64(v) for k, v in params.items()}


def singular_values(F: torch.Tensor) -> np.ndarray:
    """The N singular values of each (N, w) matrix of a batch (E, N, w), largest first, float64; when w < N
    the missing N - w are exact zeros. Non-finite matrices (a diverged network) give NaN."""
    F = to_float64(F.detach())
    if F.ndim == 2:
        F = F.unsqueeze(0)
    finite = torch.isfinite(F).flatten(1).all(dim=1)
    F = torch.where(finite[:, None, None], F, torch.zeros((), dtype=F.dtype, device=F.device))
    ev = torch.linalg.eigvalsh(F @ F.transpose(1, 2)).flip(-1).clamp_min(0.0).sqrt()
    ev[~finite] = float("nan")
    return ev.cpu().numpy()


def sigma_min(F: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """sigma_N(F) = sqrt(lambda_min(F F^T)) of each (N, w) matrix of a batch (E, N, w), in float64, and the
    float64 floor sqrt(N eps lambda_max) below which a value is numerically zero. Returns (values, floors)."""
    F = to_float64(F.detach())
    if F.ndim == 2:
        F = F.unsqueeze(0)
    # a diverged network has non-finite features: report NaN for it instead of failing in eigvalsh
    finite = torch.isfinite(F).flatten(1).all(dim=1)
    F = torch.where(finite[:, None, None], F, torch.zeros((), dtype=F.dtype, device=F.device))
    ev = torch.linalg.eigvalsh(F @ F.transpose(1, 2))
    ev[~finite] = float("nan")
    lo = ev[:, 0].clamp_min(0.0).sqrt().cpu().numpy()
    floor = (F.shape[1] * EPS64 * ev[:, -1].clamp_min(0.0)).sqrt().cpu().numpy()
    return lo, floor


def lambda_F(model: DeepMLP, params, X) -> tuple[np.ndarray, np.ndarray]:
    """lambda_F = sigma_min(F_{L-1}) at ``params`` for each network of the ensemble (float64), and its floor."""
    return sigma_min(model.features(_f64(params), to_float64(X)))


def limit_kernel(model: DeepMLP, params, X) -> np.ndarray:
    """M = E[F_{L-1} F_{L-1}^T | F_{L-2}] / n_{L-1} = s^2 k(F_{L-2}) per network, shape (E, N, N), float64:
    k is the arc-cosine kernel E_w[relu(w.a) relu(w.b)], s^2 the variance of W_{L-1} at this model's widths."""
    p64 = _f64(params)
    F = model.features(p64, to_float64(X), layer=model.depth - 2)
    s2 = layer_std(model, X.shape[1], model.depth - 1) ** 2
    return np.stack([s2 * kernels.arccos1(F[e]).cpu().numpy() for e in range(F.shape[0])])


def predicted_lambda_F(widths, lam_min_M, n: int) -> np.ndarray:
    """sqrt(w lambda_min(M_w)) for w >= N (the large-width limit), 0 below N (rank). ``lam_min_M``: one value,
    or one per width (Xavier's M depends on the width through the variance of the wide layer)."""
    w = np.asarray(widths, dtype=float)
    lam = np.broadcast_to(np.asarray(lam_min_M, dtype=float), w.shape)
    return np.where(w >= n, np.sqrt(w * np.clip(lam, 0.0, None)), 0.0)


def degenerate_inputs(model: DeepMLP, params, X, tol: float = 1e-9) -> list[str]:
    """Per network, why M = s^2 k(F_{L-2}) is singular ('' when it is not): an input whose features are all
    zero (every ReLU below silent for it), or two inputs whose features are positively parallel (then their
    rows of F_{L-1} are parallel at every width, so lambda_F = 0 however wide the last layer)."""
    F = model.features(_f64(params), to_float64(X), layer=model.depth - 2).cpu()
    out = []
    for e in range(F.shape[0]):
        G = F[e]
        norms = G.norm(dim=1)
        dead = int((norms <= tol * max(float(norms.max()), 1e-300)).sum())
        if dead:
            out.append(f"{dead} input(s) silenced (all features zero)")
            continue
        theta = kernels.angles(G)
        theta.fill_diagonal_(math.pi)
        par = int((theta < 1e-6).triu(1).sum())
        out.append(f"{par} pair(s) of inputs with parallel features" if par else "")
    return out


def correlation(F: torch.Tensor) -> torch.Tensor:
    """The rows' correlation (cosine) matrix of each (N, w) matrix of a batch, float64."""
    F = to_float64(F)
    nr = F.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return (F / nr) @ (F / nr).transpose(-1, -2)


def predicted_correlation(X, depth: int) -> np.ndarray:
    """The inputs' correlation matrix after ``depth`` - 1 ReLU layers of infinite width (any LeCun/He/Xavier
    scale): iterate the normalized arc-cosine kernel, K <- k(V) / sqrt(diag diag) with V V^T = K
    (computed on a factor V of K so that every angle goes through kernels.angles)."""
    K = to_float64(X).cpu()
    K = K @ K.T
    for _ in range(check_int("depth", depth, min_value=1) - 1):
        lam, U = torch.linalg.eigh(0.5 * (K + K.T))
        V = U * lam.clamp_min(0.0).sqrt()
        K = kernels.arccos1(V)
        d = K.diagonal().clamp_min(1e-300).sqrt()
        K = K / d[:, None] / d[None, :]
    return K.numpy()


def guarantee(loss0: float, lr: float, lam_F: float, steps: int) -> np.ndarray:
    """L(0) (1 - eta lambda_F^2 / 4)^k, k = 0..steps: the loss bound if sigma_min(F_{L-1}) >= lambda_F / 2
    all along and eta <= 1/smoothness (see the module docstring). Clipped at 0."""
    q = max(0.0, 1.0 - lr * lam_F**2 / 4.0)
    return loss0 * q ** np.arange(steps + 1, dtype=float)


# ----------------------------------------------------------------------------------------------
# the NTK, block by block
# ----------------------------------------------------------------------------------------------
def ntk_blocks(model: DeepMLP, params, X) -> torch.Tensor:
    """The NTK J J^T of every network, split by layer: shape (E, L, N, N), float64 (on the CPU).

    Block l is (F_{l-1} F_{l-1}^T) * (D_l D_l^T), D_l the derivative of the output with respect to layer
    l's pre-activations (D_L = 1): the output layer's block is F_{L-1} F_{L-1}^T, which grows with the width
    in standard parameterization, while the lower layers' blocks do not. Summed over l it is
    kernels.empirical_ntk (the tests check it)."""
    p = {k: v.cpu() for k, v in _f64(params).items()}
    X = to_float64(X).cpu()
    L = model.depth
    E = p["W1"].shape[0]
    Fs, masks = [X.expand(E, -1, -1)], []
    for l in range(1, L):
        z = Fs[-1] @ p[f"W{l}"]
        masks.append(z > 0)
        Fs.append(z.clamp_min(0.0))
    blocks = [None] * L
    delta = torch.ones(E, X.shape[0], 1, dtype=torch.float64)
    for l in range(L, 0, -1):
        blocks[l - 1] = (Fs[l - 1] @ Fs[l - 1].transpose(1, 2)) * (delta @ delta.transpose(1, 2))
        if l > 1:
            delta = (delta @ p[f"W{l}"].transpose(1, 2)) * masks[l - 2]
    return torch.stack(blocks, 1)


def ntk_extremes(blocks: torch.Tensor) -> dict:
    """From :func:`ntk_blocks`: beta = lambda_max of the NTK, its lambda_min, and lambda_max of the output
    layer's block and of the lower layers' blocks (arrays over the ensemble)."""
    ev = torch.linalg.eigvalsh(blocks.sum(1))
    top = torch.linalg.eigvalsh(blocks[:, -1])[:, -1]
    low = torch.linalg.eigvalsh(blocks[:, :-1].sum(1))[:, -1]
    return {"beta": ev[:, -1].numpy(), "lam_min": ev[:, 0].numpy(), "out_max": top.numpy(), "lower_max": low.numpy()}


def silenced_inputs(model: DeepMLP, params, X) -> list[list[tuple[int, int]]]:
    """Per network, the inputs whose features are all zero at some hidden layer, as (input i, first such layer l):
    every ReLU of layer l is silent on input i, so its output is 0 whatever the weights above, no gradient reaches
    the layers below through it, and the loss cannot fall below y_i^2 / 2 (its row of F_{L-1} is zero too)."""
    p = {k: v.detach() for k, v in params.items()}
    F = X.expand(p["W1"].shape[0], -1, -1) if X.ndim == 2 else X
    first = torch.full(F.shape[:2], -1, dtype=torch.long, device=F.device)
    for l in range(1, model.depth):
        F = (F @ p[f"W{l}"]).clamp_min(0.0)
        zero = (F.amax(dim=-1) <= 0) & (first < 0)
        first[zero] = l
    first = first.cpu().numpy()
    return [[(int(i), int(first[e, i])) for i in np.flatnonzero(first[e] >= 0)] for e in range(first.shape[0])]


def silenced_text(silenced: list[tuple[int, int]], y=None) -> str:
    """'input 5 silenced at layer 1 (loss ≥ 0.5)' for :func:`silenced_inputs`' list of one network."""
    if not silenced:
        return ""
    parts = [f"input {i} silenced at layer {l}" for i, l in silenced[:3]] + (["…"] if len(silenced) > 3 else [])
    floor = "" if y is None else f"; the loss cannot go below {0.5 * sum(float(y[i]) ** 2 for i, _ in silenced):.3g}"
    return ", ".join(parts) + " (all its features zero: its output is stuck at 0" + floor + ")"


def key_condition_width(model: DeepMLP, params, X, y) -> np.ndarray:
    """The course's derivation, per network of a two-layer ``model``: the citing paper's key condition
    sigma_min(F_1(0))^2 >= 16 sqrt(N) sqrt(n_1) sqrt(2 L(theta_0)) ||W_2(0)||_2, with sigma_min(F_1)^2 ~ n_1
    lambda_min(M) (the large-width limit), holds once n_1 >= (16 sqrt(N) sqrt(2 L(theta_0)) ||W_2|| / lambda_min(M))^2.
    L(theta_0) and ||W_2(0)|| are this network's own (at its width n_1)."""
    if model.depth != 2:
        raise ValueError(f"depth must be 2 for the two-layer key condition; got {model.depth}")
    N = X.shape[0]
    lam = np.linalg.eigvalsh(limit_kernel(model, params, X))[:, 0]
    p = _f64(params)
    u = model.apply(p, to_float64(X))
    L0 = (0.5 * ((u - to_float64(y)) ** 2).sum(-1)).cpu().numpy()
    w2 = p[f"W{model.depth}"].flatten(1).norm(dim=1).cpu().numpy()  # a column: its spectral norm is its length
    return (16 * np.sqrt(N) * np.sqrt(2 * L0) * w2 / np.clip(lam, 1e-300, None)) ** 2


def dead_units(model: DeepMLP, params, X) -> np.ndarray:
    """How many units of the last hidden layer are silent on every input (their ReLU died), per network."""
    F = model.features({k: v.detach() for k, v in params.items()}, X)
    return (F.amax(dim=1) <= 0).sum(-1).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# several widths in one ensemble
# ----------------------------------------------------------------------------------------------
def pad_width(params: dict, depth: int, width: int) -> dict:
    """``params`` of a net whose last hidden layer is narrower than ``width``, zero-padded to ``width`` units:
    the extra units have zero incoming and outgoing weights, so they output 0, get zero gradient and stay zero
    (each padded net trains exactly like its own width, and its NTK is unchanged)."""
    p = dict(params)
    pad = check_int("width", width, min_value=p[f"W{depth}"].shape[1]) - p[f"W{depth}"].shape[1]
    p[f"W{depth - 1}"] = torch.nn.functional.pad(p[f"W{depth - 1}"], (0, pad))
    p[f"W{depth}"] = torch.nn.functional.pad(p[f"W{depth}"], (0, 0, 0, pad))
    return p


def stacked_widths(depth: int, widths, other: int, init: str, d: int, seeds: int, seed: int = 0, device=None,
                   dtype=torch.float32) -> tuple[ReluNet, dict, list[int], list[dict]]:
    """Networks of every width in ``widths`` (``seeds`` each, the same initial weights as
    ``make_model(depth, w, other, init).init(d, ensemble=seeds, seed=seed)``) stacked into one ensemble of the
    widest architecture (:func:`pad_width`), so that one batched run trains them all.
    Returns (model of the widest width, stacked params, the width of each member, each width's own params)."""
    widths = [check_int("widths", w, min_value=1) for w in widths]
    top = max(widths)
    own = [make_model(depth, w, other, init).init(d, ensemble=seeds, seed=seed, device=device, dtype=dtype)
           for w in widths]
    parts = [pad_width(p, depth, top) for p in own]
    params = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    member_width = [w for w in widths for _ in range(seeds)]
    return make_model(depth, top, other, init), params, member_width, own


def width_groups(widths, overhead: float = 150.0) -> list[list[int]]:
    """Split sorted ``widths`` into consecutive groups trained as one padded ensemble each, minimizing the cost
    sum over groups of (members x widest member + ``overhead``): padding a narrow net to a much wider one
    wastes work, a separate run costs a fixed per-step overhead (measured: about 150 units of width)."""
    w = sorted(widths)
    best = [0.0] + [np.inf] * len(w)
    cut = [0] * (len(w) + 1)
    for j in range(1, len(w) + 1):
        for i in range(j):
            c = best[i] + (j - i) * w[j - 1] + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], len(w)
    while j > 0:
        groups.append(w[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def train_widths(depth: int, own: list[dict], widths, X, y, lrs, *, steps: int, record, other: int, init: str,
                 metrics=None, callback=None, on_group=None) -> dict:
    """Train the networks ``own[i]`` (params of width ``widths[i]``, ``seeds`` each) by GD with steps ``lrs``
    (shape (len(widths), seeds)), grouped by :func:`width_groups` into padded ensembles. Returns the records
    (steps,), every metric reshaped to (records, widths, seeds) (NaN after a whole group diverged and stopped),
    ``diverged`` (widths, seeds) and the final ``params`` of each width (unpadded). ``on_group(partial)``, if
    given, is called after each group with what is recorded so far (for a live redraw)."""
    from ...train import train

    S = own[0]["W1"].shape[0]
    index = {w: i for i, w in enumerate(widths)}
    record = sorted(set(record))
    out, diverged, messages = {}, np.zeros((len(widths), S), dtype=bool), []
    final = [None] * len(widths)
    for g in width_groups(widths):
        top = max(g)
        params = {k: torch.cat([pad_width(own[index[w]], depth, top)[k] for w in g]) for k in own[0]}
        model = make_model(depth, top, other, init)
        lr = np.concatenate([lrs[index[w]] for w in g])
        h = train(model, params, X, y, steps=steps, lr=lr.tolist(), record_steps=record, progress=False,
                  metrics=metrics(model) if metrics else None, callback=callback)
        rows = np.searchsorted(record, h.steps)
        for name, v in h.metrics.items():
            if name not in out:
                out[name] = np.full((len(record), len(widths), S), np.nan)
            for j, w in enumerate(g):
                out[name][rows, index[w]] = v[:, j * S:(j + 1) * S]
        for j, w in enumerate(g):
            diverged[index[w]] = h.diverged_at[j * S:(j + 1) * S] >= 0
            q = {k: v[j * S:(j + 1) * S] for k, v in h.params.items()}
            q[f"W{depth - 1}"] = q[f"W{depth - 1}"][..., :w]
            q[f"W{depth}"] = q[f"W{depth}"][:, :w]
            final[index[w]] = q
        if h.message:
            messages.append(h.message)
        if on_group is not None:
            on_group({"steps": np.asarray(record), "diverged": diverged, **out})
    return {"steps": np.asarray(record), "diverged": diverged, "message": " ".join(messages), "params": final, **out}
