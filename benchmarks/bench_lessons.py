"""Budget report: lesson budgets (COURSE_DESIGN.md section 5), measured at default settings; exits 1 if any is broken.

* headless execution of each lesson notebook, top to bottom (budget: < 60 s each, < 6 min in all), and the
  kernel's peak memory (budget: < 1.5 GB);
* for every experiment of every lesson (the registry ``course_lib.lessons.experiments``), driven through its
  dashboard as the browser would: a widget change (train + redraw) from the defaults, one control at a time over
  each control's positions (both ends, the middle) -- budget: median < 1 s; the slowest position is reported (and
  must not error);
* for experiments with a time control: the time to redraw one frame (state panel + cursor) over every recorded
  frame -- budget: median < 0.15 s (smooth playback).

    python benchmarks/bench_lessons.py [--fast] [--lessons 0 2] [--no-notebooks] [--out benchmarks/results/lessons.json]

The notebook runs in a fresh kernel; a cell appended to an in-memory copy reads the kernel's peak resident
memory (ru_maxrss). The browser's own latency is measured by the browser tests.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BUDGETS = {"execute_s_each": 60, "execute_s_total": 360, "widget_median_s": 1.0, "peak_rss_mb": 1536,
           "frame_median_s": 0.15}

PEAK_CELL = """import resource, sys
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 ** 2))"""


def run_notebook(path: str) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}})
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    peak = float(text.split("PEAK_RSS_MB")[1].split()[0])
    return {"execute_s": round(elapsed, 2), "peak_rss_mb": round(peak, 1)}


def time_experiment(exp) -> dict:
    """Drive the experiment's dashboard: each control over its positions (from the defaults), then every frame."""
    dash = exp.dashboard()
    dash.run()  # the default, as the notebook shows it
    if dash.error is not None:
        raise RuntimeError(f"experiment {exp.id} at its defaults raised {dash.error!r}")
    times, errors = [], []
    for name, control in exp.controls.items():
        for value in control.positions():
            if value == control.value:
                continue
            t0 = time.perf_counter()
            dash.set(**{name: value})
            times.append((time.perf_counter() - t0, {name: value}))
            if dash.error is not None:
                errors.append(f"{name}={value!r}: {dash.error!r}")
        dash.set(**{name: control.value})
    out = {"experiment": exp.id, "default_s": round(dash.timings[0]["total_s"], 3)}
    if times:
        secs = [t for t, _ in times]
        slowest = max(times, key=lambda t: t[0])
        out.update(widget_median_s=round(statistics.median(secs), 3), widget_max_s=round(slowest[0], 3),
                   widget_slowest_setting=slowest[1], widget_changes=len(times))
    if errors:
        out["errors"] = errors
    if exp.has_time:
        frames = dash.frames()
        dash.frame_timings.clear()
        for k in frames:
            dash.show_step(k)
        ft = dash.frame_timings
        out.update(frames=len(frames), frame_median_s=round(statistics.median(ft), 4), frame_max_s=round(max(ft), 4))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="COURSE_FAST=1 (as in CI); default: full settings")
    ap.add_argument("--lessons", nargs="*", help="lesson numbers (default: all)")
    ap.add_argument("--no-notebooks", action="store_true", help="skip the headless notebook executions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ["COURSE_FAST"] = "1" if args.fast else "0"
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.lessons import LESSONS, experiments
    from course_lib.runtime import torch_threads

    lessons = args.lessons or sorted(LESSONS)
    results = {}
    for lesson in lessons:
        (path,) = glob.glob(os.path.join(ROOT, "lessons", f"{int(lesson):02d}_*.ipynb"))
        name = os.path.basename(path)
        res = {} if args.no_notebooks else run_notebook(path)
        with torch_threads():  # as the dashboards run: one thread
            res["experiments"] = [time_experiment(e) for e in experiments(lesson)]
        results[name] = res
        print(name, json.dumps(res), flush=True)
    exps = [e for r in results.values() for e in r["experiments"]]
    total = sum(r.get("execute_s", 0) for r in results.values())
    ok = (all(r.get("execute_s", 0) < BUDGETS["execute_s_each"] and r.get("peak_rss_mb", 0) < BUDGETS["peak_rss_mb"]
              for r in results.values())
          and all(e.get("widget_median_s", 0) < BUDGETS["widget_median_s"] and not e.get("errors")
                  and e.get("frame_median_s", 0) < BUDGETS["frame_median_s"] for e in exps)
          and total < BUDGETS["execute_s_total"])
    summary = {"lessons": results, "total_execute_s": round(total, 2), "fast_mode": args.fast, "budgets": BUDGETS,
               "all_within_budget": ok}
    print(json.dumps({k: v for k, v in summary.items() if k != "lessons"}, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["all_within_budget"] else 1)
