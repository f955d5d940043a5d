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


def test_unknown_lesson_is_a_clear_error(capsys):
    assert cli.main(["reproduce", "42"]) == 2
    assert "lesson must be one of" in capsys.readouterr().err


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "course_lib", "lessons"], capture_output=True, text=True, check=True)
    assert "Tour" in out.stdout
