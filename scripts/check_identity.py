"""Bit identity of the engine across a change: save a reference grid's tables, compare later.

Trains a grid of structures that between them reach every code path of the engine (batch
training at two widths, depth 2 with Adam, leaky ReLU with momentum, float64, an MSE target with
curves, ReDo, shrink and perturb, L2-init, flip_dead with layer norm, batch norm, a stream with
curves, CReLU with the orthogonal init, warmup and weight decay) through
``study.simulate_curves`` and saves or compares the per-initialization tables,
bit for bit (``pandas.testing.assert_frame_equal(check_exact=True)``). The grid runs with
``pairing = "independent"``, the draws of every tree before the pairing key, so a tree from
before it can be compared too::

    git stash; PYTHONPATH=. .venv/bin/python scripts/check_identity.py save /tmp/identity
    git stash pop; PYTHONPATH=. .venv/bin/python scripts/check_identity.py compare /tmp/identity

``PYTHONPATH=.`` makes the checkout's own ``study`` the one imported (a script's folder, not
the current one, is first on Python's path). About a minute on 2 cores. Exit status 1 when a
table differs or is missing.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

import study
from study.config import KEYS

CHECKS = dict(train_log_every=10)
CASES: dict[str, dict] = {
    "base": dict(
        data_offset=[0.0, 2.0], model_width=[1, 3], model_init_range=[0.05, 0.5], train_steps=40
    ),
    "deep": dict(
        model_depth=2, model_width=4, train_optimizer="adam", train_steps=40, data_offset=1.0
    ),
    "leaky_momentum": dict(
        model_activation="leaky_relu", train_optimizer="momentum", train_steps=30
    ),
    "f64": dict(train_dtype="float64", model_width=2, train_steps=30),
    "mse_fn": dict(
        data_kind="function", data_dim=1, train_loss="mse", model_width=3, train_steps=30,
        train_curves=True, **CHECKS,
    ),
    "redo": dict(
        model_width=3, train_intervention="redo", train_intervention_every=10, train_steps=30,
        **CHECKS,
    ),
    "shrink": dict(
        model_width=3, train_intervention="shrink_perturb", train_intervention_every=10,
        train_steps=30, train_shrink=0.9, train_perturb=0.01, **CHECKS,
    ),
    "l2": dict(model_width=3, train_intervention="l2_init", train_l2_init=0.01, train_steps=30),
    "flip_layer": dict(
        model_width=3, model_depth=2, model_flip_dead=True, model_norm="layer", train_steps=30
    ),
    "batchnorm": dict(model_width=3, model_norm="batch", train_steps=30),
    "crelu_orthogonal": dict(
        model_activation="crelu", model_init="orthogonal", model_depth=2, model_width=3,
        train_weight_decay=0.01, train_warmup_steps=10, train_steps=30,
    ),
    "decay_rmsprop": dict(
        train_optimizer="rmsprop", train_weight_decay=[0.0, 0.001], train_warmup_steps=5,
        model_width=2, train_steps=30,
    ),
    "stream": dict(
        data_kind="slowly_changing", data_dim=8, data_flipping_bits=4, data_flip_every=20,
        data_teacher_width=5, data_probe_size=50, model_width=5, train_steps=80,
        train_log_every=20, train_loss="mse", train_optimizer="sgd",
    ),
}  # fmt: skip


def settings(values: dict) -> list:
    """The grid of a case: its list values are axes."""
    axes = {k: v for k, v in values.items() if isinstance(v, list)}
    fixed = {k: v for k, v in values.items() if not isinstance(v, list)}
    return [
        study.make_setting(**fixed, **dict(zip(axes, combo, strict=True)))
        for combo in itertools.product(*axes.values())
    ]


def tables() -> Iterator[tuple[str, pd.DataFrame]]:
    """Every case's runs table, and its curves table where it has one."""
    for name, values in CASES.items():
        runs, curves = study.simulate_curves(
            settings(values), n_inits=24, seed=7, pairing="independent"
        )
        yield name, runs.reset_index(drop=True)
        if curves is not None:
            yield f"{name}_curves", curves.reset_index(drop=True)


def _without_new_keys(table: pd.DataFrame, reference: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` less the columns of config keys added since ``reference`` was saved, where
    they hold their default (a new key at its default changes nothing: that is the check)."""
    new = [
        column
        for column in table.columns.difference(reference.columns)
        if column in KEYS and table[column].eq(KEYS[column].default).all()
    ]
    if new:
        print(f"{name}: new keys at their default, left out: {', '.join(new)}")
    return table.drop(columns=new)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print("usage: check_identity.py save|compare DIR", file=sys.stderr)
        return 2
    what, folder = argv[0], Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    differing, seen = [], set()
    for name, table in tables():
        seen.add(name)
        path = folder / f"{name}.parquet"
        if what == "save":
            table.to_parquet(path)
            print(f"{name}: saved {table.shape}")
            continue
        if not path.exists():  # a case added since the reference was saved
            print(f"{name}: new, no reference {table.shape}")
            continue
        reference = pd.read_parquet(path)
        table = _without_new_keys(table, reference, name)
        try:
            pd.testing.assert_frame_equal(reference, table, check_exact=True)
            print(f"{name}: identical {table.shape}")
        except AssertionError as err:
            differing.append(name)
            print(f"{name}: DIFFERS {str(err).splitlines()[0]}")
    missing = sorted(p.stem for p in folder.glob("*.parquet") if p.stem not in seen)
    if what == "compare" and missing:
        print(f"not produced again: {', '.join(missing)}")
    return 1 if differing or (what == "compare" and missing) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
