"""What a run may touch: only a folder that is empty or ours; never a file it did not make.

And a run interrupted at any point, even while drawing its figures, is completed by its rerun.
"""

import os
import shutil
from pathlib import Path

import pytest

import study
from study import cli, plots, results, runner
from study.config import load_study
from study.errors import ConfigError
from tests.helpers import TINY, tiny_config, to_toml


def tiny():
    return load_study(TINY)


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    "out, fragment",
    [
        ("/", "filesystem root"),
        (str(Path(study.__file__).parent), "study package"),
        (str(Path(study.__file__).parent / "configs" / "new"), "study package"),
    ],
)
def test_unusable_out_folders_are_refused_before_anything_is_made(out, fragment):
    before = sorted(os.listdir(out)) if os.path.isdir(out) else None
    with pytest.raises(ConfigError, match=f"--out .*{fragment}"):
        runner.run_study(tiny(), out, figures=False)
    after = sorted(os.listdir(out)) if os.path.isdir(out) else None
    assert before == after


def test_an_existing_file_as_out_exits_2_naming_out(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("mine")
    assert cli.main(["run", "--out", str(target), "--quiet", "--n-inits", "17"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "existing file" in err
    assert target.read_text() == "mine"


def test_a_foreign_run_lock_is_neither_used_nor_removed(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "run.lock").write_text("the user's own notes")
    for force in (False, True):
        with pytest.raises(ConfigError, match="--out .*not a results folder"):
            runner.run_study(tiny(), folder, force=force, figures=False)
        assert listing(folder) == {"run.lock": b"the user's own notes"}


@pytest.mark.parametrize("their_manifest", [False, True])
def test_a_foreign_folder_is_refused_even_with_force_and_nothing_in_it_changes(
    tmp_path, their_manifest
):
    folder = tmp_path / "theirs"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "logo.png").write_bytes(b"not ours")
    (folder / "summary.csv").write_text("not ours either")
    (folder / ".notes.tmp-1").write_text("looks like a temporary of ours, but is not")
    if their_manifest:  # a web folder's own manifest.json
        (folder / "manifest.json").write_text('{"name": "my site", "icons": []}')
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    for force in (False, True, True):
        with pytest.raises(ConfigError, match="--out .*not a results folder"):
            runner.run_study(tiny(), folder, force=force, figures=False)
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_force_removes_only_the_outputs_of_ours(tmp_path):
    folder = tmp_path / "ours"
    runner.run_study(tiny(), folder)
    (folder / "figures" / "mine.png").write_bytes(b"the user's own figure, put among ours")
    for _ in range(2):
        runner.run_study(tiny(), folder, force=True)
    assert (folder / "figures" / "mine.png").read_bytes().startswith(b"the user's own")
    assert results.ResultsFolder.open(folder).figures_complete()


@pytest.mark.parametrize("out", ["", "x" * 300, "loop/results"])
def test_an_empty_overlong_or_looping_out_exits_2_naming_out(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert cli.main(["run", "--out", out, "--quiet", "--n-inits", "17"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


def test_an_overlong_name_names_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--quiet", "--n-inits", "17", "--set", f"name={'x' * 300}"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name = " in err and "255" in err
    assert not (tmp_path / "results").exists()


def test_compare_refuses_the_same_initializations_twice(tmp_path, capsys):
    folder = tmp_path / "one"
    runner.run_study(tiny(), folder, figures=False)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for second in (tmp_path / "." / "one", copy):
        assert cli.main(["compare", str(folder), str(second), "--by", "data.offset"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "same initializations" in err and "twice" in err
    other_seed = tmp_path / "seed2"
    runner.run_study(load_study(tiny_config(seed=2)), other_seed, figures=False)
    assert cli.main(["compare", str(folder), str(other_seed), "--by", "results"]) == 0


def test_a_run_killed_while_drawing_figures_is_completed_by_its_rerun(tmp_path, monkeypatch):
    folder = tmp_path / "figures_cut"
    real_save = results.ResultsFolder.save_figures

    def killed_after_two(folder, figures, formats=("png", "pdf")):
        drawn = iter(figures)
        real_save(folder, [next(drawn), next(drawn)], formats)
        raise KeyboardInterrupt

    monkeypatch.setattr(results.ResultsFolder, "save_figures", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(tiny(), folder)
    monkeypatch.setattr(results.ResultsFolder, "save_figures", real_save)
    cut = results.ResultsFolder.open(folder)
    assert len(cut.figure_files()) == 2 and not cut.figures_complete()
    runner.run_study(tiny(), folder)  # the results are up to date; the figures are not
    assert results.ResultsFolder.open(folder).figures_complete()
    expected = {p.name for p in plots.plot_results(results.ResultsFolder.open(folder))}
    assert {p.name for p in (folder / "figures").iterdir()} == expected


def test_plot_report_and_compare_refuse_the_same_folders_alike(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    messages = []
    for argv in (
        ["plot", str(broken)],
        ["report", str(broken)],
        ["compare", str(broken), "--by", "x"],
    ):
        assert cli.main(argv) == 2
        messages.append(capsys.readouterr().err.split(": error: ", 1)[1])
    assert len(set(messages)) == 1 and "format version" in messages[0]


def test_results_of_a_version_without_the_new_keys_are_the_same_run(tmp_path):
    """A manifest written before keys were added (the keys absent) matches a config that has
    them at their defaults: rerunning finds the run done. Away from a default, it differs."""
    import json

    folder = tmp_path / "old"
    runner.run_study(tiny(), folder, figures=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("model.norm", "train.intervention", "data.flip_every", "train.curves"):
        del manifest["config"][name]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = listing(folder)
    runner.run_study(tiny(), folder, figures=False)
    assert listing(folder)["runs.parquet"] == before["runs.parquet"]
    with pytest.raises(study.FolderError, match="train.curves"):
        runner.run_study(load_study(tiny_config(train__curves=True)), folder)


def test_a_committed_results_folder_without_its_manifest_is_run_again(tmp_path):
    """A fresh checkout has results/default's tables, figures and marker but not its
    manifest (left out of git): `make run` runs there and ends with the same tables."""
    folder = tmp_path / "published"
    runner.run_study(tiny(), folder, figures=False)
    summary = (folder / "summary.csv").read_bytes()
    (folder / "manifest.json").unlink()
    (folder / "runs.parquet").unlink()  # not committed either
    assert (folder / results.MARKER).exists()
    runner.run_study(tiny(), folder, figures=False)
    assert (folder / "summary.csv").read_bytes() == summary
    assert results.is_complete(folder)


def test_a_csv_study_moved_with_its_data_resumes_and_other_data_is_refused(tmp_path):
    """The manifest records data.path as an absolute path; a checkout moved elsewhere (or a
    results folder copied into another) holds the same bytes under another path: the same
    run, not another config. A file whose bytes differ is still refused."""
    import json

    def study_in(root: Path, rows: str):
        root.mkdir()
        (root / "points.csv").write_text("x1,x2,y\n" + rows)
        config = {"name": "moved", "n_inits": 24, "seed": 3, "data": {"kind": "csv",
                  "path": "points.csv"}, "train": {"steps": 4, "log_every": 2}}  # fmt: skip
        (root / "study.toml").write_text(to_toml(config))
        return load_study(root / "study.toml")

    rows = "".join(f"{1 + i % 5},{2 + i % 3},{i % 2}\n" for i in range(16))
    first = study_in(tmp_path / "a", rows)
    runner.run_study(first, tmp_path / "a" / "out", figures=False)
    manifest = json.loads((tmp_path / "a" / "out" / "manifest.json").read_text())
    assert manifest["config"]["data.path"] == str(tmp_path / "a" / "points.csv")
    shutil.copytree(tmp_path / "a" / "out", tmp_path / "out")
    before = listing(tmp_path / "out")
    runner.run_study(study_in(tmp_path / "b", rows), tmp_path / "out", figures=False)
    assert listing(tmp_path / "out")["runs.parquet"] == before["runs.parquet"]  # resumed, done
    changed = study_in(tmp_path / "c", rows.replace("1,2,0", "3,2,0", 1))
    with pytest.raises(study.FolderError):
        runner.run_study(changed, tmp_path / "out", figures=False)
