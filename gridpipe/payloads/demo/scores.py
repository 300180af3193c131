"""Train/test split and the scores the demo reports for its models."""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 20240601
"""Fixed seed of the train/test split, so that a retraining gives the same model."""


def split_by_event(rows: np.ndarray, train_fraction: float) -> np.ndarray:
    """True for training rows; all images of one event fall on the same side of the split."""
    keys = rows["obs_id"].astype(np.int64) * 1_000_003 + rows["event_id"].astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    rng = np.random.default_rng(SPLIT_SEED)
    in_train = rng.random(len(uniq)) < train_fraction
    return in_train[inverse]


def regressor_scores(y: np.ndarray, pred: np.ndarray, constant: float) -> dict[str, float]:
    """RMS error, the RMS error of predicting the training mean, and R^2 against that constant."""
    rms = float(np.sqrt(np.mean((pred - y) ** 2))) if len(y) else float("nan")
    rms_const = float(np.sqrt(np.mean((constant - y) ** 2))) if len(y) else float("nan")
    return {"rms": rms, "rms_constant": rms_const, "r2": 1.0 - (rms / rms_const) ** 2 if rms_const else 0.0}


def roc_auc(labels: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney with mid-ranks for ties); NaN with one class only."""
    n_pos = int(np.sum(labels == 1))
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    _, inverse = np.unique(score, return_inverse=True)
    ranks = (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classifier_scores(labels: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Accuracy at probability 0.5 and ROC AUC."""
    accuracy = float(np.mean((prob >= 0.5) == (labels == 1))) if len(labels) else float("nan")
    return {"accuracy": accuracy, "auc": roc_auc(labels, prob)}
