"""Frames of 4D series: sort by frame value, resample in time, check the count a protocol expects, and give a series
the protocol's frames (:class:`MatchProtocolFrames`: DCE resampled to the protocol's times, DWI directions averaged
and the protocol's b-values selected; refused, with the fix, where that cannot be done honestly).

A 4D sequence is channel-first ``(T, X, Y, Z)`` with ``meta["frame_values"]`` (DCE: seconds after the
pre-contrast frame; DWI: b-values in s/mm^2) and ``meta["frame_axis"]``; see :mod:`.utils`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_tensor, ensure_tuple

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.core.protocols import FrameAxis, Protocol, get_protocol

from .base import PerKeyd
from .dwi import SelectBValues
from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, check_distinct, describe, get_frame_values, like, set_frame_meta

__all__ = [
    "SortFrames",
    "SortFramesd",
    "ResampleFrames",
    "ResampleFramesd",
    "CheckFrameCount",
    "CheckFrameCountd",
    "SortFramesD",
    "SortFramesDict",
    "ResampleFramesD",
    "ResampleFramesDict",
    "CheckFrameCountD",
    "CheckFrameCountDict",
    "MISSING_BVALUES",
    "MatchProtocolFrames",
    "MatchProtocolFramesd",
    "MatchProtocolFramesD",
    "MatchProtocolFramesDict",
]

logger = logging.getLogger(__name__)

MISSING_BVALUES = ("refuse", "monoexp", "ivim")
"""What :class:`MatchProtocolFrames` does with protocol b-values a DWI lacks: refuse, or synthesise them from a
mono-exponential or IVIM fit of the acquired frames."""


def _with_frames(
    img: NdarrayOrTensor,
    frames: torch.Tensor,
    axis: str | None,
    values: Sequence[float],
    dtype: torch.dtype | None = None,
):
    return set_frame_meta(like(frames, img, dtype=img.dtype if dtype is None else dtype), axis, values)


class SortFrames(Transform):
    """Order the frames of a 4D series by increasing frame value (acquisition time or b-value).

    Args:
        expected_axis: ``"time"`` or ``"bvalue"``; a meta naming the other axis raises.
        frame_values: explicit values (for plain arrays without meta).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(T, X, Y, Z)``; the meta's ``frame_values`` are permuted with the data.

    Raises:
        FrameValuesError: missing values, a count that differs from ``T``, duplicate values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, expected_axis: str | None = None, frame_values: Sequence[float] | None = None) -> None:
        self.expected_axis = expected_axis
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        values = get_frame_values(img, self.frame_values, self.expected_axis, name)
        check_distinct(values, "frame values", describe(img, name))
        order = np.argsort(values, kind="stable")
        axis = (getattr(img, "meta", None) or {}).get("frame_axis", self.expected_axis)
        if np.all(order == np.arange(len(values))):
            return set_frame_meta(img, axis, values)
        frames = convert_to_tensor(img, track_meta=False)[torch.as_tensor(order)]
        return _with_frames(img, frames, axis, [values[i] for i in order])


