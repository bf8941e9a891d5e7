"""Every relative link in README.md and docs/ resolves, and every page of docs/ is reachable from
the README (issue 27: the README is the front door, the rest is a link away)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def markdown_pages() -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative_links(page: Path) -> list[str]:
    """A page's link targets inside the repository (code spans and blocks skipped)."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    targets = LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z]+:", t)]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as '-'."""
    text = FENCE.sub("", page.read_text())
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def resolve(page: Path, target: str) -> tuple[Path, str]:
    """The file a link points to and its anchor ('' for none)."""
    path, _, anchor = target.partition("#")
    return (page if not path else (page.parent / path).resolve()), anchor


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, anchor = resolve(page, target)
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in relative_links(page):
            path, _ = resolve(page, target)
            if path.suffix == ".md" and path.exists():
                todo.append(path)
    unreachable = [str(p.relative_to(ROOT)) for p in markdown_pages() if p not in seen]
    assert not unreachable, f"pages no link from README.md reaches: {unreachable}"


def test_the_readme_is_a_front_door():
    """At most 250 lines (issue 27): the studies and the references live in docs/."""
    n_lines = len((ROOT / "README.md").read_text().splitlines())
    assert n_lines <= 250, f"README.md has {n_lines} lines; at most 250 (move detail to docs/)"


def test_the_link_checker_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [bad](gone.md) `[code](gone.md)` [web](https://x.org)"
    )
    targets = relative_links(page)
    assert targets == ["there.md", "there.md#a-heading", "gone.md"]
    assert not resolve(page, "gone.md")[0].exists()
    assert "a-heading" in heading_anchors(tmp_path / "there.md")
