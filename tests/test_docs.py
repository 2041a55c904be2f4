"""The English docs and their Chinese twins under docs/zh/ are kept in step.

Claims, for every `docs/*.md`:

- a `docs/zh/<same name>.md` exists, opening with a note that links the
  English original;
- both have the same headings levels in the same order (so the same number of
  headings of each level);
- both have the same fenced code blocks, byte for byte, in the same order;
- the zh page links where the English page links (to the zh twin of a
  docs/ page, else to the same file), and every relative link in either tree
  resolves to an existing file;
- both have the same inline code spans and the same numbers in prose (as
  multisets: Chinese word order differs), and tables of the same shape;
- the zh page is a translation: its prose contains Chinese, with no soft
  line break between two Chinese characters (it would render as a space).

Markdown is parsed with a few regular expressions, enough for these pages:
ATX headings, backtick/tilde fences, inline links outside code.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
ZH = DOCS / "zh"
ENGLISH_PAGES = sorted(p.name for p in DOCS.glob("*.md"))

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:\s|$)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:e-?\d+)?")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def split_markdown(text: str) -> tuple[list[str], list[str]]:
    """Split a page into (prose lines, fenced code blocks).

    A code block is returned verbatim, fence lines included, so that comparing
    blocks compares their info string, indentation and every byte inside. Its
    lines stay in the prose as empty strings, so prose[i] is line i + 1.
    """
    prose: list[str] = []
    blocks: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        fence = match.group(1)
        block = [lines[i]]
        i += 1
        # A fence closes with at least as many of the same character.
        closer = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        while i < len(lines):
            block.append(lines[i])
            i += 1
            if closer.match(block[-1]):
                break
        else:
            raise AssertionError(f"unclosed code fence {fence!r} starting with {block[0]!r}")
        blocks.append("".join(block))
        prose.extend("" for _ in block)
    return prose, blocks


def heading_levels(prose: list[str]) -> list[int]:
    """The level (1-6) of every ATX heading, in page order."""
    return [len(m.group(1)) for line in prose if (m := _HEADING.match(line))]


def relative_links(prose: list[str]) -> list[str]:
    """Link targets outside code, without URLs, mailto or same-page anchors."""
    targets = []
    for line in prose:
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            targets.append(target.split("#", 1)[0])
    return targets


def inline_code(prose: list[str]) -> Counter[str]:
    """Every inline code span (API names, file names, values), counted."""
    return Counter(m.group(2) for line in prose for m in _CODE_SPAN.finditer(line))


def numbers(prose: list[str]) -> Counter[str]:
    """Every number written in prose outside code spans (figures, versions), counted."""
    return Counter(n for line in prose for n in _NUMBER.findall(_CODE_SPAN.sub("", line)))


def table_shapes(prose: list[str]) -> list[int]:
    """The cell count of every table row, in page order."""
    return [len(re.split(r"(?<!\\)\|", line.strip())) - 2 for line in prose if line.lstrip().startswith("|")]


def read(path: Path) -> tuple[list[str], list[str]]:
    """Parse one page (UTF-8)."""
    assert path.is_file(), f"{path.relative_to(DOCS.parent)} does not exist"
    return split_markdown(path.read_text(encoding="utf-8"))


def resolve(page: Path, target: str) -> Path:
    """The file a relative link on `page` points at."""
    return (page.parent / target).resolve()


def zh_target(english_target: Path) -> Path:
    """Where the zh page should link for an English link: the zh twin of a
    docs/*.md page (every one has a twin, tested above), else the same file."""
    if english_target.parent == DOCS.resolve() and english_target.suffix == ".md":
        return (ZH / english_target.name).resolve()
    return english_target


def test_there_are_english_pages() -> None:
    assert "index.md" in ENGLISH_PAGES, f"no docs/index.md in {DOCS}"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_every_english_page_has_a_chinese_twin(name: str) -> None:
    assert (ZH / name).is_file(), f"docs/{name} has no translation docs/zh/{name}"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_chinese_page_opens_with_a_link_to_the_original(name: str) -> None:
    first = read(ZH / name)[0][0]
    assert first.startswith(">") and f"](../{name})" in first, (
        f"docs/zh/{name} line 1 should be a note linking ../{name}, got {first!r}"
    )


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_same_headings(name: str) -> None:
    en = heading_levels(read(DOCS / name)[0])
    zh = heading_levels(read(ZH / name)[0])
    assert zh == en, f"heading levels differ: docs/{name} {en} vs docs/zh/{name} {zh}"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_same_code_blocks(name: str) -> None:
    en = read(DOCS / name)[1]
    zh = read(ZH / name)[1]
    assert len(zh) == len(en), f"docs/{name} has {len(en)} code blocks, docs/zh/{name} {len(zh)}"
    for index, (a, b) in enumerate(zip(en, zh)):
        assert a == b, f"code block {index} of docs/zh/{name} differs from docs/{name}:\n{a}\n---\n{b}"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_same_inline_code_numbers_and_tables(name: str) -> None:
    en = read(DOCS / name)[0]
    zh = read(ZH / name)[0][1:]  # without the opening note
    assert inline_code(zh) == inline_code(en), (
        f"docs/zh/{name} inline code differs from docs/{name}: only in en "
        f"{sorted((inline_code(en) - inline_code(zh)).elements())}, only in zh "
        f"{sorted((inline_code(zh) - inline_code(en)).elements())}"
    )
    assert numbers(zh) == numbers(en), (
        f"docs/zh/{name} numbers differ from docs/{name}: only in en "
        f"{sorted((numbers(en) - numbers(zh)).elements())}, only in zh "
        f"{sorted((numbers(zh) - numbers(en)).elements())}"
    )
    assert table_shapes(zh) == table_shapes(en), f"docs/zh/{name} tables are shaped unlike docs/{name}'s"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_same_links(name: str) -> None:
    en_page, zh_page = DOCS / name, ZH / name
    expected = [zh_target(resolve(en_page, t)) for t in relative_links(read(en_page)[0])]
    # The opening note links the English original; the rest mirror the English page.
    actual = [resolve(zh_page, t) for t in relative_links(read(zh_page)[0])[1:]]
    assert actual == expected, f"docs/zh/{name} links {actual}, docs/{name} implies {expected}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")) + sorted(ZH.glob("*.md")),
                         ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(page: Path) -> None:
    broken = [t for t in relative_links(read(page)[0]) if not resolve(page, t).exists()]
    assert not broken, f"{page.relative_to(DOCS.parent)}: links to missing files {broken}"


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_chinese_page_is_translated(name: str) -> None:
    prose = [line for line in read(ZH / name)[0][1:] if line.strip()]
    chinese = [line for line in prose if _CJK.search(line)]
    # Tables of identifiers and figures may stay as they are; the prose may not.
    assert len(chinese) >= len(prose) / 3, (
        f"docs/zh/{name}: only {len(chinese)} of {len(prose)} prose lines contain Chinese"
    )


@pytest.mark.parametrize("name", ENGLISH_PAGES)
def test_no_line_break_between_chinese_characters(name: str) -> None:
    # Renderers turn a soft line break into a space, which would split a
    # Chinese word; zh lines break after punctuation or next to Latin text.
    prose = read(ZH / name)[0]
    bad = [
        f"line {i + 1}: {a.rstrip()!r}"
        for i, (a, b) in enumerate(zip(prose, prose[1:]))
        if a.rstrip() and _CJK.match(a.rstrip()[-1]) and b.strip() and _CJK.match(b.lstrip()[0])
    ]
    assert not bad, f"docs/zh/{name}: soft line breaks inside Chinese text: {bad}"


def test_no_orphan_chinese_pages() -> None:
    orphans = sorted(p.name for p in ZH.glob("*.md") if not (DOCS / p.name).is_file())
    assert not orphans, f"docs/zh/ pages without an English original: {orphans}"


def test_parser_sees_headings_blocks_and_links() -> None:
    text = (
        "# Title\n\nSee [a](a.md) and `[not](code.md)` or [web](https://x.org).\n"
        "```python\n# not a heading\n[x](inside.md)\n```\n"
        "## Sub\n~~~~\n```\n~~~~\n"
    )
    prose, blocks = split_markdown(text)
    assert heading_levels(prose) == [1, 2]
    assert blocks == ["```python\n# not a heading\n[x](inside.md)\n```\n", "~~~~\n```\n~~~~\n"]
    assert len(prose) == text.count("\n") and prose[5] == ""
    assert relative_links(prose) == ["a.md"]
