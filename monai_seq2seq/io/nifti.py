"""NIfTI reader for 3D and 4D MRI sequences with frame values from sidecars.

``Seq2SeqNiftiReader`` is a :class:`monai.data.NibabelReader` that additionally puts
``meta["frame_axis"]`` (``"time"`` / ``"bvalue"``) and ``meta["frame_values"]`` (list of floats) into the
metadata of a 4D image ``(x, y, z, t)`` from its BIDS sidecar JSON or FSL ``.bval`` file
(see :mod:`monai_seq2seq.io.sidecar`). A 4D image reads as ``(X, Y, Z, T)`` with ``original_channel_dim = -1``,
so ``EnsureChannelFirst`` (or ``LoadImage(..., ensure_channel_first=True)``) gives ``(T, X, Y, Z)``;
a 3D image gives ``(1, X, Y, Z)``. The affine is the NIfTI affine (RAS), exactly as ``NibabelReader`` gives it.

Example::

    from monai.transforms import LoadImaged
    load = LoadImaged(["DCE", "T1"], reader=Seq2SeqNiftiReader(), ensure_channel_first=True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data import NibabelReader
from monai.utils import ensure_tuple

from monai_seq2seq.core.errors import FrameValuesError, UnreadableFileError

from .sidecar import read_frame_info

__all__ = ["Seq2SeqNiftiReader", "load_sequence"]


class _ReadFailure:
    """What :meth:`Seq2SeqNiftiReader.read` returns for an unreadable file; ``get_data`` raises ``error``."""

    def __init__(self, error: Exception):
        self.error = error


class Seq2SeqNiftiReader(NibabelReader):
    """Load 3D/4D NIfTI with affine and, for 4D, ``frame_axis``/``frame_values`` from sidecars.

    Args:
        frame_axis: expected frame axis of 4D images (``"time"`` or ``"bvalue"``); ``None`` accepts what the
            sidecar says. A sidecar naming the other axis raises ``FrameValuesError``.
        require_frame_values: raise ``FrameValuesError`` when a 4D image (more than one frame) has no sidecar.
        kwargs: passed to :class:`monai.data.NibabelReader` (e.g. ``as_closest_canonical``).

    Raises (at ``read``/``get_data``):
        UnreadableFileError: missing, corrupt or non-NIfTI file (the message names it).
        FrameValuesError: frame count != number of frame values, duplicate values, contradicting sidecars.
    """

    def __init__(self, frame_axis: str | None = None, require_frame_values: bool = False, **kwargs):
        if kwargs.get("channel_dim") not in (None, -1, 3):
            raise ValueError("Seq2SeqNiftiReader reads 4D NIfTI as (x, y, z, t); channel_dim must be None or -1.")
        super().__init__(**kwargs)
        self.frame_axis = frame_axis
        self.require_frame_values = require_frame_values

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs):
        """Read one NIfTI file or a list of them (stacked as channels by :meth:`get_data`).

        A missing or corrupt file does not raise here: the :class:`UnreadableFileError` (naming the file) is
        raised by :meth:`get_data`, so that ``LoadImage(reader=...)``, which swallows ``read`` errors while it
        tries its other readers, reports it as it is.
        """
        self.filenames = ensure_tuple(data)
        for name in self.filenames:
            if not os.path.isfile(name):
                return _ReadFailure(UnreadableFileError(f"NIfTI file {str(name)!r} does not exist."))
        try:
            img = super().read(data, **kwargs)
            for i in ensure_tuple(img):
                i.header.get_data_shape()
        except Exception as err:
            failure = UnreadableFileError(f"cannot read NIfTI file(s) {[str(d) for d in self.filenames]}: {err}")
            failure.__cause__ = err
            return _ReadFailure(failure)
        return img

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """Array ``(X, Y, Z)`` or ``(X, Y, Z, T)`` and its meta dict, with frame meta for 4D images.

        Raises:
            UnreadableFileError: the voxel data is truncated or corrupt (the message names the file).
            FrameValuesError: see the class docstring.
        """
        if isinstance(img, _ReadFailure):
            raise img.error
        filenames = [str(f) for f in self.filenames]
        try:
            data, meta = super().get_data(img)
        except (OSError, EOFError, ValueError, RuntimeError) as err:
            raise UnreadableFileError(f"cannot read the voxel data of NIfTI file(s) {filenames}: {err}") from err
        axes: list[str] = []
        values: list[float] = []
        for i, name in zip(ensure_tuple(img), filenames, strict=True):
            info = self._file_frame_info(i.shape, name)
            if info is not None:
                axes.append(info[0])
                values.extend(info[1])
        if axes:
            self._check_frame_axes(axes, filenames)
            if any(len(i.shape) == 4 for i in ensure_tuple(img)) or len(filenames) > 1:
                meta["frame_axis"] = axes[0]
                meta["frame_values"] = [float(v) for v in values]
        return data, meta

    def _file_frame_info(self, shape: tuple[int, ...], name: str) -> tuple[str, list[float]] | None:
        """Frame axis and values of one file from its sidecars (``None`` without sidecar), checked against ``shape``."""
        if len(shape) > 4:
            raise UnreadableFileError(f"NIfTI file {name!r} has {len(shape)} dimensions {shape}; expected 3 or 4.")
        n_frames = int(shape[3]) if len(shape) == 4 else 1
        info = read_frame_info(name, n_frames=n_frames if len(shape) == 4 else None)
        if info is None:
            if self.require_frame_values and n_frames > 1:
                raise FrameValuesError(f"4D NIfTI file {name!r} ({n_frames} frames) has no sidecar JSON/.bval.")
            return None
        if len(shape) == 3 and len(info[1]) != 1:
            raise FrameValuesError(
                f"3D NIfTI file {name!r} has one frame but its sidecar gives {len(info[1])} values {info[1]}."
            )
        return info

    def _check_frame_axes(self, axes: list[str], filenames: list[str]) -> None:
        """The files read together must all have sidecars, of one frame axis, the expected one."""
        if len(axes) != len(filenames):
            raise FrameValuesError(f"only some of the files {filenames} have frame sidecars.")
        if len(set(axes)) > 1:
            raise FrameValuesError(f"files {filenames} have different frame axes {axes}.")
        if self.frame_axis is not None and axes[0] != self.frame_axis:
            raise FrameValuesError(f"{filenames}: expected frame axis {self.frame_axis!r}, sidecar gives {axes[0]!r}.")


def load_sequence(path: str | os.PathLike | Sequence[str | os.PathLike], **reader_kwargs):
    """Load one sequence as a channel-first ``MetaTensor``: ``(1, X, Y, Z)`` for 3D, ``(T, X, Y, Z)`` for 4D.

    Args:
        path: a NIfTI file (or a list of files stacked as frames).
        reader_kwargs: passed to :class:`Seq2SeqNiftiReader`.
    """
    from monai.transforms import LoadImage

    reader = Seq2SeqNiftiReader(**reader_kwargs)
    loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
    return loader(path, reader=reader)  # a runtime reader: its errors are not swallowed by reader fallback
