"""Lesson 2's science: the identity-mapping network, its closed forms, the training engine and the measurements.

Network f(x, W) = ||relu((I + W)^T x)||_1 = sum_i relu(<e_i + w_i, x>) (``identity=False``: the vanilla twin
||relu(W^T x)||_1), x ~ N(0, I_d), labels from a teacher W* of the identity network (plus optional Gaussian
label noise of standard deviation ``noise``), population loss L(W) = E[(f(x, W) - f(x, W*))^2], in closed form
(:func:`course_lib.theory.identity_population_loss`). For the vanilla student "W" is its first layer and the
teacher's first layer is I + W*: the same task, the same labels.

Measured at every record, in closed form from the weights (never a batch estimate): L(W), Li & Yuan's potential
g(W) (:func:`course_lib.theory.potential_g`), the distance ||U - (I + W*)||_F of the first layer U to the
teacher's, the cosine between -grad L and the way to the teacher, the one-point ratio
rho = <-grad L, W* - W> / ||W - W*||^2, and its linearized value rho_H = e^T H e / ||e||^2 (e = W - W*, H the
Hessian of L at W*, :func:`hessian_at_teacher`): where rho is within ``LINEAR_TOL`` of rho_H for the rest of
the run, the run is in the linear regime and the prediction starts there.

Predictions (the course's derivations, all linearized at W* where every per-sample residual vanishes):
* the distance of GD: ||(I - eta H)^(k - k0) e(k0)|| from the run's own error at the start k0 of the linear
  regime (each eigen-direction of H evolved directly, :func:`course_lib.theory.linearized_modes`);
  max |1 - eta lambda(H)| is the worst case over all errors, and labelled so;
* SGD with batch B is the same in the mean; its second moment S(k) = E[e e^T] evolves, with the fourth moment
  of the per-sample gradient replaced by a product of second moments (the course's approximation), by
  s_i <- (1 - eta lam_i)^2 s_i + (eta^2 / B) (lam_i sum_j lam_j s_j - lam_i^2 s_i) + eta^2 (2 sigma^2 / B) lam_i
  in H's eigenbasis. It stays bounded iff (eta / B) sum_i lam_i / (2 - eta lam_i (1 - 1/B)) < 1
  (:func:`sgd_stable_step`; trace H = d^2 exactly, so for small steps eta < 2 B / d^2): small batches lower the
  stable step. Without label noise (sigma = 0) nothing keeps e away from 0: no noise floor. With it the error
  levels off where the two terms balance (:func:`noise_floor`).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ... import data, kernels, theory
from ..._validate import check_choice, check_float, check_int
from ...experiment import log_record_steps
from ...models import IdentityNet
from ...runtime import float64_device, get_device, make_generator, scaled_steps, to_float64, torch_threads
from ...train import train

PHASE_RATIO = 0.04  # the one-point rule's default threshold c (a bit below lambda_min(H) ~ 0.08)
LINEAR_TOL = 0.1  # the linear regime: |rho / rho_H - 1| <= 0.1 from there to the end
G_FIXED = 0.1  # stage 1 ends once |g| <= 10% of |g(W_0)| for the rest of the run
EARLY_STEPS = 50  # recorded at every step by the phase experiment (stage 1 takes a few steps)
METHODS = ("gd", "sgd")
INITS = ("gaussian", "uniform", "minus_identity", "rotated", "zeros")
DIMS = (10, 20, 30)  # the Hessian is d^2 x d^2: its eigendecomposition at d = 30 (900 x 900) takes ~0.2 s
MAX_D_PREDICTION = max(DIMS)
FLOOR32 = 2e-5  # ||W - W*||_F where float32 SGD levels off (relative precision ~6e-8 on d^2 entries of size ~1)
FLOOR64 = 1e-9  # population GD in float64 (the closed form's angles near 0 carry ~1e-8 relative error)
DEFAULTS = dict(d=20, init="gaussian", scale=0.6, teacher_scale=0.6, identity=True, lr=0.1, batch=200, steps=300,
                method="sgd", seeds=5, seed=0, angle=0.7, noise=0.0)
PHASE_DEFAULTS = dict(d=20, init="rotated", scale=0.5, angle=0.7, teacher_scale=0.6, lr=0.1, steps=1000, method="gd",
                      seed=0, batch=200, early_steps=EARLY_STEPS)


# ----------------------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------------------
class PopulationObjective:
    """The closed-form population loss of the identity (or vanilla) student against an identity teacher W*
    (:func:`course_lib.theory.identity_population_loss`, the one place it is computed).

    ``value(W)`` -> (L, dL/dW) for W of shape (E, d, d), batched, float64. It is also a "model" for
    :func:`course_lib.train.train`: ``loss_and_grad`` ignores the batch (population GD), ``apply`` returns
    sqrt(L) for every input, so that the engine's batch loss against zero targets is L itself.
    """

    trainable = ("W",)
    names = ("W",)
    loss_kind = "mean"

    def __init__(self, W_star, identity: bool = True):
        self.W_star = torch.as_tensor(W_star)
        self.d = self.W_star.shape[-1]
        self.identity = bool(identity)
        eye = torch.eye(self.d, dtype=self.W_star.dtype, device=self.W_star.device)
        # the teacher always has the identity; the vanilla student is compared with its first layer I + W*
        self._teacher = self.W_star if self.identity else eye + self.W_star

    def first_layer(self, W: torch.Tensor) -> torch.Tensor:
        if not self.identity:
            return W
        return W + torch.eye(self.d, dtype=W.dtype, device=W.device)

    def value(self, W: torch.Tensor, grad: bool = True):
        teacher = self._teacher.to(device=W.device, dtype=W.dtype)
        return theory.identity_population_loss(W, teacher, identity=self.identity, grad=grad)

    # -- the course_lib.train "model" interface ----------------------------------------------------
    def loss_and_grad(self, params, X=None, y=None):
        L, G = self.value(params["W"])
        return L, {"W": G}, L.unsqueeze(-1)

    def apply(self, params, X):
        L = self.value(params["W"], grad=False)
        return torch.sqrt(L.clamp_min(0)).unsqueeze(-1).expand(-1, X.shape[0])

    def __repr__(self) -> str:
        return f"PopulationObjective(d={self.d}, identity={self.identity})"


def kernel_matrix(A, B) -> torch.Tensor:
    """k(a_i, b_j) = E[relu(a_i . x) relu(b_j . x)], x ~ N(0, I) (:func:`course_lib.kernels.arccos1`)."""
    return kernels.arccos1(torch.as_tensor(A, dtype=torch.float64), torch.as_tensor(B, dtype=torch.float64))


def hessian_at_teacher(W_star) -> torch.Tensor:
    """The Hessian of L at W = W* (identity student), shape (d^2, d^2), indexed like ``W.flatten()``.

    At W* the residual vanishes, so H = 2 E[grad f grad f^T]; its (i, j) block is
    2 E[1(v_i.x > 0) 1(v_j.x > 0) x x^T] = 2 M(v_i, v_j) with (t the angle, hats unit vectors)
    M(a, b) = [(pi - t) I + (b^ a^T + a^ b^T - cos t (a^ a^T + b^ b^T)) / sin t] / (2 pi),  M(a, a) = I / 2.
    """
    W_star = torch.as_tensor(W_star, dtype=torch.float64)
    d = W_star.shape[-1]
    V = (torch.eye(d, dtype=torch.float64) + W_star).T
    Vh = V / V.norm(dim=1, keepdim=True)
    th = kernels.angles(Vh)
    cos, sin = torch.cos(th), torch.sin(th).clamp_min(1e-300)
    eye = torch.eye(d, dtype=torch.float64)
    ab = Vh[:, None, :, None] * Vh[None, :, None, :]  # a^ b^T: [i, j, r, s] = a_r b_s (a = v_i, b = v_j)
    aa = Vh[:, :, None] * Vh[:, None, :]  # a^ a^T: [i, r, s]
    sym = ab + ab.transpose(-1, -2) - cos[:, :, None, None] * (aa[:, None] + aa[None, :])
    M = ((math.pi - th)[:, :, None, None] * eye + sym / sin[:, :, None, None]) / (2 * math.pi)
    idx = torch.arange(d)
    M[idx, idx] = eye / 2
    # W[r, i] is component r of w_i: H[(r, i), (s, j)] = 2 M[i, j, r, s]
    return (2 * M).permute(2, 0, 3, 1).reshape(d * d, d * d)


@functools.lru_cache(maxsize=6)
def hessian_modes(d: int, teacher_scale: float, teacher_seed: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(eigenvalues ascending, eigenvectors as columns, H) of the Hessian at the teacher, float64, cached.
    One thread: numpy's threaded LAPACK was 10x slower on a shared 2-core machine."""
    W_star = data.identity_teacher(d, scale=teacher_scale, seed=teacher_seed, dtype=torch.float64)
    H = hessian_at_teacher(W_star)
    with torch_threads(1):
        lam, V = kernels.eigh(H)
    return lam.numpy(), V.numpy(), H


