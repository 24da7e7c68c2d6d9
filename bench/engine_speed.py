"""Benchmark one training epoch of the engine against PyTorch (CPU) and scikit-learn.

Usage::

    python bench/engine_speed.py                  # full run, about 1.5 minutes on 2 cores
    python bench/engine_speed.py --quick          # small data, few repeats: a smoke run
    python bench/engine_speed.py --profile        # add a per-batch breakdown of the engine's train pass
    python bench/engine_speed.py --json out.json  # also write every measurement as JSON
    python bench/engine_speed.py --no-torch --no-sklearn   # engine only (needs nothing but NumPy)

Everything runs in one process. Shared machines are noisy, so the script
reports *ratios measured in the same run*: each repeat runs every framework
once, in an order rotated from repeat to repeat, so drift hits them alike;
the first round is an untimed warm-up; best and median over the repeats are
reported. Missed performance targets are printed, never turned into a
non-zero exit status.

Cases
-----
large
    MLP 784-256-10 (relu, hidden dropout 0.5, L2 1e-4 on the weights), Adam
    lr 1e-3, batch 128, one epoch over 60,000 x 784 float32 synthetic rows
    (N(0, 1) features, labels from a random linear teacher).
small
    MLP 64-32-10 on the built-in ``digits`` (1,797 x 64, standardized), batch
    32, Adam lr 1e-3, L2 1e-4, no dropout; several epochs per repeat. Per-batch
    Python overhead dominates here.

The same objective everywhere: mean cross-entropy + ``l2 * sum(w**2)`` over the
weights (not biases). PyTorch gets it through Adam's coupled ``weight_decay =
2 * l2`` on a weights-only parameter group, which adds ``2 * l2 * w`` to the
gradient exactly as the engine does. scikit-learn's penalty is ``alpha / (2 *
batch) * sum(w**2)`` per batch, so ``alpha = 2 * l2 * batch_size`` (exact for
every full batch); it has no dropout.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import json
import math
import os
import platform
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without installing: the repository root holds the packages.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engine.datasets import Dataset, load_builtin  # noqa: E402
from engine.preprocessing import PreparedData, prepare  # noqa: E402
from engine.spec import TrainSpec  # noqa: E402
from engine.trainer import Trainer  # noqa: E402

#: Targets; printed as met or missed, never enforced.
TARGET_TRAIN_RATIO = 1.5  # large case: PyTorch seconds / engine seconds, train pass
TARGET_FULL_RATIO = 1.5  # large case: same for train pass + evaluation
TARGET_PEAK_FRACTION = 0.5  # large case: engine train-pass GFLOP/s / float32 GEMM peak
TARGET_SMALL_RATIO = 1.0  # small case: PyTorch seconds / engine seconds per epoch


# -- configuration -------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark configuration, shared by every framework."""

    name: str
    description: str
    hidden: tuple[int, ...]
    batch_size: int
    dropout: float
    l2: float
    learning_rate: float
    standardize: bool
    epochs_per_repeat: int
    repeats: int

    def spec(self) -> TrainSpec:
        """The engine's training spec of this case."""
        return TrainSpec.from_dict(
            {
                "task": "classification",
                "model": {"type": "mlp", "hidden_layers": list(self.hidden), "activation": "relu"},
                "regularization": {"l2": self.l2, "dropout": self.dropout},
                "optimizer": {"name": "adam", "learning_rate": self.learning_rate},
                "training": {
                    "epochs": 100_000,  # the most the spec allows; the benchmark steps the trainer itself
                    "batch_size": self.batch_size,
                    "validation_fraction": 0.0,
                    "standardize": self.standardize,
                    "seed": 0,
                    "dtype": "float32",
                },
            }
        )

    def prepare(self, dataset: Dataset) -> PreparedData:
        """Engine-prepared float32 data; every framework trains on these arrays."""
        return prepare(dataset, "classification", 0.0, 0.0, self.standardize, 0, "float32")


