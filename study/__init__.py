"""study: a JAX Monte Carlo laboratory for the dying-ReLU problem.

The public API::

    import study
    setting = study.make_setting(data_offset=2.0, model_width=1)
    runs = study.simulate(setting, n_inits=4000, seed=0)   # a row per initialization
"""

from study import analysis, theory
from study.config import ConfigError, Numeric, Setting, Structure, Study, load_study, make_setting
from study.engine import run_group, simulate
from study.train import Metrics, make_train

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Metrics",
    "Numeric",
    "Setting",
    "Structure",
    "analysis",
    "theory",
    "Study",
    "load_study",
    "make_setting",
    "make_train",
    "run_group",
    "simulate",
]
