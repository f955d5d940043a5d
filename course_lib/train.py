"""Training engine: GD, SGD, heavy ball and Nesterov on an ensemble of independent networks.

One function, :func:`train`, serves widgets, tests, benchmarks and the command line. The ensemble
(seeds or settings stacked along the leading dimension of every parameter) trains in one batched
computation; step size and momentum may differ per network.

Update rules (eta = lr, beta = momentum):
* gd / sgd:  W+ = W - eta grad L(W)           (sgd: on mini-batches or fresh samples)
* hb:        W+ = W - eta grad L(W) + beta (W - W_prev)
* nag:       V = W + beta (W - W_prev);  W+ = V - eta grad L(V)

A network whose loss becomes non-finite (or exceeds ``max_loss``) is stopped: its parameters go back
to their initial values and freeze, its metrics read NaN from then on, and ``History.diverged_at``
and ``History.message`` say when and why. The run stops when every network has diverged; what was
recorded until then is kept.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from ._validate import check_choice, check_float, check_int, check_tensor
from .models import Params, check_params, step_bytes
from .runtime import as_numpy, check_memory, make_generator

METHODS = ("gd", "sgd", "hb", "nag")
Metric = Callable[[Params, "Context"], torch.Tensor]


@dataclass
class Context:
    """What a metric function sees besides the parameters."""

    model: object
    X: torch.Tensor | None
    y: torch.Tensor | None
    params0: Params
    step: int


@dataclass
class History:
    """What a run recorded, every ``record_every`` steps and at the last step.

    ``metrics[name]`` has shape (records, E, ...); ``steps`` (records,). ``diverged_at[e]`` is the
    step at which network e diverged, or -1. ``params`` are the final parameters, ``params0`` the
    initial ones.
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Params
    params0: Params
    diverged_at: np.ndarray
    message: str = ""
    stopped_early: bool = False
    wall_time: float = 0.0
    config: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r} in this history; recorded: {sorted(self.metrics)}")
        return self.metrics[name]

    @property
    def diverged(self) -> bool:
        return bool((self.diverged_at >= 0).any())

    @property
    def ensemble(self) -> int:
        return len(self.diverged_at)

    def final(self, name: str = "loss") -> np.ndarray:
        """The last recorded value of a metric, per network."""
        return self[name][-1]

    def to_dict(self) -> dict:
        """JSON-friendly summary (metrics as nested lists; NaN becomes None)."""
        def clean(a):
            a = np.asarray(a, dtype=float)
            return [None if not math.isfinite(v) else v for v in a.ravel().tolist()] if a.ndim <= 1 else [clean(r) for r in a]

        return {
            "steps": self.steps.tolist(),
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "diverged_at": self.diverged_at.tolist(),
            "message": self.message,
            "stopped_early": self.stopped_early,
            "wall_time": self.wall_time,
            "config": self.config,
        }


def _per_network(name: str, value, E: int, device, dtype, lo: float, hi: float | None, *, lo_inclusive: bool,
                 hi_inclusive: bool = True) -> torch.Tensor:
    """A scalar or one value per network, validated, as a tensor of shape (E,)."""
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)) and np.ndim(value) > 0:
        vals = [check_float(f"{name}[{i}]", v, min_value=lo, max_value=hi, min_inclusive=lo_inclusive,
                            max_inclusive=hi_inclusive) for i, v in enumerate(np.asarray(value, dtype=float).ravel())]
        if len(vals) != E:
            raise ValueError(f"{name} must be a number or have one value per network (E={E}); got {len(vals)} values")
        return torch.tensor(vals, device=device, dtype=dtype)
    v = check_float(name, value, min_value=lo, max_value=hi, min_inclusive=lo_inclusive, max_inclusive=hi_inclusive)
    return torch.full((E,), v, device=device, dtype=dtype)


def _sample_axis(y: torch.Tensor, E: int, n: int) -> int:
    """0 if y is shared by all networks ((n,) or (n, k)); 1 if per network ((E, n) or (E, n, k))."""
    if y.shape[0] == n:
        return 0
    if y.ndim >= 2 and y.shape[0] == E and y.shape[1] == n:
        return 1
    raise ValueError(f"y must have shape (n,), (n, k), (E, n) or (E, n, k) with n={n} samples and E={E} networks; "
                     f"got {tuple(y.shape)}")


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def distance_from_init(params: Params, ctx: Context) -> torch.Tensor:
    """||theta - theta_0|| over all trainable parameters, per network."""
    total = 0
    for k in ctx.model.trainable:
        diff = (params[k] - ctx.params0[k]).flatten(1)
        total = total + (diff * diff).sum(1)
    return torch.sqrt(total)


