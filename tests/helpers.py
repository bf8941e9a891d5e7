"""Helpers shared by the tests (kept out of conftest.py, which only sets the test session up)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study import analysis, results
from study.config import KEYS, SETTING_KEYS


def standard_errors(p: float, n: int) -> float:
    """Standard error of a proportion p estimated from n independent draws."""
    return (p * (1 - p) / n) ** 0.5


def write_results_folder(folder: Path, runs: pd.DataFrame, seed: int = 0) -> Path:
    """A complete results folder holding ``runs``, its summary and a minimal manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = results.Manifest(config={"name": folder.name, "seed": seed})
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
