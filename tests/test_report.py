"""study report: verdicts from the numbers, "not tested" when the grid lacks the settings."""

from study import analysis, cli, report
from tests.helpers import write_results_folder
from tests.test_analysis import synthetic_runs


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
    assert verdicts[0] == "Supported"  # no revived column set: none revived
    assert verdicts[1] == "Supported"
    assert verdicts[2] == report.NOT_TESTED  # depth 1 only
    assert verdicts[3] == "Supported"
    assert verdicts[4] == report.NOT_TESTED
    assert len(judged) == 5

    runs.loc[leaky & (runs["init"] < 5), "dead_end"] = True
    runs.loc[(~leaky) & runs["dead_init"] & (runs["init"] < 50), "revived"] = True
    verdicts = [v.verdict for v in report.verdicts(analysis.summarize(runs))]
    assert verdicts[0] == "Contradicted" and verdicts[3] == "Contradicted"


def test_bias_claim():
    runs = synthetic_runs(0.3, 0.1, n=400, **{"model.bias_init": ["zeros", "uniform"]})
    runs.loc[runs["model.bias_init"] == "uniform", ["dead_init", "dead_end"]] = False
    verdict = report.claim_bias(analysis.summarize(runs))
    assert verdict.verdict == "Supported" and "p =" in verdict.evidence


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
