"""A small Markdown-to-HTML converter, enough for the pages of spec/.

Not a model of any C function: the review document of `pagemap report`
renders spec/*.md with it, so the report needs no Markdown library.

Supported: ATX headings (with ids), paragraphs, bullet and numbered lists
(nested by indentation, lazy continuation lines), GitHub tables (alignment,
``\\|`` inside cells), fenced code blocks, block quotes, rules, and inline
code spans, links, ``**bold**``, ``*italic*`` / ``_italic_`` and backslash
escapes. Raw HTML is *not* passed through: every character of the source is
escaped, so a page cannot inject markup into the report.

Links between spec pages (``slot.md``, ``slot.md#layout``, ``#layout``) are
rewritten to anchors inside the one document; ids are ``spec-PAGE`` for a
page and ``spec-PAGE-SLUG`` for its headings (SLUG as GitHub makes it).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^( *)([-*+])( +)(.*)$")
_ORDERED = re.compile(r"^( *)(\d{1,9})([.)])( +)(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_LINK_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\.md(?:#([\w-]+))?$")


def esc(text: str) -> str:
    """Escape for HTML text and attribute values."""
    return html.escape(text, quote=True)


def page_id(page: str) -> str:
    """The anchor of a spec page: ``slot.md`` or ``slot`` -> ``spec-slot``."""
    return "spec-" + slugify(page.removesuffix(".md"))


def slugify(text: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@dataclass
class Context:
    """Where a page is rendered: its name, which pages exist, heading shift."""

    page: str = ""  # e.g. "slot" for spec/slot.md; "" outside spec pages
    pages: Collection[str] = ()  # pages present in the document (without .md)
    shift: int = 0  # added to heading levels (capped at 6)
    ids: set[str] = field(default_factory=set)  # ids already used in the document
    missing: list[str] = field(default_factory=list)  # link targets not in the document

    def unique(self, base: str) -> str:
        n, ident = 0, base
        while ident in self.ids:
            n += 1
            ident = f"{base}-{n}"
        self.ids.add(ident)
        return ident


# -- inline ------------------------------------------------------------------------

_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_ESCAPABLE = "\\`*_{}[]()#+-.!|<>~"


def _rewrite_link(target: str, ctx: Context) -> str | None:
    """An in-document anchor for a spec page link, None for a page not present."""
    if target.startswith("#"):
        return "#" + (f"{page_id(ctx.page)}-{target[1:]}" if ctx.page else target[1:])
    m = _LINK_TARGET.match(target)
    if m is None:
        return target
    page, frag = m.group(1), m.group(2)
    if page not in ctx.pages:
        ctx.missing.append(target)
        return None
    return "#" + page_id(page) + (f"-{frag}" if frag else "")


def _emphasis(text: str) -> str:
    """Bold and italic on already escaped text without code spans."""
    text = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<strong>\1</strong>", text, flags=re.DOTALL)
    text = re.sub(r"(?<![\w*])__(?=\S)(.+?)(?<=\S)__(?![\w*])", r"<strong>\1</strong>", text,
                  flags=re.DOTALL)
    text = re.sub(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", r"<em>\1</em>", text,
                  flags=re.DOTALL)
    # '_' only at word boundaries, so snake_case identifiers stay as they are
    text = re.sub(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])", r"<em>\1</em>", text,
                  flags=re.DOTALL)
    return text


def inline(text: str, ctx: Context | None = None) -> str:
    """Render one block's inline Markdown to HTML (all text escaped)."""
    ctx = ctx or Context()
    held: list[str] = []  # finished HTML fragments, replaced by placeholders

    def hold(fragment: str) -> str:
        held.append(fragment)
        return f"\x00{len(held) - 1}\x00"

    text = text.replace("\x00", "")
    text = _CODE.sub(lambda m: hold(f"<code>{esc(_strip_code(m.group(2)))}</code>"), text)
    text = re.sub(r"\\([" + re.escape(_ESCAPABLE) + r"])", lambda m: hold(esc(m.group(1))), text)

    def link(m: re.Match[str]) -> str:
        label = _emphasis(esc(m.group(1)))
        target = _rewrite_link(m.group(2).strip(), ctx)
        if target is None:
            return hold(f'<span class="missing-link" title="not in this document">{label}</span>')
        return hold(f'<a href="{esc(target)}">{label}</a>')

    # a link label may itself hold code spans (placeholders), so match them too
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, text)
    text = _emphasis(esc(text))
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))], text)
    return text


