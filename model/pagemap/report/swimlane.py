"""SVG swimlane diagrams of counterexample traces, for the review document.

Not a model of any C function: it draws the ``TraceStep`` list that
``pagemap.checker.trace.build`` makes from the explorer's shortest path.
One vertical lane per thread, one row per step from top to bottom; each step
is a box in its thread's lane with the model step (``func.label``) and the C
statement; the shared values the step changed are listed in a column on the
right. A TLB flush landing (proc_tlbshootdown's IPI) is a dashed violet box;
a step that queues flushes is a violet box with dashed arrows to the lanes
of the other cores it queued them for. The last step, the one that breaks an invariant, has a red border and
a red banner naming the invariant.

SVG text does not wrap, so text is wrapped here at a fixed character count.
All text is monospace except the headers, which makes the width of a line
predictable (0.6 em per character in every common monospace font).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pagemap.checker.trace import FLUSH_WHERE, TraceStep

#: Width the diagram aims for: the report's content column at 1280 px.
TARGET_WIDTH = 1180
GUTTER = 40  # left column with the step numbers
MIN_CHANGES = 360  # the right-hand column of changed values
MAX_LANE, MIN_LANE = 320, 190
CHAR = 0.6  # width of a monospace character, in em

MONO = "monospace"
SANS = "sans-serif"


_INVALID_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml(text: object) -> str:
    """Escape text for an XML text node or attribute value."""
    s = _INVALID_XML.sub("", str(text))
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def wrap(text: str, width: int, indent: int = 0) -> list[str]:
    """Greedy wrap at spaces and after ``| , ; . (``; a token too long is cut.

    Continuation lines are indented by ``indent`` spaces."""
    width = max(8, width)
    # break after '|', ',', ';', '.' and a call's '(' but before a '(' that opens a word
    tokens = [t for t in re.findall(r" +|\(*[^ |,;(.]*[|,;(.]?", " ".join(text.split())) if t]
    lines: list[str] = []
    cur = ""

    def room() -> int:
        return width - (indent if lines else 0)

    for tok in tokens:
        if len(cur) + len(tok) <= room():
            cur += tok
            continue
        if cur.strip():
            lines.append(cur.rstrip())
            cur = ""
        if tok.isspace():
            continue
        while len(tok) > room():
            lines.append(tok[: room()])
            tok = tok[room():]
        cur = tok
    if cur.strip() or not lines:
        lines.append(cur.rstrip())
    return [ln if i == 0 else " " * indent + ln.lstrip() for i, ln in enumerate(lines)]


@dataclass(frozen=True)
class Lane:
    """A thread: its name and one line about it (process, ops)."""

    name: str
    about: str = ""


@dataclass(frozen=True)
class Geometry:
    lanes: int
    lane_w: float
    changes_w: float

    @property
    def width(self) -> float:
        return GUTTER + self.lanes * self.lane_w + self.changes_w

    def lane_x(self, i: int) -> float:
        return GUTTER + i * self.lane_w

    @property
    def changes_x(self) -> float:
        return GUTTER + self.lanes * self.lane_w


def geometry(lanes: int, target: int = TARGET_WIDTH) -> Geometry:
    """Lanes as wide as fits next to the changes column, within [MIN_LANE, MAX_LANE]."""
    lanes = max(1, lanes)
    lane_w = max(MIN_LANE, min(MAX_LANE, (target - GUTTER - MIN_CHANGES) / lanes))
    changes_w = max(MIN_CHANGES, target - GUTTER - lanes * lane_w)
    return Geometry(lanes, lane_w, changes_w)


# font sizes (px) and line heights
LABEL_PX, TEXT_PX, CHANGE_PX = 12.0, 11.0, 11.0
LABEL_LH, TEXT_LH, CHANGE_LH = 15.0, 13.5, 14.0
PAD = 6.0  # inside a box
GAP = 8.0  # between rows
HEADER_H = 54.0


def _chars(width: float, px: float) -> int:
    return int(width / (px * CHAR))


def _statement(st: TraceStep) -> str:
    """The C statement without the "function: " prefix ``where`` already names."""
    func = st.where.split(".", 1)[0]
    return st.step.removeprefix(f"{func}: ")


def _flush_targets(st: TraceStep) -> list[str]:
    """Threads whose flush this step queued (``T.flush_pending: 0 -> 1``)."""
    out = []
    for name, change in st.changed.items():
        if name.endswith(".flush_pending") and change.replace(" ", "").endswith("->1"):
            out.append(name.removesuffix(".flush_pending"))
    return out


def _change_lines(st: TraceStep, chars: int) -> list[tuple[str, str]]:
    """(kind, text) lines of the right-hand column: kind is name|value|note."""
    out: list[tuple[str, str]] = []
    for name, change in st.changed.items():
        text = f"{name}: {change.replace(' -> ', ' → ')}"
        for i, line in enumerate(wrap(text, chars, indent=2)):
            out.append(("name" if i == 0 else "value", line))
    for note in st.notes:
        out.extend(("note", line) for line in wrap(f"({note})", chars, indent=1))
    return out


@dataclass
class _Row:
    step: TraceStep
    n: int
    lane: int
    label: list[str]
    text: list[str]
    changes: list[tuple[str, str]]
    banner: list[str]
    y: float = 0.0
    box_h: float = 0.0
    h: float = 0.0


def _layout(steps: Sequence[TraceStep], lanes: list[Lane], g: Geometry,
            top: float = HEADER_H + 10) -> list[_Row]:
    index = {ln.name: i for i, ln in enumerate(lanes)}
    inner = g.lane_w - 16 - 2 * PAD
    banner_chars = _chars(g.width - GUTTER - 24, TEXT_PX + 1)
    rows = []
    y = top
    for n, st in enumerate(steps, 1):
        label = wrap(st.where, _chars(inner, LABEL_PX))
        text = wrap(_statement(st), _chars(inner, TEXT_PX), indent=1)
        changes = _change_lines(st, _chars(g.changes_w - 24, CHANGE_PX))
        banner = wrap(st.violation, banner_chars) if st.violation else []
        row = _Row(st, n, index.get(st.thread, 0), label, text, changes, banner)
        row.box_h = 2 * PAD + len(label) * LABEL_LH + len(text) * TEXT_LH
        changes_h = 2 * PAD + len(changes) * CHANGE_LH if changes else 0
        row.y = y
        row.h = max(row.box_h, changes_h)
        if banner:
            row.h += 10 + 2 * PAD + 16 + len(banner) * (TEXT_LH + 1)
        y += row.h + GAP
        rows.append(row)
    return rows


def _text(x: float, y: float, line: str, size: float, family: str = MONO,
          cls: str = "", weight: str = "", fill: str = "") -> str:
    attrs = [f'x="{x:.1f}"', f'y="{y:.1f}"', f'font-size="{size:g}"',
             f'font-family="{family}"']
    if cls:
        attrs.append(f'class="{cls}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if fill:
        attrs.append(f'fill="{fill}"')
    return f'<text {" ".join(attrs)} xml:space="preserve">{xml(line)}</text>'


# colours: also named in the report's legend (pagemap.report.style)
INK, MUTED, LINE = "#1f2933", "#5f6b7a", "#c5ccd6"
BOX_FILL, BOX_STROKE = "#eef4ff", "#4a6fa5"
IDLE_FILL, IDLE_STROKE = "#ffffff", "#b8c2cf"
FLUSH_FILL, FLUSH_STROKE = "#f3ecff", "#7b4bc4"
BAD_FILL, BAD_STROKE, BAD_BANNER = "#fff0f0", "#c62828", "#c62828"
LANE_TINT = ("#f8fafc", "#fdfdfe")


def _box(row: _Row, g: Geometry) -> list[str]:
    st = row.step
    x = g.lane_x(row.lane) + 8
    w = g.lane_w - 16
    flush = st.where == FLUSH_WHERE
    sends = bool(_flush_targets(st))
    if st.violation:
        fill, stroke, sw, dash = BAD_FILL, BAD_STROKE, 2.5, ""
    elif flush:
        fill, stroke, sw, dash = FLUSH_FILL, FLUSH_STROKE, 1.8, ' stroke-dasharray="5 3"'
    elif sends:
        fill, stroke, sw, dash = FLUSH_FILL, FLUSH_STROKE, 1.4, ""
    elif st.changed or st.notes:
        fill, stroke, sw, dash = BOX_FILL, BOX_STROKE, 1.2, ""
    else:
        fill, stroke, sw, dash = IDLE_FILL, IDLE_STROKE, 1.0, ""
    kind = ("violation" if st.violation else "flush" if flush else "shootdown" if sends
            else "change" if st.changed or st.notes else "idle")
    out = [f'<g class="step step-{kind}" data-step="{row.n}" data-thread="{xml(st.thread)}">',
           f'<title>{xml(f"#{row.n} {st.thread}: {st.step}")}</title>',
           (f'<rect x="{x:.1f}" y="{row.y:.1f}" width="{w:.1f}" height="{row.box_h:.1f}" '
           f'rx="5" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"{dash}/>')]
    ty = row.y + PAD + LABEL_PX
    label_fill = BAD_STROKE if st.violation else FLUSH_STROKE if flush or sends else INK
    for line in row.label:
        out.append(_text(x + PAD, ty, line, LABEL_PX, weight="bold", fill=label_fill))
        ty += LABEL_LH
    ty += TEXT_LH - LABEL_LH
    for line in row.text:
        out.append(_text(x + PAD, ty, line, TEXT_PX, fill=MUTED if not flush else FLUSH_STROKE))
        ty += TEXT_LH
    out.append("</g>")
    return out


def _changes(row: _Row, g: Geometry) -> list[str]:
    if not row.changes:
        return []
    x = g.changes_x + 12
    box_right = g.lane_x(row.lane) + g.lane_w - 8
    mid = row.y + min(row.box_h, 2 * PAD + CHANGE_LH) / 2
    out = [(f'<line x1="{box_right:.1f}" y1="{mid:.1f}" x2="{x - 4:.1f}" y2="{mid:.1f}" '
           f'stroke="{LINE}" stroke-width="1" stroke-dasharray="2 3"/>')]
    h = 2 * PAD + len(row.changes) * CHANGE_LH
    out.append(f'<rect x="{x - 4:.1f}" y="{row.y:.1f}" width="{g.changes_w - 16:.1f}" '
               f'height="{h:.1f}" rx="4" fill="#ffffff" stroke="{LINE}"/>')
    ty = row.y + PAD + CHANGE_PX
    for kind, line in row.changes:
        if kind == "name" and ": " in line:
            name, rest = line.split(": ", 1)
            out.append(f'<text x="{x + 2:.1f}" y="{ty:.1f}" font-size="{CHANGE_PX:g}" '
                       f'font-family="{MONO}" fill="{INK}" xml:space="preserve">'
                       f'<tspan font-weight="bold">{xml(name)}:</tspan> {xml(rest)}</text>')
        else:
            style = "italic" if kind == "note" else "normal"
            out.append(f'<text x="{x + 2:.1f}" y="{ty:.1f}" font-size="{CHANGE_PX:g}" '
                       f'font-family="{MONO}" font-style="{style}" fill="{INK}" '
                       f'xml:space="preserve">{xml(line)}</text>')
        ty += CHANGE_LH
    return out


def _flush_arrows(row: _Row, lanes: list[Lane], g: Geometry, marker: str) -> list[str]:
    out = []
    index = {ln.name: i for i, ln in enumerate(lanes)}
    y = row.y + row.box_h - 8
    for target in _flush_targets(row.step):
        t = index.get(target)
        if t is None or t == row.lane:
            continue
        left = t < row.lane
        x1 = g.lane_x(row.lane) + (8 if left else g.lane_w - 8)
        x2 = g.lane_x(t) + g.lane_w / 2
        out.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" '
                   f'stroke="{FLUSH_STROKE}" stroke-width="1.4" stroke-dasharray="5 3" '
                   f'marker-end="url(#{marker})"/>')
        lx = min(x1, x2) + abs(x2 - x1) / 2
        out.append(_text(lx - 40, y - 4, "flush queued", 10, SANS, fill=FLUSH_STROKE))
    return out


def _banner(row: _Row, g: Geometry) -> list[str]:
    if not row.banner:
        return []
    st = row.step
    inv, _, msg = (st.violation or "").partition(": ")
    top = row.y + row.box_h + 10
    h = 2 * PAD + 16 + len(row.banner) * (TEXT_LH + 1)
    w = g.width - GUTTER - 8
    out = [f'<g class="violation-banner" data-invariant="{xml(inv)}">',
           (f'<rect x="{GUTTER:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" '
           f'fill="{BAD_BANNER}"/>'),
           _text(GUTTER + 12, top + PAD + 12, f"VIOLATED INVARIANT: {inv}", 13, SANS,
                 weight="bold", fill="#ffffff"),
           _text(g.width - 14, top + PAD + 12, f"at step {row.n}: {st.thread} in {st.where}",
                 11, SANS, fill="#ffe0e0").replace("<text ", '<text text-anchor="end" ', 1)]
    ty = top + PAD + 16 + TEXT_LH
    for line in wrap(msg or inv, _chars(w - 24, TEXT_PX + 1)):
        out.append(_text(GUTTER + 12, ty, line, TEXT_PX + 1, fill="#ffffff"))
        ty += TEXT_LH + 1
    out.append("</g>")
    return out


def lanes_of(steps: Sequence[TraceStep], lanes: Sequence[Lane] | None) -> list[Lane]:
    """The given lanes, plus any thread of the trace they miss (in trace order)."""
    out = list(lanes or [])
    known = {ln.name for ln in out}
    for st in steps:
        if st.thread not in known:
            out.append(Lane(st.thread))
            known.add(st.thread)
    return out or [Lane("?")]


def _initial_lines(initial: Sequence[str], g: Geometry) -> list[str]:
    chars = _chars(g.width - GUTTER - 32, TEXT_PX)
    return [ln for item in initial for ln in wrap(item, chars, indent=2)]


def _initial_block(lines: list[str], g: Geometry) -> tuple[list[str], float]:
    """The starting state, a grey box across the lanes under their headers."""
    if not lines:
        return [], 0.0
    top = HEADER_H + 6
    h = 2 * PAD + 16 + len(lines) * TEXT_LH
    w = g.width - GUTTER - 8
    out = ['<g class="initial-state">',
           (f'<rect x="{GUTTER:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" '
            f'fill="#f4f5f7" stroke="{LINE}"/>'),
           _text(GUTTER + 12, top + PAD + 12, "initial state (before step 1)", 12, SANS,
                 weight="bold", fill=INK)]
    ty = top + PAD + 16 + TEXT_LH - 2
    for line in lines:
        out.append(_text(GUTTER + 12, ty, line, TEXT_PX, fill=INK))
        ty += TEXT_LH
    out.append("</g>")
    return out, h + 12


def render(steps: Sequence[TraceStep], lanes: Sequence[Lane] | None = None,
           ident: str = "trace", title: str = "", initial: Sequence[str] = ()) -> str:
    """One ``<svg>`` element: the swimlane of ``steps``, under a box with the
    ``initial`` state's lines when given.

    ``ident`` makes the ids inside unique when several diagrams share a page."""
    lane_list = lanes_of(steps, lanes)
    g = geometry(len(lane_list))
    init_svg, init_h = _initial_block(_initial_lines(initial, g), g)
    rows = _layout(steps, lane_list, g, HEADER_H + 10 + init_h)
    height = (rows[-1].y + rows[-1].h if rows else HEADER_H + 10 + init_h) + 14
    marker = f"{ident}-arrow"
    violated = next((st.violation for st in steps if st.violation), None)
    label = title or f"Trace of {len(steps)} steps"
    if violated:
        label += f"; violates {violated.partition(':')[0]}"
    out = [(f'<svg class="swimlane" id="{xml(ident)}" '
           f'width="{g.width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {g.width:.0f} {height:.0f}" role="img" aria-label="{xml(label)}">'),
           f"<title>{xml(label)}</title>",
           (f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" '
           f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
           f'<path d="M0,0 L10,5 L0,10 z" fill="{FLUSH_STROKE}"/></marker></defs>'),
           f'<rect x="0" y="0" width="{g.width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    # lanes: tinted columns, a header with the thread, a life line
    for i, ln in enumerate(lane_list):
        x = g.lane_x(i)
        out.append(f'<rect x="{x:.1f}" y="0" width="{g.lane_w:.1f}" height="{height:.0f}" '
                   f'fill="{LANE_TINT[i % 2]}" stroke="#e3e8ef"/>')
        cx = x + g.lane_w / 2
        out.append(f'<line x1="{cx:.1f}" y1="{HEADER_H:.0f}" x2="{cx:.1f}" '
                   f'y2="{height - 6:.0f}" stroke="{LINE}" stroke-dasharray="3 4"/>')
        out.append(f'<rect x="{x + 8:.1f}" y="6" width="{g.lane_w - 16:.1f}" '
                   f'height="{HEADER_H - 12:.0f}" rx="6" fill="{INK}"/>')
        out.append(_text(x + 16, 25, f"thread {ln.name}", 14, SANS, weight="bold",
                         fill="#ffffff"))
        about = wrap(ln.about, _chars(g.lane_w - 32, 10.5))[0] if ln.about else ""
        if ln.about and len(wrap(ln.about, _chars(g.lane_w - 32, 10.5))) > 1:
            about = about[: max(0, len(about) - 1)] + "…"
        if about:
            out.append(_text(x + 16, 41, about, 10.5, MONO, fill="#d8dee6"))
    out.append(_text(GUTTER + g.lanes * g.lane_w + 12, 25, "shared values changed", 13, SANS,
                     weight="bold", fill=INK))
    out.append(_text(GUTTER + g.lanes * g.lane_w + 12, 41, "name: before → after", 10.5, MONO,
                     fill=MUTED))
    out.extend(init_svg)
    for row in rows:
        out.append(_text(GUTTER - 6, row.y + PAD + LABEL_PX, f"{row.n}", 11, MONO,
                         fill=MUTED).replace("<text ", '<text text-anchor="end" ', 1))
        out.extend(_changes(row, g))
        out.extend(_box(row, g))
        out.extend(_flush_arrows(row, lane_list, g, marker))
        out.extend(_banner(row, g))
    out.append("</svg>")
    return "\n".join(out)


def document(steps: Sequence[TraceStep], lanes: Sequence[Lane] | None = None,
             title: str = "", initial: Sequence[str] = ()) -> str:
    """A standalone SVG file of the swimlane (`pagemap check --svg FILE`)."""
    svg = render(steps, lanes, "trace", title, initial)
    svg = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
