"""Odd input, third round (issue 29): numbers beyond the run's dtype, runs beyond memory, folders
left by a failed first run, unusable or damaged compile caches, hand-edited results folders,
``bench --json`` at a bad path, and a peer that never comes.

Each test states the input and what the user gets: exit 2 (or a one-line notice) before anything
is written, naming the key, flag or file and what is allowed. All are cheap: no test here trains
a network.
"""

import dataclasses
import json
import os
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from study import cli, distributed, engine, program_cache, results
from study.config import KEYS, SETTING_KEYS, load_study
from study.errors import ConfigError, FolderError
from tests.helpers import (
    VALID,
    assert_refused,
    run_cli,
    synthetic_runs,
    with_change,
    write_results_folder,
)

# --------------------------------------------------------------------------------------------
# Numbers beyond the run's dtype (issue 29, cases 2 and 3).
# --------------------------------------------------------------------------------------------

FLOAT32_MAX = f"{float(np.finfo('float32').max):.4g}"  # as the messages print it


@pytest.mark.parametrize(
    ("key", "value"), [("train.shrink", 1e39), ("train.shrink", 1e300), ("train.redo_tau", 1e300)]
)
def test_a_remedy_strength_beyond_float32_is_refused(tmp_path, capsys, key, value):
    """Before: it became inf in float32, and the run exited 0 with NumPy's overflow warning."""
    code = run_cli(tmp_path, with_change(key, value))
    assert_refused(code, capsys, tmp_path, key, "float32", FLOAT32_MAX, "float64")


def _own_check_passes(name: str, value) -> bool:
    check = KEYS[name].check
    return check is None or check(value) is None


@pytest.mark.parametrize("value", [1e39, -1e300, 1e-50])
def test_every_float_key_is_checked_against_the_dtype(value):
    """One check over every float key, not one per key: whatever a key's own range allows
    must be a number of the run's dtype, neither inf nor rounded to 0."""
    checked = [
        name for name in SETTING_KEYS if KEYS[name].kind is float and _own_check_passes(name, value)
    ]
    assert len(checked) >= 4, checked  # data.offset, data.target_shift, ... whatever the sign
    for name in checked:
        with pytest.raises(ConfigError, match=f"^{name} = .*float32.*allowed"):
            load_study(with_change(name, value))
    # the same numbers are float64 numbers
    for name in checked:
        load_study(with_change(name, value) | {"train": {**VALID["train"], "dtype": "float64"}})


def test_an_integer_beyond_int32_is_refused_naming_the_largest(tmp_path, capsys):
    """``data.flip_every = 2^31`` (never flip) was JAX's OverflowError, exit 1, after writing."""
    stream = {"data": {"kind": "slowly_changing", "probe_size": 8, "flip_every": 2**31}}
    stream["train"] = {"steps": 4, "log_every": 2}
    code = run_cli(tmp_path, stream)
    assert_refused(code, capsys, tmp_path, "data.flip_every", str(2**31 - 1))
    stream["data"]["flip_every"] = 2**31 - 1
    assert load_study(stream).settings[0].structure.flip_every == 2**31 - 1


# --------------------------------------------------------------------------------------------
# A run beyond memory, and the folder a failed first run leaves (case 1).
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"kind": "slowly_changing", "probe_size": 10**9}, "data.probe_size"),
        ({"n_samples": 2 * 10**9}, "data.n_samples"),  # with 100 units: 0.8 TB
    ],
)
def test_data_beyond_a_device_memory_are_refused_with_the_estimate(tmp_path, capsys, data, key):
    """Before: the probe set of 10^9 inputs was exit 1 after 15 s, a raw out-of-memory error,
    and a manifest left in --out."""
    config = {"data": data, "model": {"width": 100}, "train": {"steps": 4, "log_every": 2}}
    code = run_cli(tmp_path, config)
    assert_refused(code, capsys, tmp_path, key, "GB", "memory", "allowed: at most")


def test_a_failed_first_run_leaves_a_folder_the_corrected_config_takes(
    tmp_path, capsys, monkeypatch
):
    """A first run that failed before it finished a group (out of memory, say) left a
    manifest that refused the corrected config with exit 3; it takes the folder now."""

    def out_of_memory(*args, **kwargs):
        raise MemoryError("out of memory allocating 922746868496 bytes")

    monkeypatch.setattr(engine, "run_group", out_of_memory)
    assert run_cli(tmp_path, with_change("data.n_samples", 32)) == 1
    assert (tmp_path / "out" / results.MANIFEST).exists()
    capsys.readouterr()
    # the corrected config reaches its own computation (failing again here), not a refusal
    assert run_cli(tmp_path, VALID) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "different config" not in err, err
    recorded = results.read_manifest(tmp_path / "out").config
    assert recorded["data.n_samples"] == VALID["data"]["n_samples"]


