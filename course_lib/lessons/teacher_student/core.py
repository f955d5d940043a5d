"""Lesson 3's science: the closed-form population loss, teachers, starts, population GD and what is measured.

Setting (the course's): Gaussian input x ~ N(0, I_d); teacher f*(x) = sum_{i<=m} a*_i relu(w*_i . x); student
f(x) = sum_{j<=n} a_j relu(w_j . x), n >= m, both layers trained by plain gradient descent on the population loss
L = E_x[(f(x) - f*(x))^2] (no 1/2, no regularizer), in closed form (float64) with the arc-cosine kernel
k(u, v) = E[relu(u.x) relu(v.x)] = ||u|| ||v|| (sin t + (pi - t) cos t) / (2 pi):

    L = sum_{p,q} z_p z_q k(Z_p, Z_q),   Z = [w_1..w_n, w*_1..w*_m],   z = [a_1..a_n, -a*_1..-a*_m].
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ... import data, theory
from ..._validate import check_choice, check_float, check_int

# The float64 floor, in units of E[f*^2]: L is a difference of O(1) numbers of the size of E[f*^2], and below
# FLOOR x E[f*^2] its rounding dominates (converged n = m runs end at |L| ~ 1e-16 E[f*^2], of either sign). The
# one floor of the lesson: the grey bands, the claims ("reaches the float64 floor") and the numbers ("< 1e-14").
FLOOR = 1e-14
ANGLE_FLOOR_DEG = 1e-13  # angles (degrees) below this are float64 rounding (~1e-16 rad is 6e-15 degrees)
MAX_LOSS = 1e6
KEEP = 0.1  # a student "keeps weight" if |a_j| ||w_j|| is at least 10% of its teacher's |a*_i| ||w*_i||
OUTPUTS = ("mixed", "ones", "signs")


# ----------------------------------------------------------------------------------------------
# The population loss and its gradient
# ----------------------------------------------------------------------------------------------
def angles_cos_sin(A, B=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, cos theta, sin theta) between the rows of A (..., P, d) and of B (..., Q, d) (B = A if None; leading
    dimensions broadcast), shape (..., P, Q), numpy float64.

    The numpy twin of :func:`course_lib.kernels.angles_cos_sin` (same formulas, tested equal): cos from the unit
    rows' inner products, and on the near-(anti)parallel pairs (|cos| > 0.9), where arccos(cos) and sqrt(1 - cos^2)
    lose half the digits, theta = 2 atan2(||a^ - b^||, ||a^ + b^||) and sin = ||a^ - b^|| ||a^ + b^|| / 2 from the
    differences themselves (accurate to rounding, ~1e-16 absolute). A zero row has cos 0 and angle pi/2 to
    everything. (Flat indices rather than torch's gather: this runs at every GD step, where the per-operation
    overhead is the cost; torch's version on these shapes is several times slower.)
    """
    A = np.asarray(A, dtype=np.float64)
    Ah = A / np.maximum(np.sqrt(np.einsum("...d,...d->...", A, A)), 1e-300)[..., None]
    if B is None:
        Bh = Ah
    else:
        B = np.asarray(B, dtype=np.float64)
        Bh = B / np.maximum(np.sqrt(np.einsum("...d,...d->...", B, B)), 1e-300)[..., None]
    cos = Ah @ np.swapaxes(Bh, -1, -2)
    np.clip(cos, -1.0, 1.0, out=cos)
    theta = np.arccos(cos)
    sin = np.sqrt(1.0 - cos * cos)
    flat = np.flatnonzero(np.abs(cos) > 0.9)  # the near pairs (with B = A: every nonzero row with itself too)
    if flat.size:
        (P, d), Q = Ah.shape[-2:], Bh.shape[-2]
        e, pq = np.divmod(flat, P * Q)
        p, q = np.divmod(pq, Q)
        batch = cos.shape[:-2]
        u = np.broadcast_to(Ah, batch + (P, d)).reshape(-1, d)[e * P + p]
        v = np.broadcast_to(Bh, batch + (Q, d)).reshape(-1, d)[e * Q + q]
        dm, dp = u - v, u + v
        minus = np.sqrt(np.einsum("kd,kd->k", dm, dm))
        plus = np.sqrt(np.einsum("kd,kd->k", dp, dp))
        theta.reshape(-1)[flat] = 2 * np.arctan2(minus, plus)
        sin.reshape(-1)[flat] = 0.5 * minus * plus
    return theta, cos, sin