def train(
    model,
    params: Params,
    X=None,
    y=None,
    *,
    steps: int,
    lr,
    method: str = "gd",
    momentum=0.0,
    batch_size: int | None = None,
    sampler: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None = None,
    record_every: int | None = None,
    record_steps=None,
    metrics: Mapping[str, Metric] | None = None,
    callback: Callable[[History, int], bool | None] | None = None,
    progress: bool | None = None,
    seed: int | torch.Generator = 0,
    lr_limit: float | None = None,
    max_loss: float | None = None,
) -> History:
    """Train an ensemble of networks and return its :class:`History`.

    Parameters
    ----------
    model : TwoLayer, IdentityNet, DeepMLP (anything with ``loss_and_grad`` and ``trainable``)
    params : dict of tensors from ``model.init``; not modified (training works on copies)
    X, y : full training set, X (n, d) and y (n,) or (E, n) (per-network targets)
    steps : int >= 0, number of updates
    lr : float > 0, or one value per network
    method : {"gd", "sgd", "hb", "nag"}
    momentum : float in [0, 1), or one value per network (hb and nag only)
    batch_size : int, optional; mini-batches drawn from (X, y) without replacement, reshuffled each epoch
    sampler : callable, optional; ``sampler(generator) -> (X_batch, y_batch)`` draws fresh samples
        (population SGD). With ``batch_size`` or ``sampler`` the method may be "sgd", "hb" or "nag".
    record_every : int >= 1; default: about 200 records per run
    record_steps : sequence of steps to record at instead (e.g. log-spaced, from
        :func:`course_lib.experiment.log_record_steps`, so a replay has frames in the fast early phase);
        the last step is always recorded
    metrics : {name: fn(params, ctx) -> tensor (E, ...)} recorded besides "loss" and "distance"
        ("loss": the training loss on (X, y) when given, else the batch loss; "distance":
        ||theta - theta_0||)
    callback : fn(history_so_far, step), called at every record (live plots); returning False stops
    progress : show a tqdm progress bar; None (default) shows one only for runs longer than ~2 s
    seed : seed or generator for mini-batch order and fresh samples
    lr_limit : 2 / lambda_max if known, quoted when a run diverges (computed for full-batch runs)
    max_loss : a loss above this counts as divergence (default 1e8 x the largest initial loss + 1e8)
    """
    method = check_choice("method", method, METHODS)
    steps = check_int("steps", steps, min_value=0)
    if not hasattr(model, "loss_and_grad") or not hasattr(model, "trainable"):
        raise TypeError(f"model must be a course_lib model (TwoLayer, IdentityNet, DeepMLP); got {type(model).__name__}")
    E = check_params(params, model.names)
    ref = params[model.trainable[0]]
    device, dtype = ref.device, ref.dtype

    if X is not None:
        X = check_tensor("X", X, ndim=2).to(device=device, dtype=dtype)
        if y is None:
            raise ValueError("y must be given together with X")
        y = check_tensor("y", y, ndim=(1, 2, 3)).to(device=device, dtype=dtype)
        y_axis = _sample_axis(y, E, X.shape[0])
    if sampler is not None and X is not None and batch_size is not None:
        raise ValueError("give either sampler (fresh samples) or batch_size (mini-batches of X), not both")
    if batch_size is not None:
        if X is None:
            raise ValueError("batch_size needs the training set X, y")
        batch_size = check_int("batch_size", batch_size, min_value=1, max_value=X.shape[0])
    stochastic = sampler is not None or batch_size is not None
    if method == "sgd" and not stochastic:
        raise ValueError("method='sgd' needs batch_size (mini-batches of X) or sampler (fresh samples); use method='gd' for full batch")
    if not stochastic and X is None:
        raise ValueError("full-batch training needs X and y (or pass sampler= for fresh samples)")
    if sampler is not None and not callable(sampler):
        raise TypeError("sampler must be a function generator -> (X_batch, y_batch)")

    lr_t = _per_network("lr", lr, E, device, dtype, 0.0, None, lo_inclusive=False)
    beta = _per_network("momentum", momentum, E, device, dtype, 0.0, 1.0, lo_inclusive=True, hi_inclusive=False)
    if method in ("gd", "sgd") and bool((beta != 0).any()):
        raise ValueError(f"momentum applies to method 'hb' or 'nag'; method={method!r} takes momentum=0")
    record_every = max(1, steps // 200) if record_every is None else check_int("record_every", record_every, min_value=1)
    record_set = None
    if record_steps is not None:
        record_set = {check_int("record_steps[i]", k, min_value=0, max_value=steps) for k in record_steps}
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"metrics[{name!r}] must be a function (params, ctx) -> tensor")
    if lr_limit is not None:
        lr_limit = check_float("lr_limit", lr_limit, min_value=0.0, min_inclusive=False)
    # callback and max_loss were not validated (a non-callable callback
    # failed mid-run with "'int' object is not callable"; max_loss=-1 silently "diverged" everything).
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (history, step) -> bool or None; got {type(callback).__name__}")
    if max_loss is not None:
        max_loss = check_float("max_loss", max_loss, min_value=0.0, min_inclusive=False)
    gen = make_generator(seed)
    _check_train_memory(model, params, method, X.shape[0] if X is not None and batch_size is None else batch_size,
                        X.shape[0] if X is not None else None)

    params0 = {k: v.detach().clone() for k, v in params.items()}
    cur = {k: v.detach().clone() for k, v in params.items()}
    prev = {k: cur[k].clone() for k in model.trainable} if method in ("hb", "nag") else None
    alive = torch.ones(E, dtype=torch.bool, device=device)
    diverged_at = np.full(E, -1, dtype=np.int64)
    rec_steps: list[int] = []
    rec: dict[str, list[np.ndarray]] = {"loss": [], "distance": []}
    rec.update({k: [] for k in metrics})
    perm, perm_pos = None, 0

    def next_batch():
        nonlocal perm, perm_pos
        if sampler is not None:
            xb, yb = sampler(gen)
            return (check_tensor("sampler X", xb, ndim=2).to(device, dtype), check_tensor("sampler y", yb).to(device, dtype))
        if batch_size is None:
            return X, y
        if perm is None or perm_pos + batch_size > X.shape[0]:
            perm, perm_pos = torch.randperm(X.shape[0], generator=gen).to(device), 0
        idx = perm[perm_pos:perm_pos + batch_size]
        perm_pos += batch_size
        return X[idx], y.index_select(y_axis, idx)

    last_batch: list = [None]  # the latest (X_batch, y_batch), for the loss of sampler-only runs

    def full_loss(p, Xb=None, yb=None):
        # Xb, yb default to the training set; sampler-only runs (X is None) pass a batch instead
        Xb, yb = (X, y) if Xb is None else (Xb, yb)
        u = model.apply(p, Xb)
        r = u - yb
        dims = tuple(range(1, r.ndim))
        return 0.5 * (r * r).sum(dims) if model.loss_kind == "half_sum" else (r * r).sum(dims) / r.shape[1]

    def record(step: int, loss_now: torch.Tensor | None):
        ctx = Context(model, X, y, params0, step)
        with torch.no_grad():
            if X is not None and (stochastic or loss_now is None):
                loss_now = full_loss(cur)
            elif loss_now is None:
                # a sampler-only run (X is None) recorded loss=None at the
                # final step and at every NAG record, and crashed with AttributeError. Use the batch
                # loss of the current parameters on the latest batch (one fresh batch if none yet).
                if last_batch[0] is None:
                    last_batch[0] = next_batch()
                loss_now = full_loss(cur, *last_batch[0])
            dead = ~alive
            vals = {"loss": loss_now, "distance": distance_from_init(cur, ctx)}
            for name, fn in metrics.items():
                vals[name] = torch.as_tensor(fn(cur, ctx))
        for name, v in vals.items():
            v = as_numpy(v).copy()  # off the device first, then float64 (MPS cannot cast to float64)
            if v.ndim == 0 or v.shape[0] != E:
                raise ValueError(f"metric {name!r} must return one value (or array) per network, leading dimension E={E}; got shape {v.shape}")
            v[dead.cpu().numpy()] = np.nan
            rec[name].append(v)
        rec_steps.append(step)

    def snapshot(message="", stopped=False, wall=0.0) -> History:
        return History(
            steps=np.asarray(rec_steps),
            metrics={k: np.stack(v) if v else np.empty((0, E)) for k, v in rec.items()},
            params=cur, params0=params0, diverged_at=diverged_at.copy(), message=message,
            stopped_early=stopped, wall_time=wall,
            config={"method": method, "steps": steps, "record_every": None if record_set else record_every, "ensemble": E,
                    "lr": lr_t.cpu().tolist(), "momentum": beta.cpu().tolist(), "batch_size": batch_size,
                    "model": repr(model), "device": str(device)},
        )

    bar = _progress_bar(steps, progress)
    t0 = time.perf_counter()
    init_loss_max = None
    message, stopped = "", False
    step = 0
    any_dead = False
    try:
        with torch.no_grad():
            for step in range(steps):
                xb, yb = next_batch()
                last_batch[0] = (xb, yb)
                if method == "nag":
                    look = {k: cur[k] + _bcast(beta, cur[k]) * (cur[k] - prev[k]) if k in model.trainable else cur[k] for k in cur}
                    loss, grads, _ = model.loss_and_grad(look, xb, yb)
                else:
                    loss, grads, _ = model.loss_and_grad(cur, xb, yb)
                if init_loss_max is None:
                    finite = loss[torch.isfinite(loss)]
                    init_loss_max = float(finite.max()) if finite.numel() else 0.0
                    limit = max_loss if max_loss is not None else 1e8 * init_loss_max + 1e8
                # divergence: checked on the loss just computed (per network)
                bad = alive & (~torch.isfinite(loss) | (loss > limit))
                if bool(bad.any()):
                    idx = bad.nonzero().flatten().cpu().numpy()
                    diverged_at[idx] = step
                    alive &= ~bad
                    any_dead = True
                    for k in model.trainable:  # restore finite values so nothing downstream overflows
                        cur[k][bad] = params0[k][bad]
                        if prev is not None:
                            prev[k][bad] = params0[k][bad]
                    if not bool(alive.any()):
                        message = _divergence_message(model, params0, X, lr_t, lr_limit, diverged_at, step, stochastic, method, beta)
                        break
                if (step in record_set) if record_set is not None else (step % record_every == 0):
                    record(step, None if method == "nag" else loss)
                    if callback is not None and callback(snapshot(), step) is False:
                        message, stopped = f"stopped by the callback at step {step}", True
                        break
                eff_lr = lr_t * alive
                for k in model.trainable:
                    # zero the gradient of frozen (diverged) networks; it
                    # can be NaN/inf there, and 0 * inf = NaN broke "frozen at the initial values".
                    g = grads[k] if not any_dead else torch.where(_bcast(alive, grads[k]), grads[k], torch.zeros_like(grads[k]))
                    if method in ("gd", "sgd"):
                        cur[k].sub_(_bcast(eff_lr, g) * g)
                    elif method == "hb":
                        new = cur[k] - _bcast(eff_lr, g) * g + _bcast(beta * alive, g) * (cur[k] - prev[k])
                        prev[k] = cur[k]
                        cur[k] = new
                    else:  # nag: W+ = V - eta grad L(V)
                        new = look[k] - _bcast(eff_lr, g) * g
                        new = torch.where(_bcast(alive, g), new, cur[k])
                        prev[k] = cur[k]
                        cur[k] = new
                if bar is not None:
                    bar.update(1)
            else:
                step = steps
                record(steps, None)
                if callback is not None:
                    callback(snapshot(), steps)
    finally:
        if bar is not None:
            bar.close()
    if not message and (diverged_at >= 0).any():
        message = _divergence_message(model, params0, X, lr_t, lr_limit, diverged_at, step, stochastic, method, beta)
    return snapshot(message, stopped, time.perf_counter() - t0)


