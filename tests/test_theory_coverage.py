"""Coverage of the theory: every ReLU row of the default study and the reproductions has one.

Measured without training: each config's settings are expanded, their data sets rebuilt as the
engine draws them (``study.data.setting_inputs``), and the summary's theory computed per setting.
A ReLU row is covered when it has an exact value, bounds, or a note saying why it has neither.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import analysis, config, data
from tests.helpers import ROOT

CONFIGS = sorted((ROOT / "study" / "configs").glob("*.toml"))


def theory_of(path: Path) -> pd.DataFrame:
    """The theory columns of every setting of the config at ``path``, with its setting values."""
    study = config.load_study(path)
    settings = pd.DataFrame([dict(s.values) for s in study.settings])
    cache: dict[tuple, np.ndarray | None] = {}

    def inputs(values):
        key = tuple((k, str(v)) for k, v in values.items() if k.startswith("data."))
        if key not in cache:
            cache[key] = data.setting_inputs(values, study.seed)
        return cache[key]

    return analysis.theory_per_setting(settings, inputs)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_relu_row_has_theory_or_a_note(path):
    table = theory_of(path)
    relu = table[table["model.activation"] == "relu"]
    exact = relu["p_dead_init_theory"].notna()
    bounds = relu["p_dead_init_lower"].notna() & relu["p_dead_init_upper"].notna()
    noted = relu["theory_note"].str.len() > 0
    print(f"{path.stem}: {len(relu)} ReLU rows: {exact.sum()} exact, {bounds.sum()} bounds")
    assert not (exact & bounds).any(), "bounds are given only where no exact value exists"
    assert (exact | bounds | noted).all(), relu[~(exact | bounds | noted)]
    assert (table["theory_note"].str.len() > 0).all(), "every row says what applies"
    assert (relu["p_dead_init_lower"] <= relu["p_dead_init_upper"]).where(bounds, True).all()
