"""The results folder of a run: the one module that reads and writes it.

Every other module gets DataFrames and a :class:`Manifest` from here, never a path to open.
Layout of a results folder ``DIR``::

    manifest.json        format_version, the resolved config, versions, devices, timings, status
    runs.parquet         a row per setting and initialization (:func:`read_runs`)
    summary.csv          a row per setting, counts and proportions (:func:`read_summary`)
    figures/             PNG and PDF (:func:`save_figures`; copies of figures drawn before are
                         kept outside it, in the figure cache: :func:`figure_cache`)
    report.md, .html     the report (:func:`write_report`)
    comparisons/         ``study compare`` tables (:func:`write_comparison`)
    .partial/            finished structural groups of an unfinished run, one parquet file each
    run.lock             exists while a run writes into DIR

Every file is written to a temporary name in its own folder and renamed into place
(``os.replace`` is atomic on POSIX), so a reader never sees half a file and a killed run never
leaves one behind under a real name. A resumed run reads only ``.partial/group-<key>.parquet``
files, which exist only once complete.

The lock is an ``fcntl.flock`` on ``DIR/run.lock``: the kernel releases it when its process dies,
however it dies, so a killed run never blocks the next one. The file records the holder's pid and
host for the message a refused run prints; where the file system has no ``flock``, that pid and
host decide: a lock whose process no longer runs on this host is stale and taken over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.config import SCHEMA, SETTING_KEYS, TOP_LEVEL
from study.errors import ConfigError, FolderError, FormatError
from study.host import cache_root

# Bumped whenever the meaning or layout of a results folder changes incompatibly.
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
RUNS = "runs.parquet"
SUMMARY = "summary.csv"
CURVES = "curves.parquet"
# Columns of the engine's runs that hold a curve per initialization (as arrays), the source of
# curves.parquet; they are not written to runs.parquet.
CURVE_PREFIX = "curve_"
FIGURES = "figures"
FIGURE_DPI = 200  # the resolution of the saved figures (pixels per inch)
COMPARISONS = "comparisons"
PARTIAL = ".partial"
LOCK = "run.lock"
# Marks a results folder of ours without its manifest (which is machine- and time-specific and
# so left out of git): a committed results folder, e.g. results/default in a fresh checkout.
MARKER = ".study-results"
MARKER_TEXT = "a results folder of `study run`: its runs, summary and figures may be replaced\n"
_TEMP_MARK = ".tmp-"


# --------------------------------------------------------------------------------------------
# Atomic files.
# --------------------------------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``write(temporary_path)``, then rename it into place.

    The temporary file lives beside ``path`` (same file system, so the rename is atomic) and is
    removed if ``write`` fails or the process is interrupted; an existing ``path`` is untouched
    until the new one is complete and synced to disk.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}")
    try:
        write(temporary)
        with temporary.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)
    return path


def write_json(path: str | Path, value: Any) -> Path:
    text = json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.to_parquet(p, index=False))


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.to_csv(p, index=False))


def remove_temporaries(folder: Path) -> None:
    """Delete temporary files that a killed command left in ``folder`` and its subfolders."""
    for where in (folder, folder / PARTIAL, folder / FIGURES, folder / COMPARISONS):
        if where.is_dir():
            for path in where.glob(f".*{_TEMP_MARK}*"):
                with contextlib.suppress(OSError):
                    path.unlink()


# --------------------------------------------------------------------------------------------
# The lock.
# --------------------------------------------------------------------------------------------


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(holder: dict) -> bool:
    """Whether the process recorded in a lock file may still run (unknown hosts: yes)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") is None:
        return False
    if holder["host"] != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(folder: Path, holder: dict) -> FolderError:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if isinstance(holder.get("since"), int | float):
        who += ", since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
    return FolderError(
        f"{str(folder)!r} is in use by another study run ({who}); wait for it or use another --out"
    )


