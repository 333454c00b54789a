"""DCE wash-in and wash-out maps, the one formula of the code base (the breast phantom uses it too).

With ``S_pre`` the pre-contrast frame, ``S_early`` the first post-contrast frame and ``S_late`` the last frame::

    wash-in  = (S_early - S_pre)   / max(S_pre, eps)     relative enhancement at the first post-contrast frame
    wash-out = (S_late  - S_early) / max(S_early, eps)   relative change from early to late

each set to 0 where its denominator is below ``min_signal_fraction`` (default 0.1) times that frame's 99th
percentile: in air, muscle and other tissue that is dark before contrast the ratio divides noise by noise
(on the breast phantom a third of the body has a pre-contrast signal under a tenth of the bright fat, and its
raw wash-in has a spread of 0.36 against 0.02 in fat; the lesion enhances by about 1.0). Clinical parametric
maps are masked the same way. ``min_signal_fraction=0`` keeps every voxel.

A negative wash-out is the "washout" curve type of malignant lesions; about zero a plateau; positive a
persistent enhancement. Both are unitless ratios of the series' own intensities, so they are computed before
any intensity normalisation of the DCE series.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_tensor

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.core.protocols import FrameAxis, Protocol, get_protocol

from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, check_finite, describe, like

__all__ = [
    "WASH_FORMULA",
    "DEFAULT_MIN_SIGNAL_FRACTION",
    "wash_in_out",
    "WashInOut",
    "WashInOutd",
    "WashInOutD",
    "WashInOutDict",
    "DeriveMissingd",
    "DeriveMissingD",
    "DeriveMissingDict",
]

WASH_FORMULA = (
    "wash-in = (S[early] - S[pre]) / max(S[pre], eps); "
    "wash-out = (S[late] - S[early]) / max(S[early], eps); "
    "0 where the denominator < min_signal_fraction x its frame's 99th percentile"
)
DEFAULT_MIN_SIGNAL_FRACTION = 0.1
_REFERENCE_PERCENTILE = 99.0


def _signal_floor(frame: torch.Tensor, fraction: float) -> torch.Tensor:
    """``fraction`` x the 99th percentile of ``frame`` (``kthvalue``: ``torch.quantile`` refuses > 16 M voxels)."""
    flat = frame.reshape(-1)
    k = max(1, min(flat.numel(), int(np.ceil(_REFERENCE_PERCENTILE / 100.0 * flat.numel()))))
    return fraction * flat.kthvalue(k).values


def wash_in_out(
    series: NdarrayOrTensor,
    pre_frame: int = 0,
    early_frame: int = 1,
    late_frame: int = -1,
    eps: float = 1e-6,
    min_signal_fraction: float = DEFAULT_MIN_SIGNAL_FRACTION,
) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """Wash-in and wash-out of a DCE series (formula in the module docstring).

    Args:
        series: frames first, ``(T, *S)`` with ``T >= 2``, numpy or torch.
        pre_frame, early_frame, late_frame: frame indices of the pre-contrast, first post-contrast and last frames.
        eps: floor of the denominators (air and background).
        min_signal_fraction: maps are 0 where their denominator frame is below this fraction of its own 99th
            percentile (too dark before contrast to measure a relative change); 0 keeps every voxel.

    Returns:
        ``(wash_in, wash_out)``, each float32 of shape ``S``, the type of ``series``.
    """
    if not 0.0 <= float(min_signal_fraction) < 1.0:
        raise ValueError(f"min_signal_fraction must be in [0, 1), got {min_signal_fraction}.")
    data = convert_to_tensor(series, track_meta=False).float()
    if data.shape[0] < 2:
        raise ValueError(f"wash-in/wash-out need at least 2 frames (pre- and post-contrast), got {data.shape[0]}.")
    pre, early, late = data[pre_frame], data[early_frame], data[late_frame]
    floor = torch.tensor(eps, dtype=data.dtype, device=data.device)
    wash_in = (early - pre) / torch.maximum(pre, floor)
    wash_out = (late - early) / torch.maximum(early, floor)
    if min_signal_fraction > 0:
        wash_in = torch.where(pre >= _signal_floor(pre, min_signal_fraction), wash_in, 0.0)
        wash_out = torch.where(early >= _signal_floor(early, min_signal_fraction), wash_out, 0.0)
    if isinstance(series, np.ndarray):
        return wash_in.numpy(), wash_out.numpy()
    return wash_in, wash_out


class WashInOut(Transform):
    """DCE series -> wash-in and/or wash-out maps.

    Args:
        output: ``"both"`` (channel 0 wash-in, 1 wash-out), ``"in"`` or ``"out"``.
        pre_frame, early_frame, late_frame, eps, min_signal_fraction: see :func:`wash_in_out`.

    Shapes:
        ``(T, X, Y, Z)`` (T >= 2) -> ``(2, X, Y, Z)`` or ``(1, X, Y, Z)``, float32. A MetaTensor keeps its affine;
        the frame meta is dropped and ``meta["derived_from"]``/``meta["formula"]`` say what the map is.

    Raises:
        ValueError: one frame, NaN/Inf. FrameValuesError: frame meta on an axis other than time.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        output: str = "both",
        pre_frame: int = 0,
        early_frame: int = 1,
        late_frame: int = -1,
        eps: float = 1e-6,
        min_signal_fraction: float = DEFAULT_MIN_SIGNAL_FRACTION,
    ) -> None:
        if output not in ("both", "in", "out"):
            raise ValueError(f"output must be 'both', 'in' or 'out', got {output!r}.")
        if not 0.0 <= float(min_signal_fraction) < 1.0:
            raise ValueError(f"min_signal_fraction must be in [0, 1), got {min_signal_fraction}.")
        self.min_signal_fraction = float(min_signal_fraction)
        self.output = output
        self.frames = (int(pre_frame), int(early_frame), int(late_frame))
        self.eps = float(eps)

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        meta = getattr(img, "meta", None) or {}
        if meta.get(FRAME_AXIS_KEY) not in (None, "time"):
            raise FrameValuesError(
                f"{label}: wash-in/out need DCE timepoints, its frame axis is {meta[FRAME_AXIS_KEY]!r}."
            )
        check_finite(img, label)
        try:
            wash_in, wash_out = wash_in_out(
                img, *self.frames, eps=self.eps, min_signal_fraction=self.min_signal_fraction
            )
        except ValueError as err:
            raise ValueError(f"{label}: {err}") from err
        maps = {"both": [wash_in, wash_out], "in": [wash_in], "out": [wash_out]}[self.output]
        out = like(torch.stack([torch.as_tensor(m) for m in maps]), img, dtype=torch.float32)
        if isinstance(out, MetaTensor):
            out.meta = {k: v for k, v in out.meta.items() if k not in (FRAME_AXIS_KEY, FRAME_VALUES_KEY)}
            out.meta["derived_from"] = str(meta.get("filename_or_obj", name or "DCE"))
            out.meta["formula"] = WASH_FORMULA
        return out


