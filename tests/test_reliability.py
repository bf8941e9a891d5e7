"""Reliability: killed runs resume to the same files, disk errors, divergence, bit-identical
results, concurrent runs and stale locks."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import cli, results, runner
from study.config import load_study
from study.results import atomic
from tests.helpers import ROOT, TINY, to_toml

# The config of tests/test_runner.py, so compiled programs are shared in one session.
TINY_TOML = to_toml(TINY)


def _study_process(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "study", "run", str(config), "--out", str(out), "--quiet", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the tiny config."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "tiny.toml").write_text(TINY_TOML)
    runner.run_study(load_study(folder / "tiny.toml"), folder / "out", figures=False)
    return folder / "out"


def _same_results(folder: Path, reference: Path) -> None:
    for name in ("runs.parquet", "summary.csv"):
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
    leftovers = [p.name for p in folder.rglob("*") if results.TEMP_MARK in p.name]
    assert leftovers == [] and not (folder / results.PARTIAL).exists()


def _kill_and_resume(tmp_path, reference, delays, how=signal.SIGKILL):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    out = tmp_path / "out"
    for delay in delays:
        process = _study_process(config, out, "--no-figures")
        time.sleep(delay)
        process.send_signal(how)
        _, err = process.communicate()  # waits, and closes the pipes
        if how == signal.SIGINT:
            _assert_interrupted(process.returncode, err, out)
        # nothing under a result's name unless complete: runs.parquet only with a complete manifest
        if (out / "runs.parquet").exists():
            assert pd.read_parquet(out / "runs.parquet").shape[0] == 8 * 24
    # The rerun in this process, whose programs for the tiny config are compiled already (a
    # fresh process would import JAX and compile them again); the groups the killed process
    # finished still come from another process.
    assert cli.main(["run", str(config), "--out", str(out), "--quiet", "--no-figures"]) == 0
    _same_results(out, reference)


# The run below stops in its second group until the test's Ctrl-C: with the first group on
# disk, waiting for a poll instead let a second group loaded from the compile cache finish first
# (exit 0, in 3 of 3 fresh clones). Nothing here depends on timing.
_HELD_IN_THE_SECOND_GROUP = """\
import sys, time
from pathlib import Path
from study import cli, engine
ready, run_group, calls = Path(sys.argv.pop(1)), engine.run_group, []
def held(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        ready.write_text("first group saved")
        time.sleep(600)  # until the Ctrl-C
    return run_group(*args, **kwargs)
engine.run_group = held
cli.console()
"""


def _held_after_the_first_group(tmp_path, out: Path) -> subprocess.Popen:
    """Start the tiny config into ``out``; return the process once its first group is saved and
    it waits, in the second, for the test's signal."""
    config, ready = tmp_path / "tiny.toml", tmp_path / "ready"
    config.write_text(TINY_TOML)
    process = subprocess.Popen(
        [sys.executable, "-c", _HELD_IN_THE_SECOND_GROUP, str(ready), "run", str(config)]
        + ["--out", str(out), "--quiet", "--no-figures"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    assert len(list((out / results.PARTIAL).glob("group-*.parquet"))) == 1
    return process


# One kill once the first group is on disk, then the rerun; when slow, also a kill at a random
# moment before the rerun (the slow test below kills at five random moments).
@pytest.mark.parametrize("random_kills", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_killed_run_resumes_to_the_same_files(tmp_path, reference, random_kills):
    out = tmp_path / "out"
    process = _held_after_the_first_group(tmp_path, out)
    process.send_signal(signal.SIGKILL)
    process.communicate()  # waits, and closes the pipes
    assert (out / results.LOCK).exists()  # a killed run leaves its lock file behind...
    delays = [random.Random(0).uniform(1.0, 6.0) for _ in range(random_kills)]
    _kill_and_resume(tmp_path, reference, delays)


def _assert_interrupted(status: int, err: str, out: Path) -> None:
    """Ctrl-C: exit 130 with one line (or 0 if the run had already finished), lock released.

    A Ctrl-C that comes while Python itself starts (before it handles the signal: it dies of
    it, silently) or loads the command (one line of its own) finds nothing done.
    """
    if status == 0:
        return
    early = {-signal.SIGINT: "", 130: f"study: {cli.INTERRUPTED_EARLY}\n"}
    if status in early and err == early[status]:
        assert not (out / results.LOCK).exists()
        return
    assert status == 130 and err == (
        "study run: interrupted; run the same command again to resume\n"
    ), (status, err)
    assert not (out / results.LOCK).exists()


def test_ctrl_c_while_the_command_loads_exits_130_with_one_line(tmp_path):
    """A Ctrl-C in the imports of building the parser (before main's own handling) was a
    38-line traceback when it came 0.03-0.15 s after the start."""
    code = (
        "from study import cli\n"
        "def build_parser():\n"
        "    raise KeyboardInterrupt\n"
        "cli.build_parser = build_parser\n"
        "cli.console()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "run", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (130, f"study: {cli.INTERRUPTED_EARLY}\n")
    assert not (tmp_path / "out").exists()


def test_ctrl_c_exits_130_with_one_line_and_the_rerun_completes(tmp_path, reference):
    out = tmp_path / "out"
    process = _held_after_the_first_group(tmp_path, out)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    _assert_interrupted(process.returncode, err, out)
    assert len(list((out / results.PARTIAL).glob("group-*.parquet"))) == 1  # kept for the rerun
    _kill_and_resume(tmp_path, reference, [])


@pytest.mark.slow
def test_ctrl_c_at_random_moments_again_and_again(tmp_path, reference):
    """Before: a segmentation fault (exit -11) in 10 of 12 tries, a traceback in 1."""
    rng = random.Random(2)
    delays = [rng.uniform(0.2, 10.0) for _ in range(8)]
    _kill_and_resume(tmp_path, reference, delays, how=signal.SIGINT)


@pytest.mark.slow
def test_killed_at_random_moments_again_and_again(tmp_path, reference):
    rng = random.Random(1)
    _kill_and_resume(tmp_path, reference, [rng.uniform(0.5, 12.0) for _ in range(5)])


def test_a_stale_lock_of_a_killed_process_does_not_block(tmp_path, reference):
    folder = tmp_path / "out"
    folder.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from study import results\n"
            "with results.locked(sys.argv[1]):\n"
            "    print('locked', flush=True); time.sleep(600)",
            str(folder),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = tmp_path / "tiny.toml"
        config.write_text(TINY_TOML)
        argv = ["run", str(config), "--out", str(folder), "--quiet", "--no-figures"]
        assert cli.main(argv) == 3  # concurrent run refused
        lock = json.loads((folder / results.LOCK).read_text())
        assert lock["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()  # waits, and closes the pipe
    assert (folder / results.LOCK).exists()  # stale now
    assert cli.main(argv) == 0
    _same_results(folder, reference)


def test_concurrent_run_is_refused_with_a_one_line_message(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    with results.locked(tmp_path / "out" if (tmp_path / "out").mkdir() is None else None):
        code = cli.main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "in use by another study run" in err


def test_a_disk_error_is_one_line_exit_1_and_earlier_results_survive(
    tmp_path, reference, capsys, monkeypatch
):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    out = tmp_path / "out"
    argv = ["run", str(config), "--out", str(out), "--quiet", "--no-figures"]
    real_write = atomic.write_parquet
    writes = []

    def disk_full_at_second_write(path, frame):
        writes.append(Path(path).name)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, frame)

    monkeypatch.setattr(atomic, "write_parquet", disk_full_at_second_write)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert len(list((out / results.PARTIAL).glob("group-*.parquet"))) == 1  # first group kept
    assert not (out / "runs.parquet").exists()

    # a permission error on the final rename: the temporary file is removed, the groups kept
    real_replace = os.replace

    def no_permission_for_runs(source, target):
        if Path(target).name == "runs.parquet":
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(atomic, "write_parquet", real_write)
    monkeypatch.setattr(os, "replace", no_permission_for_runs)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err
    assert [p.name for p in out.iterdir() if results.TEMP_MARK in p.name] == []
    assert len(list((out / results.PARTIAL).glob("group-*.parquet"))) == 2

    monkeypatch.setattr(os, "replace", real_replace)
    assert cli.main(argv) == 0
    _same_results(out, reference)


def test_an_unusable_results_path_is_a_one_line_error_naming_out(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    code = cli.main(["run", str(config), "--out", str(tmp_path / "file" / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--out" in err and "Not a directory" in err


def test_divergence_is_reported_apart_and_never_leaks_nan_into_proportions(tmp_path):
    study = load_study(
        {
            "n_inits": 200,
            "data": {"offset": 2.0, "n_samples": 32},
            "model": {"width": 1},
            "train": {
                "optimizer": "sgd",
                "learning_rate": [0.01, 1e30],
                "steps": 12,
                "log_every": 4,
            },
        }
    )
    runner.run_study(study, tmp_path / "out", figures=False)
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    huge = runs["train.learning_rate"] == 1e30
    assert runs.loc[huge, "diverged"].any() and not runs.loc[~huge, "diverged"].any()
    assert not runs.loc[runs["diverged"], "dead_end"].any()
    assert not runs.loc[runs["diverged"], "revived"].any()
    for name in ("dead_init", "dead_end", "revived", "diverged"):
        assert runs[name].notna().all()
    for _, row in summary.iterrows():
        part = runs[runs["train.learning_rate"] == row["train.learning_rate"]]
        valid = part[~part["diverged"]]
        assert row["n_inits"] == len(part) and row["n_valid"] == len(valid)
        assert row["p_diverged"] == pytest.approx(part["diverged"].mean(), abs=1e-12)
        assert np.isfinite([row["p_diverged"], row["p_diverged_lo"], row["p_diverged_hi"]]).all()
        if len(valid):  # proportions over the runs that did not diverge, all finite
            assert row["p_dead_end"] == pytest.approx(valid["dead_end"].mean(), abs=1e-12)
            assert row["p_dead_init"] == pytest.approx(valid["dead_init"].mean(), abs=1e-12)
            for name in ("p_dead_init", "p_dead_end", "p_revived"):
                values = [row[name], row[f"{name}_lo"], row[f"{name}_hi"]]
                assert np.isfinite(values).all(), (name, values)


def test_runs_are_bit_identical_across_runs(tmp_path, reference):
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    study = load_study(tmp_path / "tiny.toml")
    runner.run_study(study, tmp_path / "again", figures=False)
    _same_results(tmp_path / "again", reference)


# 5: several chunks per group (default run); 96: one chunk of another shape than the
# reference's (slow: a compile per group).
@pytest.mark.parametrize("chunk_size", [5, pytest.param(96, marks=pytest.mark.slow)])
def test_runs_are_bit_identical_across_chunk_sizes(tmp_path, reference, chunk_size):
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    study = load_study(tmp_path / "tiny.toml")
    runner.run_study(study, tmp_path / f"c{chunk_size}", chunk_size=chunk_size, figures=False)
    _same_results(tmp_path / f"c{chunk_size}", reference)


@pytest.mark.slow
def test_runs_are_bit_identical_across_device_counts(tmp_path, reference):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = tmp_path / "two"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "study",
            "run",
            str(config),
            "--out",
            str(out),
            "--quiet",
            "--no-figures",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    manifest = results.read_manifest(out)
    assert len(manifest.devices) == 2
    _same_results(out, reference)