def synthetic_dataset(n_samples: int, n_features: int, n_classes: int, seed: int = 0) -> Dataset:
    """N(0, 1) features with labels from a random linear teacher (learnable, balanced-ish)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32).astype(np.float64)
    teacher = rng.standard_normal((n_features, n_classes)) / math.sqrt(n_features)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return Dataset(
        name="synthetic",
        X=X,
        y=y,
        feature_names=tuple(f"x{i}" for i in range(n_features)),
        target_name="label",
        task="classification",
        description=f"{n_samples} x {n_features} N(0,1) rows, {n_classes} classes from a random linear teacher",
    )


def train_pass_flops(sizes: list[int], n_samples: int) -> int:
    """FLOPs of one train pass: forward and weight-gradient GEMMs of every layer, input gradients but the first's."""
    layer = [i * o for i, o in itertools.pairwise(sizes)]
    return 2 * n_samples * (2 * sum(layer) + sum(layer[1:]))


# -- machine -------------------------------------------------------------------


def numpy_blas_info() -> dict[str, Any]:
    """NumPy's BLAS as threadpoolctl sees it (library, version, kernel architecture, threads)."""
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-untyped]
    except ImportError:
        return {}
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    numpy_own = [lib for lib in blas if "numpy" in str(lib.get("filepath", ""))]
    return dict((numpy_own or blas or [{}])[0])


