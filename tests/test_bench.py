"""``study bench``: the smoke test of the command and the script, and the check that the engine's
results are those of the unoptimized formulation (study.reference)."""

import json
import runpy
import sys

import numpy as np
import pytest

from study import bench, reference
from study.cli import main
from tests.helpers import ROOT


@pytest.mark.usefixtures("standard_dtype_promotion")  # the plain formulation uses optax's Adam
def test_engine_matches_the_plain_formulation():
    """Same dead/alive decision for every initialization, same losses to float tolerance."""
    setting = bench.workload_setting(steps=150)
    runs, _ = bench.time_engine(setting, n_inits=384)
    plain, _ = bench.time_plain(setting, n_inits=384)
    comparison = reference.compare_with_plain(runs, plain)
    assert comparison["dead_init_mismatches"] == 0
    assert comparison["dead_end_mismatches"] == 0
    assert comparison["max_accuracy_diff"] <= 1 / 256 + 1e-6
    assert comparison["max_final_loss_diff"] <= reference.LOSS_TOLERANCE
    assert reference.results_identical(comparison)
    # the comparison is not vacuous: both dead and living networks are in the sample
    assert 0 < runs["dead_end"].sum() < len(runs)
    np.testing.assert_array_equal(runs["dead_end"].to_numpy(), np.asarray(plain.dead_end))
    # and the comparison does see a difference when there is one
    flipped = runs.assign(dead_end=~runs["dead_end"])
    assert not reference.results_identical(reference.compare_with_plain(flipped, plain))


@pytest.mark.usefixtures("standard_dtype_promotion")  # the plain formulation uses optax's Adam
def test_bench_quick_prints_a_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--no-scaling", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "M init-steps/s" in printed and "alt 2: plain" in printed
    result = json.loads(out.read_text())
    assert result["engine"]["init_steps_per_s_best"] > 0
    assert result["comparison"]["identical"]
    assert result["peak_rss_mb"] > 0
    assert result["python_loop"]["timed_inits"] == bench.QUICK["loop_inits"]


def test_bench_rejects_a_bad_size():
    assert main(["bench", "--quick", "--n-inits", "-3"]) == 2


def test_benchmark_script_runs(monkeypatch, capsys):
    """The script as ``python scripts/benchmark.py ...`` runs it, in this process (whose
    programs for the quick workload are compiled already, and whose study is this checkout's)."""
    script = ROOT / "scripts" / "benchmark.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--quick", "--no-alternatives", "--no-scaling"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1])["engine"]["init_steps_per_s_best"] > 0


@pytest.mark.slow  # two stream compiles; the stream engine is tested by default elsewhere
def test_bench_scr_reports_the_stream_workload(tmp_path, capsys):
    """``study bench --scr`` at a small size: the engine and the one-run-at-a-time program both
    train the SCR learners, and the table names both rates and the speed-up."""
    out = tmp_path / "scr.json"
    assert (
        main(["bench", "--scr", "--scr-runs", "32", "--scr-steps", "1500", "--json", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "SCR workload" in printed and "speed-up" in printed
    result = json.loads(out.read_text())
    assert result["runs"] == 32 and result["steps"] == 1500
    assert result["engine_examples_per_s"] > 0 and result["one_at_a_time_examples_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["engine_examples_per_s"] / result["one_at_a_time_examples_per_s"]
    )
    assert main(["bench", "--scr", "--scr-steps", "0"]) == 2