class ResampleFrames(Transform):
    """Linear interpolation along the frame axis to requested frame values (e.g. the protocol's DCE times).

    Acquired frames whose value equals a requested one are copied exactly; the others are interpolated between
    the two bracketing acquired frames.

    Args:
        target_values: requested frame values (seconds for DCE).
        expected_axis: the frame axis the input must have (``None``: any).
        extrapolate: hold the first/last frame for requests outside the acquired range instead of raising.
        frame_values: explicit acquired values, one per frame (for plain arrays without meta).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(len(target_values), X, Y, Z)``, floating point (an integer input gives float32).

    Raises:
        FrameValuesError: missing or duplicate frame values, requests outside the acquired range (unless
            ``extrapolate``; a single acquired frame has a range of one value).
        ValueError: no or non-finite target values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        target_values: Sequence[float],
        expected_axis: str | None = "time",
        extrapolate: bool = False,
        frame_values: Sequence[float] | None = None,
    ) -> None:
        self.target_values = [float(v) for v in np.asarray(target_values, dtype=np.float64).reshape(-1)]
        if not self.target_values:
            raise ValueError("ResampleFrames needs at least one target value.")
        if not all(np.isfinite(self.target_values)):
            raise ValueError(f"ResampleFrames target values must be finite, got {self.target_values}.")
        self.expected_axis = expected_axis
        self.extrapolate = bool(extrapolate)
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        values = get_frame_values(img, self.frame_values, self.expected_axis, name)
        check_distinct(values, "frame values", label)
        order = np.argsort(values, kind="stable")
        acquired = np.asarray(values)[order]
        targets = np.asarray(self.target_values)
        outside = targets[(targets < acquired[0]) | (targets > acquired[-1])]
        if outside.size and not self.extrapolate:
            if len(acquired) < 2:
                raise FrameValuesError(
                    f"{label}: requested frame values {outside.tolist()} lie outside the acquired range "
                    f"[{acquired[0]}, {acquired[-1]}]: a single frame cannot be interpolated; pass extrapolate=True "
                    "to hold it."
                )
            raise FrameValuesError(
                f"{label}: requested frame values {outside.tolist()} lie outside the acquired range "
                f"[{acquired[0]}, {acquired[-1]}] ({acquired.tolist()}); pass extrapolate=True to hold the end frames."
            )
        n = len(acquired)
        if n == 1:  # every request equals the one frame, or extrapolate holds it
            lower = upper = np.zeros(len(targets), dtype=np.int64)
            weight = np.zeros(len(targets))
        else:
            clamped = np.clip(targets, acquired[0], acquired[-1])
            upper = np.clip(np.searchsorted(acquired, clamped, side="left"), 1, n - 1)
            lower = upper - 1
            weight = (clamped - acquired[lower]) / (acquired[upper] - acquired[lower])
            lower = np.where(weight == 1.0, upper, lower)  # a requested value that was acquired: copy that frame
            weight = np.where(weight == 1.0, 0.0, weight)
        data = convert_to_tensor(img, track_meta=False)[torch.as_tensor(order)]
        data = data if data.is_floating_point() else data.float()
        low = data[torch.as_tensor(lower, device=data.device)]
        w = torch.as_tensor(weight, dtype=data.dtype, device=data.device).reshape(-1, *([1] * (data.ndim - 1)))
        frames = torch.where(w == 0, low, low + w * (data[torch.as_tensor(upper, device=data.device)] - low))
        axis = (getattr(img, "meta", None) or {}).get("frame_axis", self.expected_axis)
        return _with_frames(img, frames, axis, self.target_values, dtype=frames.dtype)


class CheckFrameCount(Transform):
    """Raise :class:`FrameValuesError` when a series does not have the expected number of frames.

    Args:
        expected: the protocol's number of frames ``T``.
        name: label of the image in error messages (a ``name`` given to the call takes precedence).

    Shapes:
        ``(T, X, Y, Z)`` -> the same object.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, expected: int, name: str | None = None) -> None:
        self.expected = int(expected)
        self.name = name

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        if img.shape[0] != self.expected:
            raise FrameValuesError(
                f"{describe(img, name or self.name)} has {img.shape[0]} frames; expected {self.expected} by the "
                "protocol (resample with ResampleFrames / SelectBValues first)."
            )
        return img


class SortFramesd(PerKeyd):
    """Dictionary twin of :class:`SortFrames`.

    Args:
        keys: 4D series keys. expected_axis: see :class:`SortFrames`.
        allow_missing_keys: skip absent keys (a subject without DWI) instead of raising ``KeyError``.
    """

    backend = SortFrames.backend

    def __init__(
        self, keys: KeysCollection, expected_axis: str | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, SortFrames(expected_axis), allow_missing_keys, named=True)


