"""The grader reads a notebook as Jupyter runs it: files saved by Colab, VS Code, older or newer JupyterLab,
Windows editors (byte-order mark, UTF-16) give the same code cells, and the feedback says what was repaired.
A file whose code cannot be read is "invalid" with a reason a learner can act on."""
import codecs
import copy
import json

import nbformat
import pytest

from course_lib import grading

from .test_grading import CHECKS, solution_nb


def _base() -> dict:
    nb = json.loads(nbformat.writes(solution_nb()))
    for c in nb["cells"]:
        c["source"] = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    return nb


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"] if c["cell_type"] == "code"]


def _variants() -> dict:
    base = _base()
    out = {}
    v = copy.deepcopy(base)
    v["nbformat_minor"] = 4  # VS Code / an older tool: declares 4.4, keeps the ids
    out["v44_with_ids"] = (v, "declares nbformat 4.4")
    v = copy.deepcopy(base)
    v["nbformat_minor"] = 2
    out["v42_with_ids"] = (v, "declares nbformat 4.2")
    v = copy.deepcopy(base)
    v["cells"][0]["id"] = None
    out["null_id"] = (v, "invalid id")
    v = copy.deepcopy(base)
    v["cells"][5]["id"] = v["cells"][2]["id"]  # JupyterLab's "split cell"
    out["duplicate_ids"] = (v, "shared an id")
    v = copy.deepcopy(base)
    for c in v["cells"]:
        c.pop("id")
    out["v45_without_ids"] = (v, "had no id")
    v = copy.deepcopy(base)  # Colab: 4.0, ids in metadata, list sources, kernelspec without language
    v["nbformat_minor"] = 0
    v["metadata"] = {"colab": {"provenance": []}, "kernelspec": {"display_name": "Python 3", "name": "python3"}}
    for i, c in enumerate(v["cells"]):
        c.pop("id")
        c["metadata"] = {"id": f"cOlAb{i}"}
        c["source"] = c["source"].splitlines(keepends=True)
    out["colab"] = (v, None)
    v = copy.deepcopy(base)
    v["cells"][2]["execution_count"] = "three"  # a schema departure that does not touch the code
    out["schema_departure"] = (v, "departs from the nbformat schema")
    v = copy.deepcopy(base)
    del v["nbformat"], v["nbformat_minor"]
    out["no_version"] = (v, "does not say its nbformat version")
    return out


@pytest.mark.parametrize("name", list(_variants()))
def test_each_variant_yields_the_same_code_and_says_what_was_repaired(tmp_path, name):
    nb, note = _variants()[name]
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    sources, notes = grading.read_notebook(str(path))
    assert sources == _code(_base())
    if note is None:
        assert notes == []
    else:
        assert any(note in n for n in notes), notes


def test_byte_order_mark_and_utf16_are_read_and_said(tmp_path):
    text = json.dumps(_base(), indent=1, ensure_ascii=False)
    bom = tmp_path / "bom.ipynb"
    bom.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    sources, notes = grading.read_notebook(str(bom))
    assert sources == _code(_base()) and any("byte-order mark" in n for n in notes)
    utf16 = tmp_path / "utf16.ipynb"
    utf16.write_bytes(text.encode("utf-16"))  # with its BOM, as Windows PowerShell writes it
    sources, notes = grading.read_notebook(str(utf16))
    assert sources == _code(_base()) and any("UTF-16" in n for n in notes)


def test_nbformat3_is_converted(tmp_path):
    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_code_cell(input="def double(x):\n    return 2 * x"), nbformat.v3.new_text_cell("markdown", "hi")])])
    path = tmp_path / "v3.ipynb"
    path.write_text(nbformat.writes(v3, version=3))
    sources, notes = grading.read_notebook(str(path))
    assert sources == ["def double(x):\n    return 2 * x"] and any("nbformat 3" in n for n in notes)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"{ this is not json", "not JSON (Expecting property name"),
    (b"[1, 2, 3]", "no cells"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "x"}).encode(), "not a list of cells"),
    (b'{"cells": [], "caf\xe9": 1}', "not UTF-8 text (byte 0xe9 at offset 18)"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                 "cells": [{"cell_type": "code", "source": 3, "metadata": {}, "outputs": []}]}).encode(), "source is not text"),
])
def test_unreadable_files_are_invalid_with_a_reason(tmp_path, data, reason):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(data)
    with pytest.raises(grading.InvalidNotebook, match="not a valid notebook") as info:
        grading.read_notebook(str(path))
    assert reason in str(info.value)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    nbformat.write(solution_nb(), root / "solutions" / "99_sample.ipynb")
    return root


@pytest.mark.slow
def test_every_variant_is_graded_like_the_original(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, (nb, _) in _variants().items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
    (subs / "bom.ipynb").write_bytes(codecs.BOM_UTF8 + json.dumps(_base()).encode("utf-8"))
    out = tmp_path / "grades"
    path = grading.grade_class(str(subs), "99", str(out), jobs=2, root=str(course), checks=CHECKS, answered={},
                               limits=grading.Limits(timeout_s=60, call_timeout_s=20), progress=lambda s: None,
                               check_setup=False)
    rows = grading.read_gradebook(path)
    assert len(rows) == 2 * (len(_variants()) + 1)
    assert all(r["status"] == "passed" and r["points"] == r["max_points"] for r in rows), \
        [(r["student"], r["exercise"], r["status"], r["reason"]) for r in rows if r["status"] != "passed"]
    fb = (out / "feedback" / "bom.md").read_text()
    assert "Score: 5 / 5" in fb and "byte-order mark" in fb and "your code is unchanged" in fb
    assert "declares nbformat 4.4" in (out / "feedback" / "v44_with_ids.md").read_text()
