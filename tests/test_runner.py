"""The sweep runner: results folder contents, grid order, one compile per group, resume, lock."""

import errno
import fcntl
import functools
import json
import logging
import math

import jax
import numpy as np
import pandas as pd
import pytest

from study import analysis, data, engine, progress, results, runner
from study.config import SETTING_KEYS, load_study
from study.engine import plan_chunks
from study.errors import ConfigError, FolderError
from tests.helpers import tiny_config


def tiny_study(**changes):
    return load_study(tiny_config(**changes))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    runner.run_study(tiny_study(), folder, figures=False)
    return folder


def test_results_folder_holds_tidy_tables_and_a_manifest(finished):
    assert sorted(p.name for p in finished.iterdir()) == [
        ".study-results",
        "manifest.json",
        "runs.parquet",
        "summary.csv",
    ]
    runs = pd.read_parquet(finished / "runs.parquet")
    study = tiny_study()
    assert len(runs) == len(study.settings) * study.n_inits == 8 * 24
    for name in (*SETTING_KEYS, "init", "dead_init", "dead_end", "death_step", "revived"):
        assert name in runs.columns
    for name in ("dead_init", "dead_end", "revived", "diverged"):
        assert runs[name].dtype == bool and runs[name].notna().all()
    # grid order: settings as the config's product names them, then initializations
    expected = [s.as_dict for s in study.settings]
    firsts = runs.iloc[:: study.n_inits]
    for (_, row), values in zip(firsts.iterrows(), expected, strict=True):
        assert row["data.offset"] == values["data.offset"]
        assert row["model.width"] == values["model.width"]
        assert row["model.init_range"] == values["model.init_range"]
    assert (runs["init"].to_numpy() == np.tile(np.arange(24), 8)).all()
    # the same rows as the engine gives for each setting on its own
    alone = engine.simulate(study.settings[5], n_inits=24, seed=3)
    pd.testing.assert_frame_equal(
        runs.iloc[5 * 24 : 6 * 24].reset_index(drop=True)[alone.columns], alone, check_exact=True
    )

    summary = pd.read_csv(finished / "summary.csv")
    direct = analysis.summarize(runs, inputs=functools.partial(data.setting_inputs, seed=3))
    assert len(summary) == 8
    np.testing.assert_allclose(summary["p_dead_init"], direct["p_dead_init"], rtol=0, atol=1e-15)

    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["format_version"] == results.FORMAT_VERSION
    assert manifest["status"] == "complete"
    assert manifest["config"]["model.width"] == [1, 2]
    assert manifest["config"]["n_inits"] == 24
    assert manifest["versions"]["jax"] == jax.__version__
    assert manifest["backend"] == jax.default_backend()
    assert manifest["devices"] and manifest["process_count"] == 1
    groups = manifest["timings"]["groups"]
    assert len(groups) == 2
    for group in groups:
        assert group["compile_s"] >= 0 and group["run_s"] > 0 and group["init_steps_per_s"] > 0


def test_each_structural_group_compiles_exactly_once(tmp_path, caplog):
    """A fresh Engine sees only this run's compiles, whatever earlier tests compiled."""
    study = tiny_study(data__offset=[0.0, 0.5, 1.0, 2.0])
    programs = engine.Engine()
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        runner.run_study(study, tmp_path / "out", chunk_size=10, figures=False, engine=programs)
    compiles = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(train)")]
    # 8 settings x 24 inits per group in chunks of at most 10 pairs: many chunks, 2 compiles
    assert len(plan_chunks(8, 24, 10)) > 2
    assert len(compiles) == 2
    assert programs.compiles == 4  # a start and a training per group


