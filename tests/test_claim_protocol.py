"""The claim ledger and the experiment protocol (course_lib.claims, course_lib.experiment)."""
import math

import numpy as np
import pytest

from course_lib import claims as C
from course_lib import experiment as X
from course_lib.lessons import LESSONS, experiments

from .claims_harness import named_ids


def test_claim_verdicts_and_reasons():
    ok = C.claim("9.1.a", "s", holds=True, measured=1.0, predicted=1.01, tolerance="within 2%")
    assert ok.verdict == "holds" and ok.why == ""
    bad = C.claim("9.1.a", "s", holds=False, measured=0.9, predicted=1.0, tolerance="within 2%")
    assert bad.verdict == "fails" and "measured 0.9" in bad.why and "within 2%" in bad.why
    na = C.not_applicable("9.1.a", "s", "the run diverged")
    assert na.verdict == "does not apply" and na.holds is None and na.why == "the run diverged"
    with pytest.raises(ValueError, match="why"):
        C.not_applicable("9.1.a", "s", "")
    # a non-finite measurement never holds, whatever the lesson computed
    assert C.claim("9.1.a", "s", holds=True, measured=float("nan")).verdict == "fails"
    d = C.claim("9.1.a", "s", holds=True, measured=float("inf")).to_dict()
    assert d["measured"] is None and d["verdict"] == "fails"


def test_comparisons_against_independent_arithmetic():
    assert C.rel_error(1.02, 1.0) == pytest.approx(0.02)
    assert C.rel_error(0.0, 0.0) == 0 and C.rel_error(1.0, 0.0) == math.inf
    # rates: 0.98 and 0.99 differ by a factor ~2 in -log rate (steps per decade), not by 1%
    assert C.log_rate_error(0.98, 0.99) == pytest.approx(math.log(0.98) / math.log(0.99) - 1)
    assert C.log_rate_error(0.98, 0.99) > 1.0
    assert C.ratio(2.0, 1.0) == C.ratio(1.0, 2.0) == 2.0
    assert C.ratio(-1.0, 1.0) == math.inf


@pytest.mark.parametrize("value, kw, text", [
    (0.000123456, {}, "0.000123"), (123456.7, {}, "1.23e5"), (3.0, {}, "3"), (None, {}, "–"), (True, {}, "yes"),
    (-3e-17, {"floor": 1e-15}, "< 1e-15"), (2e-16, {"floor": 1e-15}, "< 1e-15"), (2e-3, {"floor": 1e-15}, "0.002"),
    (float("nan"), {}, "nan"), (float("inf"), {}, "∞"), (0.98765, {"sig": 4}, "0.9877"),
])
def test_fmt_is_readable_and_never_prints_roundoff(value, kw, text):
    assert C.fmt(value, **kw) == text


def test_tables_render_as_text_and_html():
    t = C.Table(["quantity", "value"], [("final loss", 1.23456e-5), ("steps", 400)], title="Key numbers")
    s = str(t)
    assert "final loss" in s and "1.235e-5" in s and s.splitlines()[0] == "Key numbers"
    h = t._repr_html_()
    assert h.count("<tr>") == 3 and "<caption" in h
    with pytest.raises(ValueError, match="2 cells"):
        C.Table(["a", "b"], [(1,)])
    rep = C.Report([C.claim("9.1.a", "s", holds=True, measured=1.0)], {"final loss": -1e-17}, floors={"final loss": 1e-15})
    assert "< 1e-15" in str(rep) and "9.1.a" in rep._repr_html_()


def test_status_line_uses_symbols_not_only_colour():
    html = C.status_html([C.claim("9.1.a", "s", holds=True), C.claim("9.1.b", "t", holds=False, measured=2.0),
                          C.not_applicable("9.1.c", "u", "diverged")], "head")
    assert html.startswith("head")
    assert "✓ <b>holds</b>" in html and "✗ <b>fails</b>" in html and "– <b>does not apply</b>" in html
    assert "diverged" in html


def test_controls_offer_only_valid_values():
    c = X.real("step", 0.5, 0.05, 1.95, 0.05)
    vals = c.values()
    assert vals[0] == 0.05 and vals[-1] == 1.95 and len(vals) == 39
    assert c.positions() == [0.05, 1.0, 1.95, 0.5]
    with pytest.raises(ValueError, match=r"step must be in \[0.05, 1.95\]"):
        c.check(2.5)
    w = X.select("width", 1024, X.powers_of_two(3, 13))
    assert w.positions() == [8, 256, 8192, 1024]
    with pytest.raises(ValueError, match="width must be one of"):
        w.check(1000)
    with pytest.raises(ValueError, match="needs lo < hi"):
        X.integer("n", 3, 5, 1)
    m = X.multi("acts", ("relu",), ("relu", "tanh"))
    assert m.check(["tanh"]) == ("tanh",)
    with pytest.raises(ValueError, match="non-empty"):
        m.check(())
    widget = w.widget()
    assert list(widget.options) == list(X.powers_of_two(3, 13)) and widget.continuous_update is False