class ResampleFramesd(PerKeyd):
    """Dictionary twin of :class:`ResampleFrames`.

    Args:
        keys: 4D series keys. target_values, expected_axis, extrapolate: see :class:`ResampleFrames`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = ResampleFrames.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_values: Sequence[float],
        expected_axis: str | None = "time",
        extrapolate: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, ResampleFrames(target_values, expected_axis, extrapolate), allow_missing_keys, named=True
        )


class CheckFrameCountd(PerKeyd):
    """Dictionary twin of :class:`CheckFrameCount`: one expected count per key (or one for all).

    Args:
        keys: 4D series keys. expected: one count for all keys, or one per key in key order.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = CheckFrameCount.backend

    def __init__(self, keys: KeysCollection, expected: int | Sequence[int], allow_missing_keys: bool = False) -> None:
        keys = ensure_tuple(keys)
        if isinstance(expected, (int, np.integer)):
            counts = [int(expected)] * len(keys)
        else:
            counts = [int(e) for e in expected]
        if len(counts) != len(keys):
            raise ValueError(f"{len(counts)} expected counts for {len(keys)} keys.")
        super().__init__(keys, CheckFrameCount(counts[0]), allow_missing_keys, named=True)
        self.checkers = dict(zip(self.keys, (CheckFrameCount(c) for c in counts), strict=True))

    def transform_for(self, key: Hashable) -> CheckFrameCount:
        return self.checkers[key]


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


