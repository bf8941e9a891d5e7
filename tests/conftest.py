"""Shared test setup: strict JAX, a headless matplotlib, figures closed after each test, and
empty compile caches for the tests that count compiles."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def fresh_compile_caches():
    """Empty every cache of compiled programs, so a test that counts compiles sees only its own.

    Without it such a test passes or fails by what earlier tests happened to compile.
    """
    from study import engine, train

    engine._EXECUTABLES.clear()
    train.make_train.cache_clear()
    jax.clear_caches()
