"""Grading speed: the setup check, one submission, and a class of 30 submissions using both cores.

    python benchmarks/bench_grading.py --lesson 1 [--class-size 30] [--jobs 2] [--out benchmarks/results/grading.json]

The class is made of copies of the lesson's solution notebook and its student stub, alternating, so that
both the full path (every check runs) and the short path (NotImplementedError) are timed. The class run is
the real command's cost: the setup check (a worker started, the solution graded) + the students + the report.
Budgets: one submission < 30 s on 2 cores; 30 submissions < 10 minutes with --jobs 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from course_lib import grade_report, grading  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lesson", required=True)
    ap.add_argument("--class-size", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    solution, exercises = grading.lesson_spec(args.lesson)
    public, hidden = grading.load_checks()
    stub = os.path.join(ROOT, "exercises", os.path.basename(solution))
    tmp = tempfile.mkdtemp(prefix="bench-grading-")
    try:
        t0 = time.perf_counter()
        grading.preflight(grading.Limits(), solution, exercises, public, hidden, grading.load_answered())
        setup = time.perf_counter() - t0
        one = os.path.join(tmp, "one")
        os.makedirs(one)
        shutil.copy(solution, os.path.join(one, "student.ipynb"))
        t0 = time.perf_counter()
        grading.grade_class(one, args.lesson, os.path.join(tmp, "out1"), jobs=1, progress=lambda s: None,
                            check_setup=False, report=False)
        single = time.perf_counter() - t0
        klass = os.path.join(tmp, "class")
        os.makedirs(klass)
        for i in range(args.class_size):
            shutil.copy(solution if i % 2 == 0 else stub, os.path.join(klass, f"student{i:02d}.ipynb"))
        out = os.path.join(tmp, "outN")
        t0 = time.perf_counter()
        grading.grade_class(klass, args.lesson, out, jobs=args.jobs, progress=lambda s: None)
        whole = time.perf_counter() - t0
        t0 = time.perf_counter()
        grade_report.write_report(os.path.join(out, "gradebook.csv"), out, lesson=args.lesson)
        report = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"lesson": args.lesson, "setup_check_s": round(setup, 2), "one_submission_s": round(single, 2),
           "class_size": args.class_size, "jobs": args.jobs, "class_s": round(whole, 1),
           "per_submission_s": round(whole / args.class_size, 2), "report_s": round(report, 3),
           "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 1),
           "budgets": {"one_submission_s": 30, "class_of_30_s": 600}}
    print(json.dumps(res, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
