"""``reproduce``: regenerate a lesson's figures headless (PNG) and its key numbers and claims (JSON).

For every experiment of the lesson (``course_lib.lessons.<module>.EXPERIMENTS``) and each of its
``reproduce`` settings: the figure, the state panel as small multiples (experiments with time), and
optionally (``animate=True``) the state panel's frames as an animated GIF; ``key_numbers.json`` holds
each run's settings, numbers and claims with their verdicts.
"""
from __future__ import annotations

import json
import os
import time

from .lessons import LESSONS, experiments, module


def reproduce(lesson: str, outdir: str = "out", *, animate: bool = False, paper: bool = False) -> dict:
    """Run lesson ``lesson``'s experiments into ``outdir/lessonN`` (``paper``: the papers' own settings, into
    ``outdir/lessonN-paper``); returns the key numbers."""
    lesson = str(lesson)
    if lesson not in LESSONS:
        raise ValueError(f"lesson must be one of {sorted(LESSONS)} (or 'all'); got {lesson!r}")
    import matplotlib

    matplotlib.use("Agg")  # headless
    target = os.path.join(outdir, f"lesson{lesson}" + ("-paper" if paper else ""))
    os.makedirs(target, exist_ok=True)
    t0 = time.perf_counter()
    exps = experiments(lesson)
    if paper:
        numbers = {"runs": reproduce_experiments(exps, target, animate=animate, paper=True)}
        if not numbers["runs"]:
            raise ValueError(f"lesson {lesson} declares no paper setting (Experiment.paper)")
    elif exps:
        numbers = {"runs": reproduce_experiments(exps, target, animate=animate)}
    else:  # a lesson not yet on the experiment protocol
        numbers = module(lesson).reproduce(target)
    numbers = {"lesson": lesson, "title": LESSONS[lesson][1], "seconds": round(time.perf_counter() - t0, 2), **numbers}
    with open(os.path.join(target, "key_numbers.json"), "w") as f:
        json.dump(numbers, f, indent=2, default=float)
    return numbers


def reproduce_experiments(exps, target: str, *, animate: bool = False, paper: bool = False) -> dict:
    from tqdm.auto import tqdm

    from . import plots

    out = {}
    jobs = [(exp, name, overrides) for exp in exps for name, overrides in (exp.paper if paper else exp.reproduce).items()]
    bar = tqdm(jobs, desc="reproduce" + (" --paper" if paper else ""), unit="run", mininterval=0.5)
    for exp, name, overrides in bar:
        bar.set_postfix_str(f"{exp.id} {name}")
        # the paper's settings may lie outside the controls' ranges: passed as they are (run validates them)
        run = exp.execute({**exp.defaults(), **overrides}) if paper else exp.execute(**overrides)
        stem = os.path.join(target, f"{exp.id.replace('.', '_')}_{name}")
        plots.save(run.figure(), stem + ".png")
        entry = run.key_numbers()
        entry["figure"] = os.path.basename(stem + ".png")
        if paper:
            entry["paper_note"] = exp.paper_note
        if exp.has_time:
            steps = list(exp.key_steps(run.result)) if exp.key_steps else None
            if steps:
                plots.save(plots.small_multiples(exp.state, run.result, steps), stem + "_state.png")
                entry["state_figure"] = os.path.basename(stem + "_state.png")
            if animate:
                entry["animation"] = os.path.basename(animation(exp, run.result, stem + ".gif"))
        out[f"{exp.id}.{name}"] = entry
    return out


def animation(exp, result, path: str, *, fps: int = 8) -> str:
    """The state panel's frames as an animated GIF (matplotlib's Pillow writer)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    from . import plots

    frames = list(exp.frames(result))
    scene = plots.state_scene(exp.state, result, frames[0])
    for a in scene.artists:  # drawn normally in each saved frame
        a.set_animated(False)
    anim = FuncAnimation(scene.fig, lambda i: scene.update(frames[i]), frames=len(frames), blit=False)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    return path