def worst_case_rate(lr: float, lam: np.ndarray) -> float:
    """max |1 - eta lambda| over H's spectrum: the slowest any error can shrink under linearized GD."""
    return float(np.max(np.abs(1 - lr * np.asarray(lam))))


def sgd_stable_step(lam: np.ndarray, batch: int | None) -> float:
    """The largest step for which linearized SGD with batch ``batch`` keeps E||e||^2 bounded (the course's
    derivation, module docstring): (eta / B) sum_i lam_i / (2 - eta lam_i (1 - 1/B)) < 1. ``batch=None``
    (full gradient): 2 / lambda_max."""
    lam = np.asarray(lam, dtype=np.float64)
    if batch is None:
        return 2.0 / float(lam[-1])
    B = check_int("batch", batch, min_value=1)
    q = 1 - 1 / B
    hi = 2.0 * B / float(lam.sum())  # f(eta) >= eta trace(H) / (2 B)
    if q > 0:
        hi = min(hi, 2.0 / (float(lam[-1]) * q))  # past this pole the stiffest direction alone diverges
    lo = 0.0
    for _ in range(80):  # f is increasing in eta on (0, hi): bisection
        mid = 0.5 * (lo + hi)
        if mid / B * np.sum(lam / (2 - mid * lam * q)) < 1:
            lo = mid
        else:
            hi = mid
    return lo


