import json
import subprocess
import sys

from course_lib import cli


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device" in out


def test_reproduce_writes_png_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cli.main(["reproduce", "0", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "lesson0" / "key_numbers.json").read_text())
    assert numbers["lesson"] == "0" and "0.1.width1024" in numbers["runs"]
    assert {c["verdict"] for c in numbers["runs"]["0.1.width1024"]["claims"]} <= {"holds", "fails", "does not apply"}
    assert list((tmp_path / "lesson0").glob("*.png"))


def test_reproduce_paper_is_labelled_and_refuses_nothing_silently(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cli.main(["reproduce", "0", "--paper", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "lesson0-paper" / "key_numbers.json").read_text())
    (entry,) = numbers["runs"].values()
    assert "closest analogue" in entry["paper_note"]
    assert "reproduce --paper" in capsys.readouterr().err  # a progress bar over the runs


def test_unknown_lesson_is_a_clear_error(capsys):
    assert cli.main(["reproduce", "42"]) == 2
    assert "lesson must be one of" in capsys.readouterr().err


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "course_lib", "lessons"], capture_output=True, text=True, check=True)
    assert "Tour" in out.stdout


def test_every_lesson_has_a_paper_setting_labelled_as_the_papers_or_the_courses():
    """`reproduce N --paper` works for every lesson: each declares at least one paper setting, and says whether it is
    the paper's own experiment or the course's closest analogue."""
    from course_lib.lessons import LESSONS, experiments

    for lesson in LESSONS:
        papers = [exp for exp in experiments(lesson) if exp.paper]
        assert papers, f"lesson {lesson} declares no paper setting"
        for exp in papers:
            assert "analogue" in exp.paper_note or "paper's own" in exp.paper_note, exp.id
            known = set(exp.defaults()) | set(exp.fixed) | {"steps", "seeds", "lr", "batch", "scale"}
            for name, overrides in exp.paper.items():
                assert set(overrides) <= known | set(exp.run.__code__.co_varnames), (exp.id, name, overrides)


def test_reproduce_paper_on_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cli.main(["reproduce", "6", "--paper", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "lesson6-paper" / "key_numbers.json").read_text())
    assert set(numbers["runs"]) == {"6.5.digits-3v8-wide", "6.5.digits-0v1-wide"}
    for entry in numbers["runs"].values():
        assert "closest analogue" in entry["paper_note"]
        assert {c["verdict"] for c in entry["claims"]} <= {"holds", "fails", "does not apply"}
    assert len(list((tmp_path / "lesson6-paper").glob("*.png"))) >= 2
