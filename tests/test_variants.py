"""Variants: ``[variants.NAME]`` tables of overrides, each run at every point of the base grid.

Resolution (no training): settings, names, groups, the resolved config, ``--set``; every bad
input refused with one line naming the variant, exit 2, nothing written; then one tiny study
with two variants through ``study run``, its tables read back, and a resume with a changed
variant refused.
"""

import dataclasses
import json
import tomllib

import pandas as pd
import pytest

from study import analysis, cli, config, engine, figure_plans, results, runner
from study.config import load_study
from study.errors import ConfigError
from tests.helpers import VALID, assert_refused, run_cli, tiny_config

SLOW = {"train": {"learning_rate": 0.001}}  # numeric: shares the base config's programs
SGD = {"train": {"optimizer": "sgd"}}  # structural: groups of its own


def grid_config(**variants) -> dict:
    """A 2 x 2 grid (width, offset) with the given variants."""
    base = {"model": {"width": [1, 2]}, "data": {"offset": [0.0, 2.0]}, "train": {"steps": 5}}
    return {**base, "variants": variants} if variants else base


# --------------------------------------------------------------------------------------------
# Resolution.
# --------------------------------------------------------------------------------------------


def test_every_variant_runs_at_every_point_of_the_grid():
    study = load_study(grid_config(slow=SLOW, sgd=SGD))
    assert study.variants == ("baseline", "slow", "sgd") and study.reference == "baseline"
    assert len(study.settings) == (2 + 1) * 4
    base, slow, sgd = (study.settings[i : i + 4] for i in (0, 4, 8))
    assert {s.variant for s in base} == {"baseline"} and {s.variant for s in sgd} == {"sgd"}
    for b, s, g in zip(base, slow, sgd, strict=True):
        swept = [(v["model.width"], v["data.offset"]) for v in (b.as_dict, s.as_dict, g.as_dict)]
        assert len(set(swept)) == 1  # the same grid point
        assert s.as_dict == {**b.as_dict, "train.learning_rate": 0.001}
        assert g.as_dict == {**b.as_dict, "train.optimizer": "sgd"}
    # the base config alone resolves to the baseline's values, without a variant
    alone = load_study(grid_config())
    assert [s.values for s in alone.settings] == [s.values for s in base]
    assert {s.variant for s in alone.settings} == {""} and alone.variants == ()
    assert alone.config == {k: v for k, v in study.config.items() if k not in _VARIANT_ENTRIES}


_VARIANT_ENTRIES = ("reference", "variants")


def test_the_variant_name_is_not_in_the_draws():
    """A setting's id (and so its networks) follows from its values: renaming a variant, or
    the base config, changes no id; the base config's settings have their ids without variants."""
    study = load_study(grid_config(slow=SLOW))
    renamed = load_study({**grid_config(quick=SLOW), "reference": "adam"})
    assert renamed.variants == ("adam", "quick")
    assert [s.setting_id for s in study.settings] == [s.setting_id for s in renamed.settings]
    alone = load_study(grid_config())
    assert [s.setting_id for s in alone.settings] == [s.setting_id for s in study.settings[:4]]


def test_dotted_keys_and_nested_tables_are_the_same_variant(tmp_path):
    dotted = "[train]\nsteps = 5\n[variants.slow]\ntrain.learning_rate = 0.001\nmodel.width = 3\n"
    nested = (
        "[train]\nsteps = 5\n[variants.slow.train]\nlearning_rate = 0.001\n"
        "[variants.slow.model]\nwidth = 3\n"
    )
    assert tomllib.loads(dotted) == tomllib.loads(nested)
    studies = []
    for name, text in (("dotted", dotted), ("nested", nested)):
        (tmp_path / f"{name}.toml").write_text(text)
        studies.append(load_study(tmp_path / f"{name}.toml"))
    assert studies[0] == studies[1]
    assert studies[0].settings[1].structure.width == 3


def test_reference_names_the_base_config():
    study = load_study({**grid_config(slow=SLOW), "reference": "adam"})
    assert study.variants == ("adam", "slow") and study.reference == "adam"
    assert [s.variant for s in study.settings] == ["adam"] * 4 + ["slow"] * 4
    assert study.config["reference"] == "adam"


def test_variants_differing_in_numbers_share_the_base_configs_programs():
    groups = load_study(grid_config(slow=SLOW, sgd=SGD)).groups()
    assert [[s.variant for s in group] for group in groups.values()] == [
        ["baseline", "baseline", "slow", "slow"],  # width 1: both offsets of each
        ["baseline", "baseline", "slow", "slow"],  # width 2
        ["sgd", "sgd"],
        ["sgd", "sgd"],
    ]
    labels = [runner.group_label(s, ("model.width",), group) for s, group in groups.items()]
    assert labels == [
        "width=1 variant=baseline,slow",
        "width=2 variant=baseline,slow",
        "width=1 variant=sgd",
        "width=2 variant=sgd",
    ]