def test_plan_chunks_covers_every_pair_once_with_little_padding():
    for n_settings, n_inits, size, devices in [
        (1, 2000, 1985, 1),
        (5, 7, 3, 2),
        (12, 100, 2000, 1),
    ]:
        chunks = plan_chunks(n_settings, n_inits, size, devices)
        shapes = {(len(c.setting_slots), len(c.init_indices)) for c in chunks}
        assert len(shapes) == 1  # one shape: one compile
        seen = [
            (s, i)
            for c in chunks
            for s in c.setting_slots[: c.n_settings]
            for i in c.init_indices[: c.n_inits]
        ]
        assert sorted(seen) == [(s, i) for s in range(n_settings) for i in range(n_inits)]
        ((settings, inits),) = shapes
        assert inits % devices == 0
        assert len(chunks) * settings * inits < 2 * n_settings * n_inits + devices * len(chunks)


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_finished_groups(tmp_path, finished, monkeypatch):
    folder = tmp_path / "tiny"
    calls = []
    real = engine.run_group
    stop = [True]

    def stop_at_second_group(structure, *args, **kwargs):
        calls.append(structure.width)
        if stop[0] and len(calls) == 2:
            raise Interrupt
        return real(structure, *args, **kwargs)

    monkeypatch.setattr(engine, "run_group", stop_at_second_group)
    with pytest.raises(Interrupt):
        runner.run_study(tiny_study(), folder, figures=False)
    assert not (folder / "runs.parquet").exists()
    assert len(list((folder / results.PARTIAL).glob("group-*.parquet"))) == 1
    assert not (folder / results.LOCK).exists()

    calls.clear()
    stop[0] = False
    runner.run_study(tiny_study(), folder, figures=False)
    assert calls == [2]  # only the unfinished group ran again
    for name in ("runs.parquet", "summary.csv"):
        assert (folder / name).read_bytes() == (finished / name).read_bytes()
    assert not (folder / results.PARTIAL).exists()
    manifest = results.read_manifest(folder)
    assert [g.get("resumed", False) for g in manifest.timings["groups"]] == [True, False]

    # a finished folder is up to date: nothing recomputed
    calls.clear()
    runner.run_study(tiny_study(), folder, figures=False)
    assert calls == []
    # --force recomputes
    runner.run_study(tiny_study(), folder, force=True, figures=False)
    assert calls == [1, 2]
    assert (folder / "runs.parquet").read_bytes() == (finished / "runs.parquet").read_bytes()


def test_a_finished_group_keeps_its_curves_and_an_old_format_one_is_recomputed(tmp_path):
    """A saved group comes back with its runs, curves and timing as written; one saved by the
    previous format (its curves as columns of arrays among the runs) reads as not there."""
    runs = pd.DataFrame({"model.depth": [1, 1], "init": [0, 1], "dead_end": [True, False]})
    curves = pd.DataFrame(
        {
            "model.depth": np.repeat([1, 1], 3),
            "init": np.repeat([0, 1], 3),
            "step": np.tile(np.array([0, 5, 10], np.int32), 2),
            "error": np.arange(6, dtype=np.float32),
        }
    )
    results.save_group(tmp_path, "curved", runs, curves, {"run_s": 1.0})
    results.save_group(tmp_path, "plain", runs, None, {"run_s": 2.0})
    assert len(list((tmp_path / results.PARTIAL).glob("group-*.parquet"))) == 2
    curved = results.load_group(tmp_path, "curved", 2, with_curves=True)
    pd.testing.assert_frame_equal(curved.runs, runs, check_exact=True)
    pd.testing.assert_frame_equal(curved.curves, curves, check_exact=True)
    assert curved.timing == {"run_s": 1.0}
    assert results.load_group(tmp_path, "plain", 2, with_curves=False).curves is None
    assert results.load_group(tmp_path, "curved", 3, with_curves=True) is None  # not its size
    # a group that records curves but whose curves file is gone (or the other way round)
    assert results.load_group(tmp_path, "plain", 2, with_curves=True) is None
    assert results.load_group(tmp_path, "curved", 2, with_curves=False) is None
    old = runs.assign(curve_step=[np.array([0, 5, 10])] * 2)
    results.save_group(tmp_path, "old", old, None, {})
    assert results.load_group(tmp_path, "old", 2, with_curves=False) is None


def test_a_different_config_is_refused_unless_forced(tmp_path, finished):
    folder = tmp_path / "tiny"
    runner.run_study(tiny_study(), folder, figures=False)
    # another seed: the same compiled programs (another n_inits would compile both groups again)
    other = tiny_study(seed=4)
    with pytest.raises(FolderError, match="different config.*seed: 3 there, 4 now"):
        runner.run_study(other, folder, figures=False)
    assert (folder / "runs.parquet").read_bytes() == (finished / "runs.parquet").read_bytes()
    runner.run_study(other, folder, force=True, figures=False)
    forced = pd.read_parquet(folder / "runs.parquet")
    assert len(forced) == 8 * 24 and not forced.equals(pd.read_parquet(finished / "runs.parquet"))


def test_a_folder_that_is_not_a_results_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--out .*not a results folder"):
        runner.run_study(tiny_study(), tmp_path, figures=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_results_of_another_format_version_give_a_clear_message(tmp_path, finished):
    folder = tmp_path / "old"
    folder.mkdir()
    manifest = json.loads((finished / "manifest.json").read_text())
    manifest["format_version"] = results.FORMAT_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "runs.parquet").write_bytes((finished / "runs.parquet").read_bytes())
    with pytest.raises(results.FormatError, match="format version 2; .* reads format 1"):
        results.read_runs(folder)
    with pytest.raises(FolderError, match="format version"):
        runner.run_study(tiny_study(), folder, figures=False)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(results.FormatError, match="unreadable"):
        results.read_manifest(folder)
    pd.testing.assert_frame_equal(
        results.read_runs(finished), pd.read_parquet(finished / "runs.parquet")
    )


