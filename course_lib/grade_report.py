"""What the class got wrong, at a glance: ``report.html`` and ``report.csv`` beside the gradebook.

Written by ``python -m course_lib grade`` from ``gradebook.csv`` alone (so it can be rebuilt with
``python -m course_lib.grade_report grades/``). Per exercise: the score distribution (an inline SVG
bar chart), how many students are in each status, and the most frequent failing checks with the hint
that applied and the share of the class that hit it ("30% (3 of 10): h_inf on 5 unit vectors: hint: ...").

Shares are over the students graded for that exercise (a row whose status is "grader error" is not a
grade and is left out). A student counts once per (check, hint) even where the same hint is given by
two checks. The page is self-contained: inline CSS and SVG, no script, no network.
It names the hidden checks: it is for the instructor, not for the class.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import html
import json
import os
import sys
from collections import Counter, defaultdict

GRADER_ERROR = "grader error"
REPORT_FIELDS = ["exercise", "kind", "item", "hint", "students", "class_size", "share"]
STATUS_ORDER = ["passed", "partial", "failed", "not implemented", "missing", "timeout", "crashed", "error", "invalid"]
BLUE, ORANGE, GREEN, GREY = "#0072B2", "#E69F00", "#009E73", "#999999"  # Okabe-Ito


def _ex_key(ex: str):
    try:
        return tuple(int(p) for p in ex.split("."))
    except ValueError:
        return (10**9, ex)


def summarize(rows: list[dict], exercises: list[str] | None = None) -> dict:
    """The report's numbers from gradebook rows (dicts with the gradebook's columns)."""
    by_ex: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("status") != GRADER_ERROR:
            by_ex[r["exercise"]].append(r)
    order = list(exercises) if exercises else sorted(by_ex, key=_ex_key)
    order += [e for e in sorted(by_ex, key=_ex_key) if e not in order]
    out = {"exercises": [], "students": len({r["student"] for r in rows if r.get("status") != GRADER_ERROR}),
           "grader_errors": len({r["student"] for r in rows if r.get("status") == GRADER_ERROR})}
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ex in order:
        ex_rows = by_ex.get(ex, [])
        students = sorted({r["student"] for r in ex_rows})
        n = len(students)
        maxp = max((int(r["max_points"]) for r in ex_rows), default=0)
        points = Counter(int(r["points"]) for r in ex_rows)
        statuses = Counter(r["status"] for r in ex_rows)
        groups: dict[tuple, set] = defaultdict(set)
        for r in ex_rows:
            totals[r["student"]][0] += int(r["points"])
            totals[r["student"]][1] += int(r["max_points"])
            try:
                failed = json.loads(r.get("failed_checks") or "[]")
            except ValueError:
                failed = []
            for f in failed:
                key = (str(f.get("check", "")), bool(f.get("hidden")), str(f.get("hint", "")))
                groups[key].add(r["student"])
        failing = sorted(({"check": c, "hidden": h, "hint": hint, "students": len(s), "share": len(s) / n if n else 0.0}
                          for (c, h, hint), s in groups.items()), key=lambda g: (-g["students"], g["check"], g["hint"]))
        mean = sum(int(r["points"]) for r in ex_rows) / n if n else 0.0
        out["exercises"].append({"exercise": ex, "class_size": n, "max_points": maxp, "mean": mean,
                                 "points": {p: points.get(p, 0) for p in range(maxp + 1)},
                                 "statuses": dict(sorted(statuses.items(), key=lambda kv: (STATUS_ORDER.index(kv[0])
                                                  if kv[0] in STATUS_ORDER else 99, kv[0]))),
                                 "failing": failing})
    out["totals"] = {s: tuple(v) for s, v in totals.items()}
    return out


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _svg_bars(counts: dict[int, int], title: str, xlabel: str, width: int = 320, height: int = 150) -> str:
    """An inline SVG bar chart of {value: students}, each bar labelled with its count (no colour-only cue)."""
    keys = list(counts)
    top = max(counts.values(), default=0) or 1
    left, bottom, right, head = 30, 34, 8, 30
    plot_w, plot_h = width - left - right, height - bottom - head
    bw = plot_w / max(1, len(keys))
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
             f'<line x1="{left}" y1="{head + plot_h}" x2="{width - right}" y2="{head + plot_h}" stroke="#333"/>']
    for i, k in enumerate(keys):
        c = counts[k]
        h = plot_h * c / top
        x = left + i * bw + 0.12 * bw
        y = head + plot_h - h
        fill = GREEN if i == len(keys) - 1 and len(keys) > 1 else BLUE
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{0.76 * bw:.1f}" height="{h:.1f}" fill="{fill}"/>')
        parts.append(f'<text x="{x + 0.38 * bw:.1f}" y="{y - 3:.1f}" font-size="11" text-anchor="middle">{c}</text>')
        parts.append(f'<text x="{x + 0.38 * bw:.1f}" y="{head + plot_h + 13:.1f}" font-size="11" text-anchor="middle">'
                     f'{html.escape(str(k))}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
                 f'{html.escape(xlabel)}</text>')
    parts.append(f'<text x="{left}" y="11" font-size="12" font-weight="bold">{html.escape(title)}</text>')
    parts.append(f'<text x="10" y="{head + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 10 {head + plot_h / 2:.1f})">students</text></svg>')
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.grid{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
table{border-collapse:collapse;font-size:.92em}td,th{padding:.25em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #eee}
th{background:#f5f5f5}.num{text-align:right;white-space:nowrap}.bar{background:#E69F00;height:.7em;display:inline-block}
.muted{color:#666;font-size:.9em}.tag{font-size:.8em;border:1px solid #999;border-radius:3px;padding:0 .3em;color:#555}
"""