def _strip_code(code: str) -> str:
    code = code.replace("\n", " ")
    if code.startswith(" ") and code.endswith(" ") and code.strip():
        code = code[1:-1]
    return code


# -- blocks ------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _marker(line: str) -> tuple[int, bool, int, str] | None:
    """(indent, ordered, content indent, first line) of a list item line."""
    m = _BULLET.match(line)
    if m and not _RULE.match(line):
        ind, spaces = len(m.group(1)), len(m.group(3))
        return ind, False, ind + 1 + min(spaces, 4), m.group(4)
    m = _ORDERED.match(line)
    if m:
        ind, spaces = len(m.group(1)), len(m.group(4))
        return ind, True, ind + len(m.group(2)) + 1 + min(spaces, 4), m.group(5)
    return None


def _starts_block(line: str) -> bool:
    """Does this line interrupt a paragraph?"""
    s = line.lstrip(" ")
    return bool(
        _HEADING.match(s) or _FENCE.match(line) or _RULE.match(line) or s.startswith(">")
        or _marker(line) is not None
    )


def _split_row(line: str) -> list[str]:
    """Cells of a table row, splitting on unescaped '|' (then '\\|' becomes '|')."""
    s = line.strip()
    s = s.removeprefix("|")
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = re.split(r"(?<!\\)\|", s)
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(lines: list[str], ctx: Context) -> str:
    head = _split_row(lines[0])
    aligns = []
    for spec in _split_row(lines[1]):
        left, right = spec.startswith(":"), spec.endswith(":")
        aligns.append("center" if left and right else "right" if right else "left" if left
                      else "")

    def cell(tag: str, text: str, i: int) -> str:
        a = aligns[i] if i < len(aligns) else ""
        style = f' style="text-align:{a}"' if a else ""
        return f"<{tag}{style}>{inline(text, ctx)}</{tag}>"

    out = ['<div class="table-wrap"><table>', "<thead><tr>"]
    out += [cell("th", h, i) for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for line in lines[2:]:
        cells = _split_row(line)
        cells = (cells + [""] * len(head))[: len(head)]
        out.append("<tr>" + "".join(cell("td", c, i) for i, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Blocks:
    """A block parser over a list of lines (already dedented for list items)."""

    def __init__(self, lines: list[str], ctx: Context) -> None:
        self.lines = lines
        self.ctx = ctx
        self.i = 0
        self.out: list[str] = []

    def run(self) -> str:
        handlers: list[Callable[[str], bool]] = [
            self._blank, self._fence, self._heading, self._rule, self._quote, self._list,
            self._table_block,
        ]
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if not any(h(line) for h in handlers):
                self._paragraph()
        return "\n".join(self.out)

    def _blank(self, line: str) -> bool:
        if line.strip():
            return False
        self.i += 1
        return True

    def _fence(self, line: str) -> bool:
        m = _FENCE.match(line)
        if m is None:
            return False
        ind, fence, lang = len(m.group(1)), m.group(2), m.group(3)
        body: list[str] = []
        self.i += 1
        while self.i < len(self.lines):
            cur = self.lines[self.i]
            self.i += 1
            if cur.strip().startswith(fence[0] * len(fence)) and not cur.strip().strip(fence[0]):
                break
            body.append(cur[min(ind, _indent(cur)):])
        cls = f' class="language-{esc(lang)}"' if lang else ""
        self.out.append(f"<pre><code{cls}>{esc(chr(10).join(body))}</code></pre>")
        return True

    def _heading(self, line: str) -> bool:
        m = _HEADING.match(line.lstrip(" ")) if _indent(line) < 4 else None
        if m is None:
            return False
        level = min(6, len(m.group(1)) + self.ctx.shift)
        text = m.group(2)
        plain = re.sub(r"[`*_\\]|\[([^\]]*)\]\([^)]*\)", r"\1", text)
        base = slugify(plain)
        ident = self.ctx.unique(f"{page_id(self.ctx.page)}-{base}" if self.ctx.page else base)
        self.out.append(f'<h{level} id="{esc(ident)}">{inline(text, self.ctx)}</h{level}>')
        self.i += 1
        return True

    def _rule(self, line: str) -> bool:
        if not _RULE.match(line):
            return False
        self.out.append("<hr>")
        self.i += 1
        return True

    def _quote(self, line: str) -> bool:
        if not line.lstrip(" ").startswith(">"):
            return False
        body = []
        while self.i < len(self.lines) and self.lines[self.i].strip():
            s = self.lines[self.i].lstrip(" ")
            body.append(s[1:].removeprefix(" ") if s.startswith(">") else s)
            self.i += 1
        self.out.append(f"<blockquote>{_Blocks(body, self.ctx).run()}</blockquote>")
        return True

    def _table_block(self, line: str) -> bool:
        nxt = self.lines[self.i + 1] if self.i + 1 < len(self.lines) else ""
        if "|" not in line or not _TABLE_SEP.match(nxt) or "-" not in nxt:
            return False
        rows = [line, nxt]
        self.i += 2
        while self.i < len(self.lines) and "|" in self.lines[self.i] \
                and self.lines[self.i].strip():
            rows.append(self.lines[self.i])
            self.i += 1
        self.out.append(_table(rows, self.ctx))
        return True

    def _paragraph(self) -> None:
        body = [self.lines[self.i].strip()]
        self.i += 1
        while self.i < len(self.lines):
            cur = self.lines[self.i]
            if not cur.strip() or _starts_block(cur):
                break
            nxt = self.lines[self.i + 1] if self.i + 1 < len(self.lines) else ""
            if "|" in cur and _TABLE_SEP.match(nxt) and "-" in nxt:
                break
            body.append(cur.strip())
            self.i += 1
        self.out.append(f"<p>{inline(chr(10).join(body), self.ctx)}</p>")

    def _list(self, line: str) -> bool:
        first = _marker(line)
        if first is None:
            return False
        base, ordered = first[0], first[1]
        items: list[tuple[list[str], bool]] = []  # (dedented lines, followed by a blank)
        loose = False
        start = int(_ORDERED.match(line).group(2)) if ordered else 1  # type: ignore[union-attr]
        while self.i < len(self.lines):
            mk = _marker(self.lines[self.i])
            if mk is None or mk[0] != base or mk[1] != ordered:
                break
            content = mk[2]
            body = [mk[3]]
            self.i += 1
            blank_seen = False
            while self.i < len(self.lines):
                cur = self.lines[self.i]
                if not cur.strip():
                    # a blank line: the item goes on only if indented text follows
                    j = self.i
                    while j < len(self.lines) and not self.lines[j].strip():
                        j += 1
                    if j < len(self.lines) and _indent(self.lines[j]) >= content:
                        body.extend([""] * (j - self.i))
                        self.i = j
                        blank_seen = True
                        continue
                    break
                if _indent(cur) >= content:
                    body.append(cur[content:])
                elif _marker(cur) is not None or _starts_block(cur):
                    break
                elif body and body[-1].strip():
                    body.append(cur.strip())  # lazy continuation of the paragraph
                else:
                    break
                self.i += 1
            # a blank line between items makes the list loose
            j = self.i
            while j < len(self.lines) and not self.lines[j].strip():
                j += 1
            nxt = _marker(self.lines[j]) if j < len(self.lines) else None
            between = j > self.i and nxt is not None and nxt[0] == base and nxt[1] == ordered
            loose = loose or blank_seen and _paragraphs(body) > 1 or between
            items.append((body, between))
            if between:
                self.i = j
        tag = "ol" if ordered else "ul"
        attr = f' start="{start}"' if ordered and start != 1 else ""
        parts = [f"<{tag}{attr}>"]
        for body, _ in items:
            inner = _Blocks(body, self.ctx).run()
            if not loose:
                inner = _unwrap_first_paragraph(inner)
            parts.append(f"<li>{inner}</li>")
        parts.append(f"</{tag}>")
        self.out.append("".join(parts))
        return True


def _paragraphs(body: list[str]) -> int:
    """How many blank-separated chunks an item has (a sub-list counts as one)."""
    chunks, prev_blank = 0, True
    for line in body:
        if line.strip() and prev_blank:
            chunks += 1
        prev_blank = not line.strip()
    return chunks


def _unwrap_first_paragraph(inner: str) -> str:
    """A tight item's text is not wrapped in <p> (as in CommonMark)."""
    if inner.startswith("<p>"):
        end = inner.find("</p>")
        return inner[3:end] + inner[end + 4:]
    return inner


def render(text: str, ctx: Context | None = None) -> str:
    """Markdown source -> HTML fragment."""
    lines = text.expandtabs(4).splitlines()
    return _Blocks(lines, ctx or Context()).run()
