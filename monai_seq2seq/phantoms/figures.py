"""Figures of phantom subjects: every sequence side by side, 4D sequences as a row of frames (PNG, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from monai_seq2seq.core.protocols import Protocol
from monai_seq2seq.phantoms.subject import PhantomSubject
from monai_seq2seq.phantoms.tissues import BRAIN_LABELS, BREAST_LABELS, BREAST_MIMICS

MIMIC_LABELS = {
    "brain": (BRAIN_LABELS["HEM"],),
    "breast": tuple(BREAST_LABELS[t] for t in BREAST_MIMICS.values()),
}
"""Protocol name -> label values of its phantom's mimics (the default slice shows them beside the planted region)."""

__all__ = ["MIMIC_LABELS", "default_slice", "subject_figure", "save_subject_figure"]


def _axial(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice for display: rows = anterior (top) to posterior, columns = x (neurological view)."""
    return volume[:, :, z].T[::-1]


def default_slice(subject: PhantomSubject, protocol: Protocol) -> int:
    """Axial slice showing the planted regions and, where one slice can, a mimic beside them.

    The slice maximising ``sqrt(planted voxels x mimic voxels)`` when any slice holds both, else the one with the
    most planted voxels, else the middle one.
    """
    depth = subject.label.shape[2]
    planted = sum(m.astype(np.int64) for m in subject.unique.values()) if subject.unique else None
    counts = planted.sum(axis=(0, 1)).astype(float) if planted is not None else np.zeros(depth)
    mimics = np.isin(subject.label, MIMIC_LABELS.get(protocol.name, ())).sum(axis=(0, 1)).astype(float)
    both = np.sqrt(counts * mimics)
    if both.max() > 0:
        return int(np.argmax(both))
    return int(np.argmax(counts)) if counts.max() > 0 else depth // 2


def _limits(image: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    vals = image[body] if body.any() else image.ravel()
    lo, hi = np.percentile(vals, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def subject_figure(subject: PhantomSubject, protocol: Protocol, z: int | None = None, title: str | None = None):
    """A matplotlib figure of one subject.

    Row 1: the 3D sequences, the label map and the planted regions; one more row per 4D sequence with its frames.
    Display windows are the 0.5-99.5 percentiles inside the subject (so derived maps are not dominated by air).

    Args:
        subject: a generated subject.
        protocol: its protocol (sequence order).
        z: axial slice index; defaults to :func:`default_slice`.
        title: figure title (default: the subject id).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names3d = [s.name for s in protocol.sequences if not s.is_4d and s.name in subject.images]
    names4d = [s.name for s in protocol.sequences if s.is_4d and s.name in subject.images]
    ref = subject.images[names3d[0]]
    shape = ref.shape
    if z is None:
        z = default_slice(subject, protocol)
    body = ref > np.percentile(ref, 99) * 0.1
    body_z = _axial(body, z)
    ncols = max(len(names3d) + 2, *(subject.images[n].shape[0] for n in names4d)) if names4d else len(names3d) + 2
    nrows = 1 + len(names4d)
    aspect = shape[1] / shape[0]
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.4 * aspect * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for col, name in enumerate(names3d):
        img = _axial(subject.images[name], z)
        if protocol[name].derived_from is not None:  # parametric maps: noise-only air hidden for display
            img = np.where(body_z, img, 0.0)
        lo, hi = _limits(img, body_z)
        axes[0, col].imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[0, col].set_title(name + (" (body)" if protocol[name].derived_from else ""), fontsize=9)
    col = len(names3d)
    axes[0, col].imshow(
        _axial(subject.images[names3d[0]], z),
        cmap="gray",
        interpolation="nearest",
        vmin=_limits(_axial(subject.images[names3d[0]], z), body_z)[0],
        vmax=_limits(_axial(subject.images[names3d[0]], z), body_z)[1],
    )
    lab = np.ma.masked_equal(_axial(subject.label, z).astype(float), 0)
    axes[0, col].imshow(
        lab, cmap="jet", alpha=0.6, vmin=0, vmax=max(1, int(subject.label.max())), interpolation="nearest"
    )
    axes[0, col].set_title("label", fontsize=9)
    if subject.unique:
        uni = np.zeros(_axial(subject.label, z).shape)
        for k, m in enumerate(subject.unique.values()):
            uni = np.maximum(uni, _axial(m, z) * (k + 1))
        axes[0, col + 1].imshow(uni, cmap="magma", vmin=0, vmax=len(subject.unique), interpolation="nearest")
        axes[0, col + 1].set_title("unique: " + ", ".join(subject.unique), fontsize=8)
    for row, name in enumerate(names4d, start=1):
        series = subject.images[name]
        lo, hi = _limits(_axial(series[0], z), body_z)
        hi = max(hi, _limits(_axial(series[-1], z), body_z)[1], _limits(_axial(series[1], z), body_z)[1])
        values = subject.frame_values.get(name, list(range(series.shape[0])))
        unit = "s" if protocol[name].frame_axis == "time" else "b"
        per_frame = protocol[name].frame_axis != "time"  # DWI: one window per b-value; DCE: shared window
        for f in range(series.shape[0]):
            if per_frame:
                lo, hi = _limits(_axial(series[f], z), body_z)
            axes[row, f].imshow(_axial(series[f], z), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            label = f"t={values[f]:g}s" if unit == "s" else f"b={values[f]:g}"
            axes[row, f].set_title(f"{name} {label}", fontsize=8)
    fig.suptitle(title or f"{subject.subject} (axial slice {z})", fontsize=10)
    fig.tight_layout()
    return fig


def save_subject_figure(
    subject: PhantomSubject, protocol: Protocol, path: str | os.PathLike, dpi: int = 100, **kwargs
) -> Path:
    """Render :func:`subject_figure` to a PNG file (parent folders created)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = subject_figure(subject, protocol, **kwargs)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
