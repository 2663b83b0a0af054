"""The experiment: its typed schema, how a file becomes one, and which of its values are secret.

Owns: every section and field (`schema`, `trial_options`, `search_options`), search domains, dotted paths,
`load()`. Imports pydantic and yaml only, so every other room may import it (`load()` asks
torchvision whether a model.arch that is not a built-in names a model).
"""
from pipeline.config.base import ConfigError
from pipeline.config.domains import LR_RANGE
from pipeline.config.loading import check_trainable, load, parse_override, with_absolute_paths
from pipeline.config.paths import get_path, set_path
from pipeline.config.schema import (
    BUILTIN_METRICS,
    Cluster,
    Experiment,
    Resources,
    Storage,
    Tracking,
    mutable_paths,
    validate,
)
from pipeline.config.search_options import (
    Asha,
    Bayes,
    Budget,
    HyperBand,
    Median,
    Pbt,
    Search,
)
from pipeline.config.trial_options import (
    MUTABLE_PATHS,
    Change,
    Cyclic,
    Data,
    LRRangeTest,
    Model,
    Sgdr,
    Train,
)

__all__ = [
    "BUILTIN_METRICS", "LR_RANGE", "MUTABLE_PATHS", "Asha", "Bayes", "Budget", "Change",
    "Cluster", "ConfigError", "Cyclic", "Data", "Experiment", "HyperBand", "LRRangeTest",
    "Median", "Model", "Pbt", "Resources", "Search", "Sgdr", "Storage", "Tracking", "Train",
    "check_trainable", "get_path", "load", "mutable_paths", "parse_override", "set_path",
    "validate", "with_absolute_paths",
]
