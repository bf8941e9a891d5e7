"""Smoke tests: every reproduction script runs end to end at its --tiny size.

Each script is run in-process (``main(["--tiny", "--out", tmp])``) so that JAX starts once; the
tiny sizes compile one structural group per config. Besides the files, each test checks a
property of the output that a broken script or engine would violate.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ROOT

SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield lambda name: importlib.import_module(f"reproduce_{name}")
    finally:
        sys.path.remove(str(SCRIPTS))


def run_tiny(scripts, name: str, out: Path) -> Path:
    assert scripts(name).main(["--tiny", "--out", str(out)]) == 0
    assert (out / "summary.csv").exists()
    figures = sorted((out / "figures").glob("*.png"))
    assert figures, f"{name}: no figure written"
    assert all(path.stat().st_size > 1000 for path in figures)
    return out


def test_question(scripts, tmp_path):
    out = run_tiny(scripts, "question", tmp_path / "question")
    revival = pd.read_csv(out / "revival.csv")
    pooled = revival[revival["train.optimizer"] == "all"].iloc[0]
    assert pooled["n_dead_init"] > 0
    assert pooled["n_revived"] == 0  # a dead ReLU network gets no gradient: it cannot revive
    dead = pd.read_csv(out / "dead_networks.csv")
    # A dead network's output is constant: it predicts one class for every input.
    assert np.allclose(dead["share_all_positive"] + dead["share_all_negative"], 1.0)


def test_two_layers(scripts, tmp_path):
    out = run_tiny(scripts, "two_layers", tmp_path / "two_layers")
    table = pd.read_csv(out / "summary.csv")
    assert list(table["model.width"]) == [3]
    assert table["bound_unit_2^-n"].iloc[0] == pytest.approx(1 / 8)
    assert (table["p_unit_l2_dead_init_lo"] <= table["p_unit_l2_dead_init"]).all()


def test_lu2019(scripts, tmp_path):
    out = run_tiny(scripts, "lu2019", tmp_path / "lu2019")
    born = pd.read_csv(out / "summary.csv")
    assert sorted(born["depth"].unique()) == [1, 2, 3]
    # Dead within the first L layers implies dead within the first L + 1.
    for _, curve in born.groupby(["model.init", "data.offset", "model.width"]):
        assert np.all(np.diff(curve.sort_values("depth")["k"]) >= 0)
    collapse = pd.read_csv(out / "collapse.csv")
    assert set(collapse["event"]) >= {"dead_init", "dead_end", "near_constant"}


def test_arnekvist2020(scripts, tmp_path):
    out = run_tiny(scripts, "arnekvist2020", tmp_path / "arnekvist2020")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 16  # 4 momenta x 4 target scales, one shift
    assert table["unit_dead_end"].between(0, 1).all()


def test_sokar2023(scripts, tmp_path):
    out = run_tiny(scripts, "sokar2023", tmp_path / "sokar2023")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 3  # relu x 3 thresholds
    # For ReLU, a unit is 0-dormant exactly when its output is 0 on every input: dead.
    at_zero = table[table["train.dormant_tau"] == 0.0].iloc[0]
    assert at_zero["dormant_end"] == pytest.approx(at_zero["dead_end"])
    # A dead ReLU unit outputs 0, so it is tau-dormant for every tau >= 0.
    assert (table["dormant_end"] >= table["dead_end"] - 1e-12).all()


def test_remedies(scripts, tmp_path):
    out = run_tiny(scripts, "remedies", tmp_path / "remedies")
    table = pd.read_csv(out / "summary.csv")
    ran = table[table["n_valid"].notna()]
    assert {"baseline", "bias 0.01", "bias 0.1", "learning rate / 10"} == set(ran["remedy"])
    # The baseline is not compared with itself; every other row is, and Holm only raises p.
    assert ran.loc[ran["remedy"] == "baseline", "p_value"].isna().all()
    compared = ran[ran["remedy"] != "baseline"]
    assert (compared["p_holm"] >= compared["p_value"] - 1e-12).all()
    assert (
        (compared["diff_p_dead_end_lo"] <= compared["diff_p_dead_end"])
        & (compared["diff_p_dead_end"] <= compared["diff_p_dead_end_hi"])
    ).all()
    # Which way networks came back: none of these remedies intervenes, so only by training.
    assert (ran["k_revived_by_intervention"] == 0).all()
    assert (ran["k_revived_by_training"] == ran["k_revived"]).all()
    # A remedy the engine refuses is recorded with its reason, not run: layer norm at width 1.
    refused = table.loc[table["remedy"] == "layer norm"].iloc[0]
    assert np.isnan(refused["n_valid"])
    assert refused["note"].startswith("refused by the engine") and "width" in refused["note"]
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == 2 and claims["verdict"].str.len().gt(0).all()
    assert pd.read_csv(out / "lr_claim.csv")["dead_unit_share"].between(0, 1).all()


def test_remedies_plan(scripts):
    """One `study run` per structural combination; numeric remedies share the baseline's."""
    remedies = scripts("remedies")
    tasks = {task.name: task for task in remedies.TASKS}
    plan = remedies.plan(tasks["question"], remedies.REMEDIES, remedies.PENDING)
    # baseline, standardized, leaky, ELU, He, RAI, SGD, flip, batch norm, ReDo, shrink, L2-init
    assert len(plan.groups) == 12
    assert "refused by the engine" in plan.notes["layer norm"]  # width 1
    redo, _ = plan.members["ReDo"]
    assert redo.structure == {"train.intervention": "redo", "train.intervention_every": 100}
    leaky, _ = plan.members["leaky ReLU 0.1"]
    assert leaky is plan.members["leaky ReLU 0.01"][0]
    assert "model.leaky_slope=[0.01, 0.1]" in leaky.overrides()
    baseline, _ = plan.members["baseline"]
    for name in ("bias 0.01", "bias 0.1", "learning rate / 10"):
        assert plan.members[name][0] is baseline
    lu = remedies.plan(tasks["lu_abs"], remedies.REMEDIES, remedies.PENDING)
    assert lu.notes["He init"] == "same as the baseline for this task"  # already He there
    assert "layer norm" in lu.members  # width 2
    for task in remedies.TASKS:  # the engine takes every intervention on every task
        members = remedies.plan(task, remedies.REMEDIES, remedies.PENDING).members
        assert {"ReDo", "shrink and perturb", "L2-init"} <= set(members)


@pytest.mark.slow  # three stream compiles, about a minute on 2 cores; the engine's stream tests
# (tests/test_stream_engine.py) run by default
def test_dohare2024(scripts, tmp_path):
    out = run_tiny(scripts, "dohare2024", tmp_path / "dohare2024")
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["learner"]) == {"relu", "tanh", "linear"}
    curves = pd.read_csv(out / "curves.csv")
    assert (curves["n_runs"] == 8).all() and curves["step"].max() == 2000
    assert {p.name for p in (out / "figures").iterdir()} == {
        "error_lr0.01.png",
        "dead_share_lr0.01.png",
        "learning_rates.png",
    }
