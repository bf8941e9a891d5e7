"""study report: verdicts from the numbers, "not tested" when the grid lacks the settings."""

import re
import struct
import zlib
from html.parser import HTMLParser

import pandas as pd
import pytest
from scipy import stats

from study import analysis, cli, report, results
from tests.helpers import synthetic_runs, write_results_folder


def test_verdicts_follow_the_numbers():
    runs = synthetic_runs(
        0.3, 0.1, n=200, **{"model.activation": ["relu", "leaky_relu"], "data.offset": [0.0, 2.0]}
    )
    leaky = runs["model.activation"] == "leaky_relu"
    runs.loc[leaky, ["dead_init", "dead_end"]] = False
    centered = (runs["data.offset"] == 0.0) & ~leaky
    runs.loc[centered, "dead_init"] = False
    runs.loc[centered, "dead_end"] = False
    summary = analysis.summarize(runs)
    judged = {v.claim[:20]: v for v in report.verdicts(summary)}
    verdicts = [v.verdict for v in report.verdicts(summary)]
    # no revived column set: none revived; and nothing in these settings could revive them
    assert verdicts[0] == report.BY_DEFINITION
    assert verdicts[1] == "Supported"
    assert verdicts[2] == report.NOT_TESTED  # depth 1 only
    assert verdicts[3] == report.BY_DEFINITION
    assert verdicts[4] == report.NOT_TESTED
    assert len(judged) == 5

    runs.loc[leaky & (runs["init"] < 5), "dead_end"] = True
    runs.loc[(~leaky) & runs["dead_init"] & (runs["init"] < 50), "revived"] = True
    verdicts = [v.verdict for v in report.verdicts(analysis.summarize(runs))]
    assert verdicts[0] == "Contradicted" and verdicts[3] == "Contradicted"


def test_dead_forever_is_evidence_only_where_something_could_revive_a_dead_network():
    """Fixed data, no weight decay, no remedy: a dead network's hidden parameters get 0
    gradients and 0 updates, so "stays dead" holds by construction and its counts are no
    evidence; with weight decay (which shrinks them) the same counts support the claim."""
    runs = synthetic_runs(0.3, 0.1, n=200, **{"data.offset": [2.0]})
    plain = report.claim_dead_forever(analysis.summarize(runs))
    assert plain.verdict == report.BY_DEFINITION and "0/" in plain.measured
    decayed = runs.assign(**{"train.optimizer": "adamw", "train.weight_decay": 1e-4})
    verdict = report.claim_dead_forever(analysis.summarize(decayed))
    assert verdict.verdict == "Supported" and "0/" in verdict.evidence
    stream = runs.assign(**{"train.intervention": "redo"})
    assert report.claim_dead_forever(analysis.summarize(stream)).verdict == "Supported"


def test_a_run_with_variants_is_judged_on_its_reference_variant():
    """The claims read the reference variant's rows; another variant (here one whose dead
    networks all came back) is judged against it in the Variants section, not pooled in."""
    runs = synthetic_runs(0.3, 0.3, n=200, **{"data.offset": [0.0, 2.0]})
    revived = runs.assign(variant="revive", revived=runs["dead_init"], dead_end=False)
    pooled = pd.concat([runs.assign(variant="baseline"), revived], ignore_index=True)
    alone = [v.verdict for v in report.verdicts(analysis.summarize(runs))]
    summary = analysis.summarize(pooled)
    assert [v.verdict for v in report.verdicts(summary, "baseline")] == alone
    assert report.verdicts(summary, "revive")[0].verdict == "Contradicted"
    # study run's closing lines read the same rows as the report, whatever the reference's name
    renamed = analysis.summarize(pooled.replace({"variant": {"baseline": "control"}}))
    claims = report.headline(renamed, "control")[-1]
    assert claims == report.headline(analysis.summarize(runs))[-1]
    assert report.headline(renamed)[-1] != claims  # "baseline" names no rows there


def test_bias_claim():
    runs = synthetic_runs(0.3, 0.1, n=400, **{"model.bias_init": ["zeros", "uniform"]})
    runs.loc[runs["model.bias_init"] == "uniform", ["dead_init", "dead_end"]] = False
    verdict = report.claim_bias(analysis.summarize(runs))
    assert verdict.verdict == "Supported" and "p =" in verdict.evidence


def test_headline_ends_with_the_verdicts():
    lines = report.headline(summary_of_every_claim())
    assert lines[0].startswith("highest P(dead at end): ") and "95% CI" in lines[0]
    assert lines[-1].startswith("claims: dead forever: by definition; centering: ")
    assert lines[-1].endswith("; bias: not tested by this run")


def test_report_files(tmp_path):
    runs = synthetic_runs(0.3, 0.1, n=100, **{"data.offset": [0.0, 2.0]})
    write_results_folder(tmp_path, runs)
    assert cli.main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "## Claims" in md and "Not tested by this run" in md and "figures/" in md
    assert "data:image/png;base64," in html and "<table" in html
    assert 'src="figures' not in html  # self-contained