def loss_and_grad(a, W, a_star, W_star):
    """L = E[(sum_j a_j relu(w_j.x) - sum_i a*_i relu(w*_i.x))^2], x ~ N(0, I), and (dL/da, dL/dW), numpy float64.

    a: (..., n), W: (..., n, d), a_star: (..., m), W_star: (..., m, d); leading dimensions batch (an ensemble).
    Rows of W that are exactly zero (padding) contribute nothing and get zero gradient.

    This is :func:`course_lib.theory.relu_sum_loss` (the course's one statement of the formula, in torch, checked
    against Monte Carlo in the tests) evaluated as one kernel matrix of the stacked vectors, with the same
    well-conditioned angles (:func:`angles_cos_sin`, the numpy twin of :func:`course_lib.kernels.angles_cos_sin`).
    Why a numpy copy rather than a call: on this lesson's tiny shapes (up to 24 networks of 20 vectors in R^5) the
    torch version costs 6-30x more per call (operation overhead, not arithmetic; measured on the shared 2-core
    course machine, one torch thread), and a dashboard runs a thousand GD steps inside its 1 s budget. The tests
    check that the two agree to 1e-12.
    """
    a, W = np.asarray(a, dtype=np.float64), np.asarray(W, dtype=np.float64)
    n = W.shape[-2]
    a_star = np.broadcast_to(np.asarray(a_star, dtype=np.float64), a.shape[:-1] + np.shape(a_star)[-1:])
    W_star = np.broadcast_to(np.asarray(W_star, dtype=np.float64), W.shape[:-2] + np.shape(W_star)[-2:])
    Z = np.concatenate([W, W_star], axis=-2)
    z = np.concatenate([a, -a_star], axis=-1)
    theta, cos, sin = angles_cos_sin(Z)
    nz = np.sqrt(np.einsum("...d,...d->...", Z, Z))
    nn = nz[..., :, None] * nz[..., None, :]
    pi_minus = math.pi - theta
    Kz = ((nn * (sin + pi_minus * cos)) @ z[..., :, None])[..., 0] / (2 * math.pi)
    loss = (z * Kz).sum(-1)
    # dL/dZ_p = 2 sum_q z_p z_q d/dZ_p k(Z_p, Z_q), only for the student rows p < n
    Wz = z[..., :n, None] * z[..., None, :]  # (..., n, P)
    t1 = (pi_minus[..., :n, :] * Wz) @ Z
    t2 = ((sin[..., :n, :] * Wz) @ nz[..., :, None]) * W / np.maximum(nz[..., :n], 1e-300)[..., None]
    return loss, 2 * Kz[..., :n], (t1 + t2) / math.pi


# ----------------------------------------------------------------------------------------------
# Teacher and starts
# ----------------------------------------------------------------------------------------------
def make_teacher(m: int, d: int, *, overlap: float = 0.0, norms: str = "equal", output: str = "ones", seed: int = 0):
    """Teacher (a*, W*) as numpy float64: m directions in R^d with pairwise cosine ``overlap``.

    overlap = 0: orthonormal directions (needs m <= d); overlap rho > 0: w*_i = sqrt(1 - rho) q_i + sqrt(rho) q_0
    for orthonormal q_0..q_m (needs d >= m + 1). ``norms``: "equal" (||w*_i|| = 1) or "spread" (||w*_i|| evenly in
    [0.7, 1.3]). ``output``: "ones" (a*_i = 1), "mixed" (a*_i = +1, -1, +1, ...) or "signs" (random signs).
    """
    m = check_int("m", m, min_value=1, max_value=16)
    d = check_int("d", d, min_value=2, max_value=64)
    overlap = check_float("overlap", overlap, min_value=0.0, max_value=0.9)
    check_choice("norms", norms, ("equal", "spread"))
    check_choice("output", output, OUTPUTS)
    if overlap == 0.0:
        if m > d:
            raise ValueError(f"d must be >= m for an orthogonal teacher; got m={m}, d={d}")
        teacher = data.two_layer_teacher(m, d, seed=seed, orthogonal=True, output="ones" if output == "mixed" else output,
                                         device="cpu", dtype=torch.float64)
        W_star, a_star = teacher.W.numpy().copy(), teacher.a.numpy().copy()
    else:
        if d < m + 1:
            raise ValueError(f"d must be >= m + 1 when overlap > 0 (got m={m}, d={d}); raise d or set overlap to 0")
        Q = data.random_orthonormal(d, m + 1, seed=seed).numpy()  # (d, m + 1)
        W_star = (math.sqrt(1 - overlap) * Q[:, 1:] + math.sqrt(overlap) * Q[:, :1]).T.copy()
        a_star = data.two_layer_teacher(m, d, seed=seed, orthogonal=False, output="ones" if output == "mixed" else output,
                                        device="cpu", dtype=torch.float64).a.numpy().copy()
    if output == "mixed":
        a_star = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    if norms == "spread" and m > 1:
        W_star = W_star * np.linspace(0.7, 1.3, m)[:, None]
    return a_star, W_star


