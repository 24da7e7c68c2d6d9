"""A job's regularization path: from a spec and a dataset to the path, its validation and its models.

:func:`run` prepares the data as training does (the column transformer fitted on
the train rows; no standardization, which :func:`~engine.paths.fit_path` does
itself, as glmnet), fits the path on the training rows and chooses λ:

- with ``training.cross_validation``, the rows outside the test split are the
  training rows; they are divided into k folds (:mod:`engine.folds`) and
  :func:`~engine.paths.cv_path` cross-validates the path's own λ sequence;
- without it, the path is fitted on the train split and each λ is scored on the
  validation split (``cv_sd``: the standard error of the mean over its rows).

Everything is deterministic: the same spec and data give the same result, so a
rerun after a killed worker computes exactly what the first attempt would have.
:func:`point_model` is the :class:`~engine.inference.Model` (one layer, raw
features in) at any λ; :func:`model_at` moves an exported one to another point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import folds as fold_ids
from engine import metrics
from engine.datasets import Dataset
from engine.errors import ConfigError, DatasetError
from engine.export import FORMAT_NAME, FORMAT_VERSION
from engine.inference import Model
from engine.paths import measures
from engine.paths.cv import CVPath, cv_path
from engine.paths.path import FAMILIES, Path, fit_path
from engine.preprocessing import PreparedData, prepare
from engine.spec import PathSpec, TrainSpec

#: Per-λ statistics of a point, in the order the path document lists them.
POINT_FIELDS = ("index", "lambda", "cv_mean", "cv_sd", "nonzero", "train_loss", "dev_ratio")


@dataclass
class PathResult:
    """A fitted, validated path; index ``i`` of each array is the point at ``path.lambdas[i]``.

    Attributes
    ----------
    spec : TrainSpec
    data : PreparedData
        The prepared rows (unstandardized); ``X_train``/``y_train`` are what the path was fitted on.
    path : Path
        :func:`~engine.paths.fit_path` on the training rows.
    cv : CVPath or None
        The cross-validation (None: validated on the holdout split).
    cv_mean, cv_sd : ndarray of shape (n_lambda,)
        The validation measure and its standard error (NaN where undefined).
    measure : str
    index_min, index_1se, index : int
        The best point, the 1-SE point, and the job's model (``select``).
    folds : int or None
        k with cross-validation.
    test_metrics : dict or None
        The selected model on the test split (``test_fraction > 0``).
    """

    spec: TrainSpec
    data: PreparedData
    path: Path
    cv: CVPath | None
    cv_mean: np.ndarray
    cv_sd: np.ndarray
    measure: str
    index_min: int
    index_1se: int
    index: int
    folds: int | None
    test_metrics: dict[str, Any] | None

    @property
    def options(self) -> PathSpec:
        assert self.spec.path is not None
        return self.spec.path

    @property
    def input_names(self) -> list[str]:
        """The name of each coefficient: the model's inputs (the column transformer's outputs, if any)."""
        if self.data.encoder is not None:
            return list(self.data.encoder.output_names)
        return list(self.data.feature_names)

    def point(self, i: int) -> dict[str, Any]:
        """The statistics of point ``i`` (JSON numbers; null where undefined)."""
        return {
            "index": i,
            "lambda": float(self.path.lambdas[i]),
            "cv_mean": _number(self.cv_mean[i]),
            "cv_sd": _number(self.cv_sd[i]),
            "nonzero": int(self.path.nzero[i]),
            "train_loss": float(self.path.train_loss[i]),
            "dev_ratio": float(self.path.dev_ratio[i]),
        }

    def summary(self) -> dict[str, Any]:
        """What a job's view shows of its path."""
        return {
            "n_lambdas": len(self.path.lambdas),
            "measure": self.measure,
            "select": self.options.select,
            "validation": "cross_validation" if self.cv is not None else "holdout",
            "folds": self.folds,
            "lambda_min": float(self.path.lambdas[self.index_min]),
            "lambda_1se": float(self.path.lambdas[self.index_1se]),
            "index_min": self.index_min,
            "index_1se": self.index_1se,
            "index": self.index,
            "lambda": float(self.path.lambdas[self.index]),
            "nonzero": int(self.path.nzero[self.index]),
        }

    def to_dict(self) -> dict[str, Any]:
        """The path document (``GET /v1/jobs/{id}/path``): the summary, and per λ its statistics and coefficients.

        Coefficients are on the raw scale of the model's inputs (``input_names``), floats that JSON carries
        exactly.
        """
        return {
            **self.summary(),
            "family": self.path.family,
            "alpha": self.path.alpha,
            "lambda_max": float(self.path.lambda_max),
            "input_names": self.input_names,
            "classes": None if self.data.classes is None else self.data.classes.tolist(),
            "points": [
                {
                    **self.point(i),
                    "intercept": float(self.path.intercept[i]),
                    "coef": self.path.coef[i].tolist(),
                }
                for i in range(len(self.path.lambdas))
            ],
        }


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def steps(spec: TrainSpec, n_lambdas: int) -> int:
    """How many times :func:`run` calls ``on_lambda``: the path, then the cross-validation's solves."""
    cv = spec.training.cross_validation
    if cv is None:
        return n_lambdas
    if spec.model.type == "linear" or spec.task == "regression":
        return 2 * n_lambdas  # the folds and the full fit are one batch
    return (2 + cv.folds) * n_lambdas


