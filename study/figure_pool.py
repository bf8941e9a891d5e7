"""Drawing figure plans in helper processes, so that a folder's figures are drawn several at once.

A helper is a fresh ``python -c`` that reads its plans from a pickle file, draws and saves them
(:func:`study.results.save_figures`) and prints the paths written: :func:`start_helper`, then
:func:`finish_helper` for its paths (its error, if it failed), and :func:`stop_helper` always,
which kills it if it still runs. Not multiprocessing, whose spawned children import the caller's
main module again (a user's script, or ``python -m study``), and not a fork of a process running
JAX. Ctrl-C is for the process that started the helpers: they ignore it.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from study import results

if TYPE_CHECKING:
    from study.figure_plans import FigurePlan

# A helper process takes ~1.5 s to start (Python, pandas, matplotlib): about 3 figures' drawing.
FIGURES_PER_PROCESS = 8

_HELPER_CODE = "import sys; from study.figure_pool import _helper_main; _helper_main(sys.argv[1])"


class _Helper(NamedTuple):
    process: subprocess.Popen
    plans_file: Path


def start_helper(folder, plans: list[FigurePlan], formats: Sequence[str]) -> _Helper:
    handle, name = tempfile.mkstemp(prefix="study-figures-", suffix=".pickle")
    with os.fdopen(handle, "wb") as file:
        pickle.dump((str(folder), plans, tuple(formats)), file)
    package_root = str(Path(__file__).resolve().parents[1])  # where this ``study`` lives
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-c", _HELPER_CODE, name],
        env={**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return _Helper(process, Path(name))


def finish_helper(helper: _Helper) -> list[Path]:
    """The paths a helper wrote, once it is done; its error if it failed."""
    out, err = helper.process.communicate()
    if helper.process.returncode != 0:
        lines = err.strip().splitlines() or [f"exit status {helper.process.returncode}"]
        raise RuntimeError(f"drawing figures in another process failed: {lines[-1]}")
    return [Path(line) for line in out.splitlines()]


def stop_helper(helper: _Helper) -> None:
    if helper.process.poll() is None:  # this process failed or was interrupted first
        helper.process.kill()
        helper.process.communicate()
    helper.plans_file.unlink(missing_ok=True)


def _helper_main(plans_file: str) -> None:
    """A helper process: draw and save the pickled plans, print the paths written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the process that started it
    with open(plans_file, "rb") as file:
        folder, plans, formats = pickle.load(file)
    os.unlink(plans_file)
    for path in results.save_figures(folder, ((p.stem, p.figure()) for p in plans), formats):
        print(path, flush=True)