def reference_loss(a_star, W_star) -> float:
    """E[f*(x)^2]: the loss of the zero student, the size of the O(1) terms whose difference L is (its float64
    rounding, about FLOOR x this, is the floor no loss curve can go below)."""
    d = np.shape(W_star)[-1]
    return float(loss_and_grad(np.zeros(1), np.zeros((1, d)), a_star, W_star)[0])


def teacher_mass(a_star, W_star) -> np.ndarray:
    """a*_i ||w*_i||, shape (m,)."""
    return np.asarray(a_star) * np.linalg.norm(W_star, axis=-1)


def group_of(n: int, m: int) -> np.ndarray:
    """The teacher each student copies in the local start: j -> j mod m (groups as equal as possible)."""
    return np.arange(n) % m


def local_init(a_star, W_star, ns, *, noise: float, seed: int = 0, norm_noise: float = 0.0):
    """Local start, padded to max(ns): student j of network e is a perturbed copy of teacher j mod m.

    Within the group of k copies of teacher i: w_j = s (w*_i + noise * ||w*_i|| xi_j / sqrt d) (1 + norm_noise eta_j),
    a_j = sign(a*_i) s with s = sqrt(|a*_i| ||w*_i|| / k) shared (so the group's mass sum a_j ||w_j|| starts
    near a*_i ||w*_i|| and the layers start nearly balanced). Returns a (E, N), W (E, N, d).
    """
    noise = check_float("noise", noise, min_value=0.0, max_value=2.0)
    m, d = W_star.shape
    rng = np.random.default_rng(seed)
    N = max(ns)
    a = np.zeros((len(ns), N))
    W = np.zeros((len(ns), N, d))
    for e, n in enumerate(ns):
        if n < m:
            raise ValueError(f"student size n must be >= teacher size m={m}; got n={n}")
        g = group_of(n, m)
        k = np.bincount(g, minlength=m)
        norms = np.linalg.norm(W_star, axis=1)
        s = np.sqrt(np.abs(a_star) * norms / k)[g]
        xi = rng.standard_normal((n, d))
        jitter = 1.0 + norm_noise * rng.standard_normal(n)
        W[e, :n] = s[:, None] * (W_star[g] + noise * norms[g][:, None] * xi / math.sqrt(d)) * jitter[:, None]
        a[e, :n] = np.sign(a_star[g]) * s
    return a, W


def random_init(ns, d: int, *, scale: float, seeds, seed: int = 0):
    """Random start (beyond the theorem): w_j ~ N(0, scale^2 I / d), a_j = +-||w_j|| (balanced, random sign).

    One network per (n, seed) pair, padded to max(ns); returns a (E, N), W (E, N, d), and the n of each network.
    """
    scale = check_float("scale", scale, min_value=0.0, max_value=10.0, min_inclusive=False)
    rng = np.random.default_rng(seed)
    N = max(ns)
    pairs = [(n, s) for n in ns for s in range(seeds)]
    a = np.zeros((len(pairs), N))
    W = np.zeros((len(pairs), N, d))
    for e, (n, _) in enumerate(pairs):
        W[e, :n] = scale * rng.standard_normal((n, d)) / math.sqrt(d)
        a[e, :n] = rng.choice([-1.0, 1.0], size=n) * np.linalg.norm(W[e, :n], axis=1)
    return a, W, np.array([n for n, _ in pairs])