@contextlib.contextmanager
def locked(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s run lock for the duration; raise FolderError if another run holds it."""
    folder = Path(folder)
    path = folder / LOCK
    if not _is_ours(path):
        raise FolderError(
            f"{str(path)!r} exists and is not a lock of `study run`; it is left as it is: "
            "use another --out"
        )
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(folder, _read_holder(path)) from None
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            # No flock on this file system: the recorded pid and host decide.
            holder = _read_holder(path)
            if _alive(holder):
                os.close(fd)
                raise _busy(folder, holder) from None
        # A finishing run unlinks the lock file while holding it; if ours is that old file,
        # start over on the new one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode())
        os.fsync(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The manifest and the state of a folder.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` records about a run (``shared/INTERFACE.md``).

    ``config`` is the fully resolved config (a list of values on a sweep axis); ``data_files``
    maps each CSV file the run read to its SHA-256; ``status`` is ``"running"`` until every group
    is written, then ``"complete"``. The fields after ``platform`` exist once the run finished.
    """

    config: dict
    status: str | None = "complete"
    name: str = ""
    data_files: dict = dataclasses.field(default_factory=dict)
    axes: tuple[str, ...] = ()
    versions: dict = dataclasses.field(default_factory=dict)
    backend: str | None = None
    devices: tuple[dict, ...] = ()
    process_count: int = 1
    platform: str = ""
    started: str | None = None
    finished: str | None = None
    n_settings: int | None = None
    n_rows: int | None = None
    timings: dict | None = None
    figures: tuple[str, ...] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def seed(self) -> int | None:
        """The study seed, which fixes the data sets that closed forms are evaluated on."""
        seed = self.config.get("seed")
        return None if seed is None else int(seed)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def to_json(self) -> dict:
        """The JSON object, ``format_version`` first; fields not yet known are left out."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        ordered = {"format_version": fields.pop("format_version"), **fields}
        ordered["axes"], ordered["devices"] = list(self.axes), list(self.devices)
        if self.figures is not None:
            ordered["figures"] = list(self.figures)
        return {name: value for name, value in ordered.items() if value is not None}

    @classmethod
    def from_json(cls, value: dict) -> Manifest:
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {name: v for name, v in value.items() if name in known}
        fields.setdefault("status", None)  # a manifest that does not say "complete" is not
        fields["axes"] = tuple(fields.get("axes", ()))
        fields["devices"] = tuple(fields.get("devices", ()))
        if fields.get("figures") is not None:
            fields["figures"] = tuple(fields["figures"])
        return cls(**fields)


def _format_error(folder: Path, found: Any) -> FormatError:
    return FormatError(
        f"{str(folder)!r} holds results in format version {found!r}; this version of study "
        f"reads format {FORMAT_VERSION}: rerun `study run` with --force (or another --out) "
        "to recompute them"
    )


def read_manifest(folder: str | Path, *, required: bool = True) -> Manifest | None:
    """``DIR/manifest.json``, checked to be in a format this version reads.

    Raises FormatError for a manifest of another ``format_version`` or one that is not valid
    JSON, and ConfigError when it is missing and ``required`` (else returns None).
    """
    folder = Path(folder)
    if required and not folder.is_dir():
        raise ConfigError(f"{str(folder)!r}: no such results folder")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"{str(folder)!r}: no {MANIFEST}; not a results folder of `study run`"
            ) from None
        return None
    except (ValueError, UnicodeDecodeError):
        raise _format_error(folder, "unreadable") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise _format_error(folder, found)
    if not isinstance(manifest.get("config"), dict):
        raise _format_error(folder, "unreadable")
    return Manifest.from_json(manifest)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    folder = Path(folder)
    if not _has_marker(folder):
        atomic_write(folder / MARKER, lambda path: path.write_text(MARKER_TEXT))
    return write_json(folder / MANIFEST, manifest.to_json())


def _has_marker(folder: Path) -> bool:
    try:
        return (folder / MARKER).read_text() == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished run in a format we read: manifest and both tables."""
    folder = Path(folder)
    manifest = read_manifest(folder, required=False)
    complete = manifest is not None and manifest.complete
    return complete and (folder / RUNS).exists() and (folder / SUMMARY).exists()


def _finished(folder: str | Path) -> Path:
    """``folder`` as a Path, once checked to hold a complete run in a format we read."""
    folder = Path(folder)
    read_manifest(folder)  # a clear message when there is none, or of another format
    if not is_complete(folder):
        raise ConfigError(
            f"{str(folder)!r}: the run is not finished; run the same `study run` again to resume"
        )
    return folder


def read_runs(folder: str | Path) -> pd.DataFrame:
    """``DIR/runs.parquet`` of a complete run: a row per setting and initialization."""
    return pd.read_parquet(_finished(folder) / RUNS)


def read_runs_of(folders: Sequence[str | Path]) -> pd.DataFrame:
    """The runs of one or several folders; with several, a ``results`` column names each.

    Refuses (ConfigError) a folder given twice, and two folders whose runs share a seed and a
    setting: those are the same initializations, and pooling them would count each twice.
    """
    seen: dict[tuple, int] = {}
    frames = []
    for index, folder in enumerate(folders):
        runs = read_runs(folder)
        seed = read_manifest(folder).seed
        columns = [name for name in SETTING_KEYS if name in runs]
        for setting in runs[columns].drop_duplicates().itertuples(index=False):
            first = seen.setdefault((seed, *setting), index)
            if first != index:
                raise ConfigError(
                    f"{str(folder)!r} and {str(folders[first])!r} hold the same initializations "
                    f"(seed {seed}, a setting in common): comparing them would count each run "
                    "twice; give each results folder once"
                )
        frames.append(runs.assign(results=Path(folder).name or str(folder)))
    if len(frames) == 1:
        return frames[0].drop(columns="results")
    return pd.concat(frames, ignore_index=True)


# Text columns of summary.csv: read as text (an empty one is "", as in runs.parquet, not NaN;
# a target named "1" stays "1").
_TEXT_COLUMNS = (
    *(key.name for key in SCHEMA if key.kind in (str, list) and key.name not in TOP_LEVEL),
    "theory",
    "theory_note",
    "note",
)


def read_summary(folder: str | Path) -> pd.DataFrame:
    """``DIR/summary.csv`` of a complete run: a row per setting (``analysis.summarize``)."""
    path = _finished(folder) / SUMMARY
    if not path.exists():
        raise ConfigError(
            f"{str(folder)!r}: no {SUMMARY}; run the same `study run` again to write it"
        )
    text = dict.fromkeys(_TEXT_COLUMNS, str)
    summary = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=text)
    for name in _TEXT_COLUMNS:
        if name in summary:
            summary[name] = summary[name].fillna("")
    return summary


