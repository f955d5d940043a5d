"""Command line: ``python -m course_lib {info,reproduce,lessons}`` (also installed as ``course``)."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib", description="Course helper: versions, devices, figures.")
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("info", help="versions and the device in use")
    sub.add_parser("lessons", help="list the lessons that have a reproduce target")
    rp = sub.add_parser("reproduce", help="regenerate a lesson's figures (PNG) and key numbers (JSON) headless")
    rp.add_argument("lesson", help="lesson number, or 'all'")
    rp.add_argument("--out", default="out", help="output folder (default: out/)")
    rp.add_argument("--animate", action="store_true", help="also write each state panel's frames as an animated GIF")
    rp.add_argument("--paper", action="store_true", help="the papers' own experiments (where confirmed), or the "
                    "course's closest analogue, labelled as such")
    sub.add_parser("release", help="build the student release (instructors)", add_help=False)
    sub.add_parser("grade", help="grade a folder of submitted notebooks (instructors)", add_help=False)
    sub.add_parser("site", help="render the executed course to HTML pages with an index", add_help=False)
    sub.add_parser("links", help="write the Binder/Colab links from pyproject.toml's [tool.course]", add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("release", "grade", "site", "links"):  # these verbs parse their own options
        from . import grading, links, release, site

        return {"release": release.main, "grade": grading.main, "site": site.main, "links": links.main}[argv[0]](argv[1:])
    args = ap.parse_args(argv)

    if args.verb == "info":
        from .runtime import info

        for k, v in info().items():
            print(f"{k:18s} {v}")
        return 0
    from .reproduce import LESSONS, reproduce

    if args.verb == "lessons":
        for k, (_, title) in LESSONS.items():
            print(f"{k:>3}  {title}")
        return 0
    targets = sorted(LESSONS) if args.lesson == "all" else [args.lesson]
    try:
        for lesson in targets:
            numbers = reproduce(lesson, args.out, animate=args.animate, paper=args.paper)
            print(json.dumps(numbers, indent=2, default=float))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
