"""Lesson 0: the tour's experiment, its claims at the defaults and at the settings the text invites, a sweep
over its controls, the overlay against an independent computation, and the time control's state panel."""
import numpy as np
import pytest
import torch

from course_lib import data, kernels, theory
from course_lib.lessons import tour
from course_lib.models import TwoLayer

from .claims_harness import Invitation, check_defaults, check_invitation, check_sweep

EXP = tour.EXPERIMENT

INVITATIONS = [
    Invitation("At width 1024 the measured loss (solid) follows this network's own linearized prediction", "0.1", {}),
    Invitation("Move the width to 8192 and compare the middle panel", "0.1", {"width": 8192}),
    Invitation("Move the width to 16: the prediction is useless after a few steps (`0.1.early-match` fails", "0.1",
               {"width": 16}, expect={"0.1.early-match": "fails", "0.1.kernel-moves": "fails"}),
    # "Change the seed ... every claim above still holds": a few seeds across the slider
    *[Invitation("Change the seed at width 1024: the data, teacher and initialization all change, and every claim "
                 "above still holds",
                 "0.1", {"seed": s}) for s in (1, 7, 13, 20)],
]


@pytest.fixture
def full_length(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")


def test_claims_hold_at_the_defaults(full_length):
    check_defaults(EXP)


@pytest.mark.parametrize("inv", INVITATIONS, ids=lambda i: str(i.settings))
def test_claims_at_the_settings_the_text_invites(inv, full_length):
    check_invitation(inv)


def test_sweep_of_the_controls(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")  # the same code path, 40 steps
    runs = check_sweep(EXP)
    assert len(runs) >= 6


def test_claims_fail_on_a_wrong_run(full_length):
    """Each claim distinguishes the effect it states: tamper with the run and it must fail."""
    run = EXP.execute()
    res = dict(run.result)
    # 1. a loss that decays 1% per step slower than measured leaves the 30% band before step 100
    h = res["history"]
    slow = dict(h.metrics)
    slow["loss"] = h["loss"] * np.exp(0.01 * h.steps)[:, None]
    res1 = {**res, "history": type(h)(**{**h.__dict__, "metrics": slow})}
    assert {c.id: c.verdict for c in tour.claims(res1)}["0.1.early-match"] == "fails"
    # 2. a run whose residual did not move along the fast directions: "fast first" must fail
    frozen = dict(h.metrics)
    frozen["residual"] = np.repeat(h["residual"][:1], len(h.steps), axis=0)
    res2 = {**res, "history": type(h)(**{**h.__dict__, "metrics": frozen})}
    assert {c.id: c.verdict for c in tour.claims(res2)}["0.1.fast-first"] == "fails"
    # 3. a kernel that did not move: "the kernel moves" must fail
    still = dict(h.metrics)
    still["drift"] = h["drift"] * 1e-6
    res3 = {**res, "history": type(h)(**{**h.__dict__, "metrics": still})}
    assert {c.id: c.verdict for c in tour.claims(res3)}["0.1.kernel-moves"] == "fails"
    # 4. a student that memorized the training points and predicts 0 elsewhere: "close to the teacher" fails
    res4 = {**res, "test_pred": np.zeros_like(res["test_pred"])}
    assert {c.id: c.verdict for c in tour.claims(res4)}["0.1.held-out"] == "fails"


def test_prediction_is_this_networks_own_linearized_dynamics(monkeypatch):
    """The dashed curve equals an independent iteration of u(k+1) - y = (I - eta H(0))(u(k) - y), with H(0)
    built here from the activation patterns (not with course_lib.kernels)."""
    monkeypatch.setenv("COURSE_FAST", "0")  # exactly 30 steps (the test command sets fast mode)
    res = tour.experiment(256, 0, steps=30)
    X = data.unit_sphere(64, 5, seed=0)
    y = data.two_layer_teacher(3, 5, seed=1000)(X)
    model = TwoLayer(256)
    p = model.init(5, seed=0)
    W = p["W"][0].double()  # (m, d)
    X64 = X.double()
    act = (X64 @ W.T >= 0).double()  # (n, m) patterns
    H0 = (X64 @ X64.T) * (act @ act.T) / 256
    r = (model.apply(p, X)[0] - y).double()
    losses = [0.5 * float(r @ r)]
    for _ in range(30):
        r = r - res["lr"] * (H0 @ r)
        losses.append(0.5 * float(r @ r))
    np.testing.assert_allclose(res["prediction"], losses, rtol=1e-9)
    assert res["lr"] == pytest.approx(0.5 * theory.stability_limit(kernels.relu_h_inf(X)), rel=1e-12)


def test_drift_metric_is_the_operator_norm_of_the_gram_change(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")  # exactly 20 steps (the test command sets fast mode)
    res = tour.experiment(128, 0, steps=20)
    h = res["history"]
    k = [i for i, s in enumerate(h.steps) if np.isfinite(h["drift"][i, 0])][-1]
    assert h.steps[k] == 20
    model = TwoLayer(128)
    p0 = model.init(5, seed=0)
    X = data.unit_sphere(64, 5, seed=0)
    H0 = kernels.empirical_gram(model, p0, X)[0]
    HT = kernels.empirical_gram(model, h.params, X)[0]
    assert h["drift"][k, 0] == pytest.approx(float(torch.linalg.svdvals(HT - H0)[0]), rel=1e-9)


def test_time_control_replays_the_recorded_state(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    dash = tour.dashboard(width=128)
    dash.run()
    frames = dash.frames()
    assert frames[0] == 0 and frames[-1] == dash.result["steps"] and len(frames) >= 10
    png_a = dash.show_step(frames[1])
    png_b = dash.show_step(frames[-1])
    assert png_a != png_b and dash.time_slider.value == frames[-1]
    # the state panel's data at step k is the recorded residual projected on H(0)'s eigenvectors
    from matplotlib.figure import Figure

    res = dash.result
    ax = Figure().subplots()
    update = tour.state(ax, res)
    for k in (frames[3], frames[-1]):
        bars, line, below, _ = update(k)
        i = int(np.searchsorted(res["history"].steps, k))
        expect = np.abs(res["V"].T @ res["history"]["residual"][i, 0])
        np.testing.assert_allclose(bars.get_data().values, np.maximum(expect, 1e-8), rtol=1e-12)
        p = np.abs(res["pred_coef"][k])
        np.testing.assert_allclose(line.get_data().values, np.where(p >= 1e-8, p, np.nan), rtol=1e-12)
        # predictions below the axis: a marker each at the axis, never a bar drawn at the floor
        np.testing.assert_array_equal(below.get_offsets()[:, 0] if len(below.get_offsets()) else [],
                                      np.flatnonzero(p < 1e-8))
    with pytest.raises(ValueError, match="step must be between"):
        dash.show_step(10**6)


def test_reproduce_writes_figures_numbers_and_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    from course_lib.reproduce import reproduce

    out = reproduce("0", str(tmp_path), animate=True)
    runs = out["runs"]
    assert set(runs) == {"0.1.width1024", "0.1.width16", "0.1.width8192"}
    for name, entry in runs.items():
        assert (tmp_path / "lesson0" / entry["figure"]).stat().st_size > 10_000
        assert (tmp_path / "lesson0" / entry["state_figure"]).stat().st_size > 10_000
        assert (tmp_path / "lesson0" / entry["animation"]).stat().st_size > 10_000
        assert {c["id"] for c in entry["claims"]} == {"0.1.early-match", "0.1.fast-first", "0.1.kernel-moves",
                                                      "0.1.held-out"}
    assert (tmp_path / "lesson0" / "key_numbers.json").exists()


def test_held_out_comparison_the_text_quotes(full_length):
    """Note 5: the width-16 student has the lower held-out error at seeds 0, 3 and 11, the width-1024 one at seed 8."""
    def held_out(width, seed):
        r = tour.experiment(width, seed)
        return float(np.mean((r["test_pred"] - r["test_y"]) ** 2))

    for seed, narrow_wins in ((0, True), (3, True), (11, True), (8, False)):
        assert (held_out(16, seed) < held_out(1024, seed)) == narrow_wins, seed


def test_width_8_is_exactly_singular_and_says_so(monkeypatch):
    """Width 8 in d = 5: H(0) has rank <= 40 < 64, so its smallest eigenvalue is 0 (not a negative round-off)."""
    monkeypatch.setenv("COURSE_FAST", "1")
    run = EXP.execute(width=8)
    assert run.result["lambda_0"] >= 0
    assert str(tour.numbers(run.result)["λ_min of H(0) (this network)"]).startswith("0 (singular: rank ≤ m·d = 40")
    assert all(c.why for c in run.claims if c.verdict != "holds")
