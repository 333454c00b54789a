"""Figures of the analysis: adjacency heatmap, centrality bar charts, differentiation-map overlays (PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from monai_seq2seq.core.files import atomic_write

from .centrality import SequenceRanking

__all__ = ["plot_adjacency", "plot_ranks", "plot_overlays"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def _left_out_note(fig, ranking: SequenceRanking) -> None:
    """Say under a figure which sequences the ranking left out (no subject had them), so none looks forgotten."""
    left_out = ranking.choices.get("sequences_left_out") or {}
    if left_out:
        fig.text(
            0.01,
            -0.02,
            f"left out (no subject has them): {', '.join(left_out)}",
            ha="left",
            va="top",
            fontsize=8,
            style="italic",
        )


def plot_adjacency(ranking: SequenceRanking, path: str | Path, title: str = "Adjacency A (source -> target)") -> Path:
    """Heatmap of A with values written in the cells (NaN cells: pairs no subject has), over the ranked sequences
    only; sequences the ranking left out are named under the figure."""
    plt = _pyplot()
    size = len(ranking.names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * size, 0.8 + 0.7 * size))
    image = ax.imshow(ranking.adjacency, cmap="viridis")
    ax.set_xticks(range(size), ranking.names, rotation=45, ha="right")
    ax.set_yticks(range(size), ranking.names)
    ax.set_xlabel("target j")
    ax.set_ylabel("source i")
    for i in range(size):
        for j in range(size):
            value = ranking.adjacency[i, j]
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    _left_out_note(fig, ranking)
    return _save(fig, path)


def plot_ranks(ranking: SequenceRanking, path: str | Path) -> Path:
    """Bar charts of C_t (totipotency) and C_d (imaging differentiation), sorted, with ranks; sequences the ranking
    left out (absent from every subject) have no bar and are named under the figure."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 + 0.45 * len(ranking.names)))
    for ax, values, label in (
        (axes[0], ranking.totipotency, "C_t (totipotency)"),
        (axes[1], ranking.differentiation, "C_d (imaging differentiation)"),
    ):
        order = np.argsort(values)
        ax.barh([ranking.names[i] for i in order], values[order], color="tab:blue")
        for rank, i in enumerate(order[::-1], start=1):
            ax.annotate(
                f"#{rank}", (values[i], list(order).index(i)), xytext=(3, -3), textcoords="offset points", fontsize=8
            )
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(label)
    _left_out_note(fig, ranking)
    return _save(fig, path)


def plot_overlays(
    images: Mapping[str, np.ndarray],
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    slice_index: int | None = None,
    contours: Mapping[str, np.ndarray] | None = None,
    order: Sequence[str] | None = None,
) -> Path:
    """One column per sequence: the image, and the image with its differentiation map overlaid.

    Args:
        images: name -> 3D volume (X, Y, Z) in [0, 1] (a 4D series: pass its frame mean).
        maps: name -> differentiation map (X, Y, Z).
        path: PNG path.
        slice_index: axial slice; default: the slice with the most planted region (``contours``), else the one
            where the maps carry most weight inside the object.
        contours: optional name -> binary mask drawn as a contour (e.g. the planted region).
        order: column order; default the order of ``maps``.
    """
    plt = _pyplot()
    names = list(order or maps)
    if slice_index is None:
        if contours:
            profile = sum(np.asarray(c, dtype=float).sum(axis=(0, 1)) for c in contours.values())
        else:  # where the maps carry most weight inside the imaged object
            inside = sum((np.asarray(images[n]) > 0.02).astype(float) for n in names) > 0
            profile = sum((np.asarray(maps[n]) * inside).sum(axis=(0, 1)) for n in names)
        slice_index = int(np.argmax(profile))
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5.4), squeeze=False)
    vmax = max(float(np.percentile(np.asarray(maps[n]), 99.5)) for n in names) or 1.0
    for col, name in enumerate(names):
        image = np.rot90(np.asarray(images[name])[:, :, slice_index])
        overlay = np.rot90(np.asarray(maps[name])[:, :, slice_index])
        for row in (0, 1):
            axes[row, col].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[row, col].axis("off")
        shown = axes[1, col].imshow(np.ma.masked_less(overlay, 0.05 * vmax), cmap="hot", vmin=0, vmax=vmax, alpha=0.8)
        if contours and name in contours:
            axes[1, col].contour(
                np.rot90(np.asarray(contours[name])[:, :, slice_index]), levels=[0.5], colors="cyan", linewidths=0.8
            )
        axes[0, col].set_title(name)
        axes[1, col].set_title(f"M_d({name})", fontsize=9)
    fig.colorbar(shown, ax=axes[1, :].tolist(), fraction=0.02, label="|X' - X| (normalised intensity)")
    fig.suptitle(f"imaging-differentiation maps, axial slice {slice_index}")
    return _save(fig, path)
