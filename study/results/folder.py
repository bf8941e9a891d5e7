"""A finished run's results folder, opened once: its manifest, tables, figures and reports.

:meth:`ResultsFolder.open` checks that a path holds a finished run of ours in a format this
version reads (ConfigError or FormatError, one line, otherwise), reads its manifest and its two
tables, and checks them (:mod:`study.results.integrity`); the object then gives the tables,
lists, reads and writes the figures, and writes the report and the comparisons, with no further
check. Everything that draws or reports takes such an object (or the DataFrames it reads),
never a path to open. :func:`read_runs`, :func:`read_summary` and
:func:`read_curves` open a folder for a single table.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from study.config import SETTING_KEYS
from study.errors import ConfigError
from study.results import atomic, integrity
from study.results.layout import (
    COMPARISONS,
    CURVES,
    FIGURE_DPI,
    FIGURES,
    REPORT_HTML,
    REPORT_MD,
    RUNS,
    SUMMARY,
)
from study.results.manifest import Manifest, read_manifest, write_manifest
from study.results.tables import read_summary_csv


def _tables_written(folder: Path, manifest: Manifest | None) -> bool:
    complete = manifest is not None and manifest.complete
    return complete and (folder / RUNS).exists() and (folder / SUMMARY).exists()


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished run in a format we read: manifest and both tables."""
    folder = Path(folder)
    return _tables_written(folder, read_manifest(folder, required=False))


@dataclasses.dataclass(eq=False)
class ResultsFolder:
    """The results folder of a finished run (make one with :meth:`open`).

    ``path`` is the folder; ``manifest`` its manifest, read once (and replaced here when
    :meth:`record_figures` writes a new one); ``given`` the path as the caller spelled it
    (``results/a/``), for messages that quote it.
    """

    path: Path
    manifest: Manifest
    given: str = ""
    _runs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame, repr=False)
    _summary: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame, repr=False)

    def __post_init__(self) -> None:
        self.given = self.given or str(self.path)

    @classmethod
    def open(cls, path: str | Path) -> ResultsFolder:
        """Open the results folder ``path``, once checked to hold a complete run.

        Raises ConfigError when it is missing, not a results folder of ours, or its run is
        unfinished; FormatError when its results are in another format.
        """
        given, path = str(path), Path(path)
        manifest = read_manifest(path)
        if manifest is None or not _tables_written(path, manifest):  # None: never, required
            raise ConfigError(
                f"{str(path)!r}: the run is not finished; run the same `study run` again to resume"
            )
        folder = cls(path, manifest, given)
        folder._read_tables()
        return folder

    def _read_tables(self) -> None:
        """Read both tables once, refusing (ConfigError) a folder that is not as its run wrote
        it (:mod:`study.results.integrity`): every reader then refuses the same folders."""
        integrity.check_layout(self.path)
        runs = integrity.read_table(self.path / RUNS, pd.read_parquet)
        integrity.check_runs(self.path / RUNS, runs, self.manifest)
        summary = integrity.read_table(self.path / SUMMARY, read_summary_csv)
        integrity.check_summary(self.path / SUMMARY, summary, self.manifest, runs)
        self._runs, self._summary = runs, summary

    def runs(self) -> pd.DataFrame:
        """``runs.parquet``: a row per setting and initialization (a copy of the one read)."""
        return self._runs.copy()

    def summary(self) -> pd.DataFrame:
        """``summary.csv``: a row per setting (``analysis.summarize``; a copy of the one read)."""
        return self._summary.copy()

    def curves(self) -> pd.DataFrame | None:
        """``curves.parquet`` (None when the run recorded no curves)."""
        path = self.path / CURVES
        return integrity.read_table(path, pd.read_parquet) if path.exists() else None

    def figure_files(self, suffix: str = ".png") -> list[Path]:
        """The figures drawn so far, sorted by name."""
        return sorted((self.path / FIGURES).glob(f"*{suffix}"))

    def read_figures(self, suffix: str = ".png") -> list[tuple[str, bytes]]:
        """The figures drawn so far as ``(file name, contents)``, sorted by name."""
        return [(path.name, path.read_bytes()) for path in self.figure_files(suffix)]

    def figures_complete(self) -> bool:
        """Whether every figure the manifest lists as drawn is there (none listed: no)."""
        if self.manifest.figures is None:
            return False
        return all((self.path / FIGURES / name).exists() for name in self.manifest.figures)

    def record_figures(self, paths: Sequence[Path]) -> None:
        """List the figures just drawn in the manifest: a rerun then knows they are all there."""
        names = tuple(sorted(Path(p).name for p in paths))
        self.manifest = dataclasses.replace(self.manifest, figures=names)
        write_manifest(self.path, self.manifest)

    def write_figure(self, name: str, data: bytes) -> Path:
        """Write a figure's file ``figures/<name>`` from its bytes (one kept in the cache)."""
        out = self.path / FIGURES
        out.mkdir(parents=True, exist_ok=True)
        return atomic.atomic_write(out / name, lambda path: path.write_bytes(data))

    def save_figures(
        self, figures: Iterable[tuple[str, Any]], formats: Sequence[str] = ("png", "pdf")
    ) -> list[Path]:
        """:func:`save_figures` into this folder."""
        return save_figures(self.path, figures, formats)

    def write_report(self, markdown: str, page: str) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html``."""
        md_path = atomic.atomic_write(self.path / REPORT_MD, lambda p: p.write_text(markdown))
        html_path = atomic.atomic_write(self.path / REPORT_HTML, lambda p: p.write_text(page))
        return md_path, html_path

    def write_comparison(self, name: str, table: pd.DataFrame) -> Path:
        """Write ``comparisons/<name>.csv``."""
        out = self.path / COMPARISONS
        out.mkdir(exist_ok=True)
        return atomic.write_csv(out / f"{name}.csv", table)


def save_figures(
    folder: str | Path, figures: Iterable[tuple[str, Any]], formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save each ``(stem, matplotlib figure)`` as ``DIR/figures/<stem>.<format>``; close it.

    A figure is written under a temporary name and renamed, so a file under its real name is
    always whole. Takes a path: the processes that draw beside the one that opened the folder
    only write figure files.
    """
    import matplotlib.pyplot as plt

    out = Path(folder) / FIGURES
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in figures:
        for suffix in formats:
            path = out / f"{stem}.{suffix}"
            atomic.atomic_write(path, functools.partial(_save_figure, figure, suffix))
            paths.append(path)
        plt.close(figure)
    return paths


