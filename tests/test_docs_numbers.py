"""Every number quoted in docs/results/ comes from a committed table of its study (issue 27).

A number of a study's page (a decimal, a percentage, or a count of 10 or more) must appear, rounded
as printed, among the values of the study's committed tables (``results/<study>/*.csv``) or of its
configs (``study/configs/<study>*.toml``, for the settings), or be marked as derived by a
parenthesis right after it that starts with "derived:" and gives the formula, or as a
constant of a source by one that starts with "from:" and names it. A percentage is a
table's share times 100, and so are the bounds of an interval printed after it (``88.6% [86.2,
91.0]``). Exempt, because they are no result of the study: years and arXiv numbers, the 95% of an
interval, timings (a number of seconds, minutes or hours), and numbers inside code spans and links.
"""

import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "default.md": "default",
    "1-question.md": "question",
    "2-two-layers.md": "two_layers",
    "3-lu2019.md": "lu2019",
    "4-arnekvist2020.md": "arnekvist2020",
    "5-sokar2023.md": "sokar2023",
    "6-remedies.md": "remedies",
    "7-dohare2024.md": "dohare2024+dohare2024_authors",
    "8-plasticity.md": "plasticity",
    "9-dohare2024-remedies.md": "dohare2024_remedies",
}
NUMBER = re.compile(
    r"(?<![\w.^/,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e[-+]?\d+)?)(%?)(?![\w,]*\d)(?!\.\d)"
)
DERIVED = re.compile(r"\((?:derived|from):\s[^()]*(?:\([^()]*\)[^()]*)*\)")
PERCENT_INTERVAL = re.compile(r"%\s*\[([\d.]+), ([\d.]+)\]")
EXEMPT = [
    re.compile(r"\b(?:19|20)\d\d\b"),  # years
    re.compile(r"arXiv \d+\.\d+"),
    re.compile(r"\b95% (?:\w+ )?interval"),  # the level of every interval
    re.compile(r"\d[\d.,]*\s*(?:s\b|seconds|minutes?|hours?|CPU-\w+)"),  # timings
]


INLINE_CODE = re.compile(r"`[^`\n]*`")


def readable_text(page: Path) -> str:
    """The page without code blocks, code spans, links and image targets."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def table_values(study: str) -> np.ndarray:
    """Every numeric value of the study's committed tables and of its configs; ``study`` may
    name several studies, ``"a+b"``, for a page that reports both."""
    if "+" in study:
        return np.unique(np.concatenate([table_values(part) for part in study.split("+")]))
    values = []
    for table in sorted((ROOT / "results" / study).glob("*.csv")):
        frame = pd.read_csv(table)
        for column in frame.columns:
            values.append(pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy(float))
    for config in sorted((ROOT / "study" / "configs").glob(f"{study}*.toml")):
        values.append(np.array(list(_numbers(tomllib.loads(config.read_text()))), dtype=float))
    return np.unique(np.abs(np.concatenate(values)))  # a sign is read as text: "-0.025" is 0.025


def _numbers(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield node


def quoted_numbers(text: str) -> list[tuple[str, float, int, bool]]:
    """``(as printed, value, rounding, is a percentage)`` of every number a page must trace;
    ``rounding`` is half the last printed digit (``0.0005`` for ``0.123``, ``5e-10`` for
    ``6.3e-09``)."""
    blank = [(m.start(), m.end()) for pattern in EXEMPT for m in pattern.finditer(text)]
    blank += [(m.start(), m.end()) for m in DERIVED.finditer(text)]
    derived = {_number_before(text, m.start()) for m in DERIVED.finditer(text)}
    percent_bounds = {m.start(g) for m in PERCENT_INTERVAL.finditer(text) for g in (1, 2)}
    found = []
    for match in NUMBER.finditer(text):
        if match.start() in derived or any(a <= match.start() < b for a, b in blank):
            continue
        printed, percent = match.group(1), match.group(2) == "%" or match.start() in percent_bounds
        value = float(printed.replace(",", ""))
        mantissa, _, exponent = printed.partition("e")
        decimals = len(mantissa.partition(".")[2])
        if decimals == 0 and not exponent and not percent and value < 10:
            continue  # small integers: widths, depths, layer numbers, list items
        rounding = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
        found.append((match.group(0), value, rounding, percent))
    return found


def _number_before(text: str, position: int) -> int:
    """Where the last number before ``position`` starts (-1 if none)."""
    starts = [m.start() for m in NUMBER.finditer(text, 0, position)]
    return starts[-1] if starts else -1


def untraced(text: str, values: np.ndarray) -> list[str]:
    """The numbers of ``text`` that no value of ``values`` gives when rounded as printed."""
    missing = []
    for printed, value, rounding, percent in quoted_numbers(text):
        candidates = values * 100 if percent else values
        if not np.any(np.abs(candidates - value) <= rounding * (1 + 1e-9)):
            missing.append(printed)
    return missing


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_number_of_a_study_page_is_in_its_tables(page):
    text = readable_text(ROOT / "docs" / "results" / page)
    missing = untraced(text, table_values(PAGES[page]))
    assert not missing, (
        f"docs/results/{page}: numbers in no committed table of results/{PAGES[page]}/ or its "
        f"configs (add them to a table, or mark them '(derived: formula)'): {missing}"
    )


def test_the_tracer_reads_rounding_percentages_and_derived_marks():
    values = np.array([0.34251, 0.8862, 0.862195, 0.909805, 685.0, 2000.0, 1.1528e-05])
    text = (
        "dead 685/2000 = 0.3425 [0.34, 0.3425]; 88.6% [86.2, 91.0] of units; 1.4 times "
        "(derived: 0.3425 / 0.25 in 2024) and 0.344 at width 4, 95% interval, 12 s, p 1.2e-05"
    )
    assert [q[0] for q in quoted_numbers(text)] == [
        "685",
        "0.3425",
        "0.34",
        "0.3425",
        "88.6%",
        "86.2",
        "91.0",
        "0.344",
        "1.2e-05",
    ]  # a denominator (/2000) is read with its count
    # 0.34251 rounds to 0.343, not 0.344; 1.1528e-05 to 1.2e-05
    assert untraced(text, values) == ["0.344"]


def test_every_number_of_the_readme_findings_is_in_its_studys_tables():
    """The README's findings table: each row's numbers from the tables of the study it links."""
    rows = [
        line for line in (ROOT / "README.md").read_text().splitlines() if "(docs/results/" in line
    ]
    rows = [row for row in rows if row.startswith("| ")]
    checked = 0
    for row in rows:
        page = re.search(r"\(docs/results/([\w.-]+\.md)\)", row).group(1)
        if page not in PAGES:
            continue  # the remedies row (issue 24)
        text = re.sub(r"\]\([^)]*\)", "]", INLINE_CODE.sub("", row))
        missing = untraced(text, table_values(PAGES[page]))
        assert not missing, f"README.md, the row of {page}: numbers in no table: {missing}"
        checked += 1
    assert checked == len(PAGES)
