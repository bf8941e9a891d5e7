"""The module layout holds: reading results never starts JAX, and study/ imports no cycle."""

import ast
import graphlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, synthetic_runs, write_results_folder

PACKAGE = ROOT / "study"

# Runs commands one after another in one fresh interpreter and lists, after each, the JAX
# modules loaded so far (one interpreter for all: each start costs more than a command).
WITHOUT_JAX = """
import json, sys
from study.cli import main
for argv in json.loads(sys.argv[1]):
    status = main(argv)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("jax", "jaxlib", "optax"))
    print(argv[0], "exit status", status, "| JAX modules loaded:", loaded[:5])
    if status != 0 or loaded:
        sys.exit(1)
"""


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory):
    runs = synthetic_runs(0.3, 0.1, n=100, **{"data.offset": [0.0, 2.0]})
    return write_results_folder(tmp_path_factory.mktemp("results") / "synthetic", runs)


def test_reading_results_does_not_import_jax(results_folder):
    """plot, report, compare and plan read tables: they must start in a second, with no
    accelerator (each checked as soon as it returns, so the output names the first that
    loaded JAX)."""
    commands = [
        ["plot"],
        ["report"],
        ["compare", "--by", "data.offset"],
        ["plan", "--by", "data.offset"],
    ]
    argvs = [[command[0], str(results_folder), *command[1:]] for command in commands]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_JAX, json.dumps(argvs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert [line.split()[0] for line in done.stdout.splitlines() if "exit status" in line] == [
        command[0] for command in commands
    ]


def _module_name(path: Path) -> str:
    """``study/results/lock.py`` -> ``study.results.lock``; a package by its ``__init__.py``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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
            if node.level:  # a relative import: from the package that holds ``path``
                package = _module_name(path).split(".")
                package = package if path.stem == "__init__" else package[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + [base]).rstrip(".")
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
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(path, modules) for path in paths}


def test_the_import_graph_of_study_has_no_cycle():
    graph = _import_graph()
    # the parse sees module-level and function-level imports (so a pass is not a parse that
    # found nothing) ...
    assert {"study.train", "study.config", "study.distributed"} <= graph["study.engine"]
    # the remedies sit below the training loop that calls them
    assert "study.remedies" in graph["study.train"]
    assert "study.train" not in graph["study.remedies"]
    assert {"study.plots", "study.report", "study.bench"} <= graph["study.cli"]
    assert "study.plots" in graph["study.report"]  # inside write_report
    # the report's plasticity section reads analysis only; the report and the figures read it
    assert graph["study.predictors"] == {"study.analysis"}
    assert (
        "study.predictors" in graph["study.report"]
        and "study.predictors" in graph["study.figure_plans"]
    )
    # ... and the modules split out of plots, bench and distributed sit in their layers: each
    # uses the one below it, never the one above (the figures: layout < drawing < plans <
    # plots; the supervisor above the collectives; the SCR workload above the timing)
    figures = ["study.figure_layout", "study.figure_drawing", "study.figure_plans", "study.plots"]
    for below, above in itertools.pairwise(figures):
        assert below in graph[above] and above not in graph[below]
    assert "study.figure_pool" in graph["study.plots"]
    assert not graph["study.figure_layout"]
    assert "study.distributed" in graph["study.supervisor"]
    assert "study.supervisor" not in graph["study.distributed"]
    assert {"study.supervisor", "study.bench_scr"} <= graph["study.cli"]
    assert "study.reference" in graph["study.bench"] and "study.bench" in graph["study.bench_scr"]
    # ... and the check finds a cycle when there is one
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({**graph, "study.errors": {"study.cli"}}).static_order())
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle in study/: {' -> '.join(err.args[1])}")


# What the modules of the results package may import: the study modules below them (no JAX
# among them) and each other, never their own package (its __init__ imports them all).
RESULTS_LAYER = {"study.config", "study.errors", "study.host"}
RESULTS_MODULES = {
    "study.results.layout": set(),
    "study.results.atomic": {"study.results.layout"},
    "study.results.lock": {"study.results.layout"},
    "study.results.manifest": {"study.results.atomic", "study.results.layout"},
    "study.results.tables": {
        "study.results.atomic",
        "study.results.layout",
        "study.results.manifest",
    },
    "study.results.partial": {"study.results.atomic", "study.results.layout"},
    "study.results.ownership": {
        "study.results.atomic",
        "study.results.layout",
        "study.results.lock",
        "study.results.manifest",
        "study.results.partial",
    },
    "study.results.integrity": {"study.results.layout", "study.results.manifest"},
    "study.results.folder": {
        "study.results.atomic",
        "study.results.integrity",
        "study.results.layout",
        "study.results.manifest",
        "study.results.tables",
    },
    "study.results.figure_cache": {"study.results.atomic", "study.results.layout"},
}


def test_the_results_package_is_layered():
    """Each module of study/results imports only what it is listed with (and config, errors,
    host): a new module, or a new dependency between them, is a decision made here."""
    graph = _import_graph()
    package = {name for name in graph if name.startswith("study.results.")}
    assert package == set(RESULTS_MODULES)
    assert graph["study.results"] <= set(RESULTS_MODULES) | RESULTS_LAYER
    for name, allowed in RESULTS_MODULES.items():
        assert graph[name] - RESULTS_LAYER <= allowed, name


# What changing one of JAX's process-wide settings looks like in study's source.
SETTING_JAX = ("jax.config.update", "jax.enable_x64", 'environ["XLA_FLAGS"] =')


def test_only_the_runtime_changes_jax_settings():
    """JAX's process-wide settings have one owner, study.runtime, which stands below every
    module that computes: it imports none of study's JAX modules."""
    graph = _import_graph()
    assert graph["study.runtime"] <= {"study.host", "study.errors", "study.program_cache"}
    assert graph["study.program_cache"] == set()
    assert "study.runtime" in graph["study.engine"] and "study.runtime" in graph["study.cli"]
    changers = {
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if any(setting in path.read_text() for setting in SETTING_JAX)
    }
    assert changers == {"study.runtime"}


# A function this long does several things; split it (docs/architecture.md, STYLE.md).
MAX_FUNCTION_LINES = 59


def test_no_function_of_60_lines_or_more():
    """Every function of study/ and scripts/ reads in one screen: fewer than 60 lines from its
    ``def`` to its last line."""
    too_long = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {lines}")
    assert not too_long, too_long
