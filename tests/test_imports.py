"""The module layout holds: reading results never starts JAX, and study/ imports no cycle."""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, synthetic_runs, write_results_folder

PACKAGE = ROOT / "study"

# Runs one command in a fresh interpreter and lists the JAX modules it loaded on the way.
WITHOUT_JAX = """
import sys
from study.cli import main
status = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("jax", "jaxlib", "optax"))
print("exit status", status, "| JAX modules loaded:", loaded[:5])
sys.exit(0 if status == 0 and not loaded else 1)
"""


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory):
    runs = synthetic_runs(0.3, 0.1, n=100, **{"data.offset": [0.0, 2.0]})
    return write_results_folder(tmp_path_factory.mktemp("results") / "synthetic", runs)


@pytest.mark.parametrize(
    "command", [["plot"], ["report"], ["compare", "--by", "data.offset"]], ids=lambda c: c[0]
)
def test_reading_results_does_not_import_jax(results_folder, command):
    """plot, report and compare read tables: they must start in a second, with no accelerator."""
    argv = [command[0], str(results_folder), *command[1:]]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_JAX, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _module_name(path: Path) -> str:
    return "study" if path.stem == "__init__" else f"study.{path.stem}"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The study modules that ``path`` imports, at module level or inside a function.

    ``from study import x`` is an edge to ``study.x`` when x is a module, else to the package
    (``study/__init__.py``). Imports by ``importlib`` (the package's lazy names) are not seen.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import, from inside the package
                base = f"study.{base}".rstrip(".")
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:  # import study.config.x -> study.config
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(_module_name(path))
    return found


def _import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.glob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(path, modules) for path in paths}


def test_the_import_graph_of_study_has_no_cycle():
    graph = _import_graph()
    # the parse sees module-level and function-level imports (so a pass is not a parse that
    # found nothing) ...
    assert {"study.train", "study.config", "study.distributed"} <= graph["study.engine"]
    assert {"study.plots", "study.report", "study.bench"} <= graph["study.cli"]
    assert "study.plots" in graph["study.report"]  # inside write_report
    # ... and the check finds a cycle when there is one
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({**graph, "study.errors": {"study.cli"}}).static_order())
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle in study/: {' -> '.join(err.args[1])}")