def n_lambdas(spec: TrainSpec) -> int:
    """The length of the λ sequence the spec asks for."""
    assert spec.path is not None
    return len(spec.path.lambdas) if spec.path.lambdas is not None else spec.path.n_lambdas


def run(spec: TrainSpec, dataset: Dataset, on_lambda: Callable[[], None] | None = None) -> PathResult:
    """Fit and validate the path that ``spec.path`` asks for on ``dataset``.

    ``on_lambda`` is called after each λ solved (:func:`steps` times in all) and may raise to stop.
    """
    options, t = spec.path, spec.training
    if options is None:
        raise ConfigError("path", "the spec asks for no path")
    if spec.model.type not in FAMILIES:
        raise ConfigError("path", "a regularization path fits linear or logistic models")
    cv = t.cross_validation
    features = spec.features
    fold_column: np.ndarray | None = None
    if cv is not None and cv.fold_column is not None:
        if cv.fold_column not in dataset.feature_names:
            raise ConfigError(
                "training.cross_validation.fold_column", f"no column {cv.fold_column!r} in dataset {dataset.name!r}"
            )
        fold_column = np.asarray(dataset.X, dtype=np.float64)[:, dataset.feature_names.index(cv.fold_column)]
        features = [name for name in (features or dataset.feature_names) if name != cv.fold_column]
        if not features:
            raise ConfigError("training.cross_validation.fold_column", "is the only column; nothing is left to fit")
    task = "regression" if spec.model.type == "linear" else "classification"
    if spec.task not in ("auto", task):
        raise ConfigError("model.type", f"{spec.model.type} fits {task}")
    data = prepare(
        dataset,
        task,
        validation_fraction=0.0 if cv is not None else t.validation_fraction,
        test_fraction=t.test_fraction,
        standardize=False,  # fit_path standardizes (glmnet's standardize = TRUE) and reports raw coefficients
        seed=t.seed,
        dtype="float64",
        features=features,
        preprocessing=spec.preprocessing,
    )
    if data.classes is not None and len(data.classes) != 2:
        raise DatasetError(f"a logistic path needs two classes; the target has {len(data.classes)}")
    family = FAMILIES[spec.model.type]
    y_train = np.asarray(data.y_train, dtype=np.float64)
    path = fit_path(
        data.X_train,
        y_train,
        family=family,
        alpha=options.alpha,
        lambdas=options.lambdas,
        n_lambda=options.n_lambdas,
        lambda_min_ratio=options.lambda_min_ratio,
        standardize=t.standardize,
        on_lambda=on_lambda,
    )
    measure = measures.resolve(options.measure, family)
    result_cv: CVPath | None = None
    if cv is not None:
        if fold_column is not None:
            assert data.train_rows is not None
            ids = fold_ids.from_column(fold_column[data.train_rows], cv.fold_column or "")
        else:
            ids = fold_ids.assign(
                len(y_train),
                cv.folds,
                cv.assignment,
                seed=t.seed,
                labels=data.y_train if family == "binomial" else None,
                row_numbers=data.train_rows,
            )
        # The folds run the path's own λ sequence (from all training rows, as cv.glmnet).
        result_cv = cv_path(
            data.X_train,
            y_train,
            ids,
            family=family,
            alpha=options.alpha,
            lambdas=path.lambdas,
            measure=measure,
            standardize=t.standardize,
            on_lambda=on_lambda,
        )
        cv_mean, cv_sd = result_cv.cvm, result_cv.cvsd
        index_min, index_1se, n_folds = result_cv.index_min, result_cv.index_1se, len(result_cv.folds)
    else:
        cv_mean, cv_sd = holdout(path, data, measure)
        index_min, index_1se = measures.select(cv_mean, np.nan_to_num(cv_sd), measure)
        n_folds = None
    index = index_1se if options.select == "1se" else index_min
    result = PathResult(
        spec=spec,
        data=data,
        path=path,
        cv=result_cv,
        cv_mean=cv_mean,
        cv_sd=cv_sd,
        measure=measure,
        index_min=index_min,
        index_1se=index_1se,
        index=index,
        folds=n_folds,
        test_metrics=None,
    )
    if len(data.y_test):
        result.test_metrics = split_metrics(point_model(result, index), data.X_test, data.y_test, data.task)
    return result


