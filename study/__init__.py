"""study: a JAX Monte Carlo laboratory for the dying-ReLU problem.

The public API::

    import study
    setting = study.make_setting(data_offset=2.0, model_width=1)
    runs = study.simulate(setting, n_inits=4000, seed=0)   # a row per initialization
    summary = study.analysis.summarize(runs)                # a row per setting

The engine (``simulate``, ``run_group``, ``make_train``, ``Metrics``) is imported on first use,
so that reading and plotting saved results (``study.results``, ``study.analysis``,
``study.plots``) never starts JAX.
"""

import importlib

from study import analysis, results, theory
from study.config import Numeric, Setting, Structure, Study, load_study, make_setting
from study.errors import ConfigError, FolderError, FormatError

__version__ = "0.1.0"

# name -> module of the objects that need JAX, imported when first asked for.
_LAZY = {
    "simulate": "study.engine",
    "run_group": "study.engine",
    "make_train": "study.train",
    "Metrics": "study.train",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "FolderError",
    "FormatError",
    "Metrics",
    "Numeric",
    "Setting",
    "Structure",
    "Study",
    "analysis",
    "load_study",
    "make_setting",
    "make_train",
    "results",
    "run_group",
    "simulate",
    "theory",
]