def test_an_unfinished_run_with_a_finished_group_still_refuses_another_config(tmp_path):
    """What a failed run finished is kept: another config is refused (exit 3) as before."""
    folder = tmp_path / "out"
    folder.mkdir()
    first = {"config": load_study(VALID).config, "data_files": {}}
    results.write_manifest(folder, results.Manifest(status="running", **first))
    results.save_group(folder, "finished", pd.DataFrame({"init": [0]}), None, {})
    other = {"config": load_study(with_change("data.n_samples", 32)).config, "data_files": {}}
    with pytest.raises(FolderError, match="different config.*data.n_samples"):
        results.prepare(folder, other, force=False)
    (folder / results.PARTIAL / "group-finished.parquet").unlink()
    assert results.prepare(folder, other, force=False) == "new"
    assert not (folder / results.MANIFEST).exists()


# --------------------------------------------------------------------------------------------
# The cache of compiled programs: an unusable folder, damaged entries (cases 4 and 5).
# --------------------------------------------------------------------------------------------


def _unusable_places(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return {"a file": a_file / "jax", "/proc": "/proc/study-x/jax", "a link loop": loop / "jax"}


def test_an_unusable_compile_cache_is_one_line_of_ours_and_the_cache_is_off(
    tmp_path, capsys, monkeypatch
):
    """Before: results right, exit 0, and two raw lines of JAX's warning at every compile."""
    import jax

    from study import runtime

    for place, path in _unusable_places(tmp_path).items():
        assert program_cache.unusable(path) is not None, place
    assert program_cache.unusable(tmp_path / "new" / "jax") is None  # made when missing
    assert (tmp_path / "new" / "jax").is_dir() and not any((tmp_path / "new" / "jax").iterdir())

    enabled = runtime.setting("jax_enable_compilation_cache")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "a-file" / "jax"))
    try:
        for _ in range(2):  # every run of a process configures it: said once
            assert runtime.configure(compile_cache=True).compile_cache is None
        assert runtime.setting("jax_enable_compilation_cache") is False
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("study: the cache of compiled programs is off")
    assert "a-file/jax" in err and "Not a directory" in err and "--no-compile-cache" in err


def _entry(folder, name: str, data: bytes, settled: bool = True):
    path = folder / f"{name}-cache"
    path.write_bytes(data)
    (folder / f"{name}-atime").write_bytes(b"\0" * 8)
    if settled:
        os.utime(path, (1e9, 1e9))  # long written
    return path