def _check_train_memory(model, params: Params, method: str, batch: int | None, n: int | None) -> None:
    """Refuse, before allocating, a run whose working set exceeds the memory budget (runtime.memory_budget):
    the copies train keeps (initial and current parameters, gradients, the previous step for momentum, the
    look-ahead for Nesterov) and one step's activations (models.step_bytes, on the batch and on the full set)."""
    all_bytes = sum(v.numel() * v.element_size() for v in params.values())
    trainable = sum(params[k].numel() * params[k].element_size() for k in model.trainable)
    copies = 2 * all_bytes + trainable * (1 + (method in ("hb", "nag")) + (method == "nag"))
    sizes = [k for k in (batch, n) if k]
    activations = max((step_bytes(model, params, k) for k in sizes), default=0)
    if copies + activations == 0:
        return
    E = next(iter(params.values())).shape[0]
    width = getattr(model, "width", None) or getattr(model, "widths", None) or getattr(model, "d", None)
    what = (f"train({type(model).__name__}, width={width}, ensemble={E}, n={n if n is not None else batch}, "
            f"method={method!r})")
    check_memory(copies + activations, what, device=next(iter(params.values())).device,
                 fix="use a smaller width, ensemble or n (or split the ensemble over several runs)")


def _progress_bar(total: int, progress: bool | None):
    if progress is False or total == 0:
        return None
    from tqdm.auto import tqdm

    # delay: the bar only appears for runs that last more than ~2 s
    return tqdm(total=total, delay=0 if progress else 2.0, leave=False, desc="training", mininterval=0.5)