def noise_floor(lam: np.ndarray, lr: float, batch: int, sigma: float) -> tuple[float, float]:
    """The level where linearized SGD with label noise ``sigma`` levels off: (sqrt(E||e||^2), E[L]) at the
    stationary second moment (module docstring; inf past :func:`sgd_stable_step`). Solved exactly: the
    recursion's matrix is diagonal plus rank one (Sherman-Morrison)."""
    lam = np.asarray(lam, dtype=np.float64)
    B = float(batch)
    D = 1 - ((1 - lr * lam) ** 2 - lr**2 * lam**2 / B)
    b = lr**2 * (2 * sigma**2 / B) * lam
    c = lr**2 / B
    denom = 1 - c * float(lam @ (lam / D))
    if np.any(D <= 0) or denom <= 0:
        return math.inf, math.inf
    s = b / D + (lam / D) * c * float(lam @ (b / D)) / denom
    return float(math.sqrt(s.sum())), float(0.5 * (lam * s).sum())


# ----------------------------------------------------------------------------------------------
# Starts and the measured stages
# ----------------------------------------------------------------------------------------------
def rotated_start(d: int, shrink: float, angle: float, *, ensemble: int = 1, seed: int = 0) -> torch.Tensor:
    """W_0 = (1 - shrink) R - I: every row e_i shrunk by ``shrink`` and turned by a random rotation R = exp(A),
    A skew-symmetric and scaled so that the rows turn by ``angle`` radians (root mean square). Rows too short
    make g large; rows pointing the wrong way keep ||W - W*|| large while g falls."""
    gen = make_generator(seed)
    out = []
    for _ in range(ensemble):
        B = torch.randn(d, d, generator=gen, dtype=torch.float64)
        A = B - B.T
        A = A * (angle * math.sqrt(d) / A.norm().clamp_min(1e-300))
        out.append((1 - shrink) * torch.linalg.matrix_exp(A) - torch.eye(d, dtype=torch.float64))
    return torch.stack(out)