class MatchProtocolFrames(Transform):
    """Give a 4D series the frames of its protocol sequence, or refuse it: never use it as it is when it differs.

    - ``time`` (DCE): frame times from the meta (sidecar ``VolumeTiming``, DICOM times) or ``acquired_values``;
      none at all: refused. Times equal to the protocol's (within ``tol``): kept. Other times that cover the
      protocol's (within ``tol`` of the first and last acquired frame): linearly resampled to them
      (:class:`ResampleFrames`; a warning is logged, ``meta["acquired_frame_values"]`` keeps the acquired times).
      Protocol times outside the acquired range: refused, naming them.
    - ``bvalue`` (DWI): b-values from the meta (``.bval``, DICOM tags) or ``acquired_values``; none: refused.
      Repeated b-values (diffusion directions) are averaged; the protocol's b-values are selected (within
      ``tol``); missing ones are refused, naming them, unless ``missing="monoexp"``/``"ivim"`` synthesises them
      from a model fit (:class:`~.dwi.SelectBValues`; ``meta["synthesised_bvalues"]`` lists them).

    Args:
        frame_axis: the protocol sequence's axis, ``"time"`` or ``"bvalue"``.
        target_values: the protocol's frame values (seconds after the first frame, or s/mm^2).
        acquired_values: the frame values of series whose meta has none (one per frame); a meta that has other
            values is refused (the two contradict each other).
        missing: ``"refuse"``, ``"monoexp"`` or ``"ivim"`` (b-values only), see above.
        tol: seconds (time) or s/mm^2 (bvalue) within which an acquired value is the protocol's.
        options: how the user sets ``acquired_values`` and ``missing`` where this runs, for messages:
            ``{"values": "--dce_times", "missing": "--missing_bvalues"}`` (default: these arguments' names).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(len(target_values), X, Y, Z)``; the meta's ``frame_axis``/``frame_values`` become the
        protocol's.

    Raises:
        FrameValuesError: no frame values, the wrong frame axis, acquired values that contradict the meta, protocol
            times outside the acquired range, missing b-values (``missing="refuse"``).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        frame_axis: str,
        target_values: Sequence[float],
        acquired_values: Sequence[float] | None = None,
        missing: str = "refuse",
        tol: float | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        if frame_axis not in FrameAxis.ALL:
            raise ValueError(f"frame_axis must be one of {FrameAxis.ALL}, got {frame_axis!r}.")
        if missing not in MISSING_BVALUES:
            raise ValueError(f"missing must be one of {list(MISSING_BVALUES)}, got {missing!r}.")
        self.frame_axis = frame_axis
        self.target_values = [float(v) for v in target_values]
        if not self.target_values:
            raise ValueError("MatchProtocolFrames needs the protocol's frame values.")
        self.acquired_values = None if acquired_values is None else [float(v) for v in ensure_tuple(acquired_values)]
        self.missing = missing
        self.tol = float(tol) if tol is not None else (5.0 if frame_axis == FrameAxis.TIME else 1.0)
        self.options = {"values": "acquired_values=", "missing": "missing="}
        self.options.update(options or {})

    def _values(self, img: NdarrayOrTensor, label: str) -> list[float]:
        """The acquired frame values (meta or ``acquired_values``), checked against the axis and each other."""
        meta = getattr(img, "meta", None) or {}
        what = "frame times" if self.frame_axis == FrameAxis.TIME else "b-values"
        axis = meta.get(FRAME_AXIS_KEY)
        if axis is not None and axis != self.frame_axis:
            raise FrameValuesError(
                f"{label}: its frames are told apart by {axis!r} (values {meta.get(FRAME_VALUES_KEY)}), but this "
                f"sequence needs {what} ({self.frame_axis!r}); check that the datalist names the right file/series."
            )
        found = meta.get(FRAME_VALUES_KEY)
        if found is not None and self.acquired_values is not None:
            same = len(found) == len(self.acquired_values) and np.allclose(found, self.acquired_values)
            if not same:
                raise FrameValuesError(
                    f"{label}: its {what} {_fmt(found)} (from its sidecar/tags) contradict the ones given "
                    f"{_fmt(self.acquired_values)}; fix the sidecar or leave the option out."
                )
        values = found if found is not None else self.acquired_values
        if values is None:
            raise FrameValuesError(self._no_values_message(img, label))
        return get_frame_values(img, values, None, label)

    def _no_values_message(self, img: NdarrayOrTensor, label: str) -> str:
        n = img.shape[0]
        if self.frame_axis == FrameAxis.TIME:
            fix = (
                'a BIDS sidecar JSON next to the image with "VolumeTiming" (seconds, one per frame), or pass the '
                f"times: {self._values_option()}"
            )
            return (
                f"{label}: {n} frame(s) and no frame times, so they cannot be matched to the protocol's times "
                f"{_fmt(self.target_values)} s and are not used as they are. Fix: {fix}."
            )
        fix = f"an FSL .bval next to the image (one b-value per frame), or pass the b-values: {self._values_option()}"
        return (
            f"{label}: {n} frame(s) and no b-values, so they cannot be matched to the protocol's b-values "
            f"{_fmt(self.target_values)} s/mm^2. Fix: {fix}."
        )

    def _values_option(self) -> str:
        example = ",".join(f"{v:g}" for v in self.target_values)
        return f'{self.options["values"]} "[{example}]" (one value per frame of the file, in frame order)'

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        values = self._values(img, label)
        if self.frame_axis == FrameAxis.TIME:
            return self._times(img, values, label)
        return self._bvalues(img, values, label)

    def _times(self, img: NdarrayOrTensor, values: list[float], label: str) -> NdarrayOrTensor:
        targets = self.target_values
        if len(values) == len(targets) and np.allclose(values, targets, rtol=0, atol=self.tol):
            return set_frame_meta(img, FrameAxis.TIME, targets)
        check_distinct(values, "frame times", label)
        low, high = min(values), max(values)
        outside = [t for t in targets if t < low - self.tol or t > high + self.tol]
        if outside:
            raise FrameValuesError(
                f"{label}: frame times {_fmt(values)} s do not cover the protocol's {_fmt(targets)} s: "
                f"{_fmt(outside)} s lie outside the acquisition and cannot be interpolated. Fix: check the frame "
                "times (sidecar VolumeTiming / DICOM TriggerTime), or synthesise this sequence "
                "instead of reading it (leave it out of the datalist)."
            )
        clamped = [min(max(t, low), high) for t in targets]
        out = ResampleFrames(clamped, expected_axis=None, frame_values=values)(img, name=label)
        set_frame_meta(out, FrameAxis.TIME, targets)
        if hasattr(out, "meta"):
            out.meta["acquired_frame_values"] = [float(v) for v in values]
        logger.warning(f"{label}: frame times {_fmt(values)} s resampled to the protocol's {_fmt(targets)} s.")
        return out

    def _bvalues(self, img: NdarrayOrTensor, values: list[float], label: str) -> NdarrayOrTensor:
        acquired = np.asarray(sorted(set(values)))
        missing = [b for b in self.target_values if np.abs(acquired - b).min() > self.tol]
        if missing and self.missing == "refuse":
            raise FrameValuesError(
                f"{label}: acquired b-values {_fmt(acquired)} s/mm^2 lack the protocol's {_fmt(missing)} (it needs "
                f"{_fmt(self.target_values)}). Fix: synthesise them from a model fit of the acquired frames "
                f"({self.options['missing']} monoexp or ivim), or use a DWI with these b-values."
            )
        if not missing and len(values) == len(self.target_values) and np.allclose(values, self.target_values):
            return set_frame_meta(img, FrameAxis.BVALUE, self.target_values)
        model = "monoexp" if self.missing == "refuse" else self.missing
        select = SelectBValues(self.target_values, model, True, self.tol, "average", frame_values=values)
        out = select(img, name=label)
        if len(values) != len(set(values)):
            logger.info(f"{label}: {len(values)} frames averaged by b-value into {len(acquired)}.")
        if missing:
            logger.warning(f"{label}: b-values {_fmt(missing)} synthesised from a {model} fit of {_fmt(acquired)}.")
        return out


class _Keep(Transform):
    """Identity for the keys :class:`MatchProtocolFramesd` leaves alone (3D sequences, names outside the protocol)."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        return img


