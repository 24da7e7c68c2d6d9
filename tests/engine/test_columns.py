"""The column transformer: scikit-learn's ColumnTransformer on the same split, no leakage, replay from a file."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support import numpy_forward

from engine import ConfigError, Dataset, TrainSpec, export, train
from engine.columns import ColumnEncoder, summarize, summarize_target
from engine.preprocessing import encode_labels, prepare, split_indices
from engine.spec import PreprocessingSpec

SEED = 0
COLORS = ("blue", "green", "red")
SHAPES = ("circle", "square", "star", "triangle")


def table(n: int = 400, seed: int = 1) -> tuple[Dataset, np.ndarray]:
    """Two numeric columns with gaps, two text columns (one with gaps), a binary label; and the raw rows."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    income = rng.lognormal(3, 0.5, n)
    color = rng.integers(0, 3, n).astype(np.float64)
    shape = rng.integers(0, 4, n).astype(np.float64)
    logit = 0.08 * (age - 40) - 0.05 * (income - 20) + np.array([0.8, -0.5, 0.0])[color.astype(int)]
    logit += np.array([0.3, -0.6, 0.9, 0.0])[shape.astype(int)]
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    age[rng.random(n) < 0.12] = np.nan
    income[rng.random(n) < 0.08] = np.nan
    shape[rng.random(n) < 0.1] = np.nan
    X = np.column_stack([age, income, color, shape])
    ds = Dataset(
        "people",
        X,
        y.astype(np.str_),
        ("age", "income", "color", "shape"),
        "bought",
        None,
        "hand-made",
        ("numeric", "numeric", "categorical", "categorical"),
        (None, None, COLORS, SHAPES),
    )
    raw = np.empty((n, 4), dtype=object)
    raw[:, 0], raw[:, 1] = age, income
    raw[:, 2] = [COLORS[int(v)] for v in color]
    raw[:, 3] = [np.nan if math.isnan(v) else SHAPES[int(v)] for v in shape]
    return ds, raw


def logistic_spec(l2: float, epochs: int, learning_rate: float, momentum: float, **training) -> TrainSpec:
    return TrainSpec.from_dict(
        {
            "model": {"type": "logistic"},
            "regularization": {"l2": l2},
            "optimizer": {"name": "sgd", "learning_rate": learning_rate, "momentum": momentum, "nesterov": True},
            "training": {"epochs": epochs, "batch_size": 10_000, "seed": SEED, "dtype": "float64", **training},
        }
    )


def test_logistic_on_a_table_matches_sklearn_column_transformer_on_the_same_split():
    ds, raw = table()
    l2, val = 1e-2, 0.25
    data = prepare(ds, "classification", val, 0.0, True, SEED, "float64")
    n = len(data.y_train)
    # Nesterov's step and momentum for this L-smooth, (2 l2)-strongly convex objective (as in test_reference_sklearn).
    A = np.column_stack([data.X_train, np.ones(n)])
    L = 0.25 * float(np.linalg.eigvalsh(A.T @ A / n).max()) + 2 * l2
    root = math.sqrt(L / (2 * l2))
    result = train(logistic_spec(l2, 800, 1 / L, (root - 1) / (root + 1), validation_fraction=val), ds)

    labels, _ = encode_labels(ds.y)
    train_rows, val_rows, _ = split_indices(len(labels), labels, val, 0.0, SEED)
    reference = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), [0, 1]),
                (
                    "text",
                    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                    [2, 3],
                ),
            ]
        ),
        LogisticRegression(C=1 / (2 * n * l2), tol=1e-12, max_iter=10_000),
    ).fit(raw[train_rows], labels[train_rows])

    # The same inputs, the same optimum.
    transformed = reference[0].transform(raw[train_rows])
    np.testing.assert_allclose(result.data.X_train, transformed, atol=1e-12)
    assert result.data.encoder is not None
    assert result.data.encoder.output_names == [
        "age",
        "income",
        *[f"color={c}" for c in COLORS],
        *[f"shape={s}" for s in SHAPES],
    ]
    W, b = result.network.weights[0], result.network.biases[0]
    np.testing.assert_allclose(W, reference[-1].coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b, reference[-1].intercept_, rtol=0, atol=1e-4)

    # The same accuracy on the validation rows, through the exported model on raw rows.
    model = export.to_model(result)
    rows = [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in raw[val_rows].tolist()]
    ours = np.array(model.predict(rows))
    theirs = np.array(["no", "yes"])[reference.predict(raw[val_rows])]
    truth = ds.y[val_rows]
    assert np.mean(ours == truth) == np.mean(theirs == truth)
    assert result.history[-1]["val_accuracy"] == pytest.approx(np.mean(ours == truth))


