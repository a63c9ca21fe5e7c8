"""The report's inline style sheet: system fonts only, nothing fetched.

Not a model of any C function. Laid out for a 1280 px wide window: a
1240 px content column; wide tables and diagrams scroll sideways in their
own box instead of widening the page.
"""

from __future__ import annotations

from pagemap.report import swimlane as sl

SANS = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", '
        "Arial, sans-serif")
MONO = ('ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", '
        '"Liberation Mono", monospace')

CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: {SANS}; font-size: 15px; line-height: 1.5;
  color: {sl.INK}; background: #f2f4f7; }}
main {{ max-width: 1240px; margin: 0 auto; padding: 24px 30px 60px; background: #fff;
  min-height: 100vh; }}
h1 {{ font-size: 28px; margin: 0 0 4px; }}
h2 {{ font-size: 22px; margin: 44px 0 12px; padding-bottom: 4px;
  border-bottom: 2px solid #d9dee5; }}
h3 {{ font-size: 18px; margin: 30px 0 8px; }}
h4 {{ font-size: 16px; margin: 22px 0 6px; }}
h5, h6 {{ font-size: 15px; margin: 18px 0 6px; }}
p, li {{ max-width: 80em; }}
a {{ color: #1f5fbf; }}
code, pre {{ font-family: {MONO}; font-size: 0.87em; }}
code {{ background: #f1f3f6; padding: 0 3px; border-radius: 3px; }}
pre {{ background: #f6f8fa; border: 1px solid #e1e5ea; border-radius: 5px; padding: 10px 12px;
  overflow-x: auto; line-height: 1.35; }}
pre code {{ background: none; padding: 0; font-size: 1em; }}
blockquote {{ margin: 0; padding: 2px 14px; border-left: 4px solid #d0d7de; color: #444; }}
.subtitle {{ color: {sl.MUTED}; margin: 0 0 14px; }}
.table-wrap {{ overflow-x: auto; margin: 10px 0 16px; }}
table {{ border-collapse: collapse; font-size: 13.5px; }}
th, td {{ border: 1px solid #d9dee5; padding: 3px 8px; vertical-align: top; text-align: left; }}
th {{ background: #eef1f5; }}
tbody tr:nth-child(even) td {{ background: #fafbfc; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.detail {{ font-size: 12.5px; color: #3d4752; overflow-wrap: anywhere; }}
td.name {{ font-family: {MONO}; font-size: 12.5px; white-space: nowrap; }}
table.wide {{ width: 100%; }}
table.wide td {{ width: 1%; white-space: nowrap; }}
table.wide td.name {{ white-space: normal; overflow-wrap: anywhere; width: 30%; }}
table.wide td.detail {{ white-space: normal; width: auto; }}
table.scen td.res-cell {{ min-width: 11em; }}
details.witness summary {{ cursor: pointer; color: {sl.MUTED}; }}
details.witness div {{ font-family: {MONO}; font-size: 11.5px; }}
details.all > summary {{ cursor: pointer; font-size: 16px; font-weight: 600; margin: 24px 0 6px; }}
tr.bad td {{ background: #ffe3e3 !important; }}
.res {{ display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px;
  font-weight: 600; white-space: nowrap; }}
.res-proved, .res-pass {{ background: #dcf5e3; color: #17603a; }}
.res-counterexample, .res-violation {{ background: #fff0cc; color: #7a5200; }}
.res-incomplete {{ background: #e8e8e8; color: #444; }}
.res-error {{ background: #c62828; color: #fff; }}
.mark {{ color: #c62828; font-weight: 700; }}
.verdict {{ font-size: 17px; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }}
.verdict.ok {{ background: #e3f6e8; border: 1px solid #9fd8b0; }}
.verdict.bad {{ background: #ffe8e8; border: 1px solid #eaa; }}
.note {{ background: #fff8e1; border: 1px solid #f0d98a; border-radius: 5px; padding: 8px 12px;
  margin: 10px 0; }}
.error {{ background: #ffe8e8; border: 1px solid #e3a0a0; border-radius: 5px;
  padding: 8px 12px; margin: 10px 0; }}
nav.toc {{ background: #f6f8fa; border: 1px solid #e1e5ea; border-radius: 6px;
  padding: 8px 18px; margin: 16px 0; columns: 2; column-gap: 40px; font-size: 14px; }}
nav.toc ul {{ margin: 4px 0; padding-left: 18px; }}
nav.toc > ul {{ padding-left: 0; list-style: none; }}
.finding {{ border-top: 1px solid #e1e5ea; margin-top: 34px; }}
.facts {{ font-size: 14px; }}
figure.swim {{ margin: 14px 0 8px; }}
figure.swim figcaption {{ font-size: 13.5px; color: {sl.MUTED}; margin: 4px 0; }}
.svg-wrap {{ overflow-x: auto; border: 1px solid #e1e5ea; border-radius: 6px; }}
.svg-wrap svg {{ display: block; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 8px 22px; font-size: 13px; margin: 8px 0 4px; }}
.legend span.sw {{ display: inline-block; width: 26px; height: 14px; vertical-align: -2px;
  margin-right: 6px; border-radius: 3px; }}
.sw-change {{ background: {sl.BOX_FILL}; border: 1.5px solid {sl.BOX_STROKE}; }}
.sw-idle {{ background: {sl.IDLE_FILL}; border: 1.5px solid {sl.IDLE_STROKE}; }}
.sw-shoot {{ background: {sl.FLUSH_FILL}; border: 1.5px solid {sl.FLUSH_STROKE}; }}
.sw-flush {{ background: {sl.FLUSH_FILL}; border: 1.5px dashed {sl.FLUSH_STROKE}; }}
.sw-bad {{ background: {sl.BAD_FILL}; border: 2.5px solid {sl.BAD_STROKE}; }}
section.spec-page {{ border-top: 3px solid #d9dee5; margin-top: 40px; }}
.spec-page > h3:first-child {{ font-size: 21px; }}
.missing-link {{ border-bottom: 1px dotted #999; }}
.small {{ font-size: 13px; color: {sl.MUTED}; }}
@media print {{ body {{ background: #fff; }} main {{ padding: 0; }} }}
"""