class MatchProtocolFramesd(PerKeyd):
    """Dictionary twin of :class:`MatchProtocolFrames`: each 4D key gets its protocol sequence's frames.

    Args:
        keys: sequence keys; 3D sequences of the protocol (and keys it does not name) are left as they are.
        protocol: names each key's frame axis and values.
        times: frame times (s) of DCE series without timing, one per frame (every time-axis key).
        bvalues: b-values of DWI series without b-values, one per frame (every b-value key).
        missing_bvalues: ``"refuse"``, ``"monoexp"`` or ``"ivim"``, see :class:`MatchProtocolFrames`.
        time_tol, bvalue_tol: tolerances in s and s/mm^2.
        options: how the user sets ``times``/``bvalues``/``missing_bvalues`` where this runs, for messages:
            ``{"times": "--dce_times", "bvalues": "--bvalues", "missing_bvalues": "--missing_bvalues"}`` (default:
            these arguments' names).
        allow_missing_keys: skip absent keys (a subject without DWI) instead of raising ``KeyError``.
    """

    backend = MatchProtocolFrames.backend

    def __init__(
        self,
        keys: KeysCollection,
        protocol: str | Protocol,
        times: Sequence[float] | None = None,
        bvalues: Sequence[float] | None = None,
        missing_bvalues: str = "refuse",
        time_tol: float = 5.0,
        bvalue_tol: float = 1.0,
        options: Mapping[str, str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, _Keep(), allow_missing_keys, named=True)
        proto = get_protocol(protocol)
        opts = {"times": "times=", "bvalues": "bvalues=", "missing_bvalues": "missing_bvalues="}
        opts.update(options or {})
        self.matchers: dict[Hashable, MatchProtocolFrames] = {}
        for key in self.keys:
            spec = proto[key] if isinstance(key, str) and key in proto else None
            if spec is None or not spec.is_4d or not spec.frame_values:
                continue
            time = spec.frame_axis == FrameAxis.TIME
            self.matchers[key] = MatchProtocolFrames(
                spec.frame_axis,
                spec.frame_values,
                times if time else bvalues,
                "refuse" if time else missing_bvalues,
                time_tol if time else bvalue_tol,
                {"values": opts["times" if time else "bvalues"], "missing": opts["missing_bvalues"]},
            )

    def transform_for(self, key: Hashable) -> Transform:
        return self.matchers.get(key, self.transform)


SortFramesD = SortFramesDict = SortFramesd
ResampleFramesD = ResampleFramesDict = ResampleFramesd
CheckFrameCountD = CheckFrameCountDict = CheckFrameCountd
MatchProtocolFramesD = MatchProtocolFramesDict = MatchProtocolFramesd