def test_the_resolved_config_keeps_each_variants_resolved_overrides():
    """A derived value that a variant changes is among its overrides (model.bias_scale follows
    model.init_range); the config survives a trip through JSON unchanged (resume compares it)."""
    study = load_study(grid_config(wide={"model": {"init_range": 0.5}}, sgd=SGD))
    assert study.config["variants"] == {
        "wide": {"model.init_range": 0.5, "model.bias_scale": 0.5},
        "sgd": {"train.optimizer": "sgd"},
    }
    assert json.loads(json.dumps(study.config)) == study.config


def test_set_overrides_a_variant_adds_one_and_names_the_reference():
    study = load_study(
        grid_config(slow=SLOW),
        overrides=[
            "variants.slow.train.learning_rate=0.002",
            "variants.big.model.depth=2",
            "reference=adam",
        ],
    )
    assert study.variants == ("adam", "slow", "big")
    assert study.config["variants"] == {
        "slow": {"train.learning_rate": 0.002},
        "big": {"model.depth": 2},
    }


def test_make_setting_and_a_config_without_variants_have_no_variant():
    assert config.make_setting().variant == ""
    assert analysis.setting_columns(pd.DataFrame(columns=["model.width", "init"])) == [
        "model.width"
    ]
    assert analysis.setting_columns(pd.DataFrame(columns=["model.width", "variant"])) == [
        "variant",
        "model.width",
    ]


# --------------------------------------------------------------------------------------------
# Bad input: one line naming the variant (and key), exit 2, nothing written.
# --------------------------------------------------------------------------------------------

LR = {"train": {"learning_rate": 0.1}}
BAD_VARIANTS = [
    # (the config's changes to VALID, fragments the message must contain)
    ({"variants": {"slow": {"train": {"lr": 0.1}}}}, ("[variants.slow]", "'train.lr'", "allowed:")),
    ({"variants": {"slow": {"optim": {"lr": 0.1}}}}, ("[variants.slow]", "[optim]", "[train]")),
    ({"variants": {"slow": {"seed": 1}}}, ("[variants.slow]", "seed", "top-level")),
    ({"variants": {"slow": {"n_inits": 9}}}, ("[variants.slow]", "n_inits", "top-level")),
    ({"variants": {"slow": {"name": "x"}}}, ("[variants.slow]", "name", "top-level")),
    ({"variants": {"slow": {"reference": "x"}}}, ("[variants.slow]", "reference", "top-level")),
    (
        {"variants": {"slow": {"train": {"learning_rate": 0.01}}}},
        ("[variants.slow]", "train.learning_rate = 0.01", "identical to the base config"),
    ),
    (  # the derived value, once resolved
        {"variants": {"slow": {"model": {"bias_scale": 0.05}}}},
        ("[variants.slow]", "model.bias_scale", "identical to the base config ('baseline')"),
    ),
    (
        {"variants": {"a": LR, "b": LR}},
        ("[variants.b]", "train.learning_rate = 0.1", "identical to [variants.a]"),
    ),
    (
        {"model": {"width": [1, 2]}, "variants": {"wide": {"model": {"width": 3}}}},
        ("[variants.wide]", "model.width = 3", "sweep axis"),
    ),
    (
        {"variants": {"slow": {"train": {"learning_rate": [0.1, 0.2]}}}},
        ("[variants.slow]", "train.learning_rate = [0.1, 0.2]", "single values"),
    ),
    (
        {"variants": {"slow": {"train": {"learning_rate": -1}}}},
        ("[variants.slow]", "train.learning_rate = -1", ">= 0"),
    ),
    (
        {"variants": {"slow": {"train": {"log_every": 8}}}},
        ("[variants.slow]", "train.log_every = 8", "larger than train.steps = 4"),
    ),
    ({"variants": {"slow": {}}}, ("[variants.slow]", "sets no key")),
    ({"variants": {"": LR}}, ("variant name ''", "starts with a letter")),
    ({"variants": {"a b": LR}}, ("variant name 'a b'", "letters, digits")),
    ({"variants": {"baseline": LR}}, ("[variants.baseline]", "base config", "another name")),
    (
        {"reference": "adam", "variants": {"adam": LR}},
        ("[variants.adam]", "reference = 'adam'", "another name"),
    ),
    ({"reference": "a/b", "variants": {"a": LR}}, ("reference = 'a/b'", "starts with a letter")),
    ({"reference": "adam"}, ("reference = 'adam'", "no [variants.NAME] table")),
    ({"variants": 3}, ("variants = 3", "tables of overrides")),
    ({"variants": {"slow": 3}}, ("variants.slow = 3", "a table of overrides")),
]


@pytest.mark.parametrize("changes,fragments", BAD_VARIANTS, ids=lambda v: str(v)[:40])
def test_a_bad_variant_is_refused_with_one_line_naming_it(tmp_path, capsys, changes, fragments):
    assert_refused(run_cli(tmp_path, {**VALID, **changes}), capsys, tmp_path, *fragments)


def test_every_top_level_key_is_refused_in_a_variant():
    """(``pairing`` too, once it is a key: the refusal follows config.TOP_LEVEL.)"""
    for name in config.TOP_LEVEL:
        with pytest.raises(ConfigError, match=rf"^\[variants.v\] {name}: a top-level key"):
            load_study({**VALID, "variants": {"v": {name: config.KEYS[name].default}}})