# ----------------------------------------------------------------------------------------------
# Gradient descent on the population loss
# ----------------------------------------------------------------------------------------------
def gradient_descent(a, W, a_star, W_star, *, lr: float, steps: int, record_every: int | None = 10,
                     record_steps=None, track_balance: bool = False, live=None, live_every: float = 0.5) -> dict:
    """Full (population) gradient descent on both layers of an ensemble of students.

    The loss is recorded at every step (``loss``: (steps + 1, E)); the parameters at ``record_steps`` (or every
    ``record_every`` steps) and at the last one (``snap_steps``, ``a_hist`` (R, E, N), ``W_hist`` (R, E, N, d)).
    ``track_balance``: also ``flow_drift`` (R, E, N), the running sum over steps of
    lr^2 ((dL/da_j)^2 - ||dL/dw_j||^2), which is what GD adds to a_j^2 - ||w_j||^2 at each step (gradient flow
    conserves it). A network whose loss becomes non-finite or exceeds 1e6 is frozen and its later losses are NaN;
    ``diverged_at[e]`` is the step (or -1). ``live(partial)`` is called about every ``live_every`` seconds.
    """
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    steps = check_int("steps", steps, min_value=1)
    if record_steps is not None:
        record = {int(k) for k in record_steps if 0 <= int(k) <= steps} | {0, steps}
    else:
        every = check_int("record_every", record_every if record_every is not None else 10, min_value=1)
        record = set(range(0, steps + 1, every)) | {steps}
    a, W = np.array(a, dtype=np.float64), np.array(W, dtype=np.float64)
    E = a.shape[0]
    loss = np.full((steps + 1, E), np.nan)
    snap_steps, a_hist, W_hist, flow_hist = [], [], [], []
    flow = np.zeros_like(a)
    diverged_at = np.full(E, -1)
    alive = np.ones(E, dtype=bool)
    t0 = last = time.perf_counter()
    for k in range(steps + 1):
        L, da, dW = loss_and_grad(a, W, a_star, W_star)
        bad = alive & ~(np.isfinite(L) & (np.abs(L) < MAX_LOSS))
        if bad.any():
            diverged_at[bad] = k
            alive &= ~bad
        loss[k, alive] = L[alive]
        if k in record:
            snap_steps.append(k)
            a_hist.append(a.copy())
            W_hist.append(W.copy())
            if track_balance:
                flow_hist.append(flow.copy())
        if k == steps or not alive.any():
            break
        if alive.all():
            a -= lr * da
            W -= lr * dW
            if track_balance:
                flow += lr * lr * (da * da - np.einsum("...d,...d->...", dW, dW))
        else:
            a[alive] -= lr * da[alive]
            W[alive] -= lr * dW[alive]
            if track_balance:
                flow[alive] += lr * lr * (da[alive] ** 2 - (dW[alive] ** 2).sum(-1))
        if live is not None and time.perf_counter() - last > live_every:
            last = time.perf_counter()
            live({"loss": loss[: k + 1], "partial": True})
    out = {"loss": loss[: k + 1], "steps": np.arange(k + 1), "snap_steps": np.array(snap_steps),
           "a_hist": np.array(a_hist), "W_hist": np.array(W_hist), "a": a, "W": W, "diverged_at": diverged_at,
           "lr": lr, "wall_s": time.perf_counter() - t0}
    if track_balance:
        out["flow_drift"] = np.array(flow_hist)
    return out


def stability_limit(a_star, W_star) -> float:
    """2 / lambda_max of the Hessian of L at the teacher itself (a student n = m sitting on the teacher): GD's step
    must stay below it to settle into the minimum. (Several copies sharing a teacher neuron have the same lambda_max:
    the stiffest direction moves all copies together.)"""
    return 2.0 / float(np.linalg.eigvalsh(hessian(a_star, W_star, a_star, W_star))[-1])


