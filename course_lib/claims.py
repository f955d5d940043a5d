"""The claim ledger: every sentence that tells the learner what a figure shows is computed from the run.

A :class:`Claim` pairs a sentence of the notebook ("the late slope matches the dashed line") with the
numbers that decide it at the setting on screen: what was measured, what the theory predicts, the
tolerance that "matches" means there, whether the claim's preconditions are met (``applies``) and
whether it holds. The same objects feed the dashboard's status line, the "numbers behind the figure"
table, ``reproduce``'s JSON and the tests (COURSE_DESIGN.md section 8).

Build claims with :func:`claim` (a verdict you computed) or :func:`not_applicable`; compare numbers
with :func:`rel_error`, :func:`log_rate_error` and :func:`ratio`; render them with :func:`status_html`
and :class:`Table`; format a number for a learner with :func:`fmt`.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

FLOAT64_FLOOR = 1e-15  # a loss or relative quantity below this is float64 round-off, shown as "< 1e-15"
FLOAT32_FLOOR = 1e-7   # float32's relative precision: residual norms of float32 training level off near it


@dataclass(frozen=True)
class Claim:
    """One statement of a lesson, decided by the run that drew the figure.

    Attributes
    ----------
    id : stable identifier ``"<lesson>.<experiment>.<name>"``, e.g. ``"1.1.late-rate"``; the notebook's
        "What to notice" item names it
    statement : the sentence as the notebook states it (short)
    measured, predicted : the numbers compared (None where a claim is qualitative or does not apply)
    tolerance : what "matches" means here, in words ("within 5% in -log rate")
    applies : are the claim's preconditions met at this setting (run converged, kernel regime, ...)?
    holds : True / False, or None when the claim does not apply
    why : the reason, in the learner's words, whenever ``holds`` is not True (empty when it holds)
    """

    id: str
    statement: str
    measured: float | None
    predicted: float | None
    tolerance: str
    applies: bool
    holds: bool | None
    why: str = ""

    @property
    def verdict(self) -> str:
        """"holds", "fails" or "does not apply"."""
        if not self.applies:
            return "does not apply"
        return "holds" if self.holds else "fails"

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("measured", "predicted"):
            v = d[k]
            d[k] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
        d["verdict"] = self.verdict
        return d


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"measured/predicted must be numbers or None; got {type(x).__name__}") from None


def claim(id: str, statement: str, *, holds: bool, measured=None, predicted=None, tolerance: str = "",
          why: str = "", unit: str = "") -> Claim:
    """A claim whose preconditions are met, with the verdict ``holds`` computed by the lesson.

    When it fails and no ``why`` is given, the reason is written from the numbers
    ("measured 0.97 vs predicted 0.95: not within 2% in -log rate"). A non-finite measurement
    never holds.
    """
    m, p = _num(measured), _num(predicted)
    ok = bool(holds) and (m is None or math.isfinite(m))
    if not ok and not why:
        parts = []
        if m is not None:
            parts.append(f"measured {fmt(m)}{unit}")
        if p is not None:
            parts.append(f"predicted {fmt(p)}{unit}")
        why = " vs ".join(parts) + (f": not {tolerance}" if tolerance else "") if parts else "the run does not show it"
    return Claim(id, statement, m, p, tolerance, True, ok, "" if ok else why)


def not_applicable(id: str, statement: str, why: str, *, measured=None, predicted=None, tolerance: str = "") -> Claim:
    """A claim whose preconditions are not met at this setting; ``why`` says which, in plain words."""
    if not why:
        raise ValueError("why must say, in the learner's words, why the claim does not apply here")
    return Claim(id, statement, _num(measured), _num(predicted), tolerance, False, None, why)


# ----------------------------------------------------------------------------------------------
# Comparisons (what a tolerance is measured in)
# ----------------------------------------------------------------------------------------------
def rel_error(measured: float, predicted: float) -> float:
    """|measured / predicted - 1| (inf when predicted is 0 and measured is not)."""
    measured, predicted = float(measured), float(predicted)
    if predicted == 0:
        return 0.0 if measured == 0 else math.inf
    return abs(measured / predicted - 1)


def log_rate_error(measured_rate: float, predicted_rate: float) -> float:
    """Relative error of two per-step contraction rates in -log rate: |log m / log p - 1|.

    Rates near 1 differ little in absolute terms (0.985 vs 0.992 is a factor 1.9 in steps to a target);
    in -log rate the comparison counts what matters, the number of steps per decade.
    """
    m, p = float(measured_rate), float(predicted_rate)
    if not (0 < m and 0 < p) or p == 1:
        return math.inf
    return abs(math.log(m) / math.log(p) - 1)


def ratio(measured: float, predicted: float) -> float:
    """max(m/p, p/m) for positive numbers: 1 means equal, 2 means a factor 2 apart either way."""
    m, p = float(measured), float(predicted)
    if not (m > 0 and p > 0):
        return math.inf
    return max(m / p, p / m)


# ----------------------------------------------------------------------------------------------
# Rendering for learners
# ----------------------------------------------------------------------------------------------
def fmt(x, sig: int = 3, *, floor: float | None = None) -> str:
    """A number as a learner reads it: ``sig`` significant digits, no float noise.

    ``floor``: magnitudes below it are round-off (e.g. a loss at the float64 floor) and read
    "< 1e-15", never as a tiny or negative number. None -> "–"; booleans -> "yes"/"no".
    """
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return ", ".join(fmt(v, sig, floor=floor) for v in x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if floor is not None and v < floor:
        return f"< {floor:.0e}".replace("e-0", "e-")
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    text = f"{v:.{sig}g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


_ICON = {"holds": "✓", "fails": "✗", "does not apply": "–"}
_COLOR = {"holds": "#1a7f37", "fails": "#b35900", "does not apply": "#6e7781"}  # fails: amber, not alarm red (a claim may fail at a setting the learner chose)


def status_html(claims: Sequence[Claim], headline: str = "", *, statements: bool = False) -> str:
    """The dashboard's status line: a headline, then one line per claim with its verdict (symbol, word
    and colour, so colour is never the only cue), the numbers, and, when it does not hold, why. The
    statement itself is the line's tooltip (``statements=True`` prints it too); the notebook's "What to
    notice" text carries it under the same id."""
    lines = [headline] if headline else []
    for c in claims:
        v = c.verdict
        nums = _measured_vs_predicted(c)
        reason = f" — {html.escape(c.why)}" if c.why else ""
        said = f" {html.escape(c.statement)}" if statements else ""
        lines.append(f"<span title='{html.escape(c.statement, quote=True)}'>"
                     f"<span style='color:{_COLOR[v]}'>{_ICON[v]} <b>{v}</b></span> <code>{html.escape(c.id)}</code>{said}"
                     f"{(' <span style=color:grey>(' + html.escape(nums) + ')</span>') if nums else ''}{reason}</span>")
    return "<br>".join(lines)


