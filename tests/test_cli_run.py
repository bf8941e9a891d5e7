"""`study run` from the command line: the default study's folder, output, exit statuses."""

import json

import pandas as pd

from study import cli


def test_run_without_config_writes_results_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the default study, collapsed to one small group so the test is quick
    argv = ["run", "--n-inits", "8", "--no-figures"]
    for override in (
        "model.activation='relu'",
        "model.depth=1",
        "model.width=1",
        "train.steps=8",
        "train.log_every=4",
    ):
        argv += ["--set", override]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "results/default"  # then what the run found, and what to run next
    assert lines[1].startswith("  highest P(dead at end): data.offset = ") and "95% CI" in lines[1]
    assert lines[2].startswith("  lowest P(dead at end):  ")
    assert "study report results/default" in out and "study compare results/default" in out
    assert "study run: group 1/1" in err  # log lines, not a bar: stderr is not a terminal
    folder = tmp_path / "results" / "default"
    runs = pd.read_parquet(folder / "runs.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["data.offset"] == [0.0, 0.5, 2.0]
    assert manifest["config"]["model.init_range"] == [0.05, 0.5, 2.0]
    assert len(runs) == 9 * 8
    # same command again: up to date; another config in the same folder: refused, exit 3
    assert cli.main([*argv, "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert cli.main([*argv, "--quiet", "--seed", "5"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed: 0 there, 5 now" in err
