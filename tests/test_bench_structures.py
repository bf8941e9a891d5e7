"""``study bench --structures``: the operation and byte counts against hand counts, the
machine's peak microbenchmarks, and the table."""

import dataclasses
import json
import math

import numpy as np
import pytest

from study import bench_structures, machine_peak, step_cost
from study.bench_structures import WORKLOADS, bytes_per_step, operations_per_step
from study.cli import main
from tests.helpers import ROOT


def _structure(name: str, steps: int = 1000):
    return WORKLOADS[name].setting(steps).structure


def test_the_question_networks_operations_by_hand():
    """2 inputs, 1 relu unit, 1 logit; 256 samples, Adam, a check every 10 steps."""
    # forward per sample: z = w1 x1 + w2 x2 (2 FMAs, 4) + b (1); relu and relu' (2);
    # o = v h (1 FMA, 2) + c (1): 10
    forward = 4 + 1 + 2 + 2 + 1
    # output gradient: sigmoid(o) as -o, exp, +1, 1/. (4), - y (1), / n (1): 6
    output_grad = 6
    # backward: dv = sum g h (FMA, 2), dc = sum g (1), g v (FMA, 2), times relu' (1),
    # dw1, dw2 = sum g' x_i (2 FMAs, 4), db = sum g' (1): 11
    backward = 2 + 1 + 2 + 1 + 4 + 1
    adam = 14 * 5  # 5 parameters: w1, w2, b, v, c
    # the check, every 10 steps: forward (10), dead-unit test (1), loss (5), 256 samples
    check = 256 * (forward + 1 + 5) / 10
    assert (
        operations_per_step(_structure("question"))
        == 256 * (forward + output_grad + backward) + adam + check
    )
    # bytes: the unit's output and relu' and the output gradient per sample, written and read,
    # and Adam's 7 floats per parameter, float32
    assert bytes_per_step(_structure("question")) == 4 * (2 * 256 * 3 + 7 * 5)


def test_the_width4_depth2_networks_operations_by_hand():
    """2 inputs, two relu layers of 4, 1 logit; 37 parameters (12 + 20 + 5)."""
    # forward: layer 1 8 FMAs + 4 biases = 20; layer 2 16 FMAs + 4 = 36; output 4 FMAs + 1 = 9;
    # relu and relu' of 8 units: 16
    forward = 20 + 36 + 9 + 16
    # backward: output weights 4 FMAs + 1 = 9; back through them 4 FMAs = 8; times relu' 4;
    # layer 2's weights 16 FMAs + 4 = 36; back through them 16 FMAs = 32; times relu' 4;
    # layer 1's weights 8 FMAs + 4 = 20
    backward = 9 + 8 + 4 + 36 + 32 + 4 + 20
    check = 256 * (forward + 8 + 5) / 10
    expected = 256 * (forward + 6 + backward) + 14 * 37 + check
    structure = _structure("width4_depth2")
    assert operations_per_step(structure) == pytest.approx(expected, rel=1e-12)
    assert bytes_per_step(structure) == 4 * (2 * 256 * (2 * 8 + 1) + 7 * 37)
    # the check is charged per step: a check every step costs 10 times as much
    every_step = dataclasses.replace(structure, log_every=1)
    assert operations_per_step(every_step) - operations_per_step(structure) == pytest.approx(
        9 * check
    )


def test_the_scr_learners_operations_by_hand():
    """20 bits, 5 relu units, 1 output, mse, online SGD; a probe of 2,000 at every check."""
    structure = _structure("scr", 120_000)  # a check every 40,000 examples
    assert structure.log_every == 40_000 and _structure("scr", 1500).log_every == 1500
    forward = (2 * 100 + 5) + (2 * 5 + 1) + 2 * 5
    backward = (2 * 5 + 1) + 2 * 5 + 5 + (2 * 100 + 5)
    check = 2000 * (forward + 5 + 2) / 40_000
    expected = 1 * (forward + 2 + backward) + 2 * 111 + check
    assert operations_per_step(structure) == pytest.approx(expected, rel=1e-12)
    assert bytes_per_step(structure) == 4 * (2 * 1 * 11 + 3 * 111)


def test_the_counts_refuse_what_they_do_not_cover():
    norm = dataclasses.replace(_structure("question"), norm="batch")
    with pytest.raises(ValueError, match="no model.norm"):
        operations_per_step(norm)
    with pytest.raises(ValueError, match="optimizer adam or sgd"):
        bytes_per_step(dataclasses.replace(_structure("question"), optimizer="rmsprop"))


