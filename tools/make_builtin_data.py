"""Generate the engine's built-in dataset files from scikit-learn (run once).

This script is *not* imported by the engine: ``engine/`` depends only on NumPy
and the standard library.  It documents exactly how the files in
``engine/data/`` were made, so they can be regenerated or audited.

For every dataset it writes ``engine/data/<name>.npz`` with
:func:`numpy.savez_compressed`, containing only plain (non-object) arrays so the
files load with ``np.load(path, allow_pickle=False)``:

``X``
    float64, shape (n_samples, n_features).
``y``
    int64 class indices, shape (n_samples,), for classification;
    float64 targets, shape (n_samples,), for regression.
``feature_names``
    unicode (``<U``) array, shape (n_features,).
``target_names``
    unicode (``<U``) array, shape (n_classes,); classification only.
    ``target_names[y]`` gives the class name of every sample.

Usage (from the repository root, in an environment with scikit-learn)::

    python tools/make_builtin_data.py            # (re)write engine/data/*.npz
    python tools/make_builtin_data.py --check    # compare files with sklearn

The array contents are deterministic; the bytes are not (the zip members carry
a timestamp), so regenerating produces a binary diff with identical data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets as skd

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "engine" / "data"

# name -> (loader, is_classification)
SOURCES: dict[str, tuple[Callable[[], Any], bool]] = {
    "iris": (skd.load_iris, True),
    "wine": (skd.load_wine, True),
    "breast_cancer": (skd.load_breast_cancer, True),
    "digits": (skd.load_digits, True),
    # Raw, unscaled values (ages in years, BMI, blood pressure, ...).
    "diabetes": (lambda: skd.load_diabetes(scaled=False), False),
}


def _unicode(values: Any) -> np.ndarray:
    """Return ``values`` as a 1-D unicode (``<U``) array, never object dtype."""
    arr = np.array([str(v) for v in values], dtype=str)
    assert arr.dtype.kind == "U", arr.dtype
    return arr


def build_arrays(name: str) -> dict[str, np.ndarray]:
    """Load dataset ``name`` from scikit-learn and convert it to plain arrays.

    Parameters
    ----------
    name : str
        One of the keys of ``SOURCES``.

    Returns
    -------
    dict of str to ndarray
        ``X`` (n_samples, n_features) float64, ``y`` (n_samples,) int64 or
        float64, ``feature_names`` (n_features,) unicode and, for
        classification, ``target_names`` (n_classes,) unicode.
    """
    loader, is_classification = SOURCES[name]
    bunch = loader()
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    arrays: dict[str, np.ndarray] = {
        "X": X,
        "feature_names": _unicode(bunch.feature_names),
    }
    if is_classification:
        y = np.asarray(bunch.target)
        assert np.array_equal(y, y.astype(np.int64)), "class labels must be integers"
        arrays["y"] = y.astype(np.int64)
        # digits has integer target_names (0..9): store them as strings too.
        arrays["target_names"] = _unicode(bunch.target_names)
        assert arrays["y"].min() >= 0
        assert arrays["y"].max() < arrays["target_names"].shape[0]
    else:
        arrays["y"] = np.asarray(bunch.target, dtype=np.float64)
    assert X.ndim == 2 and arrays["y"].shape == (X.shape[0],)
    assert arrays["feature_names"].shape == (X.shape[1],)
    return arrays


def write(out_dir: Path) -> None:
    """Write every dataset to ``out_dir/<name>.npz`` and print a summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        arrays = build_arrays(name)
        path = out_dir / f"{name}.npz"
        payload: dict[str, Any] = dict(arrays)
        np.savez_compressed(path, **payload)
        # Round-trip check: must load without pickle and be identical.
        with np.load(path, allow_pickle=False) as npz:
            for key, value in arrays.items():
                loaded = npz[key]
                assert loaded.dtype == value.dtype, (name, key, loaded.dtype)
                assert np.array_equal(loaded, value), (name, key)
        n_samples, n_features = arrays["X"].shape
        print(
            f"{path}: {n_samples} x {n_features}, {path.stat().st_size} bytes",
        )


def check(out_dir: Path) -> int:
    """Compare the files in ``out_dir`` with scikit-learn; return an exit code."""
    failures = 0
    for name in SOURCES:
        before = failures
        path = out_dir / f"{name}.npz"
        expected = build_arrays(name)
        try:
            with np.load(path, allow_pickle=False) as npz:
                actual = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:
            print(f"{name}: cannot load {path}: {exc}")
            failures += 1
            continue
        if set(actual) != set(expected):
            print(f"{name}: keys {sorted(actual)} != {sorted(expected)}")
            failures += 1
            continue
        for key, value in expected.items():
            if actual[key].dtype != value.dtype or not np.array_equal(actual[key], value):
                print(f"{name}: {key} differs from scikit-learn")
                failures += 1
        if failures == before:
            print(f"{name}: ok")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"directory for the .npz files (default: {DEFAULT_OUT_DIR})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; verify the existing files match scikit-learn",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check(args.out_dir)
    write(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