def split_curves(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(runs without the curve columns, curves)``: the engine's per-initialization curves
    (``curve_*`` columns of arrays) as the long table of ``curves.parquet``, a row per
    (setting, initialization, logged step); None when the runs have no curves."""
    names = [name for name in runs if name.startswith(CURVE_PREFIX)]
    if not names:
        return runs, None
    # Groups of a study may differ: no curves (train.curves off), or fewer layers (a missing
    # column is NaN there); every row has as many points as its steps, NaN where it has none.
    steps = runs[f"{CURVE_PREFIX}step"].map(lambda v: v if isinstance(v, np.ndarray) else [])
    lengths = steps.map(len).to_numpy()
    keys = [name for name in SETTING_KEYS if name in runs] + ["init"]
    long = {name: np.repeat(runs[name].to_numpy(), lengths) for name in keys}
    for name in names:
        parts = [
            cell if isinstance(cell, np.ndarray) else np.full(length, np.nan)
            for cell, length in zip(runs[name], lengths, strict=True)
        ]
        long[name.removeprefix(CURVE_PREFIX)] = np.concatenate(parts) if parts else []
    return runs.drop(columns=names), pd.DataFrame(long)


def read_curves(folder: str | Path) -> pd.DataFrame | None:
    """``DIR/curves.parquet`` of a complete run (None when the run recorded no curves)."""
    path = _finished(folder) / CURVES
    return pd.read_parquet(path) if path.exists() else None


def write_results(
    folder: str | Path, runs: pd.DataFrame, summary: pd.DataFrame, manifest: Manifest
) -> None:
    """Write a finished run: the tables first, the manifest that marks them complete last.
    Curves among the runs' columns go to ``curves.parquet``."""
    folder = Path(folder)
    runs, curves = split_curves(runs)
    if curves is not None:
        write_parquet(folder / CURVES, curves)
    write_parquet(folder / RUNS, runs)
    write_csv(folder / SUMMARY, summary)
    write_manifest(folder, manifest)


# --------------------------------------------------------------------------------------------
# What later commands derive from the results: figures, reports, comparisons.
# --------------------------------------------------------------------------------------------


def figure_files(folder: str | Path, suffix: str = ".png") -> list[Path]:
    """The figures drawn so far, sorted by name."""
    return sorted((Path(folder) / FIGURES).glob(f"*{suffix}"))


def read_figures(folder: str | Path, suffix: str = ".png") -> list[tuple[str, bytes]]:
    """The figures drawn so far as ``(file name, contents)``, sorted by name."""
    return [(path.name, path.read_bytes()) for path in figure_files(folder, suffix)]


def figures_complete(folder: str | Path) -> bool:
    """Whether every figure the folder's manifest lists as drawn is there (none listed: no)."""
    folder = Path(folder)
    manifest = read_manifest(folder, required=False)
    if manifest is None or manifest.figures is None:
        return False
    return all((folder / FIGURES / name).exists() for name in manifest.figures)


def record_figures(folder: str | Path, paths: Sequence[Path]) -> None:
    """List the figures just drawn in the manifest: a rerun then knows they are all there."""
    manifest = read_manifest(folder)
    names = tuple(sorted(Path(p).name for p in paths))
    write_manifest(folder, dataclasses.replace(manifest, figures=names))


def save_figures(
    folder: str | Path, figures: Iterable[tuple[str, Any]], formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save each ``(stem, matplotlib figure)`` as ``DIR/figures/<stem>.<format>``; close it.

    A figure is written under a temporary name and renamed, so a file under its real name is
    always whole.
    """
    import matplotlib.pyplot as plt

    out = Path(folder) / FIGURES
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in figures:
        for suffix in formats:
            path = out / f"{stem}.{suffix}"
            atomic_write(path, functools.partial(_save_figure, figure, suffix))
            paths.append(path)
        plt.close(figure)
    return paths


def _save_figure(figure, suffix: str, path: Path) -> None:
    figure.savefig(path, format=suffix, dpi=FIGURE_DPI)


def write_figure(folder: str | Path, name: str, data: bytes) -> Path:
    """Write a figure's file ``DIR/figures/<name>`` from its bytes (one kept in the cache)."""
    out = Path(folder) / FIGURES
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write(out / name, lambda path: path.write_bytes(data))


# --------------------------------------------------------------------------------------------
# The figure cache: figures drawn before, by the digest of everything they show.
# --------------------------------------------------------------------------------------------

FIGURE_CACHE_BYTES = 256 * 2**20  # beyond this, the least recently used figures go
# The first and last bytes of a whole file, by format: a cut or foreign file is not served.
_WHOLE = {"png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"), "pdf": (b"%PDF-", b"%%EOF")}


def figure_cache() -> Path | None:
    """``cache_root()/figures``, created if need be; None where it cannot be (a read-only home,
    a file in its place): figures are then drawn without the cache."""
    folder = cache_root() / FIGURES
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def cached_figure(cache: Path, name: str) -> bytes | None:
    """The bytes of the figure kept as ``cache/name``, or None if it is not there (or not whole).

    Its modification time is set to now: the pruning removes the least recently used first.
    """
    try:
        data = (cache / name).read_bytes()
    except OSError:
        return None
    head, tail = _WHOLE.get(Path(name).suffix[1:], (b"", b""))
    if not data or not data.startswith(head) or not data.rstrip().endswith(tail):
        return None
    with contextlib.suppress(OSError):
        os.utime(cache / name)
    return data


def keep_figure(cache: Path, name: str, source: Path) -> None:
    """Copy the figure file ``source`` into the cache as ``name``, if the cache takes it
    (atomically: another process may read the same cache)."""
    with contextlib.suppress(OSError):
        atomic_write(cache / name, lambda temporary: shutil.copyfile(source, temporary))


def prune_figure_cache(cache: Path, limit: int = FIGURE_CACHE_BYTES) -> None:
    """Remove the least recently used figures until the cache holds at most ``limit`` bytes."""
    try:
        files = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in os.scandir(cache)]
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size