def blas_threads() -> int:
    """Thread count of NumPy's BLAS; every framework gets as many."""
    threads = numpy_blas_info().get("num_threads")
    return int(threads) if threads else (os.cpu_count() or 1)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class LoadMonitor:
    """CPU time other processes (and the hypervisor, as steal) took while a block ran.

    Reads the whole machine's busy jiffies from /proc/stat and subtracts this
    process's own CPU time: on a shared machine this says how much the numbers
    were disturbed. Unavailable (None) where /proc/stat does not exist.
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        own = os.times()
        return (
            time.perf_counter(),
            (user + nice + system + irq + softirq) / hz,
            steal / hz,
            own.user + own.system + own.children_user + own.children_system,
        )

    def others(self) -> dict[str, float] | None:
        """Average CPUs used by other processes and CPUs stolen, since construction."""
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        if wall <= 0:
            return None
        busy, steal, own = (end[i] - self._start[i] for i in (1, 2, 3))
        return {"other_cpus": max(busy - own, 0.0) / wall, "steal_cpus": steal / wall, "seconds": wall}


def describe_load(load: dict[str, float] | None) -> str:
    """One line about competing load, with a warning when it is significant."""
    if load is None:
        return "competing load: unknown (no /proc/stat)"
    line = (
        f"competing load during this case: {load['other_cpus']:.2f} CPUs busy with other processes, "
        f"{load['steal_cpus']:.2f} CPUs stolen by the hypervisor (over {load['seconds']:.0f} s)"
    )
    if load["other_cpus"] + load["steal_cpus"] > 0.25:
        line += "\nWARNING: the machine was busy; multi-threaded BLAS suffers badly when a thread's CPU is taken, rerun"
    return line


def cpu_has_avx512() -> bool:
    """Whether /proc/cpuinfo lists the avx512f flag."""
    with contextlib.suppress(OSError):
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    return False


def machine_info(torch_mod: Any, sklearn_version: str | None) -> dict[str, Any]:
    """Versions, CPU and BLAS of this run, for the report."""
    blas_build: dict[str, Any] = {}
    with contextlib.suppress(Exception):  # show_config(mode=...) is NumPy >= 1.25
        config: Any = np.show_config(mode="dicts")
        blas_build = dict(config["Build Dependencies"]["blas"])
    runtime = numpy_blas_info()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "numpy": np.__version__,
        "numpy_blas": f"{blas_build.get('name', '?')} {blas_build.get('version', '')}".strip(),
        "numpy_blas_config": blas_build.get("openblas configuration"),
        "numpy_blas_runtime_kernel": runtime.get("architecture"),
        "openblas_environment": {k: v for k, v in os.environ.items() if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "numpy_blas_threads": runtime.get("num_threads"),
        "torch": None,
        "sklearn": sklearn_version,
    }
    if torch_mod is not None:
        info["torch"] = torch_mod.__version__
        info["torch_blas"] = "mkl" if torch_mod.backends.mkl.is_available() else "other"
        info["torch_cpu_capability"] = torch_mod.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch_mod.get_num_threads()
    return info


# -- GEMM reference ------------------------------------------------------------


def gemm_gflops(m: int, k: int, n: int, *, transpose_b: bool = False, repeats: int = 5, budget: float = 0.1) -> float:
    """Best float32 GFLOP/s of ``(m x k) @ (k x n)`` with NumPy, into a preallocated output.

    ``transpose_b`` multiplies by the transpose of an (n x k) array, as the
    engine does with its (out, in) weights. Each repeat runs enough products
    to last about ``budget`` seconds.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((n, k), dtype=np.float32).T if transpose_b else rng.standard_normal((k, n), np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    start = time.perf_counter()
    np.matmul(a, b, out=out)
    iters = max(1, int(budget / max(time.perf_counter() - start, 1e-7)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - start) / iters)
    return 2.0 * m * k * n / best / 1e9


# -- framework runners -----------------------------------------------------------


class Runner(Protocol):
    """Trains ``epochs`` epochs and returns (train-loop seconds, evaluation seconds or None)."""

    label: str

    def run(self, epochs: int) -> tuple[float, float | None]: ...

    def accuracy(self) -> float | None: ...


class EngineRunner:
    """Our engine: ``Trainer.train_pass`` then ``Trainer.end_epoch`` (evaluation and metrics record)."""

    def __init__(self, case: Case, data: PreparedData) -> None:
        self.label = "engine"
        self.trainer = Trainer(case.spec(), data)
        self._last: dict[str, Any] = {}

    def run(self, epochs: int) -> tuple[float, float | None]:
        train = evaluate = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # as Trainer.run does
            for _ in range(epochs):
                start = time.perf_counter()
                self.trainer.train_pass()
                trained = time.perf_counter()
                self._last = self.trainer.end_epoch()
                train += trained - start
                evaluate += time.perf_counter() - trained
        return train, evaluate

    def accuracy(self) -> float | None:
        return self._last.get("accuracy")


class TorchRunner:
    """PyTorch: randperm-indexed mini-batches, Adam (one of its implementations), eval forward under no_grad."""

    def __init__(self, torch_mod: Any, case: Case, data: PreparedData, variant: str) -> None:
        torch, nn = torch_mod, torch_mod.nn
        self.torch = torch
        self.label = f"torch Adam {variant}"
        self.batch = case.batch_size
        torch.manual_seed(0)
        sizes = [data.n_features, *case.hidden, data.n_outputs]
        layers: list[Any] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
                if case.dropout > 0:
                    layers.append(nn.Dropout(case.dropout))
        self.model = nn.Sequential(*layers)
        self.weights = [p for name, p in self.model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in self.model.named_parameters() if name.endswith("bias")]
        groups = [{"params": self.weights, "weight_decay": 2.0 * case.l2}, {"params": biases, "weight_decay": 0.0}]
        options = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant]
        self.optimizer = torch.optim.Adam(groups, lr=case.learning_rate, **options)
        self.loss_fn = nn.CrossEntropyLoss()
        self.X = torch.from_numpy(data.X_train)
        self.y = torch.from_numpy(np.ascontiguousarray(data.y_train, dtype=np.int64))
        self.generator = torch.Generator().manual_seed(0)
        self._accuracy: float | None = None

    def run(self, epochs: int) -> tuple[float, float | None]:
        torch, model, opt, loss_fn, X, y = self.torch, self.model, self.optimizer, self.loss_fn, self.X, self.y
        n, batch = len(y), self.batch
        train = evaluate = 0.0
        for _ in range(epochs):
            start = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=self.generator)
            for first in range(0, n, batch):
                rows = order[first : first + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(X[rows]), y[rows])
                loss.backward()
                opt.step()
            trained = time.perf_counter()
            # What the engine's end_epoch computes: loss, accuracy, penalty, weight norm over the train split.
            model.eval()
            with torch.no_grad():
                logits = model(X)
                train_loss = float(loss_fn(logits, y))
                self._accuracy = float((logits.argmax(dim=1) == y).float().mean())
                squares = float(sum(float((w * w).sum()) for w in self.weights))
            if not (math.isfinite(train_loss) and math.isfinite(squares)):
                raise FloatingPointError(f"{self.label} diverged")
            train += trained - start
            evaluate += time.perf_counter() - trained
        return train, evaluate

    def accuracy(self) -> float | None:
        return self._accuracy


