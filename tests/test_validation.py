"""Bad input at the public boundary fails early with ValueError/TypeError naming the parameter and
what it accepts (COURSE_DESIGN.md section 4, "Conventions")."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import _validate as V
from course_lib import available_activations, get_device, make_generator, scaled_steps
from course_lib.models import DeepMLP, IdentityNet, TwoLayer
from course_lib.runtime import available_devices
from course_lib.train import train

BAD_INTS = [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("10", TypeError),
            (None, TypeError)]


def unavailable_device() -> str:
    for dev in ("cuda", "mps"):
        if dev not in available_devices():
            return dev
    pytest.skip("every device kind is available on this machine")


@pytest.fixture
def setup():
    model = TwoLayer(16)
    params = model.init(3, ensemble=2, seed=0)
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randn(6, generator=torch.Generator().manual_seed(1))
    return model, params, X, y


# --------------------------------------------------------------------------------------------------
# Model constructors and init
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,exc", BAD_INTS)
def test_two_layer_width(value, exc):
    with pytest.raises(exc, match=r"width must be an integer \(?>= 1"):
        TwoLayer(value)


def test_integral_float_width_is_accepted():
    assert TwoLayer(8.0).width == 8 and TwoLayer(np.int64(8)).width == 8


@pytest.mark.parametrize("value,exc", BAD_INTS)
def test_identity_net_d(value, exc):
    with pytest.raises(exc, match=r"d must be an integer \(?>= 1"):
        IdentityNet(value)


@pytest.mark.parametrize("widths,exc,pattern", [
    ([], ValueError, "widths must be a non-empty list"),
    (5, ValueError, "widths must be a non-empty list"),
    ([4, 0], ValueError, r"widths\[1\] must be an integer >= 1"),
    ([2.5], TypeError, r"widths\[0\] must be an integer"),
    ([True], TypeError, r"widths\[0\] must be an integer"),
])
def test_deep_mlp_widths(widths, exc, pattern):
    with pytest.raises(exc, match=pattern):
        DeepMLP(widths)


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"out_dim": 0}, ValueError, r"out_dim must be an integer >= 1"),
    ({"init": "glorot"}, ValueError, r"init must be one of 'lecun', 'he', 'xavier', 'ntk'; got 'glorot'"),
    ({"loss_kind": "l1"}, ValueError, r"loss_kind must be one of 'half_sum', 'mean'"),
    ({"activation": "relu6"}, ValueError, r"activation must be one of .*relu.*tanh"),
])
def test_deep_mlp_options(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        DeepMLP([4], **kw)


def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError, match="activation must be one of") as info:
        TwoLayer(4, "relu7")
    msg = str(info.value)
    for name in ("relu", "tanh", "elu", "selu", "swish"):
        assert name in msg
    assert "relu7" in msg
    for name in available_activations():  # every registered name is listed
        assert name in msg


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"train_output": 1}, TypeError, "train_output must be True or False"),
    ({"output_init": "uniform"}, ValueError, r"output_init must be one of 'sign', 'gaussian'"),
    ({"loss_kind": "sum"}, ValueError, r"loss_kind must be one of 'half_sum', 'mean'"),
])
def test_two_layer_options(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        TwoLayer(4, **kw)


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"d": 0}, ValueError, r"d must be an integer >= 1"),
    ({"d": 1.5}, TypeError, r"d must be an integer"),
    ({"ensemble": 0}, ValueError, r"ensemble must be an integer >= 1"),
    ({"ensemble": False}, TypeError, r"ensemble must be an integer"),
    ({"seed": -1}, ValueError, r"seed must be an integer between 0 and"),
    ({"seed": 0.5}, TypeError, r"seed must be an integer"),
])
def test_init_arguments(kw, exc, pattern):
    args = {"d": 3, **kw}
    d = args.pop("d")
    for model in (TwoLayer(4), DeepMLP([4])):
        with pytest.raises(exc, match=pattern):
            model.init(d, **args)


def test_init_unavailable_device():
    dev = unavailable_device()
    for model in (TwoLayer(4), DeepMLP([4])):
        with pytest.raises(ValueError, match=rf"device='{dev}' is not available on this machine; available: .*cpu"):
            model.init(3, device=dev)
    with pytest.raises(ValueError, match="device="):
        IdentityNet(3).init(device=dev)


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"kind": "orthogonal"}, ValueError, r"kind must be one of 'gaussian', 'uniform', 'minus_identity', 'zeros'"),
    ({"scale": -0.1}, ValueError, r"scale must be in \[0.0, inf\]"),
    ({"scale": math.nan}, ValueError, r"scale must be a finite number"),
    ({"d": 4}, ValueError, r"d must equal the network's dimension 3"),
    ({"ensemble": 0}, ValueError, r"ensemble must be an integer >= 1"),
])
def test_identity_net_init_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        IdentityNet(3).init(**kw)


def test_identity_flag_must_be_bool():
    with pytest.raises(TypeError, match="identity must be True or False"):
        IdentityNet(3, identity="yes")


def test_features_layer_range():
    model = DeepMLP([4, 4])
    p = model.init(2)
    with pytest.raises(ValueError, match=r"layer must be an integer between 0 and 2"):
        model.features(p, torch.zeros(3, 2), layer=3)


# --------------------------------------------------------------------------------------------------
# apply / loss_and_grad inputs
# --------------------------------------------------------------------------------------------------
def _models_with_params():
    out = []
    for model in (TwoLayer(8), DeepMLP([5]), IdentityNet(3)):
        p = model.init(ensemble=2) if isinstance(model, IdentityNet) else model.init(3, ensemble=2)
        out.append((model, p))
    return out


@pytest.mark.parametrize("which", [0, 1, 2])
def test_loss_and_grad_input_checks(which):
    model, p = _models_with_params()[which]
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(6)
    with pytest.raises(ValueError, match=r"X must have 3 columns"):
        model.loss_and_grad(p, torch.zeros(6, 4), y)
    with pytest.raises(ValueError, match=r"X must have 3 columns"):
        model.apply(p, torch.zeros(6, 4))
    with pytest.raises(ValueError, match=r"X must have 2 dimensions"):
        model.apply(p, torch.zeros(6))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        model.loss_and_grad(p, X, torch.zeros(5))
    Xn = X.clone()
    Xn[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite"):
        model.loss_and_grad(p, Xn, y)
    Xi = X.clone()
    Xi[0, 0] = math.inf
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite"):
        model.apply(p, Xi)
    yn = y.clone()
    yn[3] = -math.inf
    with pytest.raises(ValueError, match=r"y contains 1 NaN or infinite"):
        model.loss_and_grad(p, X, yn)
    with pytest.raises(TypeError, match=r"params must be a dict"):
        model.loss_and_grad([p], X, y)
    with pytest.raises(ValueError, match=r"params is missing"):
        model.apply({"Q": torch.zeros(2, 3)}, X)


def test_params_with_inconsistent_ensemble_sizes():
    model = TwoLayer(4)
    p = model.init(3, ensemble=2)
    with pytest.raises(ValueError, match="ensemble size"):
        model.apply({"W": p["W"], "a": p["a"][:1]}, torch.zeros(5, 3))


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr,exc,pattern", [
    (0.0, ValueError, r"lr must be in \(0.0, inf\]"),
    (-0.1, ValueError, r"lr must be in \(0.0, inf\]"),
    (math.nan, ValueError, r"lr must be a finite number"),
    (math.inf, ValueError, r"lr must be a finite number"),
    ("fast", TypeError, r"lr must be a real number"),
    (True, TypeError, r"lr must be a real number"),
    ([0.1, -1.0], ValueError, r"lr\[1\] must be in \(0.0, inf\]"),
    ([0.1, math.nan], ValueError, r"lr\[1\] must be a finite number"),
    ([0.1, 0.2, 0.3], ValueError, r"lr must be a number or have one value per network \(E=2\); got 3"),
    (torch.tensor([0.1, 0.0]), ValueError, r"lr\[1\] must be in"),
])
def test_train_lr(setup, lr, exc, pattern):
    model, params, X, y = setup
    with pytest.raises(exc, match=pattern):
        train(model, params, X, y, steps=2, lr=lr, method="hb", progress=False)


@pytest.mark.parametrize("momentum,pattern", [
    (1.0, r"momentum must be in \[0.0, 1.0\)"),
    (-0.1, r"momentum must be in \[0.0, 1.0\)"),
    (1.5, r"momentum must be in \[0.0, 1.0\)"),
    (math.nan, r"momentum must be a finite number"),
    ([0.5, 1.0], r"momentum\[1\] must be in \[0.0, 1.0\)"),
])
@pytest.mark.parametrize("method", ["hb", "nag"])
def test_train_momentum_range(setup, momentum, pattern, method):
    model, params, X, y = setup
    with pytest.raises(ValueError, match=pattern):
        train(model, params, X, y, steps=2, lr=0.1, method=method, momentum=momentum, progress=False)


@pytest.mark.parametrize("method", ["gd", "sgd"])
def test_momentum_with_plain_gradient_method(setup, method):
    model, params, X, y = setup
    with pytest.raises(ValueError, match=r"momentum applies to method 'hb' or 'nag'"):
        train(model, params, X, y, steps=2, lr=0.1, method=method, momentum=0.5, batch_size=3, progress=False)


def test_train_unknown_method(setup):
    model, params, X, y = setup
    with pytest.raises(ValueError, match=r"method must be one of 'gd', 'sgd', 'hb', 'nag'; got 'adam'"):
        train(model, params, X, y, steps=2, lr=0.1, method="adam", progress=False)


def test_train_sgd_needs_batches(setup):
    model, params, X, y = setup
    with pytest.raises(ValueError, match=r"method='sgd' needs batch_size .* or sampler"):
        train(model, params, X, y, steps=2, lr=0.1, method="sgd", progress=False)


@pytest.mark.parametrize("bs,exc,pattern", [
    (7, ValueError, r"batch_size must be an integer between 1 and 6"),
    (0, ValueError, r"batch_size must be an integer between 1 and 6"),
    (2.5, TypeError, r"batch_size must be an integer"),
])
def test_train_batch_size(setup, bs, exc, pattern):
    model, params, X, y = setup
    with pytest.raises(exc, match=pattern):
        train(model, params, X, y, steps=2, lr=0.1, method="sgd", batch_size=bs, progress=False)


def test_train_data_shapes_and_values(setup):
    model, params, X, y = setup
    with pytest.raises(ValueError, match=r"X must have 3 columns"):
        train(model, params, torch.zeros(6, 4), y, steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"y must have shape \(n,\), \(n, k\), \(E, n\) or \(E, n, k\) with n=6"):
        train(model, params, X, torch.zeros(5), steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"y must have shape"):
        train(model, params, X, torch.zeros(3, 6), steps=2, lr=0.1, progress=False)  # E is 2, not 3
    with pytest.raises(ValueError, match=r"X must have 2 dimensions"):
        train(model, params, torch.zeros(6), y, steps=2, lr=0.1, progress=False)
    Xn = X.clone()
    Xn[0, 1] = math.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite entries"):
        train(model, params, Xn, y, steps=2, lr=0.1, progress=False)
    yi = y.clone()
    yi[2] = math.inf
    with pytest.raises(ValueError, match=r"y contains 1 NaN or infinite entries"):
        train(model, params, X, yi, steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"y must be given together with X"):
        train(model, params, X, None, steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"full-batch training needs X and y"):
        train(model, params, steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"batch_size needs the training set"):
        train(model, params, steps=2, lr=0.1, method="sgd", batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"either sampler .* or batch_size"):
        train(model, params, X, y, steps=2, lr=0.1, method="sgd", batch_size=2,
              sampler=lambda g: (X, y), progress=False)
    with pytest.raises(TypeError, match=r"sampler must be a function"):
        train(model, params, steps=2, lr=0.1, method="sgd", sampler=3, progress=False)


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"steps": -1}, ValueError, r"steps must be an integer >= 0"),
    ({"steps": 2.5}, TypeError, r"steps must be an integer"),
    ({"record_every": 0}, ValueError, r"record_every must be an integer >= 1"),
    ({"metrics": {"m": 3}}, TypeError, r"metrics\['m'\] must be a function"),
    ({"callback": 3}, TypeError, r"callback must be a function"),
    ({"lr_limit": 0.0}, ValueError, r"lr_limit must be in \(0.0, inf\]"),
    ({"max_loss": -1.0}, ValueError, r"max_loss must be in \(0.0, inf\]"),
    ({"seed": -2}, ValueError, r"seed must be an integer between 0"),
])
def test_train_other_arguments(setup, kw, exc, pattern):
    model, params, X, y = setup
    args = {"steps": 2, **kw}
    with pytest.raises(exc, match=pattern):
        train(model, params, X, y, lr=0.1, progress=False, **args)


def test_train_model_and_params(setup):
    model, params, X, y = setup
    with pytest.raises(TypeError, match=r"model must be a course_lib model"):
        train(object(), params, X, y, steps=2, lr=0.1)
    with pytest.raises(TypeError, match=r"params must be a dict"):
        train(model, list(params.values()), X, y, steps=2, lr=0.1)
    with pytest.raises(ValueError, match=r"params is missing \['a'\]"):
        train(model, {"W": params["W"]}, X, y, steps=2, lr=0.1)


def test_sampler_output_is_checked(setup):
    model, params, X, y = setup

    def bad_sampler(g):
        xb = torch.randn(4, 3, generator=g)
        xb[0, 0] = math.nan
        return xb, torch.zeros(4)

    with pytest.raises(ValueError, match=r"sampler X contains 1 NaN"):
        train(model, params, steps=2, lr=0.1, method="sgd", sampler=bad_sampler, progress=False)


# --------------------------------------------------------------------------------------------------
# runtime
# --------------------------------------------------------------------------------------------------
def test_get_device_unavailable(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = unavailable_device()
    with pytest.raises(ValueError, match=rf"device='{dev}' is not available on this machine; available: cpu"):
        get_device(dev)
    with pytest.raises(ValueError, match=r"device must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got 'gpu0'"):
        get_device("gpu0")


def test_get_device_unavailable_from_environment(monkeypatch):
    dev = unavailable_device()
    monkeypatch.setenv("COURSE_DEVICE", dev)
    with pytest.raises(ValueError, match=rf"^\$COURSE_DEVICE='{dev}' is not valid: COURSE_DEVICE must be one of the "
                                         rf"devices of this machine: cpu.*'{dev}' is not available on this machine"):
        get_device()
    # every default-device path goes through it: models and data fail the same way
    with pytest.raises(ValueError, match=r"\$COURSE_DEVICE"):
        TwoLayer(4).init(3)
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"^\$COURSE_DEVICE='tpu' is not valid: COURSE_DEVICE must be 'cpu', 'cuda', "
                                         r"'cuda:N' or 'mps'"):
        get_device()


def test_get_device_cuda_index_out_of_range(monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    n = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"only {n} CUDA device"):
        get_device(f"cuda:{n}")


@pytest.mark.parametrize("seed,exc,pattern", [
    (-1, ValueError, r"seed must be an integer between 0 and"),
    (2**63, ValueError, r"seed must be an integer between 0 and"),
    (1.5, TypeError, r"seed must be an integer"),
    ("0", TypeError, r"seed must be an integer"),
    (True, TypeError, r"seed must be an integer"),
])
def test_make_generator_seed(seed, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make_generator(seed)


@pytest.mark.parametrize("kw,exc,pattern", [
    ({"steps": -1}, ValueError, r"steps must be an integer >= 0"),
    ({"steps": 1.5}, TypeError, r"steps must be an integer"),
    ({"steps": 100, "factor": 0}, ValueError, r"factor must be an integer >= 1"),
    ({"steps": 100, "minimum": -1}, ValueError, r"minimum must be an integer >= 0"),
])
@pytest.mark.parametrize("fast", ["1", "0"])
def test_scaled_steps_arguments(monkeypatch, kw, exc, pattern, fast):
    monkeypatch.setenv("COURSE_FAST", fast)
    with pytest.raises(exc, match=pattern):
        scaled_steps(**kw)


# --------------------------------------------------------------------------------------------------
# the helpers themselves
# --------------------------------------------------------------------------------------------------
def test_check_int():
    assert V.check_int("k", 3, min_value=1) == 3
    assert V.check_int("k", 4.0) == 4 and isinstance(V.check_int("k", np.int32(4)), int)
    with pytest.raises(ValueError, match=r"k must be an integer between 1 and 5; got 6"):
        V.check_int("k", 6, min_value=1, max_value=5)
    with pytest.raises(ValueError, match=r"k must be an integer <= 5; got 6"):
        V.check_int("k", 6, max_value=5)
    with pytest.raises(TypeError, match=r"k must be an integer \(any integer\); got 'x' of type str"):
        V.check_int("k", "x")
    with pytest.raises(TypeError, match=r"k must be an integer"):
        V.check_int("k", True)
    with pytest.raises(TypeError, match=r"k must be an integer"):
        V.check_int("k", math.nan)


def test_check_float():
    assert V.check_float("x", 0.5, min_value=0, max_value=1) == 0.5
    assert V.check_float("x", torch.tensor(0.25)) == 0.25
    assert V.check_float("x", np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"x must be in \(0, 1\]; got 0.0"):
        V.check_float("x", 0.0, min_value=0, max_value=1, min_inclusive=False)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\); got 1.0"):
        V.check_float("x", 1.0, min_value=0, max_value=1, max_inclusive=False)
    with pytest.raises(ValueError, match=r"x must be a finite number in \[-inf, inf\]; got nan"):
        V.check_float("x", math.nan)
    with pytest.raises(TypeError, match=r"x must be a real number"):
        V.check_float("x", torch.zeros(2))
    with pytest.raises(TypeError, match=r"x must be a real number"):
        V.check_float("x", 1j)


def test_check_choice_bool_tensor_rows():
    assert V.check_choice("c", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"c must be one of 'a', 'b'; got 3"):
        V.check_choice("c", 3, ("a", "b"))
    assert V.check_bool("b", np.bool_(True)) is True
    with pytest.raises(TypeError, match=r"b must be True or False; got 'no'"):
        V.check_bool("b", "no")
    t = V.check_tensor("t", [[1, 2], [3, 4]], ndim=2)
    assert t.dtype == torch.get_default_dtype() and t.shape == (2, 2)
    assert V.check_tensor("t", np.ones(3), ndim=(1, 2)).dtype == torch.float64
    with pytest.raises(ValueError, match=r"t must have 1 or 3 dimensions; got shape \(2, 2\)"):
        V.check_tensor("t", np.ones((2, 2)), ndim=(1, 3))
    with pytest.raises(TypeError, match=r"t must be a tensor or array of numbers; got dict"):
        V.check_tensor("t", {"a": 1})
    with pytest.raises(ValueError, match=r"t contains 2 NaN or infinite entries"):
        V.check_tensor("t", [1.0, math.nan, math.inf])
    assert V.check_tensor("t", [math.nan], finite=False).isnan().all()
    with pytest.raises(ValueError, match=r"A and B must have the same number of rows \(samples\); got 2 and 3"):
        V.check_same_rows("A", torch.zeros(2, 1), "B", torch.zeros(3, 1))
    V.check_same_rows("A", torch.zeros(2, 1), "B", torch.zeros(2, 5))  # no error


# --------------------------------------------------------------------------------------------------
# PSD rounding tolerance and the float64 rule of check_tensor
# --------------------------------------------------------------------------------------------------
def test_check_psd_eigenvalue():
    from course_lib._validate import PSD_RTOL, check_psd_eigenvalue

    assert PSD_RTOL == 1e-12
    assert check_psd_eigenvalue("lam", 0.25, scale=1.0) == 0.25
    assert check_psd_eigenvalue("lam", -6.9e-17, scale=2.0) == 0.0  # a rounded 0
    assert check_psd_eigenvalue("lam", -1e-12, scale=1.0) == 0.0  # the edge of the tolerance
    with pytest.raises(ValueError, match=r"^lam must be >= 0 \(an eigenvalue of a positive semi-definite matrix\); "
                                         r"got -1e-09, below the rounding level -1e-12 x lambda_max = -2e-12"):
        check_psd_eigenvalue("lam", -1e-9, scale=2.0, scale_text="lambda_max")
    with pytest.raises(ValueError, match=r"^lam must be a finite number"):
        check_psd_eigenvalue("lam", float("nan"), scale=1.0)


def test_check_tensor_float64_goes_to_the_float64_device(monkeypatch):
    from course_lib import runtime

    t = torch.ones(3, dtype=torch.float32)
    out = V.check_tensor("t", t, dtype=torch.float64)
    assert out.dtype == torch.float64 and out.device.type == "cpu"
    # the rule is runtime's: a device without float64 sends the float64 copy to the CPU
    calls = []
    real = runtime.float64_device

    def spy(device):
        calls.append(str(device))
        return real(device)

    monkeypatch.setattr(runtime, "float64_device", spy)
    V.check_tensor("t", t, dtype=torch.float64)
    V.check_tensor("t", t, dtype=torch.float64, device="cpu")
    assert calls and all(c == "cpu" for c in calls)
