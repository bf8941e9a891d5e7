"""Helpers shared by the tests (kept out of conftest.py, which only sets the test session up)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study import analysis, results


def standard_errors(p: float, n: int) -> float:
    """Standard error of a proportion p estimated from n independent draws."""
    return (p * (1 - p) / n) ** 0.5


def write_results_folder(folder: Path, runs: pd.DataFrame, seed: int = 0) -> Path:
    """A complete results folder holding ``runs``, its summary and a minimal manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = results.Manifest(config={"name": folder.name, "seed": seed})
    results.write_results(folder, runs, analysis.summarize(runs), manifest)
    return folder