class SklearnRunner:
    """scikit-learn's MLPClassifier, one ``partial_fit`` per epoch (its own shuffle, Adam, L2; no dropout)."""

    def __init__(self, case: Case, data: PreparedData) -> None:
        from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
        from sklearn.neural_network import MLPClassifier  # type: ignore[import-untyped]

        self.label = "sklearn MLPClassifier"
        self._warning = ConvergenceWarning
        self.alpha = 2.0 * case.l2 * case.batch_size
        self.model = MLPClassifier(
            hidden_layer_sizes=case.hidden,
            activation="relu",
            solver="adam",
            alpha=self.alpha,
            batch_size=case.batch_size,
            learning_rate_init=case.learning_rate,
            max_iter=1,
            shuffle=True,
            random_state=0,
        )
        self.X, self.y = data.X_train, data.y_train
        self.classes = np.unique(self.y)

    def run(self, epochs: int) -> tuple[float, float | None]:
        train = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._warning)
            for _ in range(epochs):
                start = time.perf_counter()
                self.model.partial_fit(self.X, self.y, classes=self.classes)
                train += time.perf_counter() - start
        return train, None

    def accuracy(self) -> float | None:
        return float(self.model.score(self.X, self.y))

    @property
    def dtype(self) -> str:
        """The dtype scikit-learn trained in (recent versions keep float32 input in float32)."""
        coefs = getattr(self.model, "coefs_", None)
        return str(coefs[0].dtype) if coefs else "?"


# -- measurement -----------------------------------------------------------------


@dataclass
class Series:
    """Per-repeat seconds of one framework (per epoch)."""

    label: str
    train: list[float] = field(default_factory=list)
    evaluate: list[float] = field(default_factory=list)
    accuracy: float | None = None
    note: str = ""

    @property
    def full(self) -> list[float]:
        """Train + evaluation seconds of each repeat (empty when the framework has no evaluation)."""
        return [t + e for t, e in zip(self.train, self.evaluate, strict=True)] if self.evaluate else []

    def stat(self, which: str, how: str) -> float | None:
        """``best`` (minimum) or ``median`` seconds of ``train`` or ``full`` epochs; None without data."""
        values = self.train if which == "train" else self.full
        if not values:
            return None
        return min(values) if how == "best" else statistics.median(values)


def measure(runners: list[Runner], case: Case, log: Callable[[str], None]) -> list[Series]:
    """Interleaved repeats (rotating order) after one untimed warm-up round; seconds per epoch."""
    series = [Series(r.label) for r in runners]
    for rnd in range(case.repeats + 1):
        shift = rnd % len(runners)
        for idx in [*range(shift, len(runners)), *range(shift)]:
            runner = runners[idx]
            train, evaluate = runner.run(case.epochs_per_repeat)
            if rnd == 0:
                continue  # warm-up: buffers, lazy initialization, caches
            series[idx].train.append(train / case.epochs_per_repeat)
            if evaluate is not None:
                series[idx].evaluate.append(evaluate / case.epochs_per_repeat)
        if rnd:
            log(f"  [{case.name}] repeat {rnd}/{case.repeats} done")
    for s, runner in zip(series, runners, strict=True):
        s.accuracy = runner.accuracy()
    return series


def build_runners(
    case: Case, data: PreparedData, torch_mod: Any, use_sklearn: bool, log: Callable[[str], None]
) -> list[Runner]:
    """The engine first, then whatever PyTorch variants and scikit-learn are available."""
    runners: list[Runner] = [EngineRunner(case, data)]
    if torch_mod is not None:
        for variant in ("default", "foreach", "fused"):
            try:
                runners.append(TorchRunner(torch_mod, case, data, variant))
            except (RuntimeError, TypeError, ValueError) as exc:  # e.g. fused Adam unsupported on this build
                log(f"  torch Adam {variant}: unavailable ({exc})")
    if use_sklearn:
        runners.append(SklearnRunner(case, data))
    return runners


# -- profile of the engine's train pass ------------------------------------------------


