"""The engine's estimates of P(dead at init) against the new closed forms (4 standard errors).

One training step each (death at init is decided before any step), a few thousand
initializations: the engine, its data and its initializers are checked end to end against
study.theory, which never sees the engine's draws.
"""

import functools

import pytest

import study
from study import analysis, data
from tests.helpers import standard_errors

N_INITS = 3000
SEED = 5


@pytest.mark.slow  # about 30 s on 2 cores: three compiles
@pytest.mark.parametrize(
    "values",
    [
        # width-1 chain on centered 2-D data: exactly 1/2
        dict(model_depth=3, model_width=1, data_offset=0.0),
        # 1-D inputs on both sides of 0, second layer of width 3: exact
        dict(model_depth=2, model_width=3, data_dim=1, model_init="he_normal", data_offset=0.0),
        # a random normal bias on positive 2-D data
        dict(model_bias_init="normal", model_bias_scale=0.05, data_offset=2.0),
    ],
    ids=["chain", "two_sided", "biased_2d"],
)
def test_engine_matches_exact_theory(values):
    setting = study.make_setting(train_steps=1, train_log_every=1, **values)
    runs = study.simulate(setting, n_inits=N_INITS, seed=SEED)
    inputs = functools.partial(data.setting_inputs, seed=SEED)
    row = analysis.summarize(runs, inputs=inputs).iloc[0]
    p = row["p_dead_init_theory"]
    assert row["theory_note"] and p == p  # an exact value applies
    assert abs(row["p_dead_init"] - p) < 4 * standard_errors(p, N_INITS), row["theory"]