def test_standardized_data_count_as_centered():
    runs = synthetic_runs(0.3, 0.1, n=200, **{"data.standardize": [False, True]})
    runs.loc[runs["data.standardize"], ["dead_init", "dead_end"]] = False
    verdict = report.claim_centering(analysis.summarize(runs))
    assert verdict.verdict == "Supported" and "0/200" in verdict.evidence


def test_bias_claim_on_the_scale_of_a_random_bias():
    runs = synthetic_runs(
        0.3, 0.1, n=400, **{"model.bias_init": ["uniform"], "model.bias_scale": [0.0, 0.05, 0.5]}
    )
    verdict = report.claim_bias(analysis.summarize(runs))
    assert "model.bias_scale = 0.5" in verdict.evidence
    assert verdict.verdict.startswith("Not supported")  # the same law at every level


# --------------------------------------------------------------------------------------------
# The page: contents, figures placed with their claims, the table's script.
# --------------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A white RGB PNG of the given size (stdlib only), for a figure's bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixels = b"".join(b"\x00" + b"\xff" * 3 * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def summary_of_every_claim() -> pd.DataFrame:
    """relu and leaky_relu, offsets 0 and 2, depths 1 and 2: every claim but the bias tested."""
    axes = {"model.activation": ["relu", "leaky_relu"], "data.offset": [0.0, 2.0]}
    runs = [synthetic_runs(0.3, 0.1, n=100, depth=d, seed=d, **axes) for d in (1, 2)]
    return analysis.summarize(pd.concat(runs, ignore_index=True))


FIGURES = [  # sorted by name, as ResultsFolder.figure_files gives them
    report.FigureFile("heatmap__depth-1.png", png(300, 100)),
    report.FigureFile("p_dead_vs_init_range__offset-0.png", png(100, 100)),
    report.FigureFile("p_dead_vs_offset__init_range-0.05.png", png(100, 100)),
    report.FigureFile("p_dead_vs_offset__init_range-2.png", png(100, 100)),
    report.FigureFile("survival__depth-1__offset--1.png", png(300, 100)),
]


class Page(HTMLParser):
    """The ids of a page in document order, its in-page links, and its scripts."""

    def __init__(self, page: str):
        super().__init__()
        self.ids, self.links, self.scripts, self._in_script = [], [], [], False
        self.classes: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
            self.classes[attrs["id"]] = attrs.get("class", "")
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def render(summary: pd.DataFrame, figures=FIGURES) -> tuple[str, str]:
    manifest = results.Manifest(config={"name": "test", "seed": 0})
    judged = report.verdicts(summary)
    return (
        report.render_markdown("run", summary, manifest, judged, figures),
        report.render_html("run", summary, manifest, judged, figures),
    )


def test_contents_links_resolve_to_ids():
    _, page = render(summary_of_every_claim())
    parsed = Page(page)
    assert len(parsed.ids) == len(set(parsed.ids))  # ids are unique
    assert parsed.links and set(parsed.links) <= set(parsed.ids)
    sections = ["run", "claims", "summary", "figures"] + [f"claim-{i}" for i in range(1, 6)]
    assert set(sections) <= set(parsed.links)
    assert "figures-p_dead_vs_init_range" in parsed.links


def test_claim_figures_follow_their_claims():
    beside, rest = report.place_figures(report.verdicts(summary_of_every_claim()), FIGURES)
    names = [None if f is None else f.name for f in beside]
    assert names == [
        "survival__depth-1__offset--1.png",  # dead forever: survival
        "p_dead_vs_offset__init_range-0.05.png",  # centering
        "p_dead_vs_offset__init_range-2.png",  # second layer: the next offset figure
        "heatmap__depth-1.png",  # leaky
        None,  # bias: not tested
    ]
    assert [f.name for f in rest] == ["p_dead_vs_init_range__offset-0.png"]

    markdown, page = render(summary_of_every_claim())
    ids = Page(page).ids
    for i, figure in enumerate(beside[:4], 1):
        after = ids.index(f"claim-{i + 1}")
        assert ids.index(f"claim-{i}") < ids.index(figure.anchor) < after
        assert page.count(f'id="{figure.anchor}"') == 1  # not repeated under Figures
        claim = markdown.index(f"\n{i}. **")
        assert claim < markdown.index(f"](figures/{figure.name})") < markdown.index(f"\n{i + 1}. ")
    assert ids.index("figures") < ids.index(report.FigureFile(rest[0].name, b"").anchor)
    classes = Page(page).classes
    assert classes["claim-2"] == "claim with-figure"  # square figure: beside the text
    assert classes["claim-1"] == "claim"  # wide figure: under the text
    assert "survival: depth = 1, offset = -1" in page  # captions read the settings


