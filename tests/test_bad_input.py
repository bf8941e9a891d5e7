"""Malformed input: one line naming key, value and what is allowed; exit 2; nothing written.

One test per malformed input of the runner issue, then property-based tests that generate
random malformed configs and CSV files.
"""

import math
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study import cli, errors
from study.config import nest
from study.errors import ConfigError
from tests.helpers import VALID, assert_refused, run_cli, with_change

TRAIN = {"train": {"steps": 4, "log_every": 2}}

BAD_VALUES = [
    # (key, value, fragments the message must contain)
    ("model.colour", 3, ("model.colour", "unknown key", "allowed:")),
    ("model.width", "four", ("model.width", "'four'", "expected an integer")),
    ("model.depth", 1.5, ("model.depth", "1.5", "expected an integer")),
    ("model.activation", "sigmoidish", ("model.activation", "sigmoidish", "relu")),
    ("train.optimizer", "adagrad2", ("train.optimizer", "adagrad2", "adam")),
    ("model.init", "zeros", ("model.init", "'zeros'", "uniform")),
    ("model.width", 0, ("model.width", "0", "> 0")),
    ("model.width", -3, ("model.width", "-3", "> 0")),
    ("model.depth", -1, ("model.depth", "-1", ">= 0")),
    ("train.steps", 0, ("train.steps", "0", "> 0")),
    ("n_inits", 0, ("n_inits", "0", "> 0")),
    ("n_inits", -5, ("n_inits", "-5", "> 0")),
    ("data.n_samples", 0, ("data.n_samples", "0", "> 0")),
    ("train.learning_rate", float("nan"), ("train.learning_rate", "nan", "finite")),
    ("train.learning_rate", float("inf"), ("train.learning_rate", "inf", "finite")),
    ("train.learning_rate", -0.1, ("train.learning_rate", "-0.1", ">= 0")),
    ("train.batch_size", 17, ("train.batch_size", "17", "n_samples = 16")),
]


@pytest.mark.parametrize("key,value,fragments", BAD_VALUES, ids=lambda v: str(v)[:20])
def test_a_bad_value_is_refused_with_key_value_and_what_is_allowed(
    tmp_path, capsys, key, value, fragments
):
    assert_refused(run_cli(tmp_path, with_change(key, value)), capsys, tmp_path, *fragments)


def test_an_unknown_section_is_refused(tmp_path, capsys):
    code = run_cli(tmp_path, with_change("optim", {"lr": 1}))
    assert_refused(code, capsys, tmp_path, "[optim]", "allowed")


def test_a_bad_override_and_a_bad_chunk_size_are_refused(tmp_path, capsys):
    code = run_cli(tmp_path, VALID, extra=["--set", "model.width=[1,0]"])
    assert_refused(code, capsys, tmp_path, "model.width", "> 0")
    code = run_cli(tmp_path, VALID, extra=["--chunk-size", "0"])
    assert_refused(code, capsys, tmp_path, "--chunk-size", "positive")


def test_a_missing_or_invalid_config_file_is_refused(tmp_path, capsys):
    code = cli.main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out")])
    assert_refused(code, capsys, tmp_path, "nope.toml", "not found")
    assert_refused(run_cli(tmp_path, text="[model\nwidth = "), capsys, tmp_path, "not valid TOML")


CSV_CASES = [
    # (file text or None for a missing file, fragments)
    (None, ("data.path", "not found")),
    ("", ("data.path", "empty")),
    ("x1,x2,y\n", ("data.path", "no rows")),
    ("x1,x2,y\n1,2,0\n3,abc,1\n", ("x2", "non-numeric", "'abc'")),
    ("x1,x3,y\n1,2,0\n3,4,1\n", ("data.features", "'x2'", "columns: x1, x3, y")),
    ("x1,x2,label\n1,2,0\n3,4,1\n", ("data.target", "'y'", "columns")),
    ("x1,x2,y\n1,2,0\n3,4,2\n", ("data.target", "0 or 1", "2.0")),
    ("x1,x2,x1,y\n1,2,3,0\n3,4,5,1\n", ("data.path", "header names x1 twice")),
    ("x1,x2,y\n1,2,0\n3,1e308,1\n", ("column 'x2'", "row 2", "1e+308", "float32")),
    ("x1,x2,y\n1,2,0\n-1e39,4,1\n", ("column 'x1'", "row 2", "out-of-range")),
]


@pytest.mark.parametrize(
    "features, fragments",
    [(["x1", "y"], ("data.features", "target 'y'")), (["x1", "x1"], ("data.features", "x1 twice"))],
)
def test_features_that_leak_the_label_or_repeat_a_column_are_refused(
    tmp_path, capsys, features, fragments
):
    (tmp_path / "data.csv").write_text("x1,x2,y\n1,2,0\n3,4,1\n")
    config = {"data": {"kind": "csv", "path": "data.csv", "features": features}, **TRAIN}
    assert_refused(run_cli(tmp_path, config), capsys, tmp_path, *fragments)