def initial_weights(d: int, init: str, scale: float, *, ensemble: int, seed: int, angle: float = 0.7) -> torch.Tensor:
    """W_0, float64, shape (E, d, d). ``scale``: ||W_0||_2 (gaussian, uniform), gamma (minus_identity: -gamma I),
    the shrink factor (rotated)."""
    if init == "rotated":
        return rotated_start(d, scale, angle, ensemble=ensemble, seed=seed)
    return IdentityNet(d).init(ensemble=ensemble, seed=seed, kind=init, scale=scale, dtype=torch.float64, device="cpu")["W"]


def phase_boundary(steps, ratio, threshold: float = PHASE_RATIO):
    """The first recorded step from which ``ratio`` stays >= ``threshold`` to the end; None if it ends below."""
    steps, ratio = np.asarray(steps), np.asarray(ratio, dtype=float)
    ok = np.isfinite(ratio) & (ratio >= threshold)
    if len(ok) == 0 or not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(steps[0] if len(bad) == 0 else steps[bad[-1] + 1])


def stays_from(steps, ok) -> int | None:
    """The first recorded step from which ``ok`` holds at every later record; None if it fails at the end."""
    steps, ok = np.asarray(steps), np.asarray(ok, dtype=bool)
    if len(ok) == 0 or not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(steps[0] if len(bad) == 0 else steps[bad[-1] + 1])


def g_fixed_step(steps, g) -> int | None:
    """Stage 1's end: the first record from which |g| <= G_FIXED |g(W_0)| to the end (None when g starts at 0)."""
    g = np.asarray(g, dtype=float)
    if not np.isfinite(g[0]) or abs(g[0]) < 1e-12:
        return None
    return stays_from(steps, np.isfinite(g) & (np.abs(g) <= G_FIXED * abs(g[0])))