class WashInOutd(MapTransform):
    """Dictionary twin of :class:`WashInOut`: one DCE key -> two new keys ``(1, X, Y, Z)`` each.

    Args:
        keys: the DCE key (one).
        wash_in_key, wash_out_key: output keys (the breast protocol's ``WashIn``/``WashOut``).
        overwrite: replace existing output keys; otherwise an existing one is an error (it may be an acquired map).
        keep_existing: derive only the maps the subject lacks and keep the ones it has (how inference fills in
            wash-in/out of a subject that brings a DCE series only: a formula, not a network, gives them).
        pre_frame, early_frame, late_frame, eps, min_signal_fraction: see :func:`wash_in_out`.
        allow_missing_keys: skip an absent DCE key instead of raising ``KeyError``.
    """

    backend = WashInOut.backend

    def __init__(
        self,
        keys: KeysCollection,
        wash_in_key: str = "WashIn",
        wash_out_key: str = "WashOut",
        overwrite: bool = False,
        pre_frame: int = 0,
        early_frame: int = 1,
        late_frame: int = -1,
        eps: float = 1e-6,
        min_signal_fraction: float = DEFAULT_MIN_SIGNAL_FRACTION,
        allow_missing_keys: bool = False,
        keep_existing: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"WashInOutd takes one DCE key, got {self.keys}.")
        if overwrite and keep_existing:
            raise ValueError("WashInOutd: overwrite=True and keep_existing=True contradict each other; pick one.")
        self.out_keys = (wash_in_key, wash_out_key)
        self.overwrite = bool(overwrite)
        self.keep_existing = bool(keep_existing)
        self.maps = WashInOut("both", pre_frame, early_frame, late_frame, eps, min_signal_fraction)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            existing = [k for k in self.out_keys if d.get(k) is not None]
            if existing and not (self.overwrite or self.keep_existing):
                raise ValueError(
                    f"subject {d.get('subject', '?')!r} already has {existing}; WashInOutd would "
                    "overwrite them (pass overwrite=True to recompute from the DCE series, or keep_existing=True)."
                )
            new_keys = [k for k in self.out_keys if not (self.keep_existing and k in existing)]
            if not new_keys:
                continue
            maps = self.maps(d[key], name=str(key))
            for out_key, channel in zip(self.out_keys, (maps[:1], maps[1:]), strict=True):
                if out_key in new_keys:
                    d[out_key] = channel
            if "available" in d:
                d["available"] = list(dict.fromkeys([*d["available"], *new_keys]))
        return d