def test_a_symbolic_link_loop_as_config_file_names_it(tmp_path, capsys):
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop.toml")
    code = cli.main(["run", str(tmp_path / "loop.toml"), "--out", str(tmp_path / "out")])
    assert_refused(code, capsys, tmp_path, "config file", "loop.toml", "cannot read")


def test_a_symbolic_link_loop_as_data_path_names_the_key(tmp_path, capsys):
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    config = {"data": {"kind": "csv", "path": "loop.csv"}, **TRAIN}
    assert_refused(run_cli(tmp_path, config), capsys, tmp_path, "data.path", "loop.csv")


def test_csv_values_are_checked_in_the_run_dtype(tmp_path):
    """1e39 is finite in float64 but not in float32: refused for one, accepted for the other."""
    (tmp_path / "data.csv").write_text("x1,x2,y\n1,2,0\n3,1e39,1\n")
    config = {"data": {"kind": "csv", "path": "data.csv"}, "train": {"steps": 4, "log_every": 2}}
    assert run_cli(tmp_path, config) == 2
    config["train"]["dtype"] = "float64"
    assert run_cli(tmp_path, config) == 0


@settings(max_examples=40, deadline=None)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda v: abs(v) > float(np.finfo(np.float32).max)
    ),
    row=st.integers(0, 3),
)
def test_any_value_beyond_float32_is_refused_naming_column_and_row(value, row):
    from study.csvfile import load_csv

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        values = [["1", "2", "0"], ["3", "4", "1"], ["5", "6", "0"], ["7", "8", "1"]]
        values[row][1] = repr(value)
        path.write_text("a,b,y\n" + "\n".join(",".join(r) for r in values) + "\n")
        with pytest.raises(ConfigError, match=f"column 'b' .* row {row + 1} "):
            load_csv(str(path), (), "y", "float32")
        assert load_csv(str(path), (), "y", "float64")[1][row, 1] == value


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.sampled_from(["a", "b", "c", "y"]), min_size=2, max_size=6))
def test_any_header_that_repeats_a_name_is_refused(names):
    from study.csvfile import load_csv

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_text(",".join(names) + "\n" + ",".join("0" for _ in names) + "\n")
        repeated = len(set(names)) < len(names)
        if repeated:
            with pytest.raises(ConfigError, match="twice"):
                load_csv(str(path), (), names[0], "float32")
        else:
            try:
                load_csv(str(path), (), names[0], "float32")
            except ConfigError as err:
                assert "twice" not in str(err)


@pytest.mark.parametrize("text,fragments", CSV_CASES, ids=lambda v: repr(v)[:16])
def test_a_bad_csv_is_refused(tmp_path, capsys, text, fragments):
    if text is not None:
        (tmp_path / "data.csv").write_text(text)
    config = {
        "data": {"kind": "csv", "path": "data.csv", "features": ["x1", "x2"]},
        "train": {"steps": 4, "log_every": 2},
    }
    assert_refused(run_cli(tmp_path, config), capsys, tmp_path, *fragments)


# --------------------------------------------------------------------------------------------
# Generated malformed input.
# --------------------------------------------------------------------------------------------

POSITIVE_INTS = ["n_inits", "model.width", "train.steps", "data.n_samples"]
CHOICES = ["model.activation", "train.optimizer", "model.init", "model.bias_init", "data.kind"]
NUMBERS = ["train.learning_rate", "model.init_range", "data.offset", "train.momentum"]
names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
# printable text: a control character cannot be written into TOML at all (tested elsewhere)
printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=5)
not_a_number = st.one_of(printable, st.booleans(), st.lists(st.booleans(), max_size=2))