def test_a_held_lock_refuses_a_second_run(tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    with results.locked(folder):
        with pytest.raises(FolderError, match=r"in use by another study run \(pid \d+ on "):
            runner.run_study(tiny_study(), folder, figures=False)
    assert not (folder / results.LOCK).exists()


def test_without_flock_a_dead_holder_is_stale_and_a_live_one_blocks(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    folder = tmp_path / "nfs"
    folder.mkdir()
    import socket

    host = socket.gethostname()
    (folder / results.LOCK).write_text(json.dumps({"pid": 1, "host": host}))  # init: alive
    with pytest.raises(FolderError, match="pid 1 on"):
        with results.locked(folder):
            pass
    dead = _dead_pid()
    (folder / results.LOCK).write_text(json.dumps({"pid": dead, "host": host}))
    with results.locked(folder) as path:
        assert json.loads(path.read_text())["pid"] != dead
    assert not (folder / results.LOCK).exists()


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_progress_prints_log_lines_when_not_a_terminal_and_nothing_when_quiet(capsys):
    lines = progress.make_progress(n_settings=4, n_inits=10, n_groups=2, quiet=False)
    assert isinstance(lines, progress._Lines)  # pytest's stderr is not a terminal
    lines.group(0, "width=1", 2, resumed=False)
    lines.advance(20, steps=100, compile_s=0.0)
    lines.group(1, "width=2", 2, resumed=True)
    lines.skip(20, steps=100)
    lines.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "study run: group 1/2 (width=1, 2 settings) compiling and running"
    assert "group 2/2 (width=2, 2 settings) already done, skipped" in err[-2]
    assert err[-1].startswith("study run: 40/40 inits (100%), settings 4/4, ")
    assert "init-steps/s, ETA 0s" in err[-1]

    quiet = progress.make_progress(4, 10, 2, quiet=True)
    quiet.group(0, "x", 2, resumed=False)
    quiet.advance(40, steps=100)
    assert capsys.readouterr().err == ""
    assert quiet.settings_done == 4 and quiet.init_steps == 4000


def test_progress_eta_leaves_compile_time_out(monkeypatch):
    clock = iter([0.0, 10.0, 14.0])  # start; first chunk done (8 s of it compiling); second
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    shown = progress.Progress(n_settings=2, n_inits=10, n_groups=2, total_init_steps=2 * 10 * 100)
    shown.group(0, "a", 1, resumed=False)
    assert shown.eta() == math.inf and "compiling" in shown.status()
    shown.advance(5, steps=100, compile_s=8.0)  # 2 s of training for 5 pairs
    # 15 pairs left at 0.4 s each, and one more group to compile (8 s, as the first)
    assert shown.eta() == pytest.approx(15 * 0.4 + 8.0)
    assert shown.rate() == pytest.approx(5 * 100 / 2.0)
    shown.advance(5, steps=100)  # 4 s for 5 more pairs, no compiling: 0.6 s a pair on average
    assert shown.eta() == pytest.approx(10 * 0.6 + 8.0)


def test_progress_eta_counts_initialization_steps_not_initializations(monkeypatch):
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    # two groups of 10 pairs: 10 steps, then 1000 steps; the short one trains first
    shown = progress.Progress(n_settings=2, n_inits=10, n_groups=2, total_init_steps=10 * 1010)
    shown.group(0, "short", 1, resumed=False)
    shown.advance(10, steps=10)  # 100 init-steps in 1 s
    shown.group(1, "long", 1, resumed=False)
    assert shown.eta() == pytest.approx(10 * 1000 / 100.0)  # not 10 pairs at 0.1 s each


def test_group_labels_show_every_swept_structural_key_in_schema_order():
    """Groups that differ only in a remedy or a normalization read apart (a hand-kept list of
    ten keys labelled them all 'relu'); numeric axes are not shown."""
    study = load_study(
        {
            "model": {"norm": ["none", "layer"], "width": [2, 3], "init_range": [0.1, 0.2]},
            "train": {"steps": 5, "intervention": ["none", "l2_init"]},
        }
    )
    labels = [runner.group_label(structure, study.axes) for structure in study.groups()]
    assert labels[:3] == [
        "width=2 norm=none intervention=none",
        "width=2 norm=none intervention=l2_init",
        "width=2 norm=layer intervention=none",
    ]
    assert len(set(labels)) == len(labels) == 8
    assert runner.group_label(load_study({"train": {"steps": 5}}).settings[0].structure, ()) == (
        "relu"
    )
