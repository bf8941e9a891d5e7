"""Shared test setup: strict JAX (rank and dtype promotion), a headless matplotlib, figures
closed after each test, a temporary persistent compilation cache shared by every process of the
session (pytest-xdist's workers too, with ``-n``), and an empty figure cache per test. (A test
that counts compiles makes its own ``study.engine.Engine``; float64 is scoped by
``study.runtime.precision``, so no test leaves JAX's settings changed for the next.)"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# study run keeps compiled programs in the user's cache by default; the tests (and the processes
# they start) use a temporary one instead, removed at the end. Under pytest-xdist the controller
# makes it and removes it; its workers inherit it, so the whole suite shares one cache.
if "PYTEST_XDIST_WORKER" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="study-tests-jax-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
# The same for the cache of figures (study.host.cache_root); each test gets an empty one of its
# own in it (_empty_figure_cache).
STUDY_CACHE_DIR = os.environ["STUDY_CACHE_DIR"] = tempfile.mkdtemp(prefix="study-tests-cache-")
atexit.register(shutil.rmtree, STUDY_CACHE_DIR, ignore_errors=True)

# study run shows the CPU as one JAX device per core; the tests run on one device, as the test
# process itself does, so that their runs share compiled programs (tests/test_engine.py checks
# the default, tests/test_reliability.py that the device count does not change the results).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"
    os.environ["XLA_FLAGS"] = flags.strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from study import runtime  # noqa: E402

# No implicit rank promotion, nor promotion across dtype kinds (bool with int, int with float):
# the code says what it casts. Subprocesses the tests start run with JAX's standard promotion.
runtime.strict_promotion()


@pytest.fixture(autouse=True)
def _empty_figure_cache(monkeypatch):
    """An empty figure cache for each test (and the processes it starts): a test that draws
    figures must not pass or fail by what earlier tests happened to draw."""
    monkeypatch.setenv("STUDY_CACHE_DIR", tempfile.mkdtemp(dir=STUDY_CACHE_DIR))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def standard_dtype_promotion():
    """JAX's standard dtype promotion for one test, for code that calls optax's Adam.

    optax raises a float decay rate to an int32 step count (``1 - decay**count`` in
    ``optax.tree.bias_correction``), which strict promotion refuses; we cannot change optax.
    """
    with jax.numpy_dtype_promotion("standard"):
        yield