def test_log_frames_cover_early_and_late():
    rec = X.log_record_steps(1000, 50)
    assert rec[0] == 0 and rec[-1] == 1000 and len(rec) <= 51
    assert sum(k <= 10 for k in rec) >= 8  # the fast early phase gets frames
    frames = X.log_frames(list(range(0, 1001)), 30)
    assert frames[0] == 0 and frames[-1] == 1000 and len(frames) <= 32
    assert np.all(np.diff(frames) > 0)


def _toy_experiment(**kw):
    def run(a, b, live=None):
        return {"a": a, "b": b}

    def claims(res):
        return [C.claim("9.1.sum", "a + b is small", holds=res["a"] + res["b"] < 5, measured=res["a"] + res["b"])]

    from matplotlib.figure import Figure

    def draw(res):
        fig = Figure()
        fig.subplots().plot([0, 1], [res["a"], res["b"]])
        return fig

    return X.Experiment(id="9.1", title="toy", run=run, draw=draw, claims=claims,
                        controls={"a": X.integer("a", 1, 0, 4)}, fixed={"b": 1}, **kw)


def test_experiment_settings_and_runs():
    exp = _toy_experiment(numbers=lambda r: {"a": r["a"]})
    assert exp.defaults() == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="unknown setting"):
        exp.settings(c=2)
    with pytest.raises(ValueError, match=r"a must be in \[0, 4\]"):
        exp.execute(a=7)
    run = exp.execute(a=4)
    assert run.claim("9.1.sum").verdict == "fails" and run.settings == {"a": 4, "b": 1}
    with pytest.raises(KeyError):
        run.claim("9.1.nope")
    k = run.key_numbers()
    assert k["claims"][0]["verdict"] == "fails" and k["numbers"] == {"a": 4}


def test_dashboard_shows_claims_and_errors():
    exp = _toy_experiment()
    dash = exp.dashboard(a=2)
    dash.run()
    assert dash.error is None and "9.1.sum" in dash.status.value and "holds" in dash.status.value
    dash.set(a=4)
    assert "fails" in dash.status.value and dash.claims[0].verdict == "fails"
    with pytest.raises(ValueError, match="unknown control"):
        dash.set(z=1)
    bad = X.Experiment(id="9.2", title="t", run=lambda a, live=None: 1 / 0, draw=None, claims=lambda r: [],
                       controls={"a": X.integer("a", 1, 0, 4)})
    d2 = bad.dashboard()
    d2.run()
    assert isinstance(d2.error, ZeroDivisionError) and "Error:" in d2.status.value


def test_every_lesson_names_exactly_the_claims_its_experiments_make(monkeypatch):
    """A notebook may not name a claim no experiment produces, nor leave a produced claim unnamed."""
    monkeypatch.setenv("COURSE_FAST", "1")  # ids do not depend on the length of the run
    for lesson in LESSONS:
        exps = experiments(lesson)
        if not exps:
            continue
        produced = X.claim_ids(exps)
        named = named_ids(lesson)
        assert named - produced == set(), f"lesson {lesson} names claims no experiment produces: {named - produced}"
        assert produced - named == set(), f"lesson {lesson}: claims no text names: {produced - named}"


def test_a_gpu_offers_larger_settings_and_says_so(monkeypatch):
    import torch

    w = X.select("width", 1024, X.powers_of_two(3, 13), gpu=(16384, 32768))
    assert w.on("cpu") is w and 32768 not in w.values()
    g = w.on(torch.device("cuda"))
    assert g.values()[-2:] == [16384, 32768] and g.check(32768) == 32768
    assert "width up to 32768" in w.gpu_note()
    n = X.integer("seeds", 4, 1, 8, gpu=32)
    assert n.on(torch.device("cuda")).values()[-1] == 32 and n.on("cpu").values()[-1] == 8
    # the dashboard offers them and says what the device made possible
    from course_lib import widgets
    from course_lib.lessons import tour

    monkeypatch.setattr("course_lib.runtime.get_device", lambda device=None: torch.device("cuda"))
    dash = widgets.Dashboard(tour.EXPERIMENT)
    assert 32768 in dash.controls["width"].options
    assert "on this GPU" in dash.widget.children[0].value and "up to 32768" in dash.widget.children[0].value


def test_a_dashboard_is_made_from_an_experiment_only():
    from course_lib import widgets

    with pytest.raises(TypeError, match="must be a course_lib.experiment.Experiment"):
        widgets.Dashboard({"width": None})
