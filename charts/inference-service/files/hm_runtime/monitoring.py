"""Model monitoring off the hot path: data quality and drift of the inputs against reference statistics,
the prediction distribution, and rolling accuracy from feedback.

The request path only hands (rows, predictions) to `Monitor.submit` (a deque append); a background
thread drains them every `DRAIN_SECONDS` (vectorised per batch: sampling, counters, a bounded ring
window) and the drift statistics are recomputed on a scrape of /metrics, at most once per window
change. Nothing here loops over rows in Python.

Binning (PSI): each feature's interior bin edges are the unique deciles of its finite reference values
(a feature with at most `CATEGORICAL_MAX` distinct reference values gets one bin per value, the edges
at the values); a value v falls in bin i when edges[i-1] <= v < edges[i] (numpy's histogram over
[-inf, *edges, inf]). With p and q the fractions of the window's and the reference's finite values per
bin, each floored at `EPS`:

    PSI = sum_i (p_i - q_i) * ln(p_i / q_i)

KS (numeric features: more than `CATEGORICAL_MAX` distinct reference values) is the two-sample
Kolmogorov-Smirnov statistic max |ECDF_reference - ECDF_window| over the finite values, as
scipy.stats.ks_2samp reports it."""

from __future__ import annotations

import collections
import csv
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-4  # floor of a bin's fraction in PSI, so an empty bin does not make it infinite
CATEGORICAL_MAX = 10  # at most this many distinct reference values: one bin per value, no KS
REFERENCE_MAX_ROWS = 10_000  # a larger reference is subsampled (evenly, deterministically)
DRAIN_SECONDS = 0.5
MAX_CLASSES = 100  # prediction class labels beyond this count as "other"


class ReferenceError(Exception):
    """A --reference that cannot be used; the message names the option and the fix."""


def _where(source: str) -> str:
    return f"--reference {source!r} (HM_RUNTIME_REFERENCE)"


def read_reference(source: str) -> tuple[np.ndarray, list[str] | None]:
    """(rows as float64 [n, d], column names or None) from .npy, .csv (header optional) or .parquet,
    or an MLflow artifact URI (runs:/..., models:/..., mlflow-artifacts:/...) fetched first."""
    path = source
    if "://" in source or source.startswith(("runs:/", "models:/", "mlflow-artifacts:/")):
        path = _fetch(source)
    if not os.path.isfile(path):
        raise ReferenceError(
            f"{_where(source)}: no such file; give a .npy, .csv or .parquet sample of training rows"
        )
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            data, names = np.load(path, allow_pickle=False), None
        elif suffix == ".csv":
            data, names = _read_csv(path)
        elif suffix == ".parquet":
            data, names = _read_parquet(path, source)
        else:
            raise ReferenceError(
                f"{_where(source)}: unknown format {suffix or '(no extension)'!r}; use .npy, .csv or .parquet"
            )
        data = np.asarray(data, dtype=np.float64)
    except ReferenceError:
        raise
    except (ValueError, OSError, TypeError) as exc:
        raise ReferenceError(f"{_where(source)}: cannot read it as numbers ({exc})") from None
    if data.ndim != 2 or not data.shape[0] or not data.shape[1]:
        raise ReferenceError(
            f"{_where(source)}: needs rows of features (a 2-D table with at least one row), "
            f"got shape {list(data.shape)}"
        )
    if names is not None:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # the feature label of two series would be the same: Prometheus could not tell them apart
            raise ReferenceError(
                f"{_where(source)}: column name(s) {', '.join(map(repr, twice))} appear more than once; "
                "give every column its own name"
            )
    return data, names


def _fetch(uri: str) -> str:
    try:
        import mlflow.artifacts
    except ImportError:
        raise ReferenceError(
            f"{_where(uri)}: an MLflow URI needs mlflow installed (the mlflow model format)"
        ) from None
    try:
        return str(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:
        raise ReferenceError(
            f"{_where(uri)}: cannot fetch it from MLflow ({type(exc).__name__}: {exc})"
        ) from None


def _number(text: str) -> float:
    text = text.strip()
    return math.nan if text in ("", "nan", "NaN", "NA", "null") else float(text)


def _read_csv(path: str) -> tuple[list[list[float]], list[str] | None]:
    with open(path, newline="") as f:
        lines = [row for row in csv.reader(f) if row]
    if not lines:
        return [], None
    names: list[str] | None = None
    try:
        [_number(c) for c in lines[0]]
    except ValueError:
        names, lines = [c.strip() for c in lines[0]], lines[1:]
    width = len(names) if names is not None else len(lines[0]) if lines else 0
    for i, row in enumerate(lines):
        if len(row) != width:
            raise ValueError(f"line {i + 1 + (names is not None)} has {len(row)} values, not {width}")
    return [[_number(c) for c in row] for row in lines], names


def _read_parquet(path: str, source: str) -> tuple[np.ndarray, list[str]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise ReferenceError(
            f"{_where(source)}: .parquet needs pyarrow installed; or give .npy or .csv"
        ) from None
    table = pq.read_table(path)
    return np.column_stack(
        [table.column(i).to_numpy(zero_copy_only=False) for i in range(table.num_columns)]
    ), list(table.column_names)


@dataclass
class Feature:
    name: str
    edges: np.ndarray  # interior bin edges (sorted, unique)
    expected: np.ndarray  # reference fraction per bin, floored at EPS
    lo: float
    hi: float
    sample: np.ndarray | None  # sorted finite reference values for KS; None for categorical features


def _edges(values: np.ndarray) -> tuple[np.ndarray, bool]:
    distinct = np.unique(values)
    if len(distinct) <= CATEGORICAL_MAX:
        return distinct[1:], True
    return np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9))), False


def fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of `values` per bin (len(edges) + 1 bins), floored at EPS."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / max(len(values), 1), EPS)


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(sorted_ref: np.ndarray, values: np.ndarray) -> float:
    window = np.sort(values)
    both = np.concatenate([sorted_ref, window])
    cdf_ref = np.searchsorted(sorted_ref, both, side="right") / len(sorted_ref)
    cdf_win = np.searchsorted(window, both, side="right") / len(window)
    return float(np.max(np.abs(cdf_ref - cdf_win)))


@dataclass
class Reference:
    features: list[Feature]
    width: int  # the reference's columns (the model's input width)
    rows: np.ndarray  # the (possibly subsampled) reference rows, for the model's reference predictions

    @classmethod
    def build(cls, data: np.ndarray, names: Sequence[str] | None, max_features: int) -> Reference:
        if len(data) > REFERENCE_MAX_ROWS:
            data = data[np.linspace(0, len(data) - 1, REFERENCE_MAX_ROWS).astype(int)]
        names = list(names) if names is not None else [f"f{i}" for i in range(data.shape[1])]
        features = []
        for j in range(min(data.shape[1], max_features)):
            column = data[:, j]
            finite = column[np.isfinite(column)]
            if not len(finite):
                finite = np.zeros(1)
            edges, categorical = _edges(finite)
            features.append(
                Feature(
                    names[j],
                    edges,
                    fractions(finite, edges),
                    float(finite.min()),
                    float(finite.max()),
                    None if categorical else np.sort(finite),
                )
            )
        return cls(features, data.shape[1], data)


@dataclass
class Predictions:
    """The reference predictions' distribution: class labels (classifiers) or value deciles."""

    classes: np.ndarray | None  # sorted labels seen on the reference (classifiers)
    edges: np.ndarray  # value bin edges (regressors)
    expected: np.ndarray

    @classmethod
    def build(cls, out: np.ndarray, classifier: bool) -> Predictions:
        if classifier:
            classes = np.unique(out)
            counts = np.searchsorted(classes, out)
            expected = np.maximum(np.bincount(counts, minlength=len(classes) + 1) / len(out), EPS)
            return cls(classes, np.empty(0), expected)
        values = out.astype(np.float64)
        values = values[np.isfinite(values)]
        edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9))) if len(values) else np.zeros(1)
        return cls(None, edges, fractions(values, edges))

    def bins(self, out: np.ndarray) -> np.ndarray:
        if self.classes is not None:
            idx = np.searchsorted(self.classes, out)
            known = idx < len(self.classes)
            known[known] = self.classes[idx[known]] == out[known]
            return np.where(known, idx, len(self.classes))  # the last bin: labels the reference never gave
        values = out.astype(np.float64)
        return np.searchsorted(self.edges, values[np.isfinite(values)], side="right")


@dataclass
class Feedback:
    """Predictions remembered by request id (bounded LRU) and the outcomes of the last `window` labels."""

    window: int = 1000
    max_requests: int = 10_000
    remembered: collections.OrderedDict[str, np.ndarray] = field(default_factory=collections.OrderedDict)
    outcomes: dict[str, int] = field(default_factory=lambda: {"correct": 0, "incorrect": 0, "unknown": 0})
    recent: collections.deque[bool] = field(default_factory=collections.deque)
    correct_in_window: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, request_id: str, predicted: np.ndarray) -> None:
        self.remembered[request_id] = predicted
        if len(self.remembered) > self.max_requests:
            self.remembered.popitem(last=False)

    def label(self, request_id: str, labels: list[Any]) -> dict[str, int]:
        """Outcomes of one request's true labels (one per row); an id not (or no longer) remembered
        counts its labels as unknown. A request is judged once: its predictions are then forgotten."""
        predicted = self.remembered.pop(request_id, None)
        if predicted is None:
            with self.lock:
                self.outcomes["unknown"] += len(labels)
            return {"correct": 0, "incorrect": 0, "unknown": len(labels)}
        if len(labels) != len(predicted):
            self.remembered[request_id] = predicted
            raise ValueError(
                f"request {request_id!r} predicted {len(predicted)} rows; "
                f"send {len(predicted)} labels, not {len(labels)}"
            )
        hits = _matches(predicted, labels)
        with self.lock:
            for hit in hits.tolist():
                self.recent.append(hit)
                self.correct_in_window += hit
                if len(self.recent) > self.window:
                    self.correct_in_window -= self.recent.popleft()
            correct = int(hits.sum())
            self.outcomes["correct"] += correct
            self.outcomes["incorrect"] += len(hits) - correct
        return {"correct": correct, "incorrect": len(hits) - correct, "unknown": 0}