def minor_page_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def profile_train_pass(case: Case, data: PreparedData, max_batches: int) -> dict[str, Any]:
    """Microseconds per batch spent in each function of the engine's own ``Trainer.train_pass``.

    The real code runs under :mod:`cProfile` (nothing is replicated, so the
    profile cannot drift from the engine): for each Python function it calls,
    its own time (``self``, NumPy's C kernels called from it included) and its
    time with callees (``total``), per batch. The profiler's hooks cost about a
    microsecond per call; the uninstrumented ``train_pass`` per batch (best of
    three passes) is reported beside it.
    """
    trainer = Trainer(case.spec(), data)
    n_rows = len(data.y_train)
    batches_per_pass = math.ceil(n_rows / case.batch_size)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        trainer.train_pass()  # warm-up
        reference = math.inf
        faults_before = minor_page_faults()
        for _ in range(3):
            start = time.perf_counter()
            trainer.train_pass()
            reference = min(reference, (time.perf_counter() - start) / batches_per_pass)
        faults = minor_page_faults() - faults_before
        passes = max(1, math.ceil(max_batches / batches_per_pass))
        profiler = cProfile.Profile()
        begin = time.perf_counter()
        profiler.enable()
        for _ in range(passes):
            trainer.train_pass()
        profiler.disable()
        profiled = (time.perf_counter() - begin) / (passes * batches_per_pass)
    n_batches = passes * batches_per_pass
    components: dict[str, dict[str, float]] = {}
    for (filename, _line, name), (_calls, ncalls, self_s, total_s, _callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if name == "<method 'disable' of '_lsprof.Profiler' objects>":
            continue
        where = _component(filename, name)
        entry = components.setdefault(where, {"self": 0.0, "total": 0.0, "calls": 0.0})
        entry["self"] += self_s / n_batches * 1e6
        entry["total"] = max(entry["total"], total_s / n_batches * 1e6)
        entry["calls"] += ncalls / n_batches
    # One elementwise in-place pass over the parameter vector: the memory-bound unit Adam is made of.
    net = trainer.network
    a_buf, b_buf = net.params.copy(), net.grads.copy()
    one_pass = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100):
            a_buf -= b_buf
        one_pass = min(one_pass, (time.perf_counter() - start) / 100)
    return {
        "batches": n_batches,
        "batch_size": case.batch_size,
        "components_us": dict(sorted(components.items(), key=lambda kv: -kv[1]["self"])),
        "profiled_us_per_batch": profiled * 1e6,
        "train_pass_us_per_batch": reference * 1e6,
        "train_pass_minor_page_faults_per_batch": faults / (3 * batches_per_pass),
        "params": int(net.params.size),
        "one_elementwise_pass_over_params_us": one_pass * 1e6,
    }


def _component(filename: str, name: str) -> str:
    """``engine/network.py:train_batch``, ``numpy:take``, or the built-in's own name."""
    path = Path(filename)
    if filename == "~":  # a C function (built-in)
        return name
    for package in ("engine", "numpy"):
        if package in path.parts:
            rest = path.parts[path.parts.index(package) :]
            return f"{'/'.join(rest) if package == 'engine' else 'numpy'}:{name}"
    return f"{path.name}:{name}"


# -- report ------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or ``-`` when missing."""
    return "-" if value is None else format(value, spec)


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


def summarize(case: Case, series: list[Series], sizes: list[int], n_rows: int) -> dict[str, Any]:
    """Best/median seconds, ratios against the engine and the PyTorch reference variant."""
    engine = series[0]
    torch_series = [s for s in series if s.label.startswith("torch")]
    reference = min(torch_series, key=lambda s: s.stat("train", "best") or math.inf) if torch_series else None
    flops = train_pass_flops(sizes, n_rows)
    rows = []
    for s in series:
        row: dict[str, Any] = {"label": s.label, "note": s.note, "accuracy": s.accuracy}
        for which in ("train", "full"):
            for how in ("best", "median"):
                row[f"{which}_{how}"] = s.stat(which, how)
                row[f"{which}_{how}_ratio"] = _ratio(s.stat(which, how), engine.stat(which, how))
        row["train_gflops"] = _ratio(flops / 1e9, s.stat("train", "best"))
        row["train_repeats"], row["eval_repeats"] = s.train, s.evaluate
        rows.append(row)
    return {
        "case": asdict(case),
        "sizes": sizes,
        "rows_trained": n_rows,
        "train_pass_gflop": flops / 1e9,
        "torch_reference": reference.label if reference else None,
        "frameworks": rows,
    }


