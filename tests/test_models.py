"""Tests of course_lib.models: losses and gradients against independent float64 computations.

Every reference here is written from the formulas in COURSE_DESIGN.md section 3 (and the model
docstrings), with plain torch ops and torch.autograd, not with the model's own code paths.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.models import DeepMLP, IdentityNet, TwoLayer, select

f64 = torch.float64

# Reference activations, written with torch's own functions (independent of course_lib.activations).
TORCH_PHI = {"relu": F.relu, "tanh": torch.tanh, "softplus": F.softplus, "selu": F.selu, "gelu": F.gelu,
             "elu": F.elu, "sigmoid": torch.sigmoid}


from ._fixtures import _cpu_reference, _one_thread  # noqa: F401 - autouse fixtures


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (Frobenius), with ||b|| = 0 meaning an absolute error."""
    a, b = torch.as_tensor(a, dtype=f64), torch.as_tensor(b, dtype=f64)
    nb = float(b.norm())
    return float((a - b).norm()) / (nb if nb > 0 else 1.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ref_loss(u: torch.Tensor, y: torch.Tensor, loss_kind: str) -> torch.Tensor:
    """(1/2) sum_i ||u_i - y_i||^2 or (1/n) sum_i ||u_i - y_i||^2 per network, from the design doc."""
    r = u - y
    sq = (r * r).reshape(r.shape[0], r.shape[1], -1).sum(dim=(1, 2))
    return 0.5 * sq if loss_kind == "half_sum" else sq / r.shape[1]


# --------------------------------------------------------------------------------------------------
# TwoLayer
# --------------------------------------------------------------------------------------------------
def two_layer_forward(W: torch.Tensor, a: torch.Tensor, X: torch.Tensor, act: str) -> torch.Tensor:
    """f(x_i) = (1/sqrt m) sum_r a_r phi(w_r . x_i), for each network e; einsum, not the model's bmm."""
    m = W.shape[1]
    pre = torch.einsum("erk,ik->eir", W, X)
    return (TORCH_PHI[act](pre) * a[:, None, :]).sum(-1) / math.sqrt(m)


def autograd_two_layer(params, X, y, act, loss_kind, train_output):
    W = params["W"].detach().clone().requires_grad_(True)
    a = params["a"].detach().clone().requires_grad_(train_output)
    u = two_layer_forward(W, a, X, act)
    loss = ref_loss(u, y, loss_kind)
    leaves = [W, a] if train_output else [W]
    grads = torch.autograd.grad(loss.sum(), leaves)  # networks are independent: d(sum)/d(theta_e) = dL_e/dtheta_e
    return loss.detach(), dict(zip(["W", "a"], grads)), u.detach()


def _two_layer_case(act, train_output, output_init, loss_kind, E, m=64, n=12, d=5, per_network_y=False):
    model = TwoLayer(m, act, train_output=train_output, output_init=output_init, loss_kind=loss_kind)
    params = model.init(d, ensemble=E, seed=11, dtype=f64)
    X = torch.randn(n, d, generator=gen(1), dtype=f64)
    X = X / X.norm(dim=1, keepdim=True)
    shape = (E, n) if per_network_y else (n,)
    y = torch.randn(*shape, generator=gen(2), dtype=f64)
    return model, params, X, y


@pytest.mark.parametrize("E", [1, 5])
@pytest.mark.parametrize("loss_kind", ["half_sum", "mean"])
@pytest.mark.parametrize("output_init", ["sign", "gaussian"])
@pytest.mark.parametrize("train_output", [False, True])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_two_layer_loss_and_grad_match_autograd(act, train_output, output_init, loss_kind, E):
    model, params, X, y = _two_layer_case(act, train_output, output_init, loss_kind, E)
    loss, grads, u = model.loss_and_grad(params, X, y)
    u_apply = model.apply(params, X)
    ref_l, ref_g, ref_u = autograd_two_layer(params, X, y, act, loss_kind, train_output)
    # float64 throughout; sums of <= m*n = 768 terms of size O(1) -> rounding ~1e-14, so 1e-10 is safe
    # while any formula error (a missing 1/sqrt m, a factor 2 in the mean loss) is O(1).
    assert rel_err(u_apply, ref_u) < 1e-12
    assert rel_err(u, ref_u) < 1e-12
    assert rel_err(loss, ref_loss(u_apply, y, loss_kind)) < 1e-12  # loss is the plain loss of apply()
    assert rel_err(loss, ref_l) < 1e-12
    assert set(grads) == ({"W", "a"} if train_output else {"W"})
    assert tuple(model.trainable) == (("W", "a") if train_output else ("W",))
    for k in grads:
        assert grads[k].shape == params[k].shape
        assert rel_err(grads[k], ref_g[k]) < 1e-10, k


@pytest.mark.parametrize("act", ["softplus", "selu", "gelu", "elu", "sigmoid"])
def test_two_layer_other_activations_match_autograd(act):
    model, params, X, y = _two_layer_case(act, True, "gaussian", "half_sum", 3)
    loss, grads, _ = model.loss_and_grad(params, X, y)
    ref_l, ref_g, _ = autograd_two_layer(params, X, y, act, "half_sum", True)
    assert rel_err(loss, ref_l) < 1e-12  # float64, O(mn) terms: rounding ~1e-14
    for k in ("W", "a"):
        assert rel_err(grads[k], ref_g[k]) < 1e-10, k


@pytest.mark.parametrize("train_output", [False, True])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_two_layer_ensemble_members_are_independent(act, train_output):
    model, params, X, y = _two_layer_case(act, train_output, "sign", "half_sum", 5, per_network_y=True)
    loss, grads, u = model.loss_and_grad(params, X, y)
    for e in range(5):
        l1, g1, u1 = model.loss_and_grad(select(params, e), X, y[e])
        # same float64 arithmetic on a sub-batch; only BLAS blocking may differ -> 1e-12 relative
        assert rel_err(loss[e:e + 1], l1) < 1e-12
        assert rel_err(u[e:e + 1], u1) < 1e-12
        for k in grads:
            assert rel_err(grads[k][e:e + 1], g1[k]) < 1e-12


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_two_layer_cpu_chunked_path(act):
    # n * m = 16 * 16384 = 2^18 pre-activations per network: the CPU path takes 2 networks per chunk
    # (2 MiB budget of 2^19 entries), so E = 5 runs as 3 chunks, the last one partial.
    m, n, d, E = 16384, 16, 6, 5
    assert (1 << 19) // (n * m) < E  # the premise: several chunks
    model = TwoLayer(m, act, train_output=True, output_init="gaussian")
    params = model.init(d, ensemble=E, seed=3, dtype=f64)
    X = torch.randn(n, d, generator=gen(4), dtype=f64)
    X = X / X.norm(dim=1, keepdim=True)
    for y in (torch.randn(n, generator=gen(5), dtype=f64), torch.randn(E, n, generator=gen(6), dtype=f64)):
        loss, grads, u = model.loss_and_grad(params, X, y)
        ref_l, ref_g, ref_u = autograd_two_layer(params, X, y, act, "half_sum", True)
        # sums of m*n = 2.6e5 float64 terms: rounding ~1e-13 at worst, 1e-10 leaves margin
        assert rel_err(u, ref_u) < 1e-10
        assert rel_err(loss, ref_l) < 1e-10
        for k in ("W", "a"):
            assert rel_err(grads[k], ref_g[k]) < 1e-10
        # per-network results equal single-network runs (chunk boundaries change nothing)
        for e in range(E):
            l1, g1, _ = model.loss_and_grad(select(params, e), X, y if y.ndim == 1 else y[e])
            assert rel_err(loss[e:e + 1], l1) < 1e-12
            for k in ("W", "a"):
                assert rel_err(grads[k][e:e + 1], g1[k]) < 1e-12


def test_two_layer_init_distribution_and_shapes():
    m, d, E = 4000, 3, 2
    for output_init in ("sign", "gaussian"):
        model = TwoLayer(m, output_init=output_init)
        p = model.init(d, ensemble=E, seed=0)
        assert p["W"].shape == (E, m, d) and p["a"].shape == (E, m)
        assert p["W"].dtype == torch.float32
        N = p["W"].numel()
        # W ~ N(0, 1): sample variance within 5 standard errors sqrt(2/(N-1)) of 1
        assert abs(float(p["W"].double().var()) - 1.0) < 5 * math.sqrt(2 / (N - 1))
        assert abs(float(p["W"].double().mean())) < 5 / math.sqrt(N)
        a = p["a"].double()
        if output_init == "sign":
            assert set(a.unique().tolist()) == {-1.0, 1.0}
            assert abs(float(a.mean())) < 5 / math.sqrt(a.numel())  # fair signs: mean 0, sd 1/sqrt(N)
        else:
            assert abs(float(a.var()) - 1.0) < 5 * math.sqrt(2 / (a.numel() - 1))
        # members of the ensemble are different draws, and the seed fixes them
        assert not torch.equal(p["W"][0], p["W"][1])
        q = model.init(d, ensemble=E, seed=0)
        assert torch.equal(p["W"], q["W"]) and torch.equal(p["a"], q["a"])
        assert not torch.equal(p["W"], model.init(d, ensemble=E, seed=1)["W"])


def test_two_layer_preactivations():
    model, params, X, _ = _two_layer_case("relu", False, "sign", "half_sum", 3)
    pre = model.preactivations(params, X)
    ref = torch.einsum("erk,ik->eir", params["W"], X)
    assert pre.shape == (3, X.shape[0], model.width)
    assert rel_err(pre, ref) < 1e-13  # one float64 dot product of length d = 5 per entry


# --------------------------------------------------------------------------------------------------
# IdentityNet
# --------------------------------------------------------------------------------------------------
def identity_forward(W: torch.Tensor, X: torch.Tensor, identity: bool) -> torch.Tensor:
    """f(x) = sum_i relu(<e_i + w_i, x>), w_i the i-th column of W; a loop over neurons i."""
    d = W.shape[-1]
    out = 0
    for i in range(d):
        col = W[:, :, i]  # (E, d)
        if identity:
            col = col + torch.eye(d, dtype=W.dtype)[i]
        out = out + F.relu(torch.einsum("ek,nk->en", col, X))
    return out


@pytest.mark.parametrize("E", [1, 5])
@pytest.mark.parametrize("loss_kind", ["mean", "half_sum"])
@pytest.mark.parametrize("identity", [True, False])
def test_identity_net_loss_and_grad_match_autograd(identity, loss_kind, E):
    d, n = 6, 40
    model = IdentityNet(d, identity=identity, loss_kind=loss_kind)
    params = model.init(ensemble=E, seed=7, dtype=f64, kind="gaussian", scale=0.5)
    if not identity:  # the vanilla net needs a non-degenerate W: W ~ near-identity plus noise
        params = {"W": params["W"] + torch.eye(d, dtype=f64)}
    X = torch.randn(n, d, generator=gen(8), dtype=f64)
    W_star = 0.3 * torch.randn(d, d, generator=gen(9), dtype=f64)
    y = identity_forward(W_star[None], X, True)[0]
    loss, grads, u = model.loss_and_grad(params, X, y)
    W = params["W"].clone().requires_grad_(True)
    u_ref = identity_forward(W, X, identity)
    l_ref = ref_loss(u_ref, y, loss_kind)
    (g_ref,) = torch.autograd.grad(l_ref.sum(), [W])
    # float64, sums over n*d = 240 terms of size O(1): rounding ~1e-14
    assert rel_err(model.apply(params, X), u_ref.detach()) < 1e-12
    assert rel_err(u, u_ref.detach()) < 1e-12
    assert rel_err(loss, ref_loss(model.apply(params, X), y, loss_kind)) < 1e-12
    assert rel_err(loss, l_ref.detach()) < 1e-12
    assert grads["W"].shape == params["W"].shape
    assert rel_err(grads["W"], g_ref) < 1e-10
    for e in range(E):  # ensemble members are independent
        l1, g1, _ = model.loss_and_grad(select(params, e), X, y)
        assert rel_err(loss[e:e + 1], l1) < 1e-12
        assert rel_err(grads["W"][e:e + 1], g1["W"]) < 1e-12


def test_identity_net_weights():
    d = 4
    W = torch.randn(2, d, d, generator=gen(0), dtype=f64)
    assert torch.equal(IdentityNet(d, identity=False).weights({"W": W}), W)
    # (W + I) - W = I up to one rounding of entries of size O(1): atol 1e-14
    np.testing.assert_allclose((IdentityNet(d).weights({"W": W}) - W).numpy(), np.broadcast_to(np.eye(d), (2, d, d)),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
@pytest.mark.parametrize("scale", [0.1, 0.6])
def test_identity_net_init_spectral_norm(kind, scale):
    d, E = 8, 5
    p = IdentityNet(d).init(ensemble=E, seed=3, dtype=f64, kind=kind, scale=scale)
    W = p["W"].numpy()
    assert W.shape == (E, d, d)
    # spectral norm by numpy's SVD (independent of torch.linalg.matrix_norm); float64 -> 1e-12
    norms = np.array([np.linalg.svd(W[e], compute_uv=False)[0] for e in range(E)])
    np.testing.assert_allclose(norms, scale, rtol=1e-12)
    assert not np.allclose(W[0], W[1])  # independent draws per member


def test_identity_net_init_minus_identity_and_zeros():
    d, E, s = 5, 3, 0.4
    net = IdentityNet(d)
    p = net.init(ensemble=E, kind="minus_identity", scale=s, dtype=f64)
    assert torch.equal(p["W"], -s * torch.eye(d, dtype=f64).expand(E, d, d))
    # I + W = (1 - s) I: every row shrinks by the factor 1 - s
    np.testing.assert_allclose(net.weights(p).numpy(), (1 - s) * np.broadcast_to(np.eye(d), (E, d, d)), rtol=0, atol=1e-15)
    z = net.init(ensemble=E, kind="zeros")
    assert torch.equal(z["W"], torch.zeros(E, d, d))
    assert p["W"].dtype == f64 and z["W"].dtype == torch.float32


def test_identity_net_init_seed_determinism():
    net = IdentityNet(6)
    a = net.init(ensemble=2, seed=5)["W"]
    assert torch.equal(a, net.init(ensemble=2, seed=5)["W"])
    assert not torch.equal(a, net.init(ensemble=2, seed=6)["W"])


# --------------------------------------------------------------------------------------------------
# DeepMLP
# --------------------------------------------------------------------------------------------------
def deep_multipliers(scheme: str, dims: list[int]) -> list[float]:
    """Forward-pass multipliers: 1 in the standard parameterization; for "ntk" sqrt(2/fan_in) on
    hidden layers and sqrt(1/fan_in) on the output layer (DeepMLP docstring)."""
    L = len(dims) - 1
    if scheme != "ntk":
        return [1.0] * L
    return [math.sqrt((1.0 if l == L else 2.0) / dims[l - 1]) for l in range(1, L + 1)]


def deep_forward(params: dict, X: torch.Tensor, scheme: str, dims: list[int]):
    """F_0 = X, F_l = relu(mult_l F_{l-1} W_l), out = mult_L F_{L-1} W_L, one network at a time."""
    L = len(dims) - 1
    mult = deep_multipliers(scheme, dims)
    E = params["W1"].shape[0]
    outs, feats = [], []
    for e in range(E):
        Fl = X
        hidden = [X]
        for l in range(1, L):
            Fl = torch.clamp(mult[l - 1] * (Fl @ params[f"W{l}"][e]), min=0)
            hidden.append(Fl)
        feats.append(hidden)
        outs.append(mult[L - 1] * (Fl @ params[f"W{L}"][e]))
    return torch.stack(outs), feats


DEPTH_WIDTHS = {2: [24], 3: [24, 16], 4: [24, 16, 20]}


@pytest.mark.parametrize("out_dim", [1, 3])
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("scheme", ["lecun", "he", "xavier", "ntk"])
def test_deep_mlp_loss_and_grad_match_autograd(scheme, depth, out_dim):
    d, n, E = 7, 10, 3
    widths = DEPTH_WIDTHS[depth]
    dims = [d, *widths, out_dim]
    loss_kind = "half_sum" if (depth + out_dim) % 2 else "mean"  # both kinds across the grid
    model = DeepMLP(widths, out_dim=out_dim, init=scheme, loss_kind=loss_kind)
    assert model.depth == depth and tuple(model.trainable) == tuple(f"W{l}" for l in range(1, depth + 1))
    params = model.init(d, ensemble=E, seed=21, dtype=f64)
    X = torch.randn(n, d, generator=gen(22), dtype=f64)
    y = torch.randn(*((n,) if out_dim == 1 else (n, out_dim)), generator=gen(23), dtype=f64)
    loss, grads, u = model.loss_and_grad(params, X, y)

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out, _ = deep_forward(leaves, X, scheme, dims)
    u_ref = out.squeeze(-1) if out_dim == 1 else out
    l_ref = ref_loss(u_ref, y, loss_kind)
    g_ref = torch.autograd.grad(l_ref.sum(), [leaves[k] for k in model.trainable])
    u_apply = model.apply(params, X)
    assert u_apply.shape == ((E, n) if out_dim == 1 else (E, n, out_dim))
    # float64, a few small matmuls: rounding ~1e-14; 1e-10 is safe, a wrong multiplier is O(1)
    assert rel_err(u_apply, u_ref.detach()) < 1e-12
    assert rel_err(u, u_ref.detach()) < 1e-12
    assert rel_err(loss, ref_loss(u_apply, y, loss_kind)) < 1e-12
    assert rel_err(loss, l_ref.detach()) < 1e-12
    for k, g in zip(model.trainable, g_ref):
        assert grads[k].shape == params[k].shape
        assert rel_err(grads[k], g) < 1e-10, k
    for e in range(E):  # ensemble members are independent
        l1, g1, _ = model.loss_and_grad(select(params, e), X, y)
        assert rel_err(loss[e:e + 1], l1) < 1e-12
        for k in model.trainable:
            assert rel_err(grads[k][e:e + 1], g1[k]) < 1e-12


@pytest.mark.parametrize("scheme", ["lecun", "he", "xavier", "ntk"])
def test_deep_mlp_init_variances(scheme):
    d, widths, E = 60, [300, 200, 150], 3
    model = DeepMLP(widths, out_dim=40, init=scheme)
    params = model.init(d, ensemble=E, seed=1)
    dims = [d, *widths, 40]
    for l in range(1, len(dims)):
        fan_in, fan_out = dims[l - 1], dims[l]
        W = params[f"W{l}"].double()
        assert W.shape == (E, fan_in, fan_out)
        expected = {"lecun": 1 / fan_in, "he": 2 / fan_in, "xavier": 2 / (fan_in + fan_out), "ntk": 1.0}[scheme]
        N = W.numel()
        # iid Gaussian entries: the sample variance has standard error var * sqrt(2 / (N - 1));
        # 5 standard errors -> a false alarm with probability < 1e-6, while the schemes differ by >= 30%.
        assert abs(float(W.var()) - expected) < 5 * expected * math.sqrt(2 / (N - 1)), (scheme, l)
        assert abs(float(W.mean())) < 5 * math.sqrt(expected / N)


@pytest.mark.parametrize("scheme", ["he", "ntk"])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_deep_mlp_features_are_last_hidden_layer(scheme, depth):
    d, n, E = 5, 9, 2
    widths = DEPTH_WIDTHS[depth]
    model = DeepMLP(widths, out_dim=2, init=scheme)
    params = model.init(d, ensemble=E, seed=4, dtype=f64)
    X = torch.randn(n, d, generator=gen(5), dtype=f64)
    _, feats = deep_forward(params, X, scheme, [d, *widths, 2])
    Fm = model.features(params, X)
    assert Fm.shape == (E, n, widths[-1])
    ref = torch.stack([feats[e][-1] for e in range(E)])
    assert rel_err(Fm, ref) < 1e-12  # float64 manual forward pass
    assert (Fm >= 0).all()  # post-ReLU
    for layer in range(depth):  # features(layer=l) = F_l, with F_0 = X
        ref_l = torch.stack([feats[e][layer] for e in range(E)])
        assert rel_err(model.features(params, X, layer=layer), ref_l) < 1e-12


def test_deep_mlp_init_seed_determinism_and_dtype():
    model = DeepMLP([8, 8])
    a = model.init(3, ensemble=2, seed=9)
    b = model.init(3, ensemble=2, seed=9)
    c = model.init(3, ensemble=2, seed=10)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["W1"], c["W1"])
    assert a["W1"].dtype == torch.float32
    assert model.init(3, dtype=f64)["W2"].dtype == f64


def test_select_keeps_leading_dimension():
    p = TwoLayer(4).init(3, ensemble=5, seed=0)
    s = select(p, 2)
    assert s["W"].shape == (1, 4, 3) and torch.equal(s["W"][0], p["W"][2])
    s2 = select(p, slice(1, 4))
    assert s2["a"].shape == (3, 4) and torch.equal(s2["a"], p["a"][1:4])


def test_float64_parameters_are_made_where_float64_exists(monkeypatch):
    # Apple's MPS has no float64: a float64 init asked for the default device (MPS on a Mac) is made on the
    # CPU (runtime.placement), never converted on the device. A torch.device("mps") object needs no Mac.
    from course_lib import runtime

    monkeypatch.setattr(runtime, "get_device", lambda device=None: torch.device("mps"))
    for model, args in ((TwoLayer(8), (3,)), (IdentityNet(3), ()), (DeepMLP([4]), (3,))):
        params = model.init(*args, dtype=torch.float64)
        assert all(v.device.type == "cpu" and v.dtype == torch.float64 for v in params.values()), model
