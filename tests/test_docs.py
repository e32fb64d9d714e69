"""The README and docs/*.md: every relative link and image points at a file
that exists (and, for an anchor into a .md page, at one of its headings), the
README stays short (under 250 lines) with the two quick-start commands, and
every docs page is reachable from it.

    python -m pytest tests/test_docs.py -q
"""

from __future__ import annotations

import glob
import os
import re
from urllib.parse import unquote

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
PAGES = [README, *DOCS]
MAX_README_LINES = 250

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; text holds no ']'
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def links(text: str) -> list[str]:
    """Every link and image target of a markdown text, outside code."""
    targets = []
    for line in _prose_lines(text):
        targets += _LINK.findall(_CODE_SPAN.sub("code", line))
    return targets


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a markdown text's headings (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: str) -> list[str]:
    """What is wrong with each relative link of one markdown file."""
    with open(path) as f:
        text = f.read()
    problems = []
    for target in links(text):
        if _EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), unquote(file_part))) if file_part else path
        if not os.path.exists(dest):
            problems.append(f"{target}: {os.path.relpath(dest, REPO)} does not exist")
            continue
        if anchor and dest.endswith(".md"):
            with open(dest) as f:
                if anchor not in anchors(f.read()):
                    problems.append(f"{target}: no heading with anchor #{anchor} in {os.path.relpath(dest, REPO)}")
    return problems


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- the checker itself


def test_the_checker_finds_links_and_reports_broken_ones(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Two words, `code`!\n\n## Two words, `code`!\n")
    (tmp_path / "pic.png").write_bytes(b"")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n\n"
        "[ok](docs/page.md) ![pic (alt)](pic.png) [anchor](docs/page.md#two-words-code)\n"
        "[repeat](docs/page.md#two-words-code-1) [self](#top) [web](https://example.com/x)\n"
        "[missing](docs/nope.md) [bad anchor](docs/page.md#nope) [bad self](#nowhere)\n"
        "`[in code](not/a/link.md)`\n"
        "```\n[in a block](not/a/link.md)\n# not a heading\n```\n"
    )
    assert len(links(readme.read_text())) == 9
    assert slug("Two words, `code`!") == "two-words-code"
    assert slug("Press -> notes") == "press---notes"
    assert "not-a-heading" not in anchors(readme.read_text())
    problems = broken_links(str(readme))
    assert len(problems) == 3, problems
    assert any(p.startswith("docs/nope.md:") for p in problems)
    assert any(p.startswith("docs/page.md#nope:") for p in problems)
    assert any(p.startswith("#nowhere:") for p in problems)


# ---------------------------------------------------------------- the real pages


def test_docs_pages_exist():
    assert len(DOCS) >= 6, [os.path.relpath(p, REPO) for p in DOCS]


def test_readme_has_links():
    assert len(links(_read(README))) >= 10


@pytest.mark.parametrize("path", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_readme_is_short():
    n = len(_read(README).rstrip("\n").split("\n"))
    assert n < MAX_README_LINES, f"README.md has {n} lines; move detail into docs/"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set()
    for target in links(_read(README)):
        file_part = target.partition("#")[0]
        if file_part and not _EXTERNAL.match(target):
            linked.add(os.path.normpath(os.path.join(REPO, unquote(file_part))))
    unlinked = [os.path.relpath(p, REPO) for p in DOCS if os.path.normpath(p) not in linked]
    assert not unlinked, f"not linked from README.md: {unlinked}"


def test_quick_start_is_the_two_commands():
    text = _read(README)
    section = text.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().split("\n")]
    assert commands == ["bash scripts/main.sh", "bash scripts/test.sh"]