def write_report(folder: str | Path, markdown: str, page: str) -> tuple[Path, Path]:
    """Write ``DIR/report.md`` and ``DIR/report.html``."""
    folder = Path(folder)
    md_path = atomic_write(folder / "report.md", lambda p: p.write_text(markdown))
    html_path = atomic_write(folder / "report.html", lambda p: p.write_text(page))
    return md_path, html_path


def write_comparison(folder: str | Path, name: str, table: pd.DataFrame) -> Path:
    """Write ``DIR/comparisons/<name>.csv``."""
    out = Path(folder) / COMPARISONS
    out.mkdir(exist_ok=True)
    return write_csv(out / f"{name}.csv", table)


def _is_ours(path: Path) -> bool:
    """Whether ``path`` (in a results folder) is a file that a run of ours made or may replace."""
    name = path.name
    if name == LOCK:  # ours when absent, empty (a run killed while taking it) or a holder record
        return not path.exists() or path.stat().st_size == 0 or bool(_read_holder(path))
    return name in (PARTIAL, MANIFEST, MARKER) or _TEMP_MARK in name


def _has_our_manifest(folder: Path) -> bool:
    """Whether ``folder/manifest.json`` is one of ours (of any format version)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("format_version"), int)


def _check_ours(folder: Path) -> None:
    """Refuse an existing folder that is neither empty (but for our files) nor ours."""
    if not folder.is_dir() or _has_our_manifest(folder) or _has_marker(folder):
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _is_ours(p))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(
            f"--out {str(folder)!r}: not empty ({shown}) and not a results folder of `study run` "
            f"(no {MANIFEST} of ours); nothing in it is touched: give an empty or new folder"
        )


def open_folder(folder: str | Path) -> Path:
    """Check that ``folder`` may hold a run's results, then create it; nothing is made before.

    Raises ConfigError (exit 2, naming ``--out``) for the filesystem root, a
    folder of the study package itself, an existing file, a path the system refuses (too long,
    a symbolic link loop, ...) and an existing folder that is neither empty nor ours, with or
    without ``--force``: files that are not ours are never touched.
    """
    folder = Path(folder)
    package = Path(__file__).resolve().parent
    try:
        where = folder.resolve()
        if where == Path(where.anchor):
            raise ConfigError(f"--out {str(folder)!r}: the filesystem root cannot hold results")
        if where == package or package in where.parents:
            raise ConfigError(f"--out {str(folder)!r}: a folder of the study package itself")
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out {str(folder)!r}: an existing file, not a folder")
        _check_ours(folder)
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop on Python 3.11
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"--out {str(folder)!r}: not a usable folder ({reason})") from None
    return folder


def prepare(folder: Path, identity: dict, force: bool) -> str:
    """Check that ``folder`` may take the run identified by ``identity``; clear it if forced.

    Called with the lock held. ``identity`` holds the manifest entries that must match to
    resume (the resolved ``config`` and the ``data_files`` digests). Returns ``"resume"`` when
    the folder holds (finished or unfinished) results of the same identity, else ``"new"``;
    ``force`` clears earlier results of ours first and always gives ``"new"``.

    Raises FolderError for another config's results or results of an incompatible format,
    unless ``force``; ConfigError for a folder that is not ours (as :func:`open_folder`).
    """
    _check_ours(folder)
    remove_temporaries(folder)
    if not (folder / MANIFEST).exists():
        return "new"
    if force:
        clear(folder)
        return "new"
    try:
        manifest = read_manifest(folder)
    except FormatError as err:
        raise FolderError(str(err)) from None
    recorded = {name: getattr(manifest, name) for name in identity}
    recorded["config"] = _with_new_defaults(recorded.get("config"), identity.get("config"))
    if recorded != identity:
        raise FolderError(
            f"{str(folder)!r} holds results of a different config "
            f"({_first_difference(recorded, identity)}); use another --out, or --force to "
            "replace them"
        )
    return "resume"


def _with_new_defaults(old: dict | None, new: dict | None) -> dict | None:
    """An older run's config with the keys added since filled in where the new config has
    their defaults: such keys change nothing (``Key.in_id_at_default``), so the run is the same."""
    if old is None or new is None:
        return old
    keys = {key.name: key for key in SCHEMA}
    added = {
        name: value
        for name, value in new.items()
        if name not in old
        and name in keys
        and not keys[name].in_id_at_default
        and value == keys[name].default
    }
    return {**old, **added}


def _first_difference(old: dict, new: dict) -> str:
    old_config, new_config = old.get("config") or {}, new.get("config") or {}
    for name in dict.fromkeys([*new_config, *old_config]):
        if old_config.get(name) != new_config.get(name):
            return f"{name}: {old_config.get(name)!r} there, {new_config.get(name)!r} now"
    return "its data files changed"


def clear(folder: Path) -> None:
    """Remove the results and derived files of an earlier run of ours, and nothing else.

    Figures go only when the manifest lists them as ours; the report and the comparisons only
    under the names ``study report`` and ``study compare`` give them.
    """
    try:
        figures = read_manifest(folder).figures or ()
    except FormatError:  # results of another version of study: which figures are ours is unknown
        figures = ()
    ours = [folder / RUNS, folder / CURVES, folder / SUMMARY, folder / "report.md"]
    ours += [folder / "report.html"]
    ours += [folder / FIGURES / name for name in figures]
    ours += sorted((folder / COMPARISONS).glob("*.csv"))
    for path in ours:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    shutil.rmtree(folder / PARTIAL, ignore_errors=True)
    for empty in (folder / FIGURES, folder / COMPARISONS):
        with contextlib.suppress(OSError):
            empty.rmdir()  # only if empty: a file of someone else's stays, with its folder
    (folder / MANIFEST).unlink()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (records which data a run used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Finished groups of an unfinished run.
# --------------------------------------------------------------------------------------------


def partial_path(folder: Path, key: str) -> Path:
    return folder / PARTIAL / f"group-{key}.parquet"


def save_group(folder: Path, key: str, runs: pd.DataFrame, timing: dict) -> None:
    """Record a finished group: its timing first, then its table (whose presence marks it done)."""
    (folder / PARTIAL).mkdir(exist_ok=True)
    path = partial_path(folder, key)
    write_json(path.with_suffix(".json"), timing)
    write_parquet(path, runs)


def remove_partial(folder: Path) -> None:
    """Remove the finished groups of a run once its tables are written."""
    shutil.rmtree(folder / PARTIAL, ignore_errors=True)


def load_group(folder: Path, key: str, n_rows: int) -> tuple[pd.DataFrame, dict] | None:
    """A finished group's ``(runs, timing)``, or None if it is not (validly) there."""
    path = partial_path(folder, key)
    if not path.exists():
        return None
    try:
        runs = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - an unreadable file is recomputed, whatever the reason
        return None
    if len(runs) != n_rows:
        return None
    try:
        timing = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        timing = {}
    return runs, timing
