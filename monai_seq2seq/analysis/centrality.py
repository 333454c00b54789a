"""Sequence ranking (paper eq. 4): adjacency matrix from per-sample metrics, degree centralities C_t and C_d.

Default normalisation reproduces the authors' released script: every metric is computed per test sample and
source->target pair; ``nX_ij = (mean_samples X_ij - mean_all X) / (std_all X + 1e-9)`` where "all" pools every
sample of every pair, self-translations i->i included (population std, ddof 0); ``A = nPSNR + nSSIM - nLPIPS``;
``C_t(i) = 1/S sum_j A_ij`` (how well i generates the others: totipotency) and ``C_d(i) = -1/S sum_j A_ji``
(how hard i is to generate: imaging differentiation), sums over all S sequences, diagonal included.

Absent sequences (real cohorts): a sequence no sample has (every value of its row and column NaN, in every
metric) is left out of the ranking altogether: out of ``names``, the adjacency matrix, the centralities, the
ranks and every file and figure made from them, and ``choices["sequences_left_out"]`` says which and why (a
sequence that was never seen would otherwise get C_t = C_d = 0 and a rank between the real ones). A sequence
that only some samples have stays in: each pair mean uses the samples that have both sequences of the pair,
the normalisation pools every finite value, a pair no sample has is NaN in A and skipped by the centrality sums
(``choices["pairs_without_samples"]``), and ``choices["samples_per_sequence"]`` gives each sequence's count.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HIGHER_IS_BETTER", "SequenceRanking", "rank_sequences"]

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "mae": False, "mse": False}
_EPS = 1e-9


@dataclass
class SequenceRanking:
    """Adjacency matrix, degree centralities and ranks of a protocol's sequences.

    Attributes:
        names: sequence names, in matrix order.
        adjacency: (S, S) ``A[i, j]`` for source i -> target j (NaN where no sample had the pair).
        totipotency: (S,) C_t.
        differentiation: (S,) C_d.
        rank_totipotency / rank_differentiation: 1 = highest centrality.
        pair_means: metric -> (S, S) mean over samples (raw, un-normalised).
        choices: how the numbers were made (normalisation, diagonal, metrics, sample counts, ...).
    """

    names: list[str]
    adjacency: np.ndarray
    totipotency: np.ndarray
    differentiation: np.ndarray
    rank_totipotency: np.ndarray
    rank_differentiation: np.ndarray
    pair_means: dict[str, np.ndarray] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per sequence: C_t, C_d and both ranks."""
        return [
            {
                "sequence": name,
                "C_t": float(self.totipotency[i]),
                "rank_C_t": int(self.rank_totipotency[i]),
                "C_d": float(self.differentiation[i]),
                "rank_C_d": int(self.rank_differentiation[i]),
            }
            for i, name in enumerate(self.names)
        ]

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list:
            return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(a, dtype=float)]

        return {
            "sequences": self.names,
            "adjacency": clean(self.adjacency),
            "adjacency_axes": "rows = source i, columns = target j",
            "table": self.table(),
            "pair_means": {k: clean(v) for k, v in self.pair_means.items()},
            "choices": self.choices,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """Ranking table then the adjacency matrix, as CSV text."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["sequence", "C_t", "rank_C_t", "C_d", "rank_C_d"])
        for row in self.table():
            writer.writerow(
                [row["sequence"], f"{row['C_t']:.6f}", row["rank_C_t"], f"{row['C_d']:.6f}", row["rank_C_d"]]
            )
        writer.writerow([])
        writer.writerow(["A[source,target]", *self.names])
        for i, name in enumerate(self.names):
            writer.writerow([name, *(f"{v:.6f}" for v in self.adjacency[i])])
        return buf.getvalue()

    def save(self, out_dir: str | Path, stem: str = "ranking") -> dict[str, Path]:
        """Write ``<stem>.json`` and ``<stem>.csv`` atomically into ``out_dir``."""
        from monai_seq2seq.core.files import atomic_write_text

        out_dir = Path(out_dir)
        return {
            "json": atomic_write_text(out_dir / f"{stem}.json", self.to_json()),
            "csv": atomic_write_text(out_dir / f"{stem}.csv", self.to_csv()),
        }


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def _checked(metric: str, values: Any, size: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or values.shape[1:] != (size, size):
        raise ValueError(f"metric {metric!r} must be (N, {size}, {size}), got {values.shape}.")
    if metric.lower() not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}.")
    return values


def _present_sequences(arrays: Mapping[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which sequences some sample has (a finite value in their row or column, any metric), and how many samples
    have each (a sample has sequence i when any pair of i is finite in it)."""
    has = np.zeros((next(iter(arrays.values())).shape[0], size), dtype=bool)
    for values in arrays.values():
        finite = np.isfinite(values)
        has |= finite.any(axis=2) | finite.any(axis=1)
    per_sequence = has.sum(axis=0)
    return per_sequence > 0, per_sequence


def rank_sequences(
    metrics: Mapping[str, np.ndarray],
    names: Sequence[str],
    include_diagonal: bool = True,
    weights: Mapping[str, float] | None = None,
) -> SequenceRanking:
    """Adjacency matrix and degree centralities from per-sample, per-pair metrics.

    Args:
        metrics: metric name (``psnr``, ``ssim``, ``lpips``, or any name in :data:`HIGHER_IS_BETTER`) ->
            array (N, S, S) of per-sample values for source i -> target j; NaN where a sample lacks the pair
            (missing sequences). Metrics where lower is better enter A with a minus sign.
        names: the S sequence names. A sequence no sample has (all NaN) is left out of the result, and
            ``choices["sequences_left_out"]`` names it.
        include_diagonal: True (default, authors' script): self-translations i->i count in the normalisation
            statistics and in the centrality sums (divided by S). False: both leave them out (divided by S-1).
        weights: optional metric weights in A (default 1 each).

    Returns:
        :class:`SequenceRanking`.

    Raises:
        ValueError: no metrics, shapes that disagree with ``names``, a metric with no finite value, fewer than two
            sequences with samples.
    """
    if not metrics:
        raise ValueError("rank_sequences needs at least one metric.")
    if len(names) < 2:
        raise ValueError(f"ranking needs at least two sequences, got {list(names)}.")
    arrays = {metric: _checked(metric, values, len(names)) for metric, values in metrics.items()}
    present, per_sequence = _present_sequences(arrays, len(names))
    left_out = {names[i]: "no sample has this sequence" for i in range(len(names)) if not present[i]}
    names = [n for n, keep in zip(names, present, strict=True) if keep]
    if len(names) < 2:
        raise ValueError(
            f"ranking needs at least two sequences with samples; only {names} have any "
            f"(left out: {sorted(left_out)}). Give subjects with at least two of the protocol's sequences."
        )
    metrics = {metric: values[:, present][:, :, present] for metric, values in arrays.items()}
    size = len(names)
    off_diagonal = ~np.eye(size, dtype=bool)
    adjacency = np.zeros((size, size))
    pair_means: dict[str, np.ndarray] = {}
    counts = None
    for metric, values in metrics.items():
        key = metric.lower()
        pooled_mask = np.isfinite(values) & (np.ones_like(values, dtype=bool) if include_diagonal else off_diagonal)
        pooled = values[pooled_mask]
        if pooled.size == 0:
            raise ValueError(f"metric {metric!r} has no finite value to normalise.")
        mean_all, std_all = pooled.mean(), pooled.std()
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(values)
            n = finite.sum(0)
            pair_mean = np.where(n > 0, np.where(finite, values, 0).sum(0) / np.maximum(n, 1), np.nan)
        pair_means[key] = pair_mean
        counts = n if counts is None else np.minimum(counts, n)
        sign = 1.0 if HIGHER_IS_BETTER[key] else -1.0
        adjacency = adjacency + sign * (weights or {}).get(metric, 1.0) * (pair_mean - mean_all) / (std_all + _EPS)
    summed = adjacency if include_diagonal else np.where(off_diagonal, adjacency, np.nan)
    denominator = size if include_diagonal else size - 1
    with np.errstate(invalid="ignore"):
        totipotency = np.nansum(summed, axis=1) / denominator
        differentiation = -np.nansum(summed, axis=0) / denominator
    missing_pairs = [
        (names[i], names[j])
        for i in range(size)
        for j in range(size)
        if counts is not None and counts[i, j] == 0 and (include_diagonal or i != j)
    ]
    choices = {
        "normalisation": "z-score of pair means against all samples of all pairs (population std) + 1e-9",
        "diagonal": "included" if include_diagonal else "excluded",
        "metrics": {m: ("+" if HIGHER_IS_BETTER[m.lower()] else "-") for m in metrics},
        "weights": dict(weights or {}),
        "centrality_denominator": denominator,
        "samples_per_pair_min": int(counts[off_diagonal].min()) if counts is not None else 0,
        "pairs_without_samples": missing_pairs,
        "sequences_left_out": left_out,
        "samples_per_sequence": {n: int(c) for n, c in zip(names, per_sequence[present], strict=True)},
        "absent_sequences": "left out of A, C_t, C_d and the ranks; pair means use the samples that have both",
    }
    return SequenceRanking(
        names=list(names),
        adjacency=adjacency,
        totipotency=totipotency,
        differentiation=differentiation,
        rank_totipotency=_ranks(totipotency),
        rank_differentiation=_ranks(differentiation),
        pair_means=pair_means,
        choices=choices,
    )