@pytest.mark.parametrize(
    "override,fragments",
    [
        ("variants.slow=1", ("--set variants.slow", "variants.NAME.KEY=VALUE")),
        ("variants.slow.train.lr=1", ("[variants.slow]", "'train.lr'")),
        ("variants.slow.seed=1", ("[variants.slow]", "seed", "top-level")),
        ("reference=adam", ("reference = 'adam'", "no [variants.NAME] table")),
    ],
)
def test_a_bad_variant_override_is_refused(tmp_path, capsys, override, fragments):
    code = run_cli(tmp_path, VALID, extra=["--set", override])
    assert_refused(code, capsys, tmp_path, *fragments)


# --------------------------------------------------------------------------------------------
# A tiny study with two variants, through `study run`.
# --------------------------------------------------------------------------------------------

# Two grid points (offsets), a numeric and a structural variant: two compiled groups.
TWO_VARIANTS = {
    **tiny_config(n_inits=64, model__width=2, model__init_range=0.5, train__curves=True),
    "variants": {"slow": SLOW, "sgd": SGD},
}


@pytest.fixture(scope="module")
def variant_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    assert run_cli(folder, TWO_VARIANTS) == 0
    return folder


def test_runs_summary_and_curves_have_a_variant_column(variant_run):
    out = variant_run / "out"
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 3 * 2 * 64 and list(runs.columns[:2]) == ["variant", "data.kind"]
    assert list(runs["variant"].iloc[::64]) == ["baseline"] * 2 + ["slow"] * 2 + ["sgd"] * 2
    assert list(runs["data.offset"].iloc[::64]) == [0.0, 2.0] * 3  # each variant's grid
    assert (runs.groupby("variant")["train.learning_rate"].unique().map(list)).to_dict() == {
        "baseline": [0.01],
        "sgd": [0.01],
        "slow": [0.001],
    }
    # the rows are those of the same settings run without a variant (no recompile: the same
    # structure and chunk shape as the run's first group)
    study = load_study(TWO_VARIANTS)
    unlabelled = [dataclasses.replace(s, variant="") for s in study.settings[:4]]
    alone = engine.simulate(unlabelled, n_inits=64, seed=study.seed)
    pd.testing.assert_frame_equal(runs.iloc[: 4 * 64].drop(columns="variant"), alone)

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 * 2 and summary.columns[0] == "variant"
    assert list(summary["variant"]) == ["baseline"] * 2 + ["sgd"] * 2 + ["slow"] * 2  # sorted
    assert (summary["n_inits"] == 64).all()
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns[:2]) == ["variant", "data.kind"]
    assert curves.groupby("variant").size().to_dict() == dict.fromkeys(
        ("baseline", "sgd", "slow"),
        2 * 64 * 4,  # logged steps 0, 4, 8, 12
    )

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["reference"] == "baseline"
    assert manifest["config"]["variants"] == {
        "slow": {"train.learning_rate": 0.001},
        "sgd": {"train.optimizer": "sgd"},
    }
    labels = [group["label"] for group in manifest["timings"]["groups"]]
    assert labels == ["variant=baseline,slow", "variant=sgd"]


def test_a_folder_with_variants_reads_back_into_report_and_figures(variant_run, capsys):
    out = variant_run / "out"
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "p_dead_vs_offset__variant-slow.png" in figures, figures
    # the variants are the lines of the curves and survival figures
    folder = results.ResultsFolder.open(out)
    plans = figure_plans.figure_plans(folder.summary(), folder.runs(), folder.curves())
    hues = {plan.stem: plan.arguments.get("hue") for plan in plans}
    assert hues["survival"] == hues["curves__offset-2"] == "variant", hues
    assert {"survival.png", "curves__offset-2.png"} <= set(figures)
    assert cli.main(["report", str(out)]) == 0
    assert "| variant |" in (out / "report.md").read_text()
    assert cli.main(["compare", str(out), "--by", "variant"]) == 0
    compared = pd.read_csv(out / "comparisons" / "variant.csv")
    assert set(compared["level_a"]) | set(compared["level_b"]) == {"baseline", "sgd", "slow"}
    capsys.readouterr()


def test_a_resume_with_a_changed_variant_is_refused(variant_run, capsys):
    out = variant_run / "out"
    before = (out / "runs.parquet").read_bytes()
    assert run_cli(variant_run, TWO_VARIANTS) == 0  # the same config: up to date
    changed = {
        **TWO_VARIANTS,
        "variants": {"slow": {"train": {"learning_rate": 0.002}}, "sgd": SGD},
    }
    capsys.readouterr()
    assert run_cli(variant_run, changed) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different config" in err and "variants" in err, err
    renamed = {**TWO_VARIANTS, "reference": "adam"}
    assert run_cli(variant_run, renamed) == 3
    assert "reference" in capsys.readouterr().err
    assert (out / "runs.parquet").read_bytes() == before