def test_damaged_compile_cache_entries_are_removed_once_and_reported(tmp_path):
    """Before: a truncated or garbled entry made JAX warn at every load and compile again,
    forever, as it never replaces an existing entry. Removed, the next compile stores it."""
    from jax._src.compilation_cache import compress_executable

    whole = compress_executable(b"\1\0\0\0" + bytes(range(256)) * 64)
    good = _entry(tmp_path, "jit_good-1", whole)
    truncated = _entry(tmp_path, "jit_train-2", whole[: len(whole) // 2])
    garbled = _entry(tmp_path, "jit_start-3", os.urandom(len(whole)))
    being_written = _entry(tmp_path, "jit_new-4", whole[:10], settled=False)
    assert program_cache.remove_damaged(tmp_path) == 2
    assert good.exists() and being_written.exists()
    assert not truncated.exists() and not garbled.exists()
    assert not (tmp_path / "jit_train-2-atime").exists()
    assert program_cache.remove_damaged(tmp_path) == 0  # reported once
    os.utime(being_written, (1e9, 1e9))  # its writer died long ago: it is damaged now
    assert program_cache.remove_damaged(tmp_path) == 1 and good.exists()


# --------------------------------------------------------------------------------------------
# Hand-edited results folders: every reader refuses them alike (cases 6 and 7).
# --------------------------------------------------------------------------------------------

READERS = (
    ["plot"],
    ["report"],
    ["compare", "--by", "data.offset"],
    ["plan", "--by", "data.offset"],
)


def _edit_runs(change):
    def edit(folder):
        change(pd.read_parquet(folder / results.RUNS)).to_parquet(folder / results.RUNS)

    return edit


def _edit_summary(change):
    def edit(folder):
        summary = pd.read_csv(folder / results.SUMMARY)
        change(summary).to_csv(folder / results.SUMMARY, index=False)

    return edit


def _truncate(name):
    def edit(folder):
        (folder / name).write_bytes((folder / name).read_bytes()[:200])

    return edit


def _emptied_row(runs):
    runs = runs.astype(object)
    runs.iloc[3] = None
    return runs


def _fewer_rows_in_manifest(folder):
    manifest = results.read_manifest(folder)
    results.write_manifest(folder, dataclasses.replace(manifest, n_rows=100, n_settings=2))
    _edit_runs(lambda runs: runs.iloc[1:])(folder)


EDITS = {
    # (edit, file named, what the message says)
    "runs: a column dropped": (_edit_runs(lambda r: r.drop(columns="dead_end")), "runs", "column"),
    "runs: rows repeated": (_edit_runs(lambda r: pd.concat([r, r])), "runs", "repeats"),
    "runs: a row emptied": (
        _edit_runs(_emptied_row),
        "runs",
        "empty at row 3",
    ),
    "runs: truncated": (_truncate(results.RUNS), "runs", "unreadable"),
    "runs: a row fewer than the manifest's": (_fewer_rows_in_manifest, "runs", "99 rows"),
    "summary: a column dropped": (
        _edit_summary(lambda s: s.drop(columns="p_dead_end")),
        "summary",
        "column",
    ),
    "summary: a count beyond n": (
        _edit_summary(lambda s: s.assign(k_dead_end=160, p_dead_end=5.0)),
        "summary",
        "outside",
    ),
    "summary: a count changed": (
        _edit_summary(lambda s: s.assign(k_dead_end=s["k_dead_end"] + 1)),
        "summary",
        "k_dead_end adds up to",
    ),
    "summary: an empty row": (
        _edit_summary(lambda s: pd.concat([s, s.iloc[:1].map(lambda v: None)])),
        "summary",
        "n_inits",
    ),
    "summary: emptied": (lambda f: (f / results.SUMMARY).write_text(""), "summary", "unreadable"),
    "figures/ a file": (lambda f: (f / results.FIGURES).write_text("x"), "figures", "folder"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    runs = synthetic_runs(0.3, 0.1, n=50, **{"data.offset": [0.0, 2.0]})
    return write_results_folder(tmp_path_factory.mktemp("pristine") / "out", runs)


@pytest.mark.parametrize("edit", EDITS, ids=lambda name: name.replace(": ", "-").replace(" ", "_"))
def test_every_reader_refuses_a_hand_edited_folder_naming_the_file(
    tmp_path, capsys, pristine, edit
):
    """Before: exit 1 with KeyError, EmptyDataError or Arrow's message naming no file; report
    printed 160/32 = 5.000 from an edited summary; compare counted repeated rows twice."""
    change, named, what = EDITS[edit]
    folder = tmp_path / "out"
    shutil.copytree(pristine, folder)
    change(folder)
    for reader in READERS:
        code = cli.main([reader[0], str(folder), *reader[1:]])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (reader, err)
        assert err.startswith(f"study {reader[0]}: error: '{folder}/{named}"), (reader, err)
        assert what in err, (reader, err)
    assert not (folder / "report.md").exists() and not (folder / results.COMPARISONS).exists()


# --------------------------------------------------------------------------------------------
# bench --json at a bad path (case 8); waiting for peers that never come (case 9).
# --------------------------------------------------------------------------------------------


def test_bench_json_at_a_bad_path_is_refused_before_the_benchmark(tmp_path, capsys, monkeypatch):
    """Before: exit 1, after the whole benchmark had run (seconds quick, minutes full)."""
    from study import bench

    def benchmark(**kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(bench, "benchmark", benchmark)
    for path in (tmp_path, tmp_path / "missing" / "b.json", "/proc/study-x/b.json"):
        assert cli.main(["bench", "--quick", "--json", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"study bench: error: --json '{path}'") and err.count("\n") == 1
    monkeypatch.setattr(bench, "benchmark", lambda **kwargs: {"quick": True})
    monkeypatch.setattr(bench, "format_table", lambda result: "table")
    assert cli.main(["bench", "--quick", "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text()) == {"quick": True}


def test_a_process_waiting_for_its_peers_says_for_what_then_stops(monkeypatch):
    """Before: process 1 waited silently for the whole timeout, then about as long again."""
    said, stopped = [], threading.Event()

    def give_up(say, text):
        say(text)
        stopped.set()

    monkeypatch.setattr(distributed, "JOIN_NOTICE_S", 0.01)
    monkeypatch.setattr(distributed, "_give_up", give_up)
    with distributed._joining("process 1 of 2", "at node01:1234", 0, said.append):
        assert stopped.wait(timeout=120)
    notice, stop = sorted(said, key=lambda line: line.startswith("error"))
    assert notice.startswith("process 1 of 2: still waiting") and "at node01:1234" in notice
    assert "up to 0 s" in notice and "STUDY_DISTRIBUTED_TIMEOUT, default 300" in notice
    assert stop.startswith("error: the processes did not all join at node01:1234 within 0 s")
    said.clear()
    monkeypatch.setattr(distributed, "JOIN_NOTICE_S", 600)
    with distributed._joining("process 1 of 2", "at node01:1234", 600, said.append):
        pass  # joined at once: nothing said, and no timer left to say it
    assert said == []


def test_the_join_timeout_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    timeout = f"{distributed.TIMEOUT_ENV} (seconds, default {distributed.JOIN_S})"
    assert timeout in text and f"silent for {distributed.HEARTBEAT_S} s" in text
