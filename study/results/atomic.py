"""Atomic files: a file under its real name is always whole.

Every file is written to a temporary name in its own folder (``.<name>.tmp-<pid>``) and renamed
into place (``os.replace`` is atomic on POSIX), so a reader never sees half a file and a killed
command never leaves one behind under a real name; :func:`remove_temporaries` clears what a
killed command left under a temporary one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from study.results.layout import COMPARISONS, FIGURES, PARTIAL

# In the name of every temporary file, and of no other file of a results folder.
TEMP_MARK = ".tmp-"


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
    temporary = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
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
    """Write ``value`` as indented JSON (values JSON lacks as their ``str``), atomically."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as parquet, without its index, atomically."""
    return atomic_write(path, lambda p: frame.to_parquet(p, index=False))


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV, without its index, atomically."""
    return atomic_write(path, lambda p: frame.to_csv(p, index=False))


def remove_temporaries(folder: Path) -> None:
    """Delete temporary files that a killed command left in ``folder`` and its subfolders."""
    for where in (folder, folder / PARTIAL, folder / FIGURES, folder / COMPARISONS):
        if where.is_dir():
            for path in where.glob(f".*{TEMP_MARK}*"):
                with contextlib.suppress(OSError):
                    path.unlink()