def render_html(summary: dict, lesson: str, top: int = 8) -> str:
    esc = html.escape
    totals = summary["totals"]
    best = max((b for _, b in totals.values()), default=0)
    dist = Counter(p for p, _ in totals.values())
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Lesson {esc(lesson)}: what the class got wrong</title><style>{_CSS}</style></head><body>",
             f"<h1>Lesson {esc(lesson)}: what the class got wrong</h1>",
             f"<p class='muted'>{summary['students']} students graded; written {_dt.datetime.now():%Y-%m-%d %H:%M}. "
             "For the instructor: this page names the hidden checks. Shares are of the students graded for each exercise."]
    if summary["grader_errors"]:
        parts.append(f" {summary['grader_errors']} students have rows the grader failed on (not counted; run the grade "
                     "command again to grade them).")
    parts.append("</p>")
    rows = "".join(f"<tr><td>{esc(e['exercise'])}</td><td class='num'>{e['class_size']}</td>"
                   f"<td class='num'>{e['mean']:.2f} / {e['max_points']}</td>"
                   f"<td class='num'>{_pct(e['points'].get(e['max_points'], 0) / e['class_size']) if e['class_size'] else '-'}</td>"
                   f"<td>{esc(e['failing'][0]['check']) + ' (' + _pct(e['failing'][0]['share']) + ')' if e['failing'] else '-'}</td></tr>"
                   for e in summary["exercises"])
    parts.append("<div class='grid'><table><tr><th>exercise</th><th>students</th><th>mean points</th><th>full marks</th>"
                 f"<th>most frequent failing check</th></tr>{rows}</table>")
    if totals:
        parts.append(_svg_bars({p: dist.get(p, 0) for p in range(best + 1)}, f"Total score of {len(totals)} students",
                               f"total points (of {best}; green: full marks)", width=max(320, 16 * (best + 1) + 40)))
    parts.append("</div>")
    for e in summary["exercises"]:
        n = e["class_size"]
        parts.append(f"<h2>Exercise {esc(e['exercise'])}</h2><div class='grid'>")
        parts.append(_svg_bars(e["points"], f"Exercise {e['exercise']}: points of {n} students",
                               f"points (of {e['max_points']}; green: full marks)"))
        st = "".join(f"<tr><td>{esc(s)}</td><td class='num'>{c}</td><td class='num'>{_pct(c / n) if n else '-'}</td></tr>"
                     for s, c in e["statuses"].items())
        parts.append(f"<table><tr><th>status</th><th>students</th><th>share</th></tr>{st}</table></div>")
        if e["failing"]:
            items = []
            for g in e["failing"][:top]:
                tag = "<span class='tag'>hidden</span> " if g["hidden"] else ""
                hint = f"<br><span class='muted'>hint: {esc(g['hint'])}</span>" if g["hint"] else ""
                items.append(f"<tr><td class='num'><span class='bar' style='width:{60 * g['share']:.0f}px'></span> "
                             f"{_pct(g['share'])} ({g['students']} of {n})</td><td>{tag}{esc(g['check'])}{hint}</td></tr>")
            more = (f"<p class='muted'>{len(e['failing']) - top} more in report.csv.</p>" if len(e["failing"]) > top else "")
            parts.append("<h3>Most frequent failing checks</h3><table><tr><th>students</th><th>check and hint</th></tr>"
                         + "".join(items) + "</table>" + more)
        else:
            parts.append("<p class='muted'>No submitted answer failed a check (see the statuses for the others).</p>")
    parts.append("</body></html>")
    return "".join(parts)


def report_rows(summary: dict) -> list[dict]:
    out = []
    for e in summary["exercises"]:
        n = e["class_size"]

        def row(kind, item, hint, k):
            return {"exercise": e["exercise"], "kind": kind, "item": item, "hint": hint, "students": k, "class_size": n,
                    "share": f"{k / n:.4f}" if n else ""}

        out.append({**row("mean points", f"{e['mean']:.4f}", "", n), "share": ""})
        out += [row("points", f"{p}/{e['max_points']}", "", k) for p, k in e["points"].items()]
        out += [row("status", s, "", k) for s, k in e["statuses"].items()]
        out += [row("failed check", g["check"] + (" (hidden)" if g["hidden"] else ""), g["hint"], g["students"])
                for g in e["failing"]]
    return out


def write_report(gradebook: str, outdir: str, *, lesson: str = "", exercises: list[str] | None = None) -> tuple[str, str]:
    """Write outdir/report.html and outdir/report.csv from the gradebook; returns their paths."""
    from .grading import read_gradebook

    summary = summarize(read_gradebook(gradebook), exercises)
    html_path, csv_path = os.path.join(outdir, "report.html"), os.path.join(outdir, "report.csv")
    with open(html_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(render_html(summary, lesson))
    with open(csv_path + ".tmp", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, REPORT_FIELDS)
        w.writeheader()
        w.writerows(report_rows(summary))
    os.replace(html_path + ".tmp", html_path)
    os.replace(csv_path + ".tmp", csv_path)
    return html_path, csv_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib.grade_report", description="Rebuild the class report from a gradebook.")
    ap.add_argument("out", help="the grade output folder (holds gradebook.csv)")
    ap.add_argument("--lesson", default="")
    args = ap.parse_args(argv)
    path = os.path.join(args.out, "gradebook.csv")
    if not os.path.exists(path):
        print(f"error: no gradebook at {path}", file=sys.stderr)
        return 2
    print("\n".join(write_report(path, args.out, lesson=args.lesson)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