def _matches(predicted: np.ndarray, labels: list[Any]) -> np.ndarray:
    try:
        return np.asarray(predicted == np.asarray(labels, dtype=predicted.dtype), dtype=bool).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        return np.array(
            [str(p) == str(t) for p, t in zip(predicted.tolist(), labels, strict=True)], dtype=bool
        )


def _first_column(out: np.ndarray, n: int) -> np.ndarray:
    out = np.asarray(out)
    return out.reshape(n, -1)[:, 0] if out.ndim > 1 else out


class Monitor:
    """Sampled rows into a ring window, per-feature quality counters, and drift on demand."""

    def __init__(
        self,
        reference: Reference,
        predictions: Predictions | None,
        *,
        window: int = 1000,
        sample_rate: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.reference, self.predictions = reference, predictions
        self.sample_rate, self.size = sample_rate, window
        self.d = len(reference.features)
        self.lo = np.array([f.lo for f in reference.features])
        self.hi = np.array([f.hi for f in reference.features])
        self.window = np.full((window, self.d), np.nan)
        self.pred_window = np.zeros(window, dtype=np.int64)  # the prediction bin of each window row
        self.filled, self.pos = 0, 0
        self.rows_total = 0
        self.missing = np.zeros(self.d, dtype=np.int64)
        self.out_of_range = np.zeros(self.d, dtype=np.int64)
        self.class_counts: collections.Counter[str] = collections.Counter()
        pred_bins = 0 if predictions is None else len(predictions.expected)
        self.value_counts = np.zeros(pred_bins, dtype=np.int64)
        self.value_sum = 0.0
        self.psi = np.zeros(self.d)
        self.ks = np.zeros(self.d)
        self.prediction_psi = 0.0
        self.dirty = False
        self.pending: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        # Rows handed over (written by the server's thread only) and rows drained (under the lock only).
        self.submitted_rows = 0
        self.drained_rows = 0
        self.max_pending = max(window, 10_000)
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    # --- the request path: an append, nothing else ---------------------------------------------------
    def submit(self, rows: np.ndarray, out: np.ndarray) -> None:
        if self.submitted_rows - self.drained_rows < self.max_pending:  # beyond: not examined
            self.pending.append((rows, out))
            self.submitted_rows += len(rows)

    # --- off the hot path -----------------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="hm-monitor", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        while not self.stopping.wait(DRAIN_SECONDS):
            self.drain()

    def drain(self) -> None:
        with self.lock:
            taken = []
            while self.pending:
                rows, out = self.pending.popleft()
                self.drained_rows += len(rows)
                taken.append((rows, out))
            if taken:
                rows = np.concatenate([r for r, _ in taken])
                self._examine(rows, np.concatenate([_first_column(o, len(r)) for r, o in taken]))

    def _examine(self, rows: np.ndarray, out: np.ndarray) -> None:
        if self.sample_rate < 1.0:
            keep = self.rng.random(len(rows)) < self.sample_rate
            rows, out = rows[keep], out[keep]
        if not len(rows):
            return
        x = rows[:, : self.d].astype(np.float64, copy=False)
        finite = np.isfinite(x)
        self.rows_total += len(x)
        self.missing += (~finite).sum(axis=0)
        with np.errstate(invalid="ignore"):
            self.out_of_range += (finite & ((x < self.lo) | (x > self.hi))).sum(axis=0)
        pred_bins = None
        if self.predictions is not None:
            if self.predictions.classes is not None:
                labels, counts = np.unique(out, return_counts=True)
                for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                    key = str(label)
                    if key not in self.class_counts and len(self.class_counts) >= MAX_CLASSES:
                        key = "other"
                    self.class_counts[key] += count
                pred_bins = self.predictions.bins(out)
            else:
                values = out.astype(np.float64)
                values = values[np.isfinite(values)]
                self.value_counts += np.bincount(
                    np.searchsorted(self.predictions.edges, values, side="left"),
                    minlength=len(self.value_counts),
                )
                self.value_sum += float(values.sum())
                pred_bins = np.searchsorted(self.predictions.edges, out.astype(np.float64), side="right")
        # the ring window keeps the last `size` examined rows
        n = len(x)
        if n >= self.size:
            x, pred_bins = x[-self.size :], None if pred_bins is None else pred_bins[-self.size :]
            n = self.size
        idx = (self.pos + np.arange(n)) % self.size
        self.window[idx] = x
        if pred_bins is not None:
            self.pred_window[idx] = pred_bins
        self.pos = (self.pos + n) % self.size
        self.filled = min(self.filled + n, self.size)
        self.dirty = True

    def refresh(self) -> None:
        """Drain, then recompute the drift gauges when the window changed (bounded: O(window + reference))."""
        self.drain()
        with self.lock:
            if not self.dirty or not self.filled:
                return
            current = self.window[: self.filled]
            for j, feature in enumerate(self.reference.features):
                column = current[:, j]
                column = column[np.isfinite(column)]
                if not len(column):
                    self.psi[j] = self.ks[j] = 0.0
                    continue
                self.psi[j] = psi(fractions(column, feature.edges), feature.expected)
                self.ks[j] = ks(feature.sample, column) if feature.sample is not None else 0.0
            if self.predictions is not None:
                bins = len(self.predictions.expected)
                counts = np.bincount(self.pred_window[: self.filled], minlength=bins)[:bins]
                self.prediction_psi = psi(np.maximum(counts / self.filled, EPS), self.predictions.expected)
            self.dirty = False


class Collector:
    """The monitor's and feedback's series, read from their arrays at scrape time."""

    def __init__(self, monitor: Monitor | None, feedback: Feedback | None) -> None:
        self.monitor, self.feedback = monitor, feedback

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        m = self.monitor
        if m is not None:
            m.refresh()
            with m.lock:
                names = [f.name for f in m.reference.features]
                yield CounterMetricFamily(
                    "hm_monitor_rows", "Rows the monitor examined (sampled)", value=m.rows_total
                )
                yield GaugeMetricFamily(
                    "hm_monitor_window_rows", "Rows in the current drift window", value=m.filled
                )
                for metric, help_text, values in (
                    (
                        "hm_feature_missing",
                        "Examined rows whose value is missing, NaN or infinite",
                        m.missing,
                    ),
                    (
                        "hm_feature_out_of_range",
                        "Examined rows outside the reference's [min, max]",
                        m.out_of_range,
                    ),
                ):
                    counter = CounterMetricFamily(metric, help_text, labels=["feature"])
                    for name, value in zip(names, values.tolist(), strict=True):
                        counter.add_metric([name], value)
                    yield counter
                for metric, help_text, drift in (
                    ("hm_feature_psi", "PSI of the current window vs the reference", m.psi),
                    (
                        "hm_feature_ks",
                        "Two-sample KS statistic of the window vs the reference (numeric)",
                        m.ks,
                    ),
                ):
                    gauge = GaugeMetricFamily(metric, help_text, labels=["feature"])
                    for j, (name, score) in enumerate(zip(names, drift.tolist(), strict=True)):
                        if metric == "hm_feature_ks" and m.reference.features[j].sample is None:
                            continue
                        gauge.add_metric([name], score)
                    yield gauge
                if m.predictions is not None:
                    yield GaugeMetricFamily(
                        "hm_prediction_psi",
                        "PSI of the window's predictions vs the reference's",
                        value=m.prediction_psi,
                    )
                    if m.predictions.classes is not None:
                        classes = CounterMetricFamily(
                            "hm_prediction_class", "Predictions by class", labels=["class"]
                        )
                        for label, count in sorted(m.class_counts.items()):
                            classes.add_metric([label], count)
                        yield classes
                    else:
                        cumulative = np.cumsum(m.value_counts).tolist()
                        buckets = [
                            (repr(float(edge)), count)
                            for edge, count in zip(m.predictions.edges.tolist(), cumulative, strict=False)
                        ]
                        buckets.append(("+Inf", cumulative[-1] if cumulative else 0))
                        yield HistogramMetricFamily(
                            "hm_prediction_value", "Predicted values", buckets=buckets, sum_value=m.value_sum
                        )
        f = self.feedback
        if f is not None:
            with f.lock:
                outcomes = CounterMetricFamily(
                    "hm_feedback", "Labels fed back by outcome", labels=["outcome"]
                )
                for outcome, count in f.outcomes.items():
                    outcomes.add_metric([outcome], count)
                yield outcomes
                labelled = len(f.recent)
                yield GaugeMetricFamily(
                    "hm_accuracy",
                    "Accuracy over the last labels fed back",
                    value=f.correct_in_window / labelled if labelled else math.nan,
                )
                yield GaugeMetricFamily("hm_accuracy_labels", "Labels in the accuracy window", value=labelled)
