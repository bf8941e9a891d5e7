"""Helpers shared by the tests (kept out of conftest.py, which only sets the test session up)."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from study import analysis, cli, results
from study.config import KEYS, SETTING_KEYS, flatten, nest

ROOT = Path(__file__).resolve().parents[1]

# The tiny config of the tests that run whole studies: two structural groups (width 1 and 2) of
# four numeric settings each. One definition, so that the tests of several files compile the
# same programs once per session (tests vary it with tiny_config's changes).
TINY = {
    "name": "tiny",
    "n_inits": 24,
    "seed": 3,
    "data": {"offset": [0.0, 2.0], "n_samples": 32},
    "model": {"width": [1, 2], "init_range": [0.05, 0.5]},
    "train": {"steps": 12, "log_every": 4},
}


# A small slowly-changing-regression stream (make_setting's keywords), shared by the stream
# tests so that its baseline compiles once per session.
STREAM_SMALL = dict(
    data_kind="slowly_changing",
    data_flip_every=50,
    data_probe_size=64,
    model_width=5,
    model_init="kaiming_uniform",
    train_optimizer="sgd",
    train_learning_rate=0.01,
    train_steps=300,
    train_log_every=50,
)


def tiny_config(**changes) -> dict:
    """A copy of TINY with ``changes``: ``section__key=value``, or ``key=value`` at the top."""
    changed = {name.replace("__", "."): value for name, value in changes.items()}
    return copy.deepcopy(nest({**flatten(TINY), **changed}))  # lists not shared with TINY


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_tables(path: str, table: dict) -> list[str]:
    """``[path]`` with its keys, then each table inside it (``[variants.slow.train]``)."""
    lines = [f"[{path}]"]
    lines += [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)
    ]
    for key, inner in table.items():
        if isinstance(inner, dict):
            lines += _toml_tables(f"{path}.{_toml_key(key)}", inner)
    return lines


def to_toml(config: dict) -> str:
    """The TOML text of a config dict (top-level keys, then one table per section, and one per
    table inside a section, as ``[variants.slow.train]``)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, table in config.items():
        if isinstance(table, dict):
            lines += _toml_tables(_toml_key(section), table)
    return "\n".join(lines) + "\n"


# A small valid config of the bad-input tests, which change one key of it at a time.
VALID = {
    "data": {"n_samples": 16},
    "train": {"steps": 4, "log_every": 2},
}


def with_change(dotted: str, value) -> dict:
    """VALID with one key (``section.key``, or a top-level key) set to ``value``."""
    return nest({**flatten(VALID), dotted: value})


def run_cli(folder: Path, config: dict | None = None, text: str | None = None, extra=()):
    """Write the config into ``folder`` and run ``study run`` on it into ``folder/out``."""
    path = folder / "study.toml"
    path.write_text(text if text is not None else to_toml(config))
    return cli.main(["run", str(path), "--out", str(folder / "out"), "--quiet", *extra])


def assert_refused(code, capsys, folder: Path, *fragments):
    """``study run`` refused its input: exit 2, one line on stderr naming ``fragments``, and
    no output folder."""
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("study run: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (folder / "out").exists()


def standard_errors(p: float, n: int) -> float:
    """Standard error of a proportion p estimated from n independent draws."""
    return (p * (1 - p) / n) ** 0.5


def write_results_folder(folder: Path, runs: pd.DataFrame, seed: int = 0, **config) -> Path:
    """A complete results folder holding ``runs``, its summary and a minimal manifest (whose
    config has ``config``'s keys besides the name and seed, e.g. ``pairing="shared"``)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = results.Manifest(config={"name": folder.name, "seed": seed, **config})
    results.write_results(folder, runs, analysis.summarize(runs), manifest)
    return folder


def synthetic_runs(p_init, p_end, n=500, p_diverged=0.0, depth=1, seed=0, **axes):
    """A runs table: every setting key at its default, ``axes`` swept, Bernoulli metrics."""
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product(list(axes.values()), names=list(axes)).to_frame(index=False)
    frames = []
    for _, setting in grid.iterrows():
        frame = pd.DataFrame({k: [KEYS[k].default] * n for k in SETTING_KEYS})
        frame["model.bias_scale"] = 0.05
        frame["train.weight_decay"] = 0.0  # derived: 0 for adam
        frame["train.loss"] = "bce"
        frame["data.features"] = ""
        for name, value in setting.items():
            frame[name] = value
        frame["model.depth"] = depth
        width = int(frame["model.width"].iloc[0])
        frame["init"] = np.arange(n)
        frame["diverged"] = rng.random(n) < p_diverged
        frame["dead_init"] = rng.random(n) < p_init
        frame["dead_end"] = (frame["dead_init"] | (rng.random(n) < p_end)) & ~frame["diverged"]
        frame["revived"] = False
        frame["death_step"] = np.where(frame["dead_end"], rng.integers(0, 100, n), -1)
        frame["final_accuracy"] = rng.random(n)
        for layer in range(1, depth + 1):
            frame[f"dead_units_init_l{layer}"] = rng.integers(0, width + 1, n)
            frame[f"dead_units_end_l{layer}"] = rng.integers(0, width + 1, n)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