WashInOutD = WashInOutDict = WashInOutd


class DeriveMissingd(MapTransform):
    """Compute the protocol's derived maps a subject lacks from the acquired series they are defined on.

    A sequence whose :class:`~monai_seq2seq.core.protocols.SequenceSpec` has ``derived_from`` is a formula of
    another sequence (the breast protocol's WashIn and WashOut of the DCE series): when the subject has the source
    but not the map, the formula gives it, so it is analysed rather than synthesised by the network. Maps the
    subject brings are kept. A protocol without derived sequences (brain) makes this a no-op.

    Args:
        protocol: name, file or :class:`~monai_seq2seq.core.protocols.Protocol`.
        min_signal_fraction: see :func:`wash_in_out`.

    Shapes:
        source ``(T, X, Y, Z)`` -> each derived map ``(1, X, Y, Z)`` on the source's grid (see :class:`WashInOutd`).

    Raises:
        NotImplementedError: the protocol derives maps for which no formula is known here (at construction).
    """

    backend = WashInOut.backend

    def __init__(self, protocol: str | Protocol, min_signal_fraction: float = DEFAULT_MIN_SIGNAL_FRACTION) -> None:
        proto = get_protocol(protocol)
        by_source: dict[str, list[str]] = {}
        for spec in proto.sequences:
            if spec.derived_from is not None:
                by_source.setdefault(spec.derived_from, []).append(spec.name)
        self.derivations = []
        for source, maps in by_source.items():
            if proto[source].frame_axis != FrameAxis.TIME or len(maps) != 2:
                raise NotImplementedError(
                    f"protocol {proto.name!r} derives {maps} from {source}; the formula known here is wash-in and "
                    "wash-out (two maps) of a time series (DCE). Compute them yourself, or drop derived_from."
                )
            self.derivations.append(
                WashInOutd(
                    source,
                    wash_in_key=maps[0],
                    wash_out_key=maps[1],
                    keep_existing=True,
                    min_signal_fraction=min_signal_fraction,
                    allow_missing_keys=True,
                )
            )
        super().__init__(proto.names, allow_missing_keys=True)  # the keys it may read or write

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for derivation in self.derivations:
            d = derivation(d)
        return d


DeriveMissingD = DeriveMissingDict = DeriveMissingd