def test_the_peak_microbenchmarks_compute_what_they_count():
    """The elementwise chains give NumPy's values (the work is done), and every rate of the
    peak is positive and finite."""
    start = np.linspace(-1, 1, 64, dtype=np.float32)
    chains = [start.astype(np.float64) + k for k in range(machine_peak.CHAINS)]
    for _ in range(2 * machine_peak.DEPTH):
        chains = [0.999 * c + 0.001 for c in chains]
    got = np.asarray(machine_peak._chains_of_fma(start, 2))
    np.testing.assert_allclose(got, np.sum(chains, axis=0), rtol=1e-5)
    peak = machine_peak.measure_peak(quick=True)
    for rate in (peak.flops_per_s, peak.elementwise_flops_per_s, peak.matmul_flops_per_s):
        assert math.isfinite(rate) and rate > 0
    assert peak.flops_per_s == max(peak.elementwise_flops_per_s, peak.matmul_flops_per_s)
    assert math.isfinite(peak.bytes_per_s) and peak.bytes_per_s > 0


def test_xlas_count_of_a_step_is_per_initialization():
    """The step compiled for 256 and for 512 initializations: the same cost per initialization
    (to 1%), and at least the floor that the structure's count says must cross memory."""
    setting = WORKLOADS["question"].setting(100)
    small, large = step_cost.step_cost(setting, 256), step_cost.step_cost(setting, 512)
    assert small.flops == pytest.approx(large.flops, rel=0.01)
    assert small.bytes == pytest.approx(large.bytes, rel=0.01)
    assert large.bytes >= bytes_per_step(setting.structure)
    # the step's arithmetic (without the check's share, which XLA's step does not run)
    assert large.flops + large.transcendentals >= operations_per_step(
        dataclasses.replace(setting.structure, log_every=10**9)
    )


def test_the_structures_table_of_the_question_network():
    """One row at the quick size (the question's network: its programs are cheap to compile):
    the columns, and shares of the measured peak in (0, 1]."""
    result = bench_structures.structures_table(("question",), size="quick", progress=lambda _: 0)
    (row,) = result["rows"]
    assert row["structure"] == "question" and (row["n_inits"], row["steps"]) == (512, 50)
    assert row["flops_per_s"] == pytest.approx(row["steps_per_s"] * row["flops_per_step"])
    assert row["bytes_per_s"] == pytest.approx(row["steps_per_s"] * row["bytes_per_step"])
    assert 0 < row["share_of_peak_flops"] <= 1
    assert 0 < row["share_of_peak_bandwidth"] <= 1
    assert row["share_of_peak_flops"] <= row["share_of_elementwise_flops"]
    assert 0 < row["xla_share_of_peak_bandwidth"]
    assert result["load_average_before"] >= 0 and result["load_average_after"] >= 0
    printed = bench_structures.format_structures(result)
    assert "of peak" in printed and "load average" in printed and "question" in printed
    markdown = bench_structures.markdown_table(result)
    assert markdown.count("\n| 2-1-1 relu") == 1 and result["date"] in markdown


@pytest.mark.parametrize(
    "flags",
    [
        ["--full"],
        ["--structures", "--full", "--quick"],
        ["--structures", "--scr"],
        ["--structures", "--n-inits", "64"],
    ],
)
def test_bench_structures_refuses_bad_flags(flags, capsys):
    assert main(["bench", *flags]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow  # four structures' programs to compile, the SCR stream among them (~20 s)
def test_bench_structures_quick_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "structures.json"
    assert main(["bench", "--structures", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [row["structure"] for row in result["rows"]] == list(WORKLOADS)
    for row in result["rows"]:
        assert row["structure"] in printed
        assert 0 < row["share_of_peak_flops"] <= 1
        assert 0 < row["share_of_peak_bandwidth"] <= 1
        assert row["steps_per_s"] > 0 and row["compile_s"] > 0


def test_the_docs_show_the_committed_tables_numbers():
    """README.md and docs/performance.md show the committed run's table exactly as the bench
    prints it, so every number of it is traced to docs/data/bench_structures.json."""
    result = json.loads((ROOT / "docs" / "data" / "bench_structures.json").read_text())
    table = bench_structures.markdown_table(result)
    for page in ("README.md", "docs/performance.md"):
        assert table in (ROOT / page).read_text(), (
            f"{page}: paste the markdown table that `study bench --structures --json "
            "docs/data/bench_structures.json` prints"
        )