def _save_figure(figure, suffix: str, path: Path) -> None:
    figure.savefig(path, format=suffix, dpi=FIGURE_DPI)


def runs_of(folders: Sequence[ResultsFolder]) -> pd.DataFrame:
    """The runs of one or several folders; with several, a ``results`` column names each.

    Refuses (ConfigError) a folder given twice, and two folders whose runs share a seed and a
    setting: those are the same initializations, and pooling them would count each twice.
    """
    seen: dict[tuple, int] = {}
    frames = []
    for index, folder in enumerate(folders):
        runs = folder.runs()
        seed = folder.manifest.seed
        columns = [name for name in SETTING_KEYS if name in runs]
        for setting in runs[columns].drop_duplicates().itertuples(index=False):
            first = seen.setdefault((seed, *setting), index)
            if first != index:
                raise ConfigError(
                    f"{folder.given!r} and {folders[first].given!r} hold the same "
                    f"initializations (seed {seed}, a setting in common): comparing them would "
                    "count each run twice; give each results folder once"
                )
        frames.append(runs.assign(results=folder.path.name or folder.given))
    if len(frames) == 1:
        return frames[0].drop(columns="results")
    return pd.concat(frames, ignore_index=True)


def read_runs(folder: str | Path) -> pd.DataFrame:
    """``DIR/runs.parquet`` of a complete run: a row per setting and initialization."""
    return ResultsFolder.open(folder).runs()


def read_summary(folder: str | Path) -> pd.DataFrame:
    """``DIR/summary.csv`` of a complete run: a row per setting (``analysis.summarize``)."""
    return ResultsFolder.open(folder).summary()


def read_curves(folder: str | Path) -> pd.DataFrame | None:
    """``DIR/curves.parquet`` of a complete run (None when the run recorded no curves)."""
    return ResultsFolder.open(folder).curves()