def linear_start(steps, rho, rho_H, tol: float = LINEAR_TOL) -> int | None:
    """The start of the linear regime: the first record from which |rho / rho_H - 1| <= tol to the end."""
    rho, rho_H = np.asarray(rho, dtype=float), np.asarray(rho_H, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(rho) & np.isfinite(rho_H) & (np.abs(rho / rho_H - 1) <= tol)
    return stays_from(steps, ok)


def fit_rate(steps, values) -> float:
    """Per-step factor exp(slope) of a least-squares line through log(values) against steps."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    return float(np.exp(np.polyfit(steps, np.log(values), 1)[0]))


def neg_log(rate: float) -> float:
    """-log(rate): the speed in e-folds per step (what rate comparisons are made in)."""
    return -math.log(rate) if rate > 0 else math.inf


def _matched(U: np.ndarray, T: np.ndarray) -> tuple[float, np.ndarray]:
    """min over column permutations P of ||U P - T||_F, and the permutation (column j of T gets column perm[j])."""
    from scipy.optimize import linear_sum_assignment

    C = ((U[:, :, None] - T[:, None, :]) ** 2).sum(0)
    r, c = linear_sum_assignment(C.T)  # rows: teacher columns, cols: student columns
    perm = np.empty(len(r), dtype=np.int64)
    perm[r] = c
    return float(np.sqrt(C[perm, np.arange(len(r))].sum())), perm


def _metrics(objective: PopulationObjective, W_star: torch.Tensor, H: torch.Tensor | None):
    """Closed-form metrics, computed once per record (cached on the step)."""
    cache: dict = {}
    d = objective.d
    target = torch.eye(d, dtype=torch.float64) + W_star  # the teacher's first layer

    def all_metrics(params, ctx):
        if cache.get("step") != ctx.step:
            W = to_float64(params["W"].detach()).cpu()
            L, G = objective.value(W)
            U = objective.first_layer(W)
            D = target - U  # the way to the teacher
            dist = D.norm(dim=(-1, -2))
            inner = (-G * D).sum((-1, -2))
            cos = inner / (G.norm(dim=(-1, -2)) * dist).clamp_min(1e-300)
            rho = inner / (dist * dist).clamp_min(1e-300)
            if H is not None:
                e = (-D).reshape(D.shape[0], -1)
                rho_H = ((e @ H) * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-300)
            else:
                rho_H = torch.full_like(rho, float("nan"))
            g = theory.potential_g(W if objective.identity else W - torch.eye(d, dtype=W.dtype), W_star)
            if objective.identity:
                matched, perm = dist, torch.arange(d).expand(W.shape[0], d)
            else:  # the vanilla net is symmetric under permuting its neurons (the columns of W)
                pairs = [_matched(u.numpy(), target.numpy()) for u in U]
                matched = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
                perm = torch.from_numpy(np.stack([p[1] for p in pairs]))
            cache.update(step=ctx.step, vals={"pop_loss": L, "g": g, "dist": dist, "cos": cos, "ratio": rho,
                                              "rho_H": rho_H, "matched": matched, "perm": perm.to(torch.float64),
                                              "W": U.reshape(U.shape[0], -1)})
        return cache["vals"]

    names = ("pop_loss", "g", "dist", "cos", "ratio", "rho_H", "matched", "perm", "W")
    return {n: (lambda p, c, n=n: all_metrics(p, c)[n]) for n in names}


# ----------------------------------------------------------------------------------------------
# The training engine
# ----------------------------------------------------------------------------------------------
def _validate(d, init, scale, teacher_scale, lr, batch, steps, method, seeds, angle, noise):
    d = check_int("d", d, min_value=2, max_value=200)
    init = check_choice("init", init, INITS)
    scale = check_float("scale", scale, min_value=0.0, max_value=0.95 if init in ("minus_identity", "rotated") else 5.0)
    teacher_scale = check_float("teacher_scale", teacher_scale, min_value=0.0, max_value=2.0)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False, max_value=10.0)
    batch = check_int("batch", batch, min_value=1, max_value=100_000)
    steps = check_int("steps", steps, min_value=1, max_value=1_000_000)
    method = check_choice("method", method, METHODS)
    seeds = check_int("seeds", seeds, min_value=1, max_value=64)
    angle = check_float("angle", angle, min_value=0.0, max_value=1.5)
    noise = check_float("noise", noise, min_value=0.0, max_value=10.0)
    return d, init, scale, teacher_scale, lr, batch, steps, method, seeds, angle, noise


def record_steps(steps: int, records: int, early_steps: int = 0) -> list[int]:
    """About ``records`` evenly spaced steps (rate fits), as many log-spaced ones (the fast start, the time slider's
    early frames), and every step up to ``early_steps``."""
    out = set(log_record_steps(steps, records)) | set(range(0, steps + 1, max(1, steps // records)))
    out |= set(range(min(early_steps, steps) + 1)) | {steps}
    return sorted(out)


def experiment(d: int = DEFAULTS["d"], init: str = DEFAULTS["init"], scale: float = DEFAULTS["scale"],
               teacher_scale: float = DEFAULTS["teacher_scale"], identity: bool = True, lr: float = DEFAULTS["lr"],
               batch: int = DEFAULTS["batch"], steps: int = DEFAULTS["steps"], method: str = DEFAULTS["method"],
               seeds: int = DEFAULTS["seeds"], seed: int = 0, angle: float = DEFAULTS["angle"], records: int = 40,
               prediction: bool = True, scales=None, early_steps: int = 0, noise: float = 0.0, device=None,
               live=None) -> dict:
    """Train ``seeds`` students (one ensemble) from W_0 of kind ``init`` against the teacher W*
    (||W*||_2 = ``teacher_scale``, seed 1000 + ``seed``) and record the closed-form metrics.

    ``method="sgd"``: SGD on fresh Gaussian batches of ``batch`` samples (labels plus N(0, ``noise``^2) noise),
    float32; ``"gd"``: gradient descent on the closed-form population loss, float64. ``scales``: one network
    per init scale instead of one per seed. Returns a dict: ``history`` (metrics at the recorded steps, the
    first layer ``W`` included), the settings, and, for the identity net at d <= ``MAX_D_PREDICTION`` with
    ``prediction``: the Hessian's spectrum, each network's linear-regime start and its linearized prediction
    (:func:`analyse`).
    """
    with torch_threads(1):  # tiny tensors: see runtime.torch_threads
        d, init, scale, teacher_scale, lr, batch, steps, method, seeds, angle, noise = _validate(
            d, init, scale, teacher_scale, lr, batch, steps, method, seeds, angle, noise)
        steps = scaled_steps(steps)
        device = get_device(device)
        W_star = data.identity_teacher(d, scale=teacher_scale, seed=1000 + seed, dtype=torch.float64)
        if scales is None:
            W0 = initial_weights(d, init, scale, ensemble=seeds, seed=seed, angle=angle)
        else:  # one network per init scale, same seed
            scales = [check_float("scales[i]", v, min_value=0.0, max_value=5.0) for v in scales]
            seeds = len(scales)
            W0 = torch.cat([initial_weights(d, init, v, ensemble=1, seed=seed, angle=angle) for v in scales])
        # The vanilla student gets the same W_0 as its first layer (near zero, a standard small init), the identity
        # student I + W_0: the identity mapping is a change of starting point.
        objective = PopulationObjective(W_star, identity=identity)
        modes = None
        if identity and prediction and d <= MAX_D_PREDICTION:
            modes = hessian_modes(d, float(teacher_scale), 1000 + seed)
        spec = dict(d=d, init=init, scale=scale, teacher_scale=teacher_scale, identity=identity, lr=lr, batch=batch,
                    steps=steps, method=method, seeds=seeds, seed=seed, angle=angle, noise=noise,
                    scales=None if scales is None else list(scales))
        callback = None
        if live is not None:
            callback = lambda hist, step: live({**spec, "history": hist, "partial": True})
        if method == "gd":
            model, params = objective, {"W": W0.to(float64_device(device))}
            zeros = (torch.zeros(1, d, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
            sampler = lambda gen: zeros
        else:
            model = IdentityNet(d, identity=identity)
            params = {"W": W0.to(device, torch.float32)}
            U_star = (torch.eye(d) + W_star.float()).to(device)

            def sampler(gen):
                X = data.gaussian_batch(batch, d, generator=gen, device=device)
                y = torch.relu(X @ U_star).sum(-1)
                if noise > 0:
                    y = y + noise * torch.randn(batch, generator=gen).to(device)
                return X, y

        metrics = _metrics(objective, W_star, None if modes is None else modes[2])
        hist = train(model, params, steps=steps, sampler=sampler, method="sgd", lr=lr, metrics=metrics, seed=seed,
                     record_steps=record_steps(steps, records, early_steps), callback=callback, progress=False)
        res = {**spec, "history": hist, "partial": False, "W_star": W_star.numpy()}
        return analyse(res, modes)


def analyse(res: dict, modes=None) -> dict:
    """Add what the figures and claims read: the stages, the linear-regime start and prediction per network,
    the worst-case rate, SGD's stable step and noise floor."""
    h = res["history"]
    E = h.ensemble
    s = h.steps
    res["phase2_start"] = [phase_boundary(s, h["ratio"][:, e]) for e in range(E)]
    res["g_fixed"] = [g_fixed_step(s, h["g"][:, e]) for e in range(E)]
    res["floor"] = FLOOR64 if res["method"] == "gd" else FLOOR32
    res["lam"] = None
    if modes is None:
        return res
    lam, V, _ = modes
    lr = res["lr"]
    res["lam"] = (float(lam[0]), float(lam[-1]))
    res["lambda_sum"] = float(lam.sum())
    res["worst_rate"] = res["rate"] = worst_case_rate(lr, lam)
    res["gd_limit"] = 2.0 / float(lam[-1])
    res["stable_step"] = sgd_stable_step(lam, None if res["method"] == "gd" else res["batch"])
    noisy = res["method"] == "sgd" and res["noise"] > 0
    res["noise_floor"] = noise_floor(lam, lr, res["batch"], res["noise"]) if noisy else (0.0, 0.0)
    w_star = (np.eye(res["d"]) + res["W_star"]).reshape(-1)
    starts, free, noisy_pred = [], np.full((len(s), E), np.nan), np.full((len(s), E), np.nan)
    slow = []
    for e in range(E):
        k0 = None if h.diverged_at[e] >= 0 else linear_start(s, h["ratio"][:, e], h["rho_H"][:, e])
        starts.append(k0)
        if k0 is None:
            slow.append(np.nan)
            continue
        i0 = int(np.searchsorted(s, k0))
        err = h["W"][i0, e] - w_star
        _, _, coef = theory.linearized_modes(None, torch.from_numpy(err), lr, s[i0:] - k0, eig=(lam, V))
        free[i0:, e] = np.sqrt((coef**2).sum(1))
        slow.append(float(coef[0, 0] ** 2 / (coef[0] ** 2).sum()))
        if noisy:
            noisy_pred[i0:, e] = second_moment(lam, coef[0] ** 2, lr, res["batch"], res["noise"], s[i0:] - k0)
    res["linear_start"] = starts
    res["prediction_free"] = free  # GD linearized at W*, from the run's own error
    res["prediction"] = noisy_pred if noisy else free  # what the figure draws: with label noise, down to the floor
    res["slow_share"] = slow  # the share of ||e(k0)||^2 on H's slowest eigen-direction
    return res


def second_moment(lam: np.ndarray, s0: np.ndarray, lr: float, batch: int, sigma: float, ks) -> np.ndarray:
    """sqrt(E||e(k)||^2) of the course's linearized SGD (module docstring) from the mode energies ``s0`` = c_i(k0)^2,
    at the steps ``ks`` after k0 (increasing): the prediction of a run with label noise, which levels off at
    :func:`noise_floor`."""
    a = (1 - lr * lam) ** 2 - lr**2 * lam**2 / batch
    c = lr**2 / batch
    b = lr**2 * (2 * sigma**2 / batch) * lam
    out, sv, k = [], np.asarray(s0, dtype=np.float64).copy(), 0
    for target in np.asarray(ks, dtype=np.int64):
        while k < target:
            sv = a * sv + c * lam * float(lam @ sv) + b
            k += 1
        out.append(math.sqrt(float(sv.sum())))
    return np.array(out)


def rate_window(res: dict, e: int, first: float = 1 / 3):
    """The records where measured and predicted rates are compared for network ``e``: from ``first`` of the way
    between the linear-regime start and the end, where the distance is above the precision floor. None if
    fewer than 5 records or 20 steps."""
    h = res["history"]
    k0 = res["linear_start"][e] if res.get("linear_start") else None
    if k0 is None:
        return None
    s, dist = h.steps, h["dist"][:, e]
    a = k0 + first * (s[-1] - k0)
    keep = (s >= a) & np.isfinite(dist) & (dist > 10 * res["floor"]) & np.isfinite(res["prediction"][:, e])
    if keep.sum() < 5 or s[keep][-1] - s[keep][0] < 20:
        return None
    return keep


def rates(res: dict, e: int) -> tuple[float, float] | None:
    """(measured, predicted) per-step rates of ||W - W*|| over :func:`rate_window`."""
    keep = rate_window(res, e)
    if keep is None:
        return None
    h = res["history"]
    return fit_rate(h.steps[keep], h["dist"][keep, e]), fit_rate(h.steps[keep], res["prediction"][keep, e])


def rows(res: dict) -> dict:
    """Each row u_i of every network's first layer against the teacher's row it is compared with (its own v_i; for
    the vanilla net the one its best permutation assigns), at every record: angle (kernels.angles) and
    length ratio ||u_i|| / ||v_i||, arrays of shape (records, E, d). Cached on the result."""
    if "rows" in res:
        return res["rows"]
    h = res["history"]
    d = res["d"]
    U = torch.from_numpy(h["W"]).view(len(h.steps), -1, d, d).transpose(-1, -2)  # rows u_i
    V = torch.from_numpy(np.eye(d) + res["W_star"]).T  # rows v_i
    perm = torch.from_numpy(np.nan_to_num(h["perm"]).astype(np.int64))  # (records, E, d): teacher j <- student perm
    Um = torch.gather(U, 2, perm.unsqueeze(-1).expand(*perm.shape, d))  # student rows in teacher order
    theta = kernels.angles(Um.unsqueeze(-2), V.expand_as(Um).unsqueeze(-2))[..., 0, 0]
    ratio = Um.norm(dim=-1) / V.norm(dim=-1)
    res["rows"] = {"angle": theta.numpy(), "length": ratio.numpy()}
    return res["rows"]

