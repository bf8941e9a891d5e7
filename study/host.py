"""What the machine offers study: its CPU cores, and the folder of study's caches.

JAX-free, so that the engine (devices), the figures (helper processes) and the results layer
(the figure cache) can all ask without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path


def usable_cpus() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cache_root() -> Path:
    """The folder of study's caches: ``STUDY_CACHE_DIR`` when set, else
    ``${XDG_CACHE_HOME:-~/.cache}/study``; figures are kept in its ``figures/``
    (:mod:`study.results.figure_cache`), compiled programs in its ``jax/``
    (:func:`study.runtime.compile_cache_dir`)."""
    if os.environ.get("STUDY_CACHE_DIR"):
        return Path(os.environ["STUDY_CACHE_DIR"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home, "study")
