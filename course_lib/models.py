"""The course's networks, as small functional models (after neural-tangents' init_fn / apply_fn).

Every model has
* ``init(d, ensemble=E, seed=..., device=..., dtype=...) -> params``: a dict of tensors whose leading
  dimension indexes E independent networks (an *ensemble*: seeds or settings stacked);
* ``apply(params, X) -> u``: outputs of all E networks on the shared inputs X (n, d), shape (E, n)
  (or (E, n, k) for k outputs);
* ``loss_and_grad(params, X, y) -> (loss, grads, u)``: the per-network training loss, shape (E,),
  and its gradient with respect to the trainable parameters. Two-layer and identity-mapping nets use
  closed-form gradients (fast, tested against autograd); the deep net uses autograd.
* ``trainable``: the names of the parameters that training updates.

Losses: ``loss_kind="half_sum"`` is (1/2) sum_i (u_i - y_i)^2 (Du et al.; lessons 1, 4, 5, 6);
``"mean"`` is the mean of (u_i - y_i)^2 over the batch, an estimate of the population loss
E[(f - f*)^2] (Li & Yuan; lesson 2).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ._validate import check_bool, check_choice, check_float, check_int, check_tensor
from .activations import Activation, get_activation
from .runtime import check_memory, make_generator, placement

Params = dict[str, torch.Tensor]
LOSS_KINDS = ("half_sum", "mean")


def _check_inputs(model_name: str, X, d_expected: int, params: Params, device: torch.device) -> torch.Tensor:
    X = check_tensor("X", X, ndim=2)
    if X.shape[1] != d_expected:
        raise ValueError(f"X must have {d_expected} columns (the {model_name}'s input dimension d); got {X.shape[1]}")
    ref = next(iter(params.values()))
    return X.to(device=ref.device, dtype=ref.dtype)


def _residual_loss(u: torch.Tensor, y: torch.Tensor, loss_kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss per network and dLoss/du (same shape as u)."""
    r = u - y
    dims = tuple(range(1, r.ndim))
    if loss_kind == "half_sum":
        return 0.5 * (r * r).sum(dim=dims), r
    n = r.shape[1]
    return (r * r).sum(dim=dims) / n, (2.0 / n) * r


def _check_targets(y, u_shape: tuple[int, ...], X: torch.Tensor) -> torch.Tensor:
    y = check_tensor("y", y, ndim=(1, 2, 3)).to(device=X.device, dtype=X.dtype)
    target_shape = u_shape[1:]
    if tuple(y.shape) == tuple(u_shape):
        return y
    if tuple(y.shape) != tuple(target_shape):
        raise ValueError(f"y must have shape {tuple(target_shape)} (one target per sample) or {tuple(u_shape)}; got {tuple(y.shape)}")
    return y


def _check_init_memory(what: str, count: int, dtype: torch.dtype, dev: torch.device, draw_bytes: int = 4) -> None:
    """Refuse an init whose ``count`` parameters (drawn on the CPU, ``draw_bytes`` each, then converted to
    ``dtype`` on ``dev``) exceed the memory budget, before anything is allocated."""
    itemsize = dtype.itemsize
    fix = "use a smaller width or ensemble"
    host = draw_bytes * count + (itemsize * count if dev.type == "cpu" and itemsize != draw_bytes else 0)
    check_memory(host, f"{what}: {count:.3g} parameters", fix=fix)
    if dev.type != "cpu":
        check_memory(itemsize * count, f"{what}: {count:.3g} parameters on {dev}", device=dev, fix=fix)


