"""The documentation's links resolve, and every docs page named in the repository exists.

1. Every relative link (and image) in README.md and docs/*.md points at an existing file, and its
   `#anchor`, if any, at a heading of the target page (GitHub's slugs).
2. Every `docs/<...>.md` path named in a tracked *.py, *.yaml, *.yml, *.toml, Dockerfile or *.md file
   exists.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target); the target stops at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*?\.md\b")
SCANNED_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".md"}


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text without markup, lower-cased, punctuation other than
    '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)
    text = text.strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(result)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def broken_links(page: Path) -> list[str]:
    problems = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            where = f"{shown(page)}:{number}: link '{target}'"
            if not resolved.exists():
                problems.append(f"{where}: {path_part} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: no heading with anchor #{anchor} in {shown(resolved)}")
    return problems


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    return [
        ROOT / name
        for name in listed
        if name and (Path(name).suffix in SCANNED_SUFFIXES or Path(name).name == "Dockerfile")
    ]


def missing_docs_paths(files: list[Path]) -> list[str]:
    problems = []
    for file in files:
        if not file.is_file():  # deleted in the work tree, not yet committed
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for path in DOCS_PATH.findall(line):
                if not (ROOT / path).is_file():
                    problems.append(f"{shown(file)}:{number}: names {path}, which does not exist")
    return problems


def test_github_slugs():
    assert github_slug("The extractor: `tap-salesforce-bulk`") == "the-extractor-tap-salesforce-bulk"
    assert github_slug("Declaring automation (no Python)") == "declaring-automation-no-python"
    assert github_slug("Meltano asset vs `meltano run` (`bench_meltano.py`)") == (
        "meltano-asset-vs-meltano-run-bench_meltanopy"
    )
    assert github_slug("AND / OR over dependencies") == "and--or-over-dependencies"


def test_every_relative_link_in_the_docs_resolves():
    problems = [problem for page in markdown_pages() for problem in broken_links(page)]
    assert not problems, "broken links in the docs:\n" + "\n".join(problems)


def test_every_docs_page_named_in_the_repository_exists():
    problems = missing_docs_paths(tracked_files())
    assert not problems, "docs pages named but missing:\n" + "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading (yes)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#a-code-heading-yes) [self](#page) [web](https://example.com)\n"
        "[gone](missing.md) [bad anchor](other.md#nope)\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "no heading with anchor #nope" in problems[1]

    code = tmp_path / "code.py"
    code.write_text('HINT = "see ' + "docs/" + 'no-such-page.md"\nOK = "docs/development.md"\n')
    missing = missing_docs_paths([code])
    assert len(missing) == 1 and "no-such-page.md" in missing[0]