def _divergence_message(model, params0, X, lr_t, lr_limit, diverged_at, step, stochastic, method="gd", beta=None) -> str:
    idx = np.flatnonzero(diverged_at >= 0)
    all_div = len(idx) == len(diverged_at)
    who = "every network" if all_div else f"network(s) {idx.tolist()}"
    first = int(diverged_at[idx].min())
    lr_vals = sorted({round(float(v), 6) for v in lr_t[torch.as_tensor(idx, device=lr_t.device)].cpu()})
    msg = (f"Training diverged: the loss of {who} became non-finite or exploded (first at step {first}); "
           f"{'the run stopped at step ' + str(step) if all_div else 'those networks were frozen, the others went on'}. ")
    if lr_limit is None and X is not None and not stochastic:
        lr_limit = _try_lr_limit(model, params0, X, int(idx[0]))
    if lr_limit is not None:
        ratio = max(lr_vals) / lr_limit
        msg += (f"Likely cause: step size lr={max(lr_vals):g} is {ratio:.2f} x the stability limit "
                f"2/lambda_max = {lr_limit:.4g} of the Gram matrix at initialization; use a smaller step size.")
        # with momentum the linearized limit is not 2/lambda_max; quoting only
        # that made a diverged NAG run read "lr is 0.67 x the stability limit". Add the limit for the
        # momentum of the first diverged network: hb 2(1+b)/lambda_max, nag 2(1+b)/((1+2b) lambda_max).
        b = float(beta[int(idx[0])]) if beta is not None and method in ("hb", "nag") else 0.0
        if b > 0:
            mom_limit = lr_limit * ((1 + b) if method == "hb" else (1 + b) / (1 + 2 * b))
            msg += (f" With momentum={b:g} ({method}) the linearized limit is "
                    f"{'2(1+b)/lambda_max' if method == 'hb' else '2(1+b)/((1+2b) lambda_max)'} = {mom_limit:.4g}.")
    else:
        msg += f"Likely cause: the step size (lr={lr_vals}) is too large for this problem; try a smaller one."
    return msg


def _try_lr_limit(model, params0, X, member: int) -> float | None:
    """2 / lambda_max of J J^T at initialization (scaled for the mean loss), or None if too costly."""
    from . import kernels
    from .models import TwoLayer, select

    try:
        if X.shape[0] > 2000:
            return None
        if isinstance(model, TwoLayer):
            H = kernels.empirical_gram(model, select(params0, member), X)[0]
        else:
            H = kernels.empirical_ntk(model, params0, X, member=member)
        lam_max = float(torch.linalg.eigvalsh(H)[-1])
        if model.loss_kind == "mean":
            lam_max *= 2.0 / X.shape[0]
        return 2.0 / lam_max if lam_max > 0 else None
    except Exception:  # noqa: BLE001 - the message falls back to a generic hint
        return None