malformed = st.one_of(
    # an unknown key in a known section, or at the top level
    st.tuples(st.sampled_from(["model", "data", "train"]), names)
    .filter(lambda t: f"{t[0]}.{t[1]}" not in __import__("study.config").config.KEYS)
    .map(lambda t: (f"{t[0]}.{t[1]}", 1)),
    # a non-positive size, as a scalar or inside a sweep
    st.tuples(st.sampled_from(POSITIVE_INTS), st.integers(max_value=0)),
    st.tuples(st.just("model.depth"), st.integers(max_value=-1)),  # 0 is the linear model
    st.tuples(
        st.sampled_from(POSITIVE_INTS[1:]),
        st.lists(st.integers(max_value=0), min_size=1, max_size=3).map(lambda v: [1, *v]),
    ),
    # a value that is not of the key's type
    st.tuples(st.sampled_from(POSITIVE_INTS), not_a_number | st.floats(allow_nan=False)),
    st.tuples(st.sampled_from(NUMBERS), not_a_number),
    # a name outside the allowed choices
    st.tuples(
        st.sampled_from(CHOICES),
        names.filter(lambda n: n not in ("relu", "elu", "adam", "sgd", "uniform", "zeros")),
    ),
    # a learning rate that is NaN, infinite or negative
    st.tuples(
        st.just("train.learning_rate"),
        st.sampled_from([float("nan"), float("inf"), float("-inf")])
        | st.floats(max_value=-1e-12, allow_infinity=False),
    ),
    # a batch larger than the data
    st.tuples(st.just("train.batch_size"), st.integers(min_value=17, max_value=10**6)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(change=malformed)
def test_generated_malformed_configs_are_refused(capsys, change):
    key, value = change
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        assert_refused(run_cli(folder, with_change(key, value)), capsys, folder, key)


cells = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-10, 10, allow_nan=False).map(repr),
    st.text(string.ascii_letters + " -.", max_size=4),
    st.just(""),
)


@st.composite
def malformed_csv(draw):
    """A small CSV with at least one defect: a bad cell, a missing column, or a non-0/1 target."""
    n_rows = draw(st.integers(1, 6))
    rows = [
        [repr(draw(st.floats(-3, 3))), repr(draw(st.floats(-3, 3))), "0"] for _ in range(n_rows)
    ]
    defect = draw(st.sampled_from(["cell", "column", "target", "garbage"]))
    header = ["x1", "x2", "y"]
    if defect == "cell":
        row, column = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, 2))
        value = draw(
            cells.filter(lambda c: not _is_number(c) or column == 2 and float(c) not in (0, 1))
        )
        rows[row][column] = value
    elif defect == "column":
        header[draw(st.integers(0, 2))] = draw(names.filter(lambda n: n not in ("x1", "x2", "y")))
    elif defect == "target":
        rows[draw(st.integers(0, n_rows - 1))][2] = str(draw(st.integers(2, 9)))
    else:
        return draw(st.binary(max_size=40)).decode("latin-1").replace(",", ";")
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=malformed_csv())
def test_generated_malformed_csv_files_are_refused(capsys, text):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "data.csv").write_text(text, encoding="latin-1")
        config = {
            "data": {"kind": "csv", "path": "data.csv", "features": ["x1", "x2"]},
            "train": {"steps": 4, "log_every": 2},
        }
        assert_refused(run_cli(folder, config), capsys, folder)


@settings(max_examples=25, deadline=None)
@given(
    key=st.sampled_from(["model.width", "model.init_range", "data.offset", "train.optimizer"]),
    data=st.data(),
)
def test_any_sweep_that_lists_a_value_twice_is_refused(key, data):
    from study.config import load_study

    pool = {
        "model.width": st.integers(1, 4),
        "model.init_range": st.sampled_from([0.05, 0.5, 2.0]),
        "data.offset": st.sampled_from([0.0, 0.5, 2.0]),
        "train.optimizer": st.sampled_from(["sgd", "adam", "momentum"]),
    }[key]
    values = data.draw(st.lists(pool, min_size=2, max_size=5))
    config = nest({key: values})
    if len(set(values)) < len(values):
        with pytest.raises(ConfigError, match=f"{key} = .* listed twice"):
            load_study(config)
    else:
        assert len(load_study(config).settings) == len(values)


def test_settings_that_coincide_once_derived_values_are_filled_are_refused():
    from study.config import load_study

    with pytest.raises(ConfigError, match="names one setting twice"):
        load_study({"model": {"init_range": 0.05, "bias_scale": [None, 0.05]}})


@pytest.mark.parametrize(
    "n_inits, fragments",
    [(10**12, ("init-steps", "days", "lower n_inits")), (10**9, ("GB", "memory", "lower n_inits"))],
)
def test_a_run_beyond_reason_is_refused_up_front_with_its_estimate(
    tmp_path, capsys, n_inits, fragments
):
    extra = ("--n-inits", str(n_inits), "--set", "train.steps=1000")
    code = run_cli(tmp_path, VALID, extra=extra)
    assert_refused(code, capsys, tmp_path, "n_inits", *fragments)


def test_each_error_carries_its_exit_status():
    """shared/INTERFACE.md: 2 bad input, 3 folder in use or another config's, 130 Ctrl-C, 1 else."""
    assert errors.exit_status(ConfigError("x")) == 2
    assert errors.exit_status(errors.FormatError("x")) == 2
    assert errors.exit_status(errors.FolderError("x")) == 3
    assert errors.exit_status(KeyboardInterrupt()) == errors.EXIT_INTERRUPTED == 130
    assert errors.exit_status(ValueError("x")) == errors.EXIT_ERROR == 1