def _ms(seconds: float | None) -> str:
    """Seconds as milliseconds with three or four significant digits, or ``-``."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def print_table(summary: dict[str, Any], print_: Callable[[str], None]) -> None:
    """One line per framework: milliseconds per epoch (best/median) and ratio framework/engine."""
    ref = summary["torch_reference"]
    print_(
        f"{'framework':<24} {'train pass ms':>15} {'train+eval ms':>15} "
        f"{'x engine train':>15} {'x engine full':>14} {'GFLOP/s':>8} {'train acc':>9}"
    )
    print_(f"{'':<24} {'best / median':>15} {'best / median':>15} {'best / median':>15} {'best / median':>14}")
    for row in summary["frameworks"]:
        label = row["label"] + (" *" if row["label"] == ref else "")
        print_(
            f"{label:<24} "
            f"{_ms(row['train_best']):>7} /{_ms(row['train_median']):>6} "
            f"{_ms(row['full_best']):>7} /{_ms(row['full_median']):>6} "
            f"{_fmt(row['train_best_ratio'], '.2f'):>7} /{_fmt(row['train_median_ratio'], '.2f'):>6} "
            f"{_fmt(row['full_best_ratio'], '.2f'):>6} /{_fmt(row['full_median_ratio'], '.2f'):>6} "
            f"{_fmt(row['train_gflops'], '.1f'):>8} {_fmt(row['accuracy'], '.3f'):>9}"
        )
    if ref:
        print_(f"* PyTorch reference: the fastest Adam implementation here ({ref}).")
    for row in summary["frameworks"]:
        if row["note"]:
            print_(f"{row['label']}: {row['note']}")
    print_("ms per epoch; x engine = framework time / engine time (> 1: the engine is faster).")


def print_profile(profile: dict[str, Any], print_: Callable[[str], None]) -> None:
    """Each function of the train pass by its own time per batch, largest first."""
    comps = profile["components_us"]
    total = sum(c["self"] for c in comps.values())
    head = f"function (us per batch of {profile['batch_size']}, {profile['batches']} batches)"
    print_(f"{head:<56} {'self':>8} {'total':>8} {'calls':>6} {'share':>6}")
    for label, c in comps.items():
        if c["self"] >= 0.005 * total:
            print_(f"{label:<56} {c['self']:>8.1f} {c['total']:>8.1f} {c['calls']:>6.1f} {c['self'] / total:>6.1%}")
    print_(f"{'sum of own times (every function)':<56} {total:>8.1f}")
    print_(f"{'Trainer.train_pass under cProfile, wall per batch':<56} {profile['profiled_us_per_batch']:>8.1f}")
    print_(f"{'Trainer.train_pass (uninstrumented), best, per batch':<56} {profile['train_pass_us_per_batch']:>8.1f}")
    print_(
        f"{'minor page faults per batch (uninstrumented pass)':<56} "
        f"{profile['train_pass_minor_page_faults_per_batch']:>8.1f}"
    )
    print_(
        f"{'one in-place elementwise pass over all parameters':<56} "
        f"{profile['one_elementwise_pass_over_params_us']:>8.1f}   ({profile['params']:,} float32 values)"
    )


@dataclass
class Target:
    """A performance goal and whether this run met it."""

    name: str
    value: float | None
    goal: float
    unit: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.goal

    def line(self) -> str:
        status = {True: "MET", False: "MISSED", None: "n/a (not measured)"}[self.met]
        shown = "-" if self.value is None else f"{self.value:.2f}{self.unit}"
        return f"  {self.name}: {shown} (goal >= {self.goal:g}{self.unit}) ... {status}"


def _reference_ratio(summary: dict[str, Any], which: str) -> float | None:
    for row in summary["frameworks"]:
        if row["label"] == summary["torch_reference"]:
            value = row[f"{which}_best_ratio"]
            return None if value is None else float(value)
    return None


# -- main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small data and few repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 5, quick 2)")
    parser.add_argument("--small-epochs", type=int, default=None, help="epochs per repeat, small case (20; quick 3)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the large case (60000; quick 6000)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    parser.add_argument("--profile", action="store_true", help="per-batch breakdown of the engine's train pass")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write all results as JSON")
    return parser.parse_args(argv)


def import_optional(name: str, wanted: bool, print_: Callable[[str], None]) -> Any:
    """The module, or None when skipped by a flag or not installed."""
    if not wanted:
        return None
    try:
        return __import__(name)
    except ImportError as exc:
        print_(f"{name} is not importable ({exc}); skipping it")
        return None


@contextlib.contextmanager
def section(title: str, print_: Callable[[str], None]) -> Iterator[None]:
    """Print a blank line and a ``== title ==`` header before the block."""
    print_("")
    print_(f"== {title} ==")
    yield


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; always returns 0 (targets are reported, not enforced)."""
    args = parse_args(argv)

    def print_(line: str) -> None:
        print(line, flush=True)

    quick = args.quick
    repeats = args.repeats or (2 if quick else 5)
    rows = args.rows or (6_000 if quick else 60_000)
    small_epochs = args.small_epochs or (3 if quick else 20)
    threads = blas_threads()

    torch_mod = import_optional("torch", not args.no_torch, print_)
    if torch_mod is not None:
        torch_mod.set_num_threads(threads)
    sklearn_mod = import_optional("sklearn", not args.no_sklearn, print_)
    use_sklearn = sklearn_mod is not None
    if use_sklearn:
        try:
            import sklearn.neural_network  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            print_(f"sklearn.neural_network is not importable ({exc}); skipping scikit-learn")
            use_sklearn = False
    info = machine_info(torch_mod, sklearn_mod.__version__ if use_sklearn else None)
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "threads": threads, "machine": info}

    print_(f"trainapi engine benchmark ({results['mode']} mode), {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print_(f"CPU: {info['cpu']}, {info['nproc']} CPUs available; all frameworks use {threads} thread(s)")
    print_(
        f"numpy {info['numpy']} ({info['numpy_blas']}, kernel {info['numpy_blas_runtime_kernel']}), "
        f"torch {info['torch'] or '-'}"
        + (f" ({info['torch_blas']}, {info['torch_cpu_capability']})" if info["torch"] else "")
        + f", scikit-learn {info['sklearn'] or '-'}, Python {info['python']}"
    )

    with section("float32 GEMM reference (NumPy)", print_):
        monitor = LoadMonitor()
        big = 1024 if quick else 2048
        peak = gemm_gflops(big, big, big, repeats=3 if quick else 5, budget=0.05 if quick else 0.3)
        gemm = {f"{big}x{big}@{big}x{big}": peak}
        print_(f"  peak: {big}x{big} @ {big}x{big}: {peak:.1f} GFLOP/s (best of repeats)")
        for m, k, n, tb, name in [
            (128, 784, 256, False, "128x784 @ 784x256"),
            (128, 784, 256, True, "128x784 @ (256x784)^T  (engine forward layout)"),
            (256, 128, 784, False, "256x128 @ 128x784  (weight-grad shape)"),
        ]:
            rate = gemm_gflops(m, k, n, transpose_b=tb, repeats=3 if quick else 5, budget=0.02 if quick else 0.1)
            gemm[name] = rate
            print_(f"  {name}: {rate:.1f} GFLOP/s ({rate / peak:.0%} of peak)")
        results["gemm_gflops"] = gemm
        kernel = str(info["numpy_blas_runtime_kernel"] or "")
        forced = info["openblas_environment"]
        if forced:
            settings = " ".join(f"{k}={v}" for k, v in forced.items())
            print_(
                f"  note: {settings} in the environment fixes OpenBLAS's kernels ({kernel}); without it NumPy's "
                "OpenBLAS picks its own for this CPU (`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`)"
            )
        elif kernel in ("Haswell", "Zen") and cpu_has_avx512():
            print_(f"  note: OpenBLAS chose its {kernel} (AVX2) kernels on a CPU with AVX-512")
        results["gemm_competing_load"] = monitor.others()
        print_(describe_load(results["gemm_competing_load"]).replace("this case", "the GEMM runs"))

    large = Case(
        name="large",
        description=f"MLP 784-256-10 on synthetic {rows}x784, batch 128, Adam 1e-3, dropout 0.5, l2 1e-4",
        hidden=(256,),
        batch_size=128,
        dropout=0.5,
        l2=1e-4,
        learning_rate=1e-3,
        standardize=False,
        epochs_per_repeat=1,
        repeats=repeats,
    )
    small = Case(
        name="small",
        description=f"MLP 64-32-10 on digits 1797x64 (standardized), batch 32, Adam 1e-3, l2 1e-4, no dropout, "
        f"{small_epochs} epochs per repeat",
        hidden=(32,),
        batch_size=32,
        dropout=0.0,
        l2=1e-4,
        learning_rate=1e-3,
        standardize=True,
        epochs_per_repeat=small_epochs,
        repeats=repeats,
    )
    datasets = {"large": synthetic_dataset(rows, 784, 10), "small": load_builtin("digits")}
    targets: list[Target] = []
    results["cases"] = {}
    for case in (large, small):
        with section(f"{case.name}: {case.description}", print_):
            data = case.prepare(datasets[case.name])
            sizes = [data.n_features, *case.hidden, data.n_outputs]
            runners = build_runners(case, data, torch_mod, use_sklearn, print_)
            print_(f"  {case.repeats} timed repeats + 1 warm-up round, frameworks interleaved")
            monitor = LoadMonitor()
            series = measure(runners, case, print_)
            load = monitor.others()
            for s, runner in zip(series, runners, strict=True):
                if isinstance(runner, SklearnRunner):
                    s.note = f"{runner.dtype}, alpha={runner.alpha:g}, no dropout"
            summary = summarize(case, series, sizes, len(data.y_train))
            summary["competing_load"] = load
            print_("")
            print_table(summary, print_)
            print_(describe_load(load))
            results["cases"][case.name] = summary
        engine_row = summary["frameworks"][0]
        if case is large:
            efficiency = _ratio(engine_row["train_gflops"], peak)
            summary["engine_train_fraction_of_peak"] = efficiency
            print_(
                f"engine train pass: {summary['train_pass_gflop']:.1f} GFLOP in {engine_row['train_best']:.3f} s = "
                f"{engine_row['train_gflops']:.1f} GFLOP/s, {_fmt(efficiency, '.0%')} of the {peak:.0f} GFLOP/s peak"
            )
            targets += [
                Target(
                    "large: PyTorch / engine, train pass", _reference_ratio(summary, "train"), TARGET_TRAIN_RATIO, "x"
                ),
                Target(
                    "large: PyTorch / engine, train + eval", _reference_ratio(summary, "full"), TARGET_FULL_RATIO, "x"
                ),
                Target(
                    "large: engine train pass / GEMM peak",
                    None if efficiency is None else 100 * efficiency,
                    100 * TARGET_PEAK_FRACTION,
                    "%",
                ),
            ]
        else:
            targets += [
                Target(
                    "small: PyTorch / engine, train pass", _reference_ratio(summary, "train"), TARGET_SMALL_RATIO, "x"
                ),
                Target(
                    "small: PyTorch / engine, train + eval", _reference_ratio(summary, "full"), TARGET_SMALL_RATIO, "x"
                ),
            ]
        if args.profile:
            with section(f"{case.name}: Trainer.train_pass per batch, by function (cProfile)", print_):
                profile = profile_train_pass(case, data, max_batches=200 if quick else 1000)
                print_profile(profile, print_)
                summary["engine_profile"] = profile

    with section("drift", print_):
        peak_end = gemm_gflops(big, big, big, repeats=3 if quick else 5, budget=0.05 if quick else 0.3)
        results["gemm_peak_end_gflops"] = peak_end
        print_(
            f"  GEMM peak at the end: {peak_end:.1f} GFLOP/s vs {peak:.1f} at the start ({peak_end / peak - 1:+.0%}); "
            "a large change means the machine's speed moved during the run"
        )

    with section("targets" + (" (quick mode: indicative only)" if quick else ""), print_):
        for target in targets:
            print_(target.line())
        print_("  (performance targets are reported, never enforced: the exit status stays 0)")
    results["targets"] = [{**asdict(t), "met": t.met} for t in targets]

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print_(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