def test_sections_in_the_same_order_in_both_files():
    markdown, page = render(summary_of_every_claim())
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["Run", "Claims", "Summary", "Figures"]
    ids = Page(page).ids
    assert [ids.index(s) for s in ("run", "claims", "summary", "figures")] == sorted(
        ids.index(s) for s in ("run", "claims", "summary", "figures")
    )
    no_figures = render(summary_of_every_claim(), figures=[])
    assert "## Figures" not in no_figures[0] and 'id="figures"' not in no_figures[1]


def test_summary_table_is_sortable_and_filterable_without_network():
    summary = summary_of_every_claim()
    _, page = render(summary)
    parsed = Page(page)
    assert {"summary-table", "summary-filter", "summary-count"} <= set(parsed.ids)
    assert page.count("<tr>") == len(summary) + 1  # a header row and a row per setting
    (script,) = parsed.scripts
    for piece in ("summary-table", "summary-filter", '"click"', '"input"', "dataset.ready"):
        assert piece in script
    assert "http" not in page and "<script src" not in page and "<link" not in page


def test_second_layer_claim_and_table_state_the_theory():
    """The claim puts the exact value or the bounds beside each estimate; so does the table."""
    import numpy as np

    centered = np.random.default_rng(3).uniform(-1, 1, (64, 2))
    runs = synthetic_runs(0.3, 0.2, n=200, depth=2, **{"model.width": [1, 4], "data.offset": [0.0]})
    summary = analysis.summarize(runs, inputs=lambda values: centered)
    evidence = report.claim_second_layer(summary).evidence
    assert "(theory: exact 0.500)" in evidence  # width 1: a chain on centered data
    assert f"(theory: between {2.0**-16:.3g} and 0.0625)" in evidence
    lower = f"{2.0**-16:.2g}"  # a bound this small keeps two significant digits, never 0.000
    assert list(report.summary_table(summary)["theory"]) == ["0.500 (!)", f"[{lower}, 0.062] (!)"]


@pytest.mark.parametrize("n", [1, 19, 2000, 12528, 10**6])
def test_a_wilson_upper_bound_is_never_printed_as_zero(n):
    """Issue 27: 0/12479 was printed "[0.000, 0.000]"; the upper bound of 0/n is z^2 / (n + z^2)
    (Wilson's interval at k = 0), shown to two significant digits below 0.01."""
    z2 = stats.norm.ppf(0.975) ** 2
    upper = z2 / (n + z2)
    text = report._share(0, n)
    printed = float(re.fullmatch(rf"0/{n} = 0\.000 \[95% CI 0\.000, (\S+)\]", text).group(1))
    assert printed > 0
    digits = 3 if upper >= 0.01 else 2  # decimals above 0.01, significant digits below
    assert printed == pytest.approx(
        upper, rel=0.5e-2 * 10 ** (3 - digits), abs=5e-4 * (digits == 3)
    )


def test_the_summary_table_prints_small_bounds_with_their_digits():
    runs = synthetic_runs(0.0, 0.0, n=12528, **{"data.offset": [0.0]})
    row = report.summary_table(analysis.summarize(runs))["dead at init"].iloc[0]
    assert row == f"0.000 [0.000, {stats.norm.ppf(0.975) ** 2 / (12528 + 3.84146):.2g}]"
    assert report.probability(0.0123) == "0.012" and report.probability(0.00123) == "0.0012"


def test_a_claim_true_by_definition_keeps_its_counts_apart_from_the_evidence(tmp_path):
    """Leaky ReLU cannot be dead (its derivative is never 0): the verdict says "by definition",
    the evidence gives the reason, and the run's counts are shown apart, labelled as no evidence."""
    runs = synthetic_runs(0.3, 0.1, n=100, **{"model.activation": ["relu", "leaky_relu"]})
    runs.loc[runs["model.activation"] == "leaky_relu", ["dead_init", "dead_end"]] = False
    leaky = report.claim_leaky(analysis.summarize(runs))
    assert leaky.verdict == report.BY_DEFINITION
    assert "/" not in leaky.evidence and "never 0" in leaky.evidence
    upper = stats.norm.ppf(0.975) ** 2 / (100 + stats.norm.ppf(0.975) ** 2)
    assert leaky.measured.startswith(
        f"leaky ReLU dead at init 0/100 = 0.000 [95% CI 0.000, {upper:.3f}]"
    )
    write_results_folder(tmp_path, runs)
    assert cli.main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    claim = next(line for line in md.splitlines() if "Leaky ReLU avoids" in line)
    assert "By definition." in claim and "0/" not in claim
    assert f"   {report.MEASURED_LABEL} leaky ReLU dead at init 0/" in md
    page = (tmp_path / "report.html").read_text()
    assert 'class="verdict definition"' in page and '<p class="measured">' in page
    assert report.headline(analysis.summarize(runs))[-1].count("leaky ReLU: by definition") == 1
