"""Everything the docs point a user to is inside this repository.

(a) Every relative link in a Markdown file of the repository (README.md, docs/*.md, the kind and
driver READMEs, ...) resolves to a file or folder inside the repository, and a ``#anchor`` names a
heading of the target (GitHub's slugs) or an explicit ``id``/``name`` anchor.
(b) No text file points outside the repository at the old reference notes (the strings are
assembled below so this file does not match itself).
(c) docs/standards.md is what ``python -m kota.standards.markdown`` generates from the YAML.

The files are those git knows (tracked, or new and not ignored), so build output and the venv
are left out; the tests are skipped outside a git checkout.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from kota_testing import REPO as REPO_ROOT

ROOT = REPO_ROOT

# Old pointers at a folder beside the repository, which users do not have.
FORBIDDEN = ("../" + "shared", "shared" + "/reference", "standards.md" + " §")


@cache
def _repo_files() -> tuple[str, ...]:
    try:
        run = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = {name for name in run.stdout.decode("utf-8").split("\0") if name}
    return tuple(sorted(name for name in names if (ROOT / name).is_file()))


def _markdown_files() -> list[str]:
    return [name for name in _repo_files() if name.endswith(".md")]


# -- Markdown parsing ------------------------------------------------------------------------
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text], one level of [] inside
                          r"\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")  # (target "title")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"""<[a-zA-Z][^>]*\s(?:id|name)\s*=\s*["']([^"']+)["']""")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        lines.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return lines


def _links(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in _prose_lines(text):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        found += [(number, target.strip("<>")) for target in targets]
    return found


def _heading_text(raw: str) -> str:
    """A heading's text as GitHub renders it: links, code and emphasis markers dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "")
    return re.sub(r"(\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w))", "", text)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger): lower case, punctuation and symbols
    dropped, each space a hyphen; letters, digits, marks, ``_`` and ``-`` are kept."""
    kept = []
    for char in _heading_text(heading).strip().lower():
        category = unicodedata.category(char)
        if char in " -_" or category[0] in "LNM":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8")
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    previous = ""
    for _number, line in _prose_lines(text):
        heading = None
        atx = _ATX.match(line)
        if atx:
            heading = atx.group(2)
        elif re.fullmatch(r" {0,3}(=+|-+)\s*", line) and previous.strip() and not (
                previous.lstrip().startswith(("-", "*", "|", ">"))):
            heading = previous  # a setext heading: the line above, underlined
        if heading is not None:
            slug = github_slug(heading)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        anchors.update(_HTML_ANCHOR.findall(line))
        previous = line
    return frozenset(anchors)


def _problem(source: str, target: str) -> str | None:
    """Why ``target``, linked from the file ``source``, does not resolve (None when it does)."""
    if _SCHEME.match(target) or target.startswith("//"):
        return None  # http:, https:, mailto: ... are not this test's business
    path_part, _hash, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    source_path = ROOT / source
    if path_part:
        base = ROOT if path_part.startswith("/") else source_path.parent
        resolved = (base / path_part.lstrip("/")).resolve()
    else:
        resolved = source_path.resolve()
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if resolved.is_relative_to(ROOT / ".git") or resolved.is_relative_to(ROOT / ".venv"):
        return "points into .git or .venv"
    if (anchor and resolved.is_file() and resolved.suffix == ".md"
            and unquote(anchor).lower() not in {a.lower() for a in _anchors(resolved)}):
        return f"no heading with the anchor #{anchor}"
    return None


# -- the tests -------------------------------------------------------------------------------
def test_the_slugs_follow_github() -> None:
    assert github_slug("What the marks mean") == "what-the-marks-mean"
    assert github_slug("ISPU (Permen LHK P.14/2020)") == "ispu-permen-lhk-p142020"
    assert github_slug("Water level: Siaga 4 → 1") == "water-level-siaga-4--1"
    assert github_slug("`kota ispu` and **`kota siaga`**") == "kota-ispu-and-kota-siaga"
    assert github_slug("[Links](other.md) in a heading") == "links-in-a-heading"
    assert github_slug("mount_height_cm & friends") == "mount_height_cm--friends"
    assert github_slug("Kualitas udara — Air quality ✅") == "kualitas-udara--air-quality-"


def test_the_link_finder_skips_code_and_reads_references() -> None:
    text = ("See [a](a.md) and `[b](b.md)`.\n```\n[c](c.md)\n```\n"
            "![img](img/x.png \"title\")\n[ref]: <d.md#part>\n")
    assert [target for _line, target in _links(text)] == ["a.md", "img/x.png", "d.md#part"]


def test_there_are_markdown_files_to_check() -> None:
    files = _markdown_files()
    assert "README.md" in files and "docs/standards.md" in files


def test_every_relative_link_resolves_inside_the_repository() -> None:
    broken = []
    for source in _markdown_files():
        text = (ROOT / source).read_text(encoding="utf-8")
        for line, target in _links(text):
            problem = _problem(source, target)
            if problem:
                broken.append(f"{source}:{line}: ({target}) {problem}")
    assert broken == [], "broken links:\n" + "\n".join(broken)


def test_no_file_points_at_reference_notes_outside_the_repository() -> None:
    offending = []
    for name in _repo_files():
        data = (ROOT / name).read_bytes()
        if b"\0" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(needle in line for needle in FORBIDDEN):
                offending.append(f"{name}:{number}: {line.strip()[:120]}")
    assert offending == [], ("point at docs/standards.md or name the source instead:\n"
                             + "\n".join(offending))


def test_docs_standards_md_is_up_to_date() -> None:
    from kota.standards.markdown import REGENERATE, standards_document

    doc = ROOT / "docs" / "standards.md"
    assert doc.is_file(), f"docs/standards.md is missing: run {REGENERATE}"
    assert doc.read_text(encoding="utf-8") == standards_document(), (
        f"docs/standards.md is out of date: run {REGENERATE}")