def step_bytes(model, params: Params, n: int) -> int:
    """Estimated bytes of the arrays one training step (and one full-batch evaluation) of ``model`` allocates
    on n samples, besides the parameters: the course's models; 0 for other objects (unknown)."""
    ref = next(iter(params.values()))
    itemsize, E = ref.element_size(), int(ref.shape[0])
    if isinstance(model, TwoLayer):
        m, d = model.width, int(params["W"].shape[-1])
        chunk = E if ref.device.type != "cpu" else max(1, (1 << 19) // max(1, n * m))
        train_step = min(chunk, E) * m * (3 * n + d)  # pre-activations, activations, phi' r; the W gradient
        evaluate = 2 * E * n * m  # apply(): all E networks at once (pre-activations and activations)
        return itemsize * (max(train_step, evaluate) + 2 * E * n)
    if isinstance(model, IdentityNet):
        return itemsize * 3 * E * n * model.d
    if isinstance(model, DeepMLP):
        hidden = sum(model.widths) + model.out_dim
        return itemsize * 4 * E * n * hidden  # each layer's product and activation, kept for autograd, and grads
    return 0


def check_params(params: Params, names: Sequence[str]) -> int:
    """Validate a params dict and return the ensemble size E."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of tensors (from model.init); got {type(params).__name__}")
    missing = [k for k in names if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; expected keys {list(names)} (from model.init)")
    sizes = {params[k].shape[0] for k in names}
    if len(sizes) != 1:
        raise ValueError(f"params tensors disagree on the ensemble size (leading dimension): {sizes}")
    return sizes.pop()


class TwoLayer:
    """f(x) = (1 / sqrt(m)) sum_r a_r phi(w_r . x)  (the kernel-regime network of Du et al. 2019).

    Parameters
    ----------
    width : int >= 1
        Number of hidden neurons m.
    activation : str or Activation
        Any name from :func:`course_lib.activations.available_activations`.
    train_output : bool
        False (default): only the first layer W is trained, a stays fixed (the setting of the
        H^inf analysis). True: both layers are trained.
    output_init : {"sign", "gaussian"}
        a_r uniform in {-1, +1} (default) or a_r ~ N(0, 1).
    loss_kind : {"half_sum", "mean"}
    """

    def __init__(self, width: int, activation: str | Activation = "relu", *, train_output: bool = False,
                 output_init: str = "sign", loss_kind: str = "half_sum"):
        self.width = check_int("width", width, min_value=1)
        self.activation = get_activation(activation)
        self.train_output = check_bool("train_output", train_output)
        self.output_init = check_choice("output_init", output_init, ("sign", "gaussian"))
        self.loss_kind = check_choice("loss_kind", loss_kind, LOSS_KINDS)
        self.trainable = ("W", "a") if self.train_output else ("W",)
        self.names = ("W", "a")

    def __repr__(self) -> str:
        return (f"TwoLayer(width={self.width}, activation={self.activation.name!r}, "
                f"train_output={self.train_output}, output_init={self.output_init!r})")

    def init(self, d: int, *, ensemble: int = 1, seed: int | torch.Generator = 0, device=None,
             dtype=torch.float32) -> Params:
        """w_r ~ N(0, I_d); a_r as ``output_init`` says. Shapes: W (E, m, d), a (E, m)."""
        d = check_int("d", d, min_value=1)
        ensemble = check_int("ensemble", ensemble, min_value=1)
        dev = placement(device, dtype)  # float64 is made on the CPU where the device has none (MPS)
        _check_init_memory(f"TwoLayer(width={self.width}).init(d={d}, ensemble={ensemble}) (ensemble x width x (d + 1) = "
                           f"{ensemble} x {self.width} x {d + 1})", ensemble * self.width * (d + 1), dtype, dev)
        gen = make_generator(seed)
        W = torch.randn(ensemble, self.width, d, generator=gen)
        if self.output_init == "sign":
            a = torch.randint(0, 2, (ensemble, self.width), generator=gen).float() * 2 - 1
        else:
            a = torch.randn(ensemble, self.width, generator=gen)
        return {"W": W.to(dev, dtype), "a": a.to(dev, dtype)}

    def _prep(self, params: Params, X) -> tuple[torch.Tensor, torch.Tensor]:
        check_params(params, self.names)
        X = _check_inputs("network", X, params["W"].shape[-1], params, params["W"].device)
        return X, torch.matmul(X, params["W"].transpose(1, 2))

    def preactivations(self, params: Params, X) -> torch.Tensor:
        """w_r . x_i for every network, shape (E, n, m)."""
        return self._prep(params, X)[1]

    def apply(self, params: Params, X) -> torch.Tensor:
        pre = self.preactivations(params, X)
        return torch.matmul(self.activation.phi(pre), params["a"].unsqueeze(-1)).squeeze(-1) / math.sqrt(self.width)

    def loss_and_grad(self, params: Params, X, y) -> tuple[torch.Tensor, Params, torch.Tensor]:
        check_params(params, self.names)
        W, a = params["W"], params["a"]
        X = _check_inputs("network", X, W.shape[-1], params, W.device)
        E, n = W.shape[0], X.shape[0]
        y = _check_targets(y, (E, n), X)
        XT = X.T.contiguous()
        scale = 1.0 / math.sqrt(self.width)
        relu = self.activation.name == "relu"
        losses, us, gW, ga = [], [], [], []
        # On CPU, batching all E networks into one bmm is memory-bound: the (E, m, n) intermediates
        # fall out of cache. Chunks of about 2 MiB of pre-activations keep them in L2 (measured in
        # benchmarks/bench_engine.py: ~4x faster than one big batch at the benchmark's shapes).
        chunk = E if W.device.type != "cpu" else max(1, (1 << 19) // max(1, n * self.width))
        for i in range(0, E, chunk):
            Wc, ac = W[i:i + chunk], a[i:i + chunk]
            yc = y[i:i + chunk] if y.ndim == 2 else y
            pre = torch.matmul(Wc, XT)  # (c, m, n): w_r . x_i, transposed so the gradient is one GEMM
            act = torch.relu(pre) if relu else self.activation.phi(pre)
            u = torch.matmul(ac.unsqueeze(1), act).squeeze(1) * scale  # (c, n)
            loss, dl_du = _residual_loss(u, yc, self.loss_kind)
            r = dl_du.unsqueeze(1).expand_as(pre)
            if relu:  # phi'(pre) * r in one fused pass (the kernel autograd itself uses for ReLU)
                coef = torch.ops.aten.threshold_backward(r, pre, 0.0)
            else:
                coef = self.activation.dphi(pre).mul_(r)
            # dL/dw_r = scale a_r sum_i dl_du_i phi'(w_r . x_i) x_i
            gW.append(torch.matmul(coef, X).mul_((ac * scale).unsqueeze(-1)))
            if self.train_output:
                ga.append(torch.matmul(act, dl_du.unsqueeze(-1)).squeeze(-1) * scale)
            losses.append(loss)
            us.append(u)
        grads = {"W": torch.cat(gW) if len(gW) > 1 else gW[0]}
        if self.train_output:
            grads["a"] = torch.cat(ga) if len(ga) > 1 else ga[0]
        cat = lambda t: torch.cat(t) if len(t) > 1 else t[0]  # noqa: E731
        return cat(losses), grads, cat(us)


class IdentityNet:
    """f(x, W) = ||relu((I + W)^T x)||_1 = sum_i relu(<e_i + w_i, x>)  (Li & Yuan 2017).

    ``identity=False`` gives the vanilla twin ||relu(W^T x)||_1. W has shape (E, d, d); its column i
    is w_i. The default loss is the batch mean of (f - f*)^2, an unbiased estimate of the population
    loss L(W) = E[(f(x, W) - f(x, W*))^2] on fresh Gaussian batches.
    """

    def __init__(self, d: int, *, identity: bool = True, loss_kind: str = "mean"):
        self.d = check_int("d", d, min_value=1)
        self.identity = check_bool("identity", identity)
        self.loss_kind = check_choice("loss_kind", loss_kind, LOSS_KINDS)
        self.trainable = ("W",)
        self.names = ("W",)

    def __repr__(self) -> str:
        return f"IdentityNet(d={self.d}, identity={self.identity})"

    def init(self, d: int | None = None, *, ensemble: int = 1, seed: int | torch.Generator = 0, device=None,
             dtype=torch.float32, kind: str = "gaussian", scale: float = 0.1) -> Params:
        """W_0 for each network. ``kind``: "gaussian" (rescaled so ||W_0||_2 = scale), "uniform"
        (entries uniform in [-1, 1], rescaled likewise), "minus_identity" (W_0 = -scale I: shrinks every
        row, the start that makes phase I long), or "zeros"."""
        if d is not None and check_int("d", d, min_value=1) != self.d:
            raise ValueError(f"d must equal the network's dimension {self.d}; got {d}")
        ensemble = check_int("ensemble", ensemble, min_value=1)
        kind = check_choice("kind", kind, ("gaussian", "uniform", "minus_identity", "zeros"))
        scale = check_float("scale", scale, min_value=0.0)
        dev = placement(device, dtype)
        _check_init_memory(f"IdentityNet(d={self.d}).init(ensemble={ensemble}) (ensemble x d x d = {ensemble} x {self.d} x "
                           f"{self.d})", ensemble * self.d * self.d, dtype, dev, draw_bytes=8)
        gen = make_generator(seed)
        if kind in ("gaussian", "uniform"):
            if kind == "gaussian":
                W = torch.randn(ensemble, self.d, self.d, generator=gen, dtype=torch.float64)
            else:
                W = torch.rand(ensemble, self.d, self.d, generator=gen, dtype=torch.float64) * 2 - 1
            W = W * (scale / torch.linalg.matrix_norm(W, ord=2)).view(-1, 1, 1)
        elif kind == "minus_identity":
            W = -scale * torch.eye(self.d, dtype=torch.float64).expand(ensemble, -1, -1).clone()
        else:
            W = torch.zeros(ensemble, self.d, self.d, dtype=torch.float64)
        return {"W": W.to(dev, dtype)}

    def weights(self, params: Params) -> torch.Tensor:
        """The effective first layer, I + W (or W for the vanilla net), shape (E, d, d)."""
        check_params(params, self.names)
        W = params["W"]
        if self.identity:
            return W + torch.eye(self.d, device=W.device, dtype=W.dtype)
        return W

    def apply(self, params: Params, X) -> torch.Tensor:
        U = self.weights(params)
        X = _check_inputs("network", X, self.d, params, U.device)
        return torch.relu(torch.matmul(X, U)).sum(dim=-1)

    def loss_and_grad(self, params: Params, X, y) -> tuple[torch.Tensor, Params, torch.Tensor]:
        U = self.weights(params)
        X = _check_inputs("network", X, self.d, params, U.device)
        pre = torch.matmul(X, U)  # (E, n, d)
        mask = pre > 0
        u = (pre * mask).sum(dim=-1)
        y = _check_targets(y, tuple(u.shape), X)
        loss, dl_du = _residual_loss(u, y, self.loss_kind)
        # d f / d w_i = 1[<u_i, x> > 0] x  ->  grad = X^T (dl_du * mask)
        grad = torch.matmul(X.T, mask.to(pre.dtype) * dl_du.unsqueeze(-1))
        return loss, {"W": grad}, u


INIT_SCHEMES = ("lecun", "he", "xavier", "ntk")


class DeepMLP:
    """F_0 = X, F_l = relu(F_{l-1} W_l) for l < L, output F_{L-1} W_L; all layers trained.

    Parameters
    ----------
    widths : sequence of int
        Hidden widths n_1, ..., n_{L-1} (L - 1 >= 1 hidden layers).
    out_dim : int
        Output dimension (1: outputs have shape (E, n)).
    init : {"lecun", "he", "xavier", "ntk"}
        Standard parameterization with W_l ~ N(0, s^2): LeCun s^2 = 1/fan_in, He s^2 = 2/fan_in,
        Xavier s^2 = 2/(fan_in + fan_out). "ntk": W_l ~ N(0, 1) and the forward pass multiplies by
        sqrt(2/fan_in) (hidden) or sqrt(1/fan_in) (output), the NTK parameterization.
    """

    def __init__(self, widths: Sequence[int], *, out_dim: int = 1, init: str = "he", activation="relu",
                 loss_kind: str = "half_sum"):
        if isinstance(widths, (int, float)) or len(widths) == 0:
            raise ValueError(f"widths must be a non-empty list of hidden widths; got {widths!r}")
        self.widths = [check_int(f"widths[{i}]", w, min_value=1) for i, w in enumerate(widths)]
        self.out_dim = check_int("out_dim", out_dim, min_value=1)
        self.init_scheme = check_choice("init", init, INIT_SCHEMES)
        self.activation = get_activation(activation)
        self.loss_kind = check_choice("loss_kind", loss_kind, LOSS_KINDS)
        self.depth = len(self.widths) + 1
        self.names = tuple(f"W{l}" for l in range(1, self.depth + 1))
        self.trainable = self.names

    def __repr__(self) -> str:
        return f"DeepMLP(widths={self.widths}, out_dim={self.out_dim}, init={self.init_scheme!r})"

    def _dims(self, d: int) -> list[int]:
        return [d, *self.widths, self.out_dim]

    def _std_and_mult(self, fan_in: int, fan_out: int, is_output: bool) -> tuple[float, float]:
        s = self.init_scheme
        if s == "lecun":
            return 1 / math.sqrt(fan_in), 1.0
        if s == "he":
            return math.sqrt(2 / fan_in), 1.0
        if s == "xavier":
            return math.sqrt(2 / (fan_in + fan_out)), 1.0
        return 1.0, math.sqrt((1.0 if is_output else 2.0) / fan_in)

    def init(self, d: int, *, ensemble: int = 1, seed: int | torch.Generator = 0, device=None,
             dtype=torch.float32) -> Params:
        d = check_int("d", d, min_value=1)
        ensemble = check_int("ensemble", ensemble, min_value=1)
        dims = self._dims(d)
        dev = placement(device, dtype)
        count = ensemble * sum(a * b for a, b in zip(dims[:-1], dims[1:]))
        _check_init_memory(f"DeepMLP(widths={self.widths}).init(d={d}, ensemble={ensemble})", count, dtype, dev)
        gen = make_generator(seed)
        params = {}
        for l in range(1, self.depth + 1):
            std, _ = self._std_and_mult(dims[l - 1], dims[l], l == self.depth)
            params[f"W{l}"] = (torch.randn(ensemble, dims[l - 1], dims[l], generator=gen) * std).to(dev, dtype)
        return params

    def _multipliers(self, params: Params) -> list[float]:
        d = params["W1"].shape[1]
        dims = self._dims(d)
        return [self._std_and_mult(dims[l - 1], dims[l], l == self.depth)[1] for l in range(1, self.depth + 1)]

    def features(self, params: Params, X, layer: int | None = None) -> torch.Tensor:
        """Hidden features F_layer (default: the last hidden layer F_{L-1}), shape (E, n, n_layer)."""
        check_params(params, self.names)
        layer = self.depth - 1 if layer is None else check_int("layer", layer, min_value=0, max_value=self.depth - 1)
        X = _check_inputs("network", X, params["W1"].shape[1], params, params["W1"].device)
        mult = self._multipliers(params)
        F = X.expand(params["W1"].shape[0], -1, -1)
        for l in range(1, layer + 1):
            F = self.activation.phi(torch.matmul(F, params[f"W{l}"]) * mult[l - 1])
        return F

    def apply(self, params: Params, X) -> torch.Tensor:
        F = self.features(params, X)
        out = torch.matmul(F, params[f"W{self.depth}"]) * self._multipliers(params)[-1]
        return out.squeeze(-1) if self.out_dim == 1 else out

    def loss_and_grad(self, params: Params, X, y) -> tuple[torch.Tensor, Params, torch.Tensor]:
        return autograd_loss_and_grad(self, params, X, y)


def autograd_loss_and_grad(model, params: Params, X, y) -> tuple[torch.Tensor, Params, torch.Tensor]:
    """Loss per network and its gradient by autograd (networks are independent, so the gradient of
    the summed loss is each network's own gradient)."""
    # validate before params.items(); a non-dict params raised
    # AttributeError instead of the TypeError naming "params".
    check_params(params, model.names)
    with torch.enable_grad():
        leaves = {k: (v.detach().requires_grad_(True) if k in model.trainable else v) for k, v in params.items()}
        u = model.apply(leaves, X)
        y = _check_targets(y, tuple(u.shape), u)
        r = u - y
        dims = tuple(range(1, r.ndim))
        loss = 0.5 * (r * r).sum(dim=dims) if model.loss_kind == "half_sum" else (r * r).sum(dim=dims) / r.shape[1]
        grads = torch.autograd.grad(loss.sum(), [leaves[k] for k in model.trainable])
    return loss.detach(), dict(zip(model.trainable, grads)), u.detach()


def select(params: Params, index) -> Params:
    """The sub-ensemble ``index`` (an int keeps a leading dimension of 1)."""
    if isinstance(index, int):
        index = slice(index, index + 1)
    return {k: v[index] for k, v in params.items()}
