"""The demo's light estimators in plain numpy: polynomial least squares and logistic regression.

They stand in for the random forests a real analysis trains. Models are stored as NumPy `.npz`
files of plain arrays (never pickles), so loading one cannot execute code.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridpipe.core.fsutil import atomic_write_bytes
from gridpipe.core.version import __version__
from gridpipe.payloads.demo.h5io import FILE_MODE, InputFileError

FORMAT_VERSION = 1
ALGORITHMS = {
    "regressor": "ridge least squares on degree-2 polynomial features (log10 of positive inputs); "
    "not a forest",
    "classifier": "L2 logistic regression fitted by IRLS on degree-2 polynomial features; not a forest",
}


@dataclass(frozen=True)
class LinearModel:
    """A fitted model: input transform (log10 flags, centring, scaling) and polynomial coefficients."""

    kind: str
    cam_id: str
    method_name: str
    features: tuple[str, ...]
    log_features: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    coef: np.ndarray
    log_target: bool

    def design(self, rows: np.ndarray) -> np.ndarray:
        """Degree-2 polynomial design matrix of the model's features taken from structured `rows`.

        Inputs are clipped to the range seen in training, so that the polynomial never extrapolates.
        """
        x = np.column_stack([np.asarray(rows[name], dtype=np.float64) for name in self.features])
        x = np.where(self.log_features, np.log10(np.clip(x, 1e-12, None)), x)
        return polynomial(np.clip((x - self.mean) / self.scale, self.low, self.high))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Regressor: the target (TeV for energies); classifier: probability of label 1 (gamma)."""
        z = self.design(rows) @ self.coef
        if self.kind == "classifier":
            return sigmoid(z)
        return 10.0**z if self.log_target else z


def polynomial(x: np.ndarray) -> np.ndarray:
    """Columns 1, x_i and x_i*x_j (i <= j)."""
    n, f = x.shape
    pairs = [x[:, i] * x[:, j] for i in range(f) for j in range(i, f)]
    return np.column_stack([np.ones(n), x, *pairs]) if pairs else np.ones((n, 1))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class InputTransform:
    """Per feature: log10 flag (positive everywhere), mean, scale, and standardized training range."""

    log_features: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray


def transform_for(x: np.ndarray) -> InputTransform:
    """The input transform learnt from training inputs `x` (rows x features)."""
    log_flags = np.all(x > 0, axis=0)
    t = np.where(log_flags, np.log10(np.clip(x, 1e-12, None)), x)
    scale = t.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (t - t.mean(axis=0)) / scale
    return InputTransform(log_flags, t.mean(axis=0), scale, z.min(axis=0), z.max(axis=0))


def fit_least_squares(a: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Coefficients minimising |a w - y|^2 + ridge |w|^2."""
    k = a.shape[1]
    lhs = np.vstack([a, np.sqrt(ridge) * np.eye(k)])
    return np.linalg.lstsq(lhs, np.concatenate([y, np.zeros(k)]), rcond=None)[0]


def fit_logistic(a: np.ndarray, y: np.ndarray, ridge: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """Class-balanced L2 logistic regression by iteratively reweighted least squares (Newton)."""
    n_pos = max(int(y.sum()), 1)
    weight = np.where(y == 1, len(y) / (2.0 * n_pos), len(y) / (2.0 * max(len(y) - n_pos, 1)))
    w = np.zeros(a.shape[1])
    penalty = ridge * np.eye(a.shape[1])
    for _ in range(iterations):
        p = sigmoid(a @ w)
        grad = a.T @ (weight * (y - p)) - ridge * w
        hess = (a * (weight * p * (1.0 - p))[:, None]).T @ a + penalty
        step = np.linalg.solve(hess, grad)
        w += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def save_model(model: LinearModel, path: Path, n_train: int) -> None:
    """Write `model` as an .npz of plain arrays (atomically); its metadata says what it really is."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        format_version=np.int64(FORMAT_VERSION),
        kind=np.str_(model.kind),
        cam_id=np.str_(model.cam_id),
        method_name=np.str_(model.method_name),
        algorithm=np.str_(ALGORITHMS[model.kind]),
        features=np.array(model.features, dtype=np.str_),
        log_features=model.log_features,
        mean=model.mean,
        scale=model.scale,
        low=model.low,
        high=model.high,
        coef=model.coef,
        log_target=np.bool_(model.log_target),
        n_train=np.int64(n_train),
        written_by=np.str_(f"gridpipe {__version__} demo payload"),
    )
    atomic_write_bytes(path, buffer.getvalue(), mode=FILE_MODE)


def load_model(path: Path) -> LinearModel:
    """Read a model written by `save_model` (pickles refused); InputFileError naming the file if unusable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise InputFileError(
                    f"{path}: model format {int(data['format_version'])} is not {FORMAT_VERSION}"
                )
            return LinearModel(
                kind=str(data["kind"]),
                cam_id=str(data["cam_id"]),
                method_name=str(data["method_name"]),
                features=tuple(str(f) for f in data["features"]),
                log_features=data["log_features"],
                mean=data["mean"],
                scale=data["scale"],
                low=data["low"],
                high=data["high"],
                coef=data["coef"],
                log_target=bool(data["log_target"]),
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{path}: not a demo model file ({exc}); retrain it with train-model") from None
