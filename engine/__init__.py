"""trainapi's training engine: pure NumPy, no I/O framework.

The public API a caller needs::

    from engine import TrainSpec, load_builtin, train, export

    spec = TrainSpec.from_dict({"model": {"type": "mlp", "hidden_layers": [64]}})
    result = train(spec, load_builtin("digits"), on_epoch=print_record)
    model = export.to_model(result)          # raw features in, predictions out
    blob = export.dumps(model, "safetensors")

See :func:`engine.trainer.train` for callbacks, cancellation and resuming.
Regularization paths and their cross-validation (glmnet's) are
:func:`engine.paths.fit_path` and :func:`engine.paths.cv_path`.
"""

from engine import export, paths
from engine.datasets import BUILTIN_DATASETS, Dataset, list_builtins, load_builtin
from engine.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    DivergenceError,
    EngineError,
    InputError,
    TrainingStopped,
)
from engine.inference import Model
from engine.spec import TrainSpec
from engine.trainer import Trainer, TrainResult, train

__all__ = [
    "BUILTIN_DATASETS",
    "CheckpointError",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "DivergenceError",
    "EngineError",
    "InputError",
    "Model",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "TrainingStopped",
    "export",
    "list_builtins",
    "load_builtin",
    "paths",
    "train",
]
