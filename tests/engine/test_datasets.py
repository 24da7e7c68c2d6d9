"""Tests for engine.datasets: built-in files, synthetic generators, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import datasets
from engine.datasets import (
    BUILTIN_DATASETS,
    Dataset,
    linear_true_coefficients,
    list_builtins,
    load_builtin,
    make_linear,
    make_moons,
)
from engine.errors import ConfigError, DatasetError, EngineError

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "engine" / "data"
FILE_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")

# name -> (n_samples, n_features, task)
EXPECTED = {
    "iris": (150, 4, "classification"),
    "wine": (178, 13, "classification"),
    "breast_cancer": (569, 30, "classification"),
    "digits": (1797, 64, "classification"),
    "diabetes": (442, 10, "regression"),
    "linear": (1000, 10, "regression"),
    "moons": (200, 2, "classification"),
}


def test_builtin_names() -> None:
    assert BUILTIN_DATASETS == (
        "iris",
        "wine",
        "breast_cancer",
        "digits",
        "diabetes",
        "linear",
        "moons",
    )
    assert set(EXPECTED) == set(BUILTIN_DATASETS)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_shapes_and_dtypes(name: str) -> None:
    ds = load_builtin(name)
    n_samples, n_features, task = EXPECTED[name]
    assert isinstance(ds, Dataset)
    assert ds.name == name
    assert ds.task == task
    assert ds.X.shape == (n_samples, n_features)
    assert ds.X.dtype == np.float64
    assert ds.y.shape == (n_samples,)
    assert (ds.n_samples, ds.n_features) == (n_samples, n_features)
    assert len(ds.feature_names) == n_features
    assert all(isinstance(f, str) and f for f in ds.feature_names)
    assert len(set(ds.feature_names)) == n_features
    assert isinstance(ds.target_name, str) and ds.target_name
    assert ds.description and "\n" not in ds.description
    assert np.isfinite(ds.X).all()


@pytest.mark.parametrize(
    ("name", "classes"),
    [
        ("iris", ["setosa", "versicolor", "virginica"]),
        ("wine", ["class_0", "class_1", "class_2"]),
        ("breast_cancer", ["benign", "malignant"]),
    ],
)
def test_named_class_labels(name: str, classes: list[str]) -> None:
    ds = load_builtin(name)
    assert ds.y.dtype.kind == "U"
    assert np.unique(ds.y).tolist() == classes


def test_class_counts() -> None:
    iris = load_builtin("iris")
    assert dict(zip(*np.unique(iris.y, return_counts=True), strict=True)) == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    cancer = load_builtin("breast_cancer")
    assert int(np.sum(cancer.y == "malignant")) == 212
    assert int(np.sum(cancer.y == "benign")) == 357
    wine = load_builtin("wine")
    assert np.unique(wine.y, return_counts=True)[1].tolist() == [59, 71, 48]


def test_digits_int_labels() -> None:
    ds = load_builtin("digits")
    assert ds.y.dtype == np.int64
    assert np.unique(ds.y).tolist() == list(range(10))
    assert ds.X.min() == 0.0 and ds.X.max() == 16.0
    assert np.array_equal(ds.X, np.round(ds.X))


def test_diabetes_is_raw_regression() -> None:
    ds = load_builtin("diabetes")
    assert ds.task == "regression"
    assert ds.y.dtype == np.float64
    assert ds.feature_names[:4] == ("age", "sex", "bmi", "bp")
    # Raw, unscaled values: ages in years, sex coded 1/2.
    assert ds.X[:, 0].min() >= 18.0 and ds.X[:, 0].max() <= 80.0
    assert set(np.unique(ds.X[:, 1]).tolist()) == {1.0, 2.0}
    assert ds.y.min() >= 25.0 and ds.y.max() <= 346.0


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_files_load_without_pickle(name: str) -> None:
    path = DATA_DIR / f"{name}.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    classification = EXPECTED[name][2] == "classification"
    expected_keys = {"X", "y", "feature_names"}
    if classification:
        expected_keys.add("target_names")
    assert set(arrays) == expected_keys
    assert arrays["X"].dtype == np.float64
    assert arrays["feature_names"].dtype.kind == "U"
    if classification:
        assert arrays["y"].dtype == np.int64
        assert arrays["target_names"].dtype.kind == "U"
        assert arrays["y"].min() == 0
        assert arrays["y"].max() == arrays["target_names"].shape[0] - 1
    else:
        assert arrays["y"].dtype == np.float64


def test_file_target_names() -> None:
    with np.load(DATA_DIR / "iris.npz", allow_pickle=False) as npz:
        assert npz["target_names"].tolist() == ["setosa", "versicolor", "virginica"]
    with np.load(DATA_DIR / "breast_cancer.npz", allow_pickle=False) as npz:
        assert npz["target_names"].tolist() == ["malignant", "benign"]
    with np.load(DATA_DIR / "digits.npz", allow_pickle=False) as npz:
        assert npz["target_names"].tolist() == [str(d) for d in range(10)]


def test_loader_maps_indices_to_names() -> None:
    with np.load(DATA_DIR / "iris.npz", allow_pickle=False) as npz:
        expected = npz["target_names"][npz["y"]]
        X = npz["X"]
    ds = load_builtin("iris")
    assert np.array_equal(ds.y, expected)
    assert np.array_equal(ds.X, X)


def test_each_load_returns_fresh_arrays() -> None:
    a = load_builtin("iris")
    a.X[0, 0] = -1.0
    b = load_builtin("iris")
    assert b.X[0, 0] != -1.0


def test_list_builtins_matches_loaded_data() -> None:
    infos = list_builtins()
    assert [info["name"] for info in infos] == list(BUILTIN_DATASETS)
    for info in infos:
        assert set(info) == {"name", "n_samples", "n_features", "task", "description"}
        ds = load_builtin(info["name"])
        assert (info["n_samples"], info["n_features"]) == ds.X.shape
        assert info["task"] == ds.task
        assert info["description"]


# --- synthetic datasets ---------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "moons"])
def test_synthetic_same_seed_bit_identical(name: str) -> None:
    a = load_builtin(name, seed=7)
    b = load_builtin(name, seed=7)
    assert a.X.tobytes() == b.X.tobytes()
    assert a.y.tobytes() == b.y.tobytes()
    assert a.y.dtype == b.y.dtype


@pytest.mark.parametrize("name", ["linear", "moons"])
def test_synthetic_other_seed_differs(name: str) -> None:
    a = load_builtin(name, seed=0)
    b = load_builtin(name, seed=1)
    assert not np.array_equal(a.X, b.X)


def test_load_builtin_uses_make_functions() -> None:
    assert np.array_equal(load_builtin("linear", seed=3).X, make_linear(seed=3).X)
    assert np.array_equal(load_builtin("moons", seed=3).X, make_moons(seed=3).X)


def test_seed_ignored_for_file_datasets() -> None:
    assert np.array_equal(load_builtin("wine", seed=0).X, load_builtin("wine", seed=5).X)


def test_linear_true_coefficients_sparse() -> None:
    for seed in range(5):
        coef, intercept = linear_true_coefficients(seed)
        assert coef.shape == (10,) and coef.dtype == np.float64
        n_zero = int(np.sum(coef == 0.0))
        assert n_zero >= coef.size / 2
        assert n_zero < coef.size
        assert np.all(np.abs(coef[coef != 0.0]) >= 1.0)
        assert -1.0 <= intercept < 1.0
    assert not np.array_equal(linear_true_coefficients(0)[0], linear_true_coefficients(1)[0])


def test_linear_follows_its_true_coefficients() -> None:
    coef, intercept = linear_true_coefficients(seed=4, n_features=6)
    exact = make_linear(n_samples=50, n_features=6, noise=0.0, seed=4)
    assert exact.X.min() >= 0.0 and exact.X.max() < 1.0
    np.testing.assert_allclose(exact.y, exact.X @ coef + intercept, rtol=0, atol=1e-12)
    # With noise, least squares recovers the truth closely.
    ds = make_linear(n_samples=2000, seed=4)
    A = np.column_stack([ds.X, np.ones(ds.n_samples)])
    fitted = np.linalg.lstsq(A, ds.y, rcond=None)[0]
    true_coef, true_b = linear_true_coefficients(seed=4)
    np.testing.assert_allclose(fitted[:-1], true_coef, atol=0.05)
    assert abs(fitted[-1] - true_b) < 0.05
    assert abs(np.std(ds.y - A @ fitted) - 0.1) < 0.01


def test_linear_coefficients_independent_of_n_samples() -> None:
    small = make_linear(n_samples=10, noise=0.0, seed=2)
    coef, b = linear_true_coefficients(seed=2)
    np.testing.assert_allclose(small.y, small.X @ coef + b, rtol=0, atol=1e-12)
    assert small.task == "regression" and small.y.dtype == np.float64


def test_moons_two_dimensional_with_both_classes() -> None:
    ds = make_moons()
    assert ds.X.shape == (200, 2)
    assert ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist() == [100, 100]
    odd = make_moons(n_samples=7, seed=1)
    assert np.bincount(odd.y).tolist() == [3, 4]


def test_moons_geometry_without_noise() -> None:
    ds = make_moons(n_samples=101, noise=0.0, seed=3)
    outer = ds.X[ds.y == 0]
    inner = ds.X[ds.y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0)
    assert np.all(outer[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0)
    assert np.all(inner[:, 1] <= 0.5 + 1e-12)
    # Shuffled: labels are not in blocks.
    assert not np.array_equal(ds.y, np.sort(ds.y))


def test_moons_noise_scale() -> None:
    clean = make_moons(n_samples=4000, noise=0.0, seed=9)
    noisy = make_moons(n_samples=4000, noise=0.3, seed=9)
    # Same seed: identical shuffle, so the difference is the noise alone.
    assert np.array_equal(clean.y, noisy.y)
    assert abs(np.std(noisy.X - clean.X) - 0.3) < 0.01


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: make_linear(n_samples=0), "n_samples"),
        (lambda: make_linear(n_features=0), "n_features"),
        (lambda: make_linear(noise=-0.1), "noise"),
        (lambda: make_linear(noise=float("nan")), "noise"),
        (lambda: make_linear(seed=-1), "seed"),
        (lambda: make_linear(n_samples=2.5), "n_samples"),  # type: ignore[arg-type]
        (lambda: make_moons(n_samples=1), "n_samples"),
        (lambda: make_moons(noise=float("inf")), "noise"),
        (lambda: make_moons(seed=True), "seed"),
        (lambda: load_builtin("moons", seed=-3), "seed"),
        (lambda: linear_true_coefficients(n_features=0), "n_features"),
    ],
)
def test_invalid_synthetic_arguments(call: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.field == field


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "Iris", "", None])
def test_unknown_name_lists_known_datasets(name: object) -> None:
    with pytest.raises(DatasetError) as info:
        load_builtin(name)  # type: ignore[arg-type]
    assert isinstance(info.value, EngineError)
    message = str(info.value)
    for known in BUILTIN_DATASETS:
        assert known in message


def test_missing_data_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError, match="missing") as info:
        load_builtin("iris")
    # The message may reach API clients: it names the file, not the path.
    assert str(tmp_path) not in str(info.value)


def test_corrupt_data_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "wine.npz").write_bytes(b"not a zip file")
    monkeypatch.setattr(datasets, "_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError, match="unreadable"):
        load_builtin("wine")


def test_pickled_data_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    np.savez_compressed(
        tmp_path / "iris.npz",
        X=np.zeros((150, 4)),
        y=np.zeros(150, dtype=np.int64),
        feature_names=np.array(["a", "b", "c", "d"], dtype=object),
        target_names=np.array(["s"]),
    )
    monkeypatch.setattr(datasets, "_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError):
        load_builtin("iris")


def test_mis_shaped_data_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    np.savez_compressed(
        tmp_path / "diabetes.npz",
        X=np.zeros((10, 10)),
        y=np.zeros(10),
        feature_names=np.array([f"f{i}" for i in range(10)]),
    )
    monkeypatch.setattr(datasets, "_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError, match="shape"):
        load_builtin("diabetes")


def test_dataset_validation() -> None:
    X = np.zeros((3, 2))
    ok = Dataset("u", X, np.zeros(3), ("a", "b"), "target", None, "upload")
    assert ok.task is None and ok.n_features == 2
    with pytest.raises(DatasetError):
        Dataset("u", X, np.zeros(4), ("a", "b"), "t", None, "")
    with pytest.raises(DatasetError):
        Dataset("u", X, np.zeros(3), ("a",), "t", None, "")
    with pytest.raises(DatasetError):
        Dataset("u", X.astype(np.float32), np.zeros(3), ("a", "b"), "t", None, "")
    with pytest.raises(DatasetError):
        Dataset("u", X, np.zeros(3), ("a", "b"), "t", "clustering", "")
    with pytest.raises(DatasetError):
        Dataset("u", np.zeros(3), np.zeros(3), ("a",), "t", None, "")


def test_engine_does_not_import_sklearn() -> None:
    code = (
        "import sys, engine.datasets as d; d.load_builtin('iris'); "
        "bad = [m for m in ('sklearn', 'pandas', 'scipy') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