def holdout(path: Path, data: PreparedData, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """The measure on the validation split at each λ, and its standard error over the split's rows.

    An AUC has no per-row terms: its standard error is NaN (the 1-SE point is then the best one).
    """
    y = np.asarray(data.y_val, dtype=np.float64)
    if len(y) < 2:
        raise DatasetError("the validation split needs at least 2 rows to choose λ; raise validation_fraction")
    eta = path.predict(data.X_val, kind="link")
    if measure == "auc":
        scores = np.array([measures.auc(y, eta[:, j]) for j in range(eta.shape[1])])
        return scores, np.full(len(scores), np.nan)
    losses = measures.row_losses(measure, path.family, y, eta)
    return losses.mean(axis=0), losses.std(axis=0, ddof=1) / math.sqrt(len(y))


def split_metrics(model: Model, X: np.ndarray, y: np.ndarray, task: str) -> dict[str, Any]:
    """``{loss, accuracy}`` (log-loss) or ``{loss, r2, mae}`` (mean squared error, target units) of ``model``."""
    z = model.decision_function(X)[:, 0]
    if task == "classification":
        p = np.clip(0.5 * (1.0 + np.tanh(0.5 * z)), 1e-15, 1.0 - 1e-15)
        loss = float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))
        return {"loss": loss, "accuracy": float(np.mean((z > 0).astype(np.int64) == y))}
    resid = y - z
    return {"loss": float(np.mean(resid * resid)), "r2": metrics.r2(z, y), "mae": metrics.mae(z, y)}


def point_model(result: PathResult, index: int) -> Model:
    """The model at point ``index``: one layer of shape (1, n_inputs) on raw features, as training exports."""
    data, spec = result.data, result.spec
    classification = data.classes is not None
    tensors = {
        "layers.0.weight": np.ascontiguousarray(result.path.coef[index][None, :], dtype=np.float64),
        "layers.0.bias": np.array([result.path.intercept[index]], dtype=np.float64),
    }
    metadata: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_type": spec.model.type,
        "layer_sizes": [data.n_features, 1],
        "activation": None,
        "output_head": "sigmoid" if classification else "identity",
        "task": data.task,
        "classes": None if data.classes is None else data.classes.tolist(),
        "feature_names": list(data.feature_names),
        "target_name": data.target_name,
        "dtype": "float64",
        "standardization": None,  # the path's standardization is inside its raw-scale coefficients
        "target_scaling": None,
        "preprocessing": None if data.encoder is None else data.encoder.to_dict(),
        "rows_missing_target": data.n_missing_target,
        "spec": spec.to_dict(),
        "metrics": result.point(index),
        "best_epoch": None,
        "test_metrics": result.test_metrics if index == result.index else None,
        "path_point": point_label(result.summary(), index, float(result.path.lambdas[index])),
    }
    return Model(tensors=tensors, metadata=metadata)


def point_label(summary: dict[str, Any], index: int, lam: float) -> dict[str, Any]:
    """The weights metadata's ``path_point``: which point of the path a model is."""
    return {
        "index": index,
        "lambda": lam,
        "selected": index == summary["index"],
        "is_min": index == summary["index_min"],
        "is_1se": index == summary["index_1se"],
    }


def model_at(model: Model, document: dict[str, Any], index: int) -> Model:
    """The exported path model ``model`` moved to point ``index`` of its path ``document`` (``to_dict``)."""
    points = document["points"]
    if not 0 <= index < len(points):
        raise ConfigError("lambda_index", f"must be in [0, {len(points) - 1}]: the path has {len(points)} points")
    point = points[index]
    weight = model.tensors["layers.0.weight"]
    tensors = {
        "layers.0.weight": np.asarray([point["coef"]], dtype=weight.dtype),
        "layers.0.bias": np.asarray([point["intercept"]], dtype=weight.dtype),
    }
    metadata = dict(model.metadata)
    metadata["metrics"] = {name: point[name] for name in POINT_FIELDS}
    metadata["test_metrics"] = model.metadata.get("test_metrics") if index == document["index"] else None
    metadata["path_point"] = point_label(document, index, float(point["lambda"]))
    return Model(tensors=tensors, metadata=metadata)
