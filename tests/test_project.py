"""The project's own promises: pinned dependencies that `make setup` uses,
docs a reader can follow without anything outside the repository, and the
published finding traces as the checker prints them today."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from pagemap.checker.findings import FINDINGS_MD, rewrite

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "spec").rglob("*.md"))]
#: Docstrings and comments are read beside the C as well: they cite the same.
SOURCES = [p for d in ("model", "proofs", "tools", "tests") for p in sorted((ROOT / d).rglob("*.py"))
           if p != Path(__file__).resolve()]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_name(name)] = version
    return pins


def test_every_dependency_is_pinned_and_installed_at_its_pin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = _pins()
    for req in wanted:
        assert _name(req) in pins, f"{req} has no pin in constraints.txt"
    for name, version in pins.items():
        assert metadata.version(name) == version, name
    assert "PIP_CONSTRAINT := $(CURDIR)/constraints.txt" in (ROOT / "Makefile").read_text()


def test_docs_cite_nothing_a_reader_cannot_see() -> None:
    for path in DOCS + SOURCES:
        text = path.read_text()
        for pattern in (r"\bDESIGN\b", r"\bissue \d", r"context §", r"\bshared/"):
            assert not re.search(pattern, text), f"{path.relative_to(ROOT)}: {pattern}"


def test_docs_say_where_the_source_is_and_show_the_new_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    for word in ("2cf3a271", "kern/src/pagemap.c", "--save-trace", "pagemap replay",
                 "--coverage", "replay_test", "--simulate"):
        assert word in readme, word
    assert "called `pm_remove_contig`" in readme.split("\n## ", 1)[0]  # said early
    fmt = (ROOT / "spec" / "scenarios-format.md").read_text()
    for word in ("[filesystem]", "[faults]", "enomem", "mode =", "base =", "mapped =", "\"scp\"",
                 "populate", '"mmap"', '"mprotect"', '"exit"', "Exit codes", "fixed-without-"):
        assert word in fmt, word


def test_published_finding_traces_are_current() -> None:
    text = FINDINGS_MD.read_text()
    assert rewrite(text) == text, "run `python -m pagemap.checker.findings --write`"