def test_statistics_and_levels_come_from_the_train_split_only():
    ds, _ = table(n=200)
    labels, _ = encode_labels(ds.y)
    train_rows, val_rows, test_rows = split_indices(len(labels), labels, 0.25, 0.25, SEED)
    held_out = np.concatenate([val_rows, test_rows])
    X = ds.X.copy()
    X[held_out, 0] = 1e6  # ages only the held-out rows have
    X[held_out, 2] = 3  # a colour only the held-out rows have
    leaky = Dataset(
        "leaky",
        X,
        ds.y,
        ds.feature_names,
        "bought",
        None,
        "",
        ds.column_types,
        (None, None, (*COLORS, "zebra"), SHAPES),
    )
    data = prepare(leaky, "classification", 0.25, 0.25, True, SEED, "float64")
    encoder = data.encoder
    assert encoder is not None
    age = X[train_rows, 0]
    age_fill = encoder.columns[0]["fill"]
    assert age_fill == pytest.approx(np.nanmean(age)) and age_fill < 100
    assert "zebra" not in encoder.columns[2]["levels"] and "zebra" not in encoder.columns[2]["pooled"]
    shapes = X[train_rows, 3]
    counts = np.bincount(shapes[~np.isnan(shapes)].astype(int), minlength=4)
    assert encoder.columns[3]["fill"] == SHAPES[int(np.argmax(counts))]
    assert data.x_scaler is not None
    imputed = np.where(np.isnan(age), age_fill, age)
    assert data.x_scaler.mean[0] == pytest.approx(imputed.mean()) and data.x_scaler.std[0] == pytest.approx(
        imputed.std()
    )
    # The held-out colour encodes as all zeros.
    assert np.all(data.X_val[:, 2:5] == 0.0) and np.all(data.X_test[:, 2:5] == 0.0)


def test_max_categories_pools_the_rarer_levels_and_unseen_levels_are_zeros():
    n = 300
    ids = np.arange(n, dtype=np.float64)
    ids[:100] = 0  # level "id000" is the most frequent
    levels = tuple(f"id{i:03d}" for i in range(n))
    ds = Dataset("ids", ids[:, None], np.arange(n) % 2, ("id",), "y", None, "", ("categorical",), (levels,))
    options = PreprocessingSpec(max_categories=10)
    encoder = ColumnEncoder.fit(ds.X, ("id",), ("categorical",), (levels,), options)
    column = encoder.columns[0]
    assert len(column["levels"]) == 9 and column["levels"][0] == "id000"
    assert len(column["pooled"]) == 200 - 9 + 1
    out = encoder.encode_rows([["id000"], [column["pooled"][0]], ["never-seen"], [None]])
    assert out.shape == (4, 10)
    np.testing.assert_array_equal(out[0], np.eye(10)[0])
    np.testing.assert_array_equal(out[1], np.eye(10)[9])  # the pooled output
    np.testing.assert_array_equal(out[2], np.zeros(10))  # unseen: all zeros
    np.testing.assert_array_equal(out[3], np.eye(10)[0])  # missing: the most frequent level


@pytest.mark.parametrize(
    ("option", "column"), [("impute_numeric", "'age'"), ("impute_categorical", "'shape'")], ids=["numeric", "text"]
)
def test_impute_none_with_a_gap_names_the_column(option, column):
    ds, _ = table(n=60)
    spec = TrainSpec.from_dict({"model": {"type": "logistic"}, "preprocessing": {option: "none"}})
    with pytest.raises(ConfigError) as info:
        train(spec, ds)
    assert info.value.field == f"preprocessing.{option}" and column in info.value.message


def test_rows_with_a_missing_target_are_left_out_and_counted():
    ds, _ = table(n=100)
    y = ds.y.copy()
    y[:7] = ""
    gappy = Dataset("gappy", ds.X, y, ds.feature_names, "bought", None, "", ds.column_types, ds.levels)
    data = prepare(gappy, "auto", 0.2, 0.0, True, SEED, "float64")
    assert data.n_missing_target == 7 and len(data.y_train) + len(data.y_val) == 93
    assert data.classes is not None and data.classes.tolist() == ["no", "yes"]


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_a_weights_file_alone_reproduces_predict_on_rows_with_gaps_and_unseen_levels(fmt: str):
    ds, _ = table(n=200)
    spec = TrainSpec.from_dict(
        {
            "model": {"type": "mlp", "hidden_layers": [8]},
            "features": ["age", "color", "shape"],
            "preprocessing": {
                "impute_categorical": "missing_level",
                "missing_indicators": True,
                "impute_numeric": "median",
            },
            "training": {"epochs": 3, "seed": SEED},
        }
    )
    model = export.to_model(train(spec, ds))
    loaded = export.loads(export.dumps(model, fmt), fmt)
    rows = [[41.0, "red", None], [None, "purple", "star"], [None, None, None], [12.5, "blue", "circle"]]
    objects = [dict(zip(("age", "color", "shape"), row, strict=True)) | {"income": 3.0} for row in rows]
    expected = model.predict_proba(rows)
    np.testing.assert_allclose(loaded.predict_proba(objects), expected, atol=1e-12)
    labels, proba = numpy_forward(loaded.tensors, loaded.metadata)(rows)
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert labels == model.predict(rows)
    assert numpy_forward(loaded.tensors, loaded.metadata)(objects)[0] == labels


def test_summary_of_columns():
    X = np.array([[1.0, 0.0, 1.0], [np.nan, 1.0, 1.0], [3.0, np.nan, 0.0], [5.0, 1.0, np.nan]])
    summary = summarize(X, ("numeric", "categorical", "boolean"), (None, ("a", "b"), None), ("x", "c", "flag"))
    assert summary[0] == {"name": "x", "type": "numeric", "missing": 1, "min": 1.0, "mean": 3.0, "max": 5.0}
    assert summary[1] == {
        "name": "c",
        "type": "categorical",
        "missing": 1,
        "distinct": 2,
        "top": [{"level": "b", "count": 2}, {"level": "a", "count": 1}],
    }
    assert summary[2]["type"] == "boolean" and summary[2]["mean"] == pytest.approx(2 / 3)


def test_summary_of_targets():
    assert summarize_target("y", np.array([1, 2, 3]))["mean"] == 2.0
    labels = summarize_target("y", np.array(["b", "", "a", "b"]))
    assert labels["missing"] == 1 and labels["distinct"] == 2 and labels["top"][0] == {"level": "b", "count": 2}
