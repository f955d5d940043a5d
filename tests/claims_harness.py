"""What every lesson's claim tests share (COURSE_DESIGN.md section 8).

* :func:`named_ids`: the claim ids a lesson notebook names (written as `N.E.name` in its text);
* :class:`Invitation`: a setting the notebook asks the learner to try, with the notebook's own words;
  :func:`check_invitation` asserts the words are in the notebook and no claim fails there (except those
  the text itself says fail);
* :func:`check_defaults`: every claim holds at the experiment's defaults;
* :func:`sweep_settings` / :func:`check_sweep`: each control at its ends, middle and default (one at a time)
  plus the all-low and all-high corners: nothing errors, the claim ids never change, and every claim
  either holds or says why not.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

from course_lib.lessons import experiments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLAIM_ID = re.compile(r"`(\d+\.\d+\.[a-z0-9][a-z0-9-]*)`")


def notebook_path(lesson) -> str:
    (path,) = glob.glob(os.path.join(ROOT, "lessons", f"{int(lesson):02d}_*.ipynb"))
    return path


def notebook_text(lesson) -> str:
    """All markdown of the lesson notebook, whitespace collapsed (so quotes can span line breaks)."""
    import nbformat

    nb = nbformat.read(notebook_path(lesson), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return " ".join(text.split())


def named_ids(lesson) -> set[str]:
    return set(CLAIM_ID.findall(notebook_text(lesson)))


def experiment(exp_id: str):
    lesson = exp_id.split(".")[0]
    for e in experiments(lesson):
        if e.id == exp_id:
            return e
    raise KeyError(f"no experiment {exp_id}")


@dataclass(frozen=True)
class Invitation:
    """A setting the notebook invites the learner to try.

    quote : the notebook's words that invite it (must appear in the notebook, whitespace-insensitive)
    experiment : the experiment id ("1.1")
    settings : the overrides the words ask for
    expect : {claim id: verdict} the text states for this setting; every other claim must not fail
    """

    quote: str
    experiment: str
    settings: dict
    expect: dict = field(default_factory=dict)


def check_invitation(inv: Invitation) -> None:
    lesson = inv.experiment.split(".")[0]
    text = notebook_text(lesson)
    assert " ".join(inv.quote.split()) in text, f"the notebook of lesson {lesson} no longer says {inv.quote!r}"
    run = experiment(inv.experiment).execute(**inv.settings)
    for c in run.claims:
        want = inv.expect.get(c.id)
        if want is not None:
            assert c.verdict == want, f"{inv.settings}: the text says {c.id} {want}; it {c.verdict}: {c.why}"
        else:
            assert c.verdict != "fails", f"{inv.settings}: {c.id} fails: {c.why}"
    unknown = set(inv.expect) - {c.id for c in run.claims}
    assert not unknown, f"expect names claims the experiment does not produce: {unknown}"


def check_defaults(exp) -> None:
    """Every claim holds at the defaults; and the figure of a run in progress draws (a dashboard redraws live
    while a slow run trains: the first and the last partial result it is handed are drawn here)."""
    import matplotlib.pyplot as plt

    partials = []
    run = exp.execute(live=partials.append)
    for partial in partials[:1] + partials[-1:]:
        plt.close(exp.draw(partial))
    bad = [(c.id, c.verdict, c.why) for c in run.claims if c.verdict != "holds"]
    assert not bad, f"experiment {exp.id} at its defaults: {bad}"


def sweep_settings(exp) -> list[dict]:
    """One control at a time over its positions (ends, middle, default), then the two corners."""
    out = [{}]
    for name, c in exp.controls.items():
        for v in c.positions():
            if v != c.value:
                out.append({name: v})
    low = {k: c.positions()[0] for k, c in exp.controls.items()}
    high = {k: c.positions()[2] if len(c.positions()) > 2 else c.positions()[-1] for k, c in exp.controls.items()}
    for corner in (low, high):
        if corner not in out:
            out.append(corner)
    return out


def check_sweep(exp, settings: list[dict] | None = None) -> list:
    """Every setting runs without error, claim ids are stable, and each claim holds or says why."""
    ids = None
    runs = []
    for s in settings if settings is not None else sweep_settings(exp):
        run = exp.execute(**s)
        got = [c.id for c in run.claims]
        assert ids is None or got == ids, f"{exp.id} at {s}: claim ids changed from {ids} to {got}"
        ids = got
        for c in run.claims:
            assert c.id.startswith(exp.id + "."), f"claim {c.id} does not belong to experiment {exp.id}"
            assert c.holds or c.why.strip(), f"{exp.id} at {s}: {c.id} {c.verdict} without saying why"
        runs.append((s, run))
    return runs