def settling(loss, L0: float, diverged_at: int = -1, ref: float | None = None) -> tuple[str, str]:
    """("settles" | "oscillates" | "diverged", a sentence) for one network's loss curve.

    GD on a quadratic with a stable step lowers the loss at every step, so a loss that rises on more than 5% of the
    steps of the second half (above the float64 floor, FLOOR x ``ref``) is oscillating; one that ends above L(0)/10
    has not settled.
    """
    loss = np.asarray(loss, dtype=float)
    ref = L0 if ref is None else ref
    if diverged_at >= 0 or not np.isfinite(loss).all():
        k = diverged_at if diverged_at >= 0 else int(np.flatnonzero(~np.isfinite(loss))[0])
        return "diverged", f"the loss diverged at step {k} (it passed 10⁶)"
    half = loss[len(loss) // 2:]
    above = (half[:-1] > 1e3 * FLOOR * ref) & (half[1:] > 1e3 * FLOOR * ref)
    rises = float(np.mean(half[1:][above] > half[:-1][above] * (1 + 1e-9))) if above.sum() >= 3 else 0.0
    if rises > 0.05 or loss[-1] > 0.1 * L0:
        return "oscillates", (f"the loss rose on {rises:.0%} of the steps of the last half and ends at "
                              f"{loss[-1] / L0:.2g} × its starting value")
    return "settles", ""


def frame_title(fig, settings: str, warning: str = "", *, width: int = 150) -> None:
    """The figure's settings line on top (what distinguishes this figure from another run's), and under it, when
    the run oscillates, diverged or has not converged, the warning in red on a white box: both above the panels,
    so that neither covers data. Moves the panels' top down to make room."""
    import textwrap

    fig.suptitle(settings, fontsize=9, y=0.995, va="top")
    top = 0.86
    if warning:
        text = textwrap.fill(warning, width)
        fig.text(0.5, 0.94, text, ha="center", va="top", fontsize=7.5, color="crimson", zorder=10,
                 bbox=dict(facecolor="white", alpha=0.95, edgecolor="crimson", boxstyle="round,pad=0.3"))
        top = 0.86 - 0.045 * (text.count("\n") + 1)
    fig.subplots_adjust(top=top)


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------
def cosine_matrix(W, W_star) -> np.ndarray:
    """cos(w_j, w*_i), shape (..., n, m); rows of W that are zero give 0."""
    W, W_star = np.asarray(W, dtype=np.float64), np.asarray(W_star, dtype=np.float64)
    nw = np.linalg.norm(W, axis=-1)[..., :, None]
    ns = np.linalg.norm(W_star, axis=-1)[..., None, :]
    return (W @ np.swapaxes(W_star, -1, -2)) / np.maximum(nw * ns, 1e-300)


def angle_matrix(W, W_star) -> np.ndarray:
    """Angle (radians) between w_j and w*_i, shape (..., n, m), well conditioned near 0, where the lesson measures it
    (:func:`angles_cos_sin`, the numpy twin of :func:`course_lib.kernels.angles`; a zero row has angle pi/2 to
    everything)."""
    return angles_cos_sin(W, W_star)[0]


def masses(a, W) -> np.ndarray:
    """|a_j| ||w_j||: how much of the function student j carries, shape like a."""
    return np.abs(np.asarray(a)) * np.linalg.norm(W, axis=-1)


def cluster_mass(a, W, W_star) -> np.ndarray:
    """Per teacher i: sum over the students j whose direction is closest to w*_i of a_j ||w_j||, shape (m,)."""
    cos = cosine_matrix(W, W_star)
    owner = np.argmax(cos, axis=-1)
    mass = np.asarray(a) * np.linalg.norm(W, axis=-1)
    return np.array([mass[owner == i].sum() for i in range(np.shape(W_star)[0])])


def balance(a, W) -> np.ndarray:
    """a_j^2 - ||w_j||^2 (conserved by gradient flow, because relu is 1-homogeneous), shape like a."""
    return np.asarray(a) ** 2 - (np.asarray(W) ** 2).sum(-1)


def loglog_slope(steps, loss, lo: float, hi: float | None = None) -> float:
    """Least-squares slope of log(loss) vs log(step) over lo <= step <= hi (finite, positive losses only)."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    hi = steps.max() if hi is None else hi
    keep = (steps >= lo) & (steps <= hi) & np.isfinite(loss) & (loss > 0) & (steps > 0)
    if keep.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log(steps[keep]), np.log(loss[keep]), 1)[0])


def semilog_rate(steps, loss, lo: float, hi: float) -> float:
    """Least-squares slope of ln(loss) vs step over [lo, hi] (per-step log decrease; < 0 when converging)."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    keep = (steps >= lo) & (steps <= hi) & np.isfinite(loss) & (loss > 0)
    if keep.sum() < 3:
        return float("nan")
    return float(np.polyfit(steps[keep], np.log(loss[keep]), 1)[0])


def linear_window(loss: np.ndarray, loss0: float, ref: float | None = None) -> tuple[int, int]:
    """Steps where the loss of an n = m run is between 1e-3 L(0) and 1e4 x the float64 floor FLOOR x ``ref``
    (default L(0)): the fit window."""
    ref = loss0 if ref is None else ref
    ok = np.flatnonzero(np.isfinite(loss) & (loss < 1e-3 * loss0) & (loss > 1e4 * FLOOR * ref))
    if len(ok) < 3:
        return 0, 0
    return int(ok[0]), int(ok[-1])


def hessian(a, W, a_star, W_star, h: float = 1e-5) -> np.ndarray:
    """Hessian of L in (a, W) for one network (central differences of the closed-form gradient, one batched call).

    Parameters are ordered [a_1..a_n, w_1 (d entries), ..., w_n]. Error O(h) (k has a |theta|^3 term).
    """
    a, W = np.asarray(a, dtype=np.float64), np.asarray(W, dtype=np.float64)
    n, d = W.shape
    theta0 = np.concatenate([a, W.ravel()])
    P = len(theta0)
    thetas = np.concatenate([theta0 + h * np.eye(P), theta0 - h * np.eye(P)])
    _, da, dW = loss_and_grad(thetas[:, :n], thetas[:, n:].reshape(-1, n, d), a_star, W_star)
    g = np.concatenate([da, dW.reshape(2 * P, -1)], axis=1)
    H = (g[:P] - g[P:]) / (2 * h)
    return 0.5 * (H + H.T)


def nonzero_modes(lam: np.ndarray) -> np.ndarray:
    """Mask of the Hessian's nonzero eigenvalues (the zero ones are the rescalings a_j -> a_j / s, w_j -> s w_j)."""
    return np.abs(lam) > 1e-6 * max(float(np.max(lam)), 1e-12)


def predicted_linear_rate(a, W, a_star, W_star, lr: float) -> dict:
    """The WORST CASE of linearized GD at a limit point: per-step loss factor rho^2, rho = max |1 - lr lambda| over
    the nonzero Hessian eigenvalues. The loss of an actual run falls at this rate only if its error has a part
    along the slowest mode; :func:`linearized_prediction` evolves the run's own error instead."""
    lam = np.linalg.eigvalsh(hessian(a, W, a_star, W_star))
    nz = nonzero_modes(lam)
    rho = float(np.max(np.abs(1 - lr * lam[nz])))
    return {"rho": rho, "log_loss_per_step": 2 * math.log(rho), "lambda_min": float(lam[nz].min()),
            "lambda_max": float(lam[nz].max()), "zero_modes": int((~nz).sum())}


def linearized_prediction(theta_start, theta_limit, H, lr: float, steps) -> dict:
    """GD linearized at its limit point theta*, started from the run's own error e = theta(k0) - theta*:
    each Hessian mode's coefficient c_i(k) = (1 - lr lambda_i)^(k - k0) (v_i . e) computed directly
    (:func:`course_lib.theory.linearized_modes`), and the loss L(k) = 1/2 sum_i lambda_i c_i(k)^2 (L has zero
    value and zero gradient at theta*). ``steps``: offsets k - k0."""
    e = np.asarray(theta_start, dtype=np.float64) - np.asarray(theta_limit, dtype=np.float64)
    lam, V, coef = theory.linearized_modes(torch.as_tensor(H), torch.as_tensor(e), lr, np.asarray(steps))
    return {"lam": lam, "V": V, "coef": coef, "loss": 0.5 * (coef**2 * np.maximum(lam, 0.0)).sum(1)}


def flatten(a, W) -> np.ndarray:
    """Parameters as one vector [a_1..a_n, w_1, ..., w_n] (the order of :func:`hessian`)."""
    return np.concatenate([np.asarray(a, dtype=np.float64), np.asarray(W, dtype=np.float64).ravel()])


def power_law_prediction(steps, loss, k1: int, ks, p: float = 3.0) -> np.ndarray:
    """The t^-p law started from the run's own state at step k1: L^(-1/p) grows linearly in k, with the value and
    slope of the measured ln L at k1 (fitted over k1 * [0.9, 1.1]); returns the predicted L at ``ks``.

    The course's derivation gives p = 3 (the leftover of several copies sharing a teacher neuron is L ~ s^3 in their
    spread s, and ds/dt ~ -s^2); it says nothing about the constant or the time offset, which this takes from the run."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    sel = (steps >= 0.9 * k1) & (steps <= 1.1 * k1) & np.isfinite(loss) & (loss > 0)
    if sel.sum() < 3:
        return np.full(np.shape(ks), np.nan)
    slope, icpt = np.polyfit(steps[sel], np.log(loss[sel]), 1)
    L1, g = math.exp(icpt + slope * k1), -slope
    base = 1 + (np.asarray(ks, dtype=float) - k1) * g / p
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(base > 0, L1 * base ** (-p), np.nan)