def _measured_vs_predicted(c: Claim) -> str:
    if c.measured is None and c.predicted is None:
        return ""
    if c.predicted is None:
        return f"measured {fmt(c.measured)}"
    if c.measured is None:
        return f"predicted {fmt(c.predicted)}"
    return f"measured {fmt(c.measured)}, predicted {fmt(c.predicted)}" + (f"; {c.tolerance}" if c.tolerance else "")


def claims_text(claims: Sequence[Claim]) -> str:
    """Plain-text verdicts, one per line (text alternatives for figures, logs)."""
    return "\n".join(f"{_ICON[c.verdict]} {c.verdict}: {c.id} {c.statement}" + (f" ({c.why})" if c.why else "")
                     for c in claims)


class Table:
    """A small table that renders as HTML in a notebook and as aligned text elsewhere.

    ``rows``: sequences of cells (numbers are formatted with :func:`fmt`); ``floors``: per-column
    floors passed to :func:`fmt` (e.g. ``{"final loss": 1e-15}``).
    """

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence], *, title: str = "",
                 floors: dict[str, float] | None = None, sig: int = 4):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.title = title
        self.floors = dict(floors or {})
        self.sig = sig
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(f"each row must have {len(self.columns)} cells ({self.columns}); got {r}")

    def cells(self) -> list[list[str]]:
        return [[fmt(v, self.sig, floor=self.floors.get(col)) for col, v in zip(self.columns, r)] for r in self.rows]

    def __str__(self) -> str:
        cells = [self.columns] + self.cells()
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        out = [self.title] if self.title else []
        for j, row in enumerate(cells):
            out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if j == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.cells())
        cap = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>" if self.title else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows}


def claims_table(claims: Sequence[Claim], title: str = "What the text claims, at this setting") -> Table:
    """The claims as a table: id, statement, measured, predicted, tolerance, verdict (and why)."""
    rows = [(c.id, c.statement, c.measured, c.predicted, c.tolerance or "–",
             f"{_ICON[c.verdict]} {c.verdict}" + (f": {c.why}" if c.why else "")) for c in claims]
    return Table(["claim", "statement", "measured", "predicted", "tolerance", "verdict"], rows, title=title)


class Report:
    """What the "numbers behind the figure" cell shows: the claims table, then the key numbers.

    ``floors``: {quantity: floor} for numbers that sit at a precision floor (a loss at the float64
    floor reads "< 1e-15").
    """

    def __init__(self, claims: Sequence[Claim], numbers: dict, *, title: str = "Key numbers",
                 floors: dict[str, float] | None = None):
        floors = dict(floors or {})
        self.claims = list(claims)
        self.numbers = dict(numbers)
        self.claims_table = claims_table(self.claims)
        self.numbers_table = Table(["quantity", "value"],
                                   [(k, fmt(v, 4, floor=floors.get(k))) for k, v in self.numbers.items()], title=title)

    def __str__(self) -> str:
        return f"{self.claims_table}\n\n{self.numbers_table}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.claims_table._repr_html_() + "<br>" + self.numbers_table._repr_html_()
