"""Independent checks of course_lib.data: shapes, norms, determinism, geometry by brute force,
sampling statistics with standard-error tolerances, and the digits pipeline on synthetic data whose
answer can be read off by hand."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib import data as D
from course_lib.runtime import make_generator

f64 = torch.float64


def brute_separation(X: np.ndarray) -> float:
    """min over i != j of min(||x_i - x_j||, ||x_i + x_j||), a plain double loop."""
    best = math.inf
    for i, j in itertools.permutations(range(len(X)), 2):
        best = min(best, float(np.linalg.norm(X[i] - X[j])), float(np.linalg.norm(X[i] + X[j])))
    return best


# ------------------------------------------------------------------------------------------
# Points on spheres and subspaces
# ------------------------------------------------------------------------------------------
def test_unit_sphere_shape_norm_dtype():
    X = D.unit_sphere(50, 7, seed=0, dtype=f64)
    assert X.shape == (50, 7) and X.dtype == f64 and X.device.type in ("cpu", "cuda", "mps")
    np.testing.assert_allclose(X.norm(dim=1).cpu().numpy(), 1.0, rtol=0, atol=1e-15)  # float64 rounding
    X32 = D.unit_sphere(50, 7, seed=0, device="cpu")
    assert X32.dtype == torch.float32 and X32.device.type == "cpu"
    np.testing.assert_allclose(X32.norm(dim=1).numpy(), 1.0, rtol=0, atol=1e-6)  # float32 rounding
    # float32 output is the float64 draw rounded
    np.testing.assert_allclose(X32.numpy(), X.cpu().numpy(), rtol=0, atol=1e-7)


def test_unit_sphere_determinism_and_seeds():
    a = D.unit_sphere(20, 4, seed=5, device="cpu")
    b = D.unit_sphere(20, 4, seed=5, device="cpu")
    c = D.unit_sphere(20, 4, seed=6, device="cpu")
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # a Generator is used (and advanced) as given
    g = make_generator(5)
    assert torch.equal(D.unit_sphere(20, 4, seed=g, device="cpu"), a)
    assert not torch.equal(D.unit_sphere(20, 4, seed=g, device="cpu"), a)


def test_unit_sphere_is_uniform():
    # uniform on S^{d-1}: E[x] = 0, E[x x^T] = I / d. Tolerance: 5 standard errors from the samples.
    n, d = 20_000, 3
    X = D.unit_sphere(n, d, seed=1, dtype=f64, device="cpu").numpy()
    mean, se = X.mean(0), X.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(mean) < 5 * se)
    outer = X[:, :, None] * X[:, None, :]
    m2, se2 = outer.mean(0), outer.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(m2 - np.eye(d) / d) < 5 * se2)


def test_random_orthonormal():
    Q = D.random_orthonormal(6, 3, seed=4)
    assert Q.shape == (6, 3) and Q.dtype == f64
    np.testing.assert_allclose((Q.T @ Q).numpy(), np.eye(3), rtol=0, atol=1e-14)  # float64 QR
    # the columns span the Gaussian draw's column space with the sign convention diag(R) > 0:
    # Q^T G is upper triangular with a positive diagonal
    G = torch.randn(6, 3, generator=torch.Generator().manual_seed(4), dtype=f64)
    R = (Q.T @ G).numpy()
    np.testing.assert_allclose(np.tril(R, -1), 0, atol=1e-13)
    assert np.all(np.diag(R) > 0)
    np.testing.assert_allclose((Q @ torch.from_numpy(R)).numpy(), G.numpy(), atol=1e-13)
    assert torch.equal(D.random_orthonormal(6, 3, seed=4), Q)
    with pytest.raises(ValueError, match=r"^k\b"):
        D.random_orthonormal(3, 4)


@pytest.mark.parametrize("d_sub", [1, 2, 4])
def test_subspace_data_rank_and_norms(d_sub):
    X = D.subspace_data(40, 9, d_sub, seed=3, dtype=f64, device="cpu").numpy()
    assert X.shape == (40, 9)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=0, atol=1e-14)
    s = np.linalg.svd(X, compute_uv=False)
    # exactly d_sub nonzero singular values: the rest are float64 rounding (~1e-15)
    assert np.all(s[:d_sub] > 1e-2) and np.all(s[d_sub:] < 1e-12)
    assert np.linalg.matrix_rank(X, tol=1e-10) == d_sub
    Y = D.subspace_data(40, 9, d_sub, seed=3, dtype=f64, device="cpu").numpy()
    Z = D.subspace_data(40, 9, d_sub, seed=4, dtype=f64, device="cpu").numpy()
    assert np.array_equal(X, Y) and not np.allclose(X, Z)


def test_subspace_data_validation():
    with pytest.raises(ValueError, match=r"^d_sub\b"):
        D.subspace_data(5, 3, 4)
    with pytest.raises(ValueError, match=r"^d_sub\b"):
        D.subspace_data(5, 3, 0)
    with pytest.raises(TypeError, match=r"^n\b"):
        D.subspace_data(2.5, 3, 1)


# ------------------------------------------------------------------------------------------
# Separation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,delta", [(5, 0.3), (10, 1e-2), (30, 1e-4), (60, 1e-6), (40, None)])
def test_half_circle_separation_exact(n, delta):
    X = D.half_circle(n, delta, dtype=f64, device="cpu")
    assert X.shape == (n, 2)
    Xn = X.numpy()
    np.testing.assert_allclose(np.linalg.norm(Xn, axis=1), 1.0, rtol=0, atol=1e-15)
    expect = 2 * math.sin(math.pi / (2 * n)) if delta is None else delta
    # the construction places neighbours exactly delta apart; cos/sin rounding is ~1e-16 absolute
    assert brute_separation(Xn) == pytest.approx(expect, rel=0, abs=1e-14)
    assert D.separation(X) == pytest.approx(brute_separation(Xn), rel=0, abs=1e-15)


def test_half_circle_in_higher_dimension():
    X = D.half_circle(8, 0.2, d=5, seed=2, dtype=f64, device="cpu").numpy()
    assert X.shape == (8, 5)
    assert np.linalg.matrix_rank(X, tol=1e-10) == 2  # a circle in a 2-plane
    assert brute_separation(X) == pytest.approx(0.2, abs=1e-14)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-15)


def test_half_circle_validation():
    n = 10
    with pytest.raises(ValueError, match=r"^delta\b"):
        D.half_circle(n, 2 * math.sin(math.pi / (2 * n)) * 1.001)  # above the largest possible
    with pytest.raises(ValueError, match=r"^delta\b"):
        D.half_circle(n, 0.0)
    with pytest.raises(ValueError, match=r"^n\b"):
        D.half_circle(1, 0.1)
    with pytest.raises(ValueError, match=r"^d\b"):
        D.half_circle(5, 0.1, d=1)


@pytest.mark.parametrize("n", [2, 7, 40])
def test_separation_vs_brute_force_random(n):
    X = D.unit_sphere(n, 3, seed=n, dtype=f64, device="cpu").numpy()
    assert D.separation(torch.from_numpy(X)) == pytest.approx(brute_separation(X), rel=1e-14)


def test_separation_close_and_antipodal_pairs_many_rows():
    # more than 25 rows (where torch.cdist would switch to the cancelling matmul formula):
    # a pair 1e-7 apart and a near-antipodal pair must still be resolved to rounding
    base = D.unit_sphere(40, 3, seed=9, dtype=f64, device="cpu").numpy()
    for sign in (+1, -1):
        X = base.copy()
        v = X[0] + 1e-7 * np.array([0.3, -0.5, 0.2])
        X[1] = sign * v / np.linalg.norm(v)
        ref = brute_separation(X)
        assert ref < 1e-6
        assert D.separation(torch.from_numpy(X)) == pytest.approx(ref, rel=1e-8)  # ~1e-16 / 1e-7


def test_separation_validation():
    with pytest.raises(ValueError, match=r"^X\b"):
        D.separation(torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"^X\b"):
        D.separation(torch.ones(3))


# ------------------------------------------------------------------------------------------
# Teachers
# ------------------------------------------------------------------------------------------
def test_two_layer_teacher_orthonormal():
    t = D.two_layer_teacher(4, 7, seed=3, dtype=f64, device="cpu")
    assert t.W.shape == (4, 7) and t.a.shape == (4,)
    np.testing.assert_allclose((t.W @ t.W.T).numpy(), np.eye(4), rtol=0, atol=1e-14)
    assert torch.equal(t.a, torch.ones(4, dtype=f64))
    # f*(x) = sum_i a_i relu(w_i . x), by a loop
    X = np.random.default_rng(0).standard_normal((5, 7))
    ref = [sum(float(t.a[i]) * max(float(t.W[i].numpy() @ x), 0.0) for i in range(4)) for x in X]
    np.testing.assert_allclose(t(torch.from_numpy(X)).numpy(), ref, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="columns"):
        t(torch.ones(2, 6, dtype=f64))


def test_two_layer_teacher_random_and_signs():
    t = D.two_layer_teacher(9, 3, seed=1, orthogonal=False, output="signs", dtype=f64, device="cpu")
    np.testing.assert_allclose(t.W.norm(dim=1).numpy(), 1.0, atol=1e-15)
    assert set(t.a.tolist()) <= {-1.0, 1.0}
    t2 = D.two_layer_teacher(9, 3, seed=1, orthogonal=False, output="signs", dtype=f64, device="cpu")
    t3 = D.two_layer_teacher(9, 3, seed=2, orthogonal=False, output="signs", dtype=f64, device="cpu")
    assert torch.equal(t.W, t2.W) and torch.equal(t.a, t2.a) and not torch.allclose(t.W, t3.W)
    # sign outputs over many seeds: both signs occur (each with probability 1/2)
    signs = torch.cat([D.two_layer_teacher(9, 3, seed=s, orthogonal=False, output="signs").a for s in range(5)])
    assert 0 < int((signs > 0).sum()) < 45


def test_two_layer_teacher_validation():
    with pytest.raises(ValueError, match=r"^m\b"):
        D.two_layer_teacher(5, 3)  # orthogonal needs m <= d
    with pytest.raises(ValueError, match=r"^output\b"):
        D.two_layer_teacher(2, 3, output="gauss")
    with pytest.raises(TypeError, match=r"^orthogonal\b"):
        D.two_layer_teacher(2, 3, orthogonal="yes")


@pytest.mark.parametrize("scale", [0.0, 0.1, 0.6, 2.0])
def test_identity_teacher_spectral_norm(scale):
    W = D.identity_teacher(6, scale=scale, seed=2, dtype=f64, device="cpu").numpy()
    assert W.shape == (6, 6)
    assert np.linalg.norm(W, 2) == pytest.approx(scale, rel=1e-13, abs=1e-15)  # numpy's SVD
    W2 = D.identity_teacher(6, scale=scale, seed=3, dtype=f64, device="cpu").numpy()
    if scale > 0:
        assert not np.allclose(W, W2)
    with pytest.raises(ValueError, match=r"^scale\b"):
        D.identity_teacher(3, scale=-0.1)


def test_gaussian_batch():
    g = make_generator(0)
    x = D.gaussian_batch(4000, 3, generator=g, dtype=f64, device="cpu").numpy()
    assert x.shape == (4000, 3)
    # N(0, I): mean 0 (SE 1/sqrt(n)) and variance 1 (SE sqrt(2/n)); 5 standard errors
    assert np.all(np.abs(x.mean(0)) < 5 / math.sqrt(4000))
    assert np.all(np.abs(x.var(0) - 1) < 5 * math.sqrt(2 / 4000))
    # fresh batches from the same generator differ; the same seed replays them
    y = D.gaussian_batch(4000, 3, generator=g, dtype=f64, device="cpu").numpy()
    assert not np.allclose(x, y)
    x2 = D.gaussian_batch(4000, 3, generator=make_generator(0), dtype=f64, device="cpu").numpy()
    assert np.array_equal(x, x2)
    with pytest.raises(TypeError, match=r"^generator\b"):
        D.gaussian_batch(4, 3, generator=0)
    with pytest.raises(ValueError, match=r"^batch\b"):
        D.gaussian_batch(0, 3, generator=g)


# ------------------------------------------------------------------------------------------
# Digits
# ------------------------------------------------------------------------------------------
def _tagged_raw(num=40):
    """Synthetic 'images' whose row k is (k + 1) e_k in R^64 and whose labels cycle 0..4.

    After keeping a subset S and centering, row k becomes (k + 1) e_k - mean_S, whose largest
    entry sits at coordinate k: the output tells which raw rows were kept, in which order."""
    images = np.zeros((num, 64))
    images[np.arange(num), np.arange(num)] = np.arange(1, num + 1)
    labels = np.arange(num) % 5
    return images, labels


def _expected_rows(images, kept_idx):
    R = images[kept_idx]
    C = R - R.mean(axis=0, keepdims=True)
    return C / np.linalg.norm(C, axis=1, keepdims=True)


@pytest.mark.parametrize("n", [None, 5, 11])
def test_digits_pipeline_on_synthetic_data(n):
    images, labels = _tagged_raw()
    classes = (3, 1)
    X, y = D.digits(classes, n, targets="pm1", seed=7, dtype=f64, device="cpu", _raw=(images, labels))
    X, y = X.numpy(), y.numpy()
    kept_all = np.flatnonzero(np.isin(labels, classes))
    expect_n = len(kept_all) if n is None else n
    assert X.shape == (expect_n, 64) and y.shape == (expect_n,)
    idx = X.argmax(axis=1)  # which raw row each output row came from (see _tagged_raw)
    assert len(set(idx)) == expect_n and set(idx) <= set(kept_all)
    # centered over the kept samples, then unit rows: computed here from the raw rows directly
    np.testing.assert_allclose(X, _expected_rows(images, idx), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-14)
    # pm1: first listed class -> -1, second -> +1
    np.testing.assert_array_equal(y, np.where(labels[idx] == 1, 1.0, -1.0))
    # deterministic given the seed; another seed draws another subset or order
    X2, _ = D.digits(classes, n, seed=7, dtype=f64, device="cpu", _raw=(images, labels))
    X3, _ = D.digits(classes, n, seed=8, dtype=f64, device="cpu", _raw=(images, labels))
    assert np.array_equal(X, X2.numpy()) and not np.array_equal(X, X3.numpy())


def test_digits_onehot_and_label_targets():
    images, labels = _tagged_raw()
    classes = (4, 0, 2)
    X, y = D.digits(classes, targets="onehot", seed=1, dtype=f64, device="cpu", _raw=(images, labels))
    idx = X.numpy().argmax(axis=1)
    lab = labels[idx]
    assert set(lab) == set(classes)
    ref = np.array([[float(l == c) for c in classes] for l in lab])
    np.testing.assert_array_equal(y.numpy(), ref)
    _, yl = D.digits(classes, targets="label", seed=1, dtype=f64, device="cpu", _raw=(images, labels))
    np.testing.assert_array_equal(yl.numpy(), lab.astype(float))


def test_digits_validation_names_parameters():
    raw = _tagged_raw()
    cases = [
        ({"classes": 3}, TypeError, r"^classes\b"),
        ({"classes": (1, 1)}, ValueError, r"^classes\b"),
        ({"classes": ()}, ValueError, r"^classes\b"),
        ({"classes": (0, 10)}, ValueError, r"^classes\b"),
        ({"classes": (0, 1.5)}, TypeError, r"^classes\b"),
        ({"classes": (0, 1, 2)}, ValueError, r"^targets='pm1' needs exactly 2 classes"),
        ({"targets": "soft"}, ValueError, r"^targets\b"),
        ({"n": 0}, ValueError, r"^n\b"),
        ({"n": 1000}, ValueError, r"^n\b"),
        ({"seed": -1}, ValueError, r"^seed\b"),
    ]
    for kwargs, exc, word in cases:
        with pytest.raises(exc, match=word):
            D.digits(**kwargs, _raw=raw)


def test_digits_real_data():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    raw = load_digits()
    X, y = D.digits((0, 1), dtype=f64, device="cpu")
    kept = np.isin(raw.target, (0, 1))
    assert X.shape == (int(kept.sum()), 64) and y.shape == (int(kept.sum()),)
    np.testing.assert_allclose(X.norm(dim=1).numpy(), 1.0, atol=1e-14)
    # balance of labels equals the raw counts (-1 for digit 0, +1 for digit 1)
    assert int((y == -1).sum()) == int((raw.target == 0).sum())
    assert int((y == 1).sum()) == int((raw.target == 1).sum())
    # the same rows as centering + normalizing the raw kept images (compared as sorted row sets)
    ref = raw.data[kept].astype(float)
    ref = ref - ref.mean(0)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    a = np.array(sorted(map(tuple, np.round(X.numpy(), 12))))
    b = np.array(sorted(map(tuple, np.round(ref, 12))))
    np.testing.assert_allclose(a, b, atol=1e-11)
    Xs, _ = D.digits((3, 5, 8), 50, targets="onehot", seed=0, dtype=f64, device="cpu")
    assert Xs.shape == (50, 64)


def test_float64_data_are_made_where_float64_exists(monkeypatch):
    # as models.init: float64 data for the default device of a Mac (MPS) are made on the CPU
    from course_lib import runtime

    monkeypatch.setattr(runtime, "get_device", lambda device=None: torch.device("mps"))
    X = D.unit_sphere(5, 3, dtype=torch.float64)
    assert X.device.type == "cpu" and X.dtype == torch.float64
    t = D.two_layer_teacher(2, 3, dtype=torch.float64)
    assert t.W.device.type == "cpu" and t.a.dtype == torch.float64
