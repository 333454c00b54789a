"""Missing sequences: availability masks, the paper's random silence, source/target sampling, sequence codes.

A subject dict has one key per available sequence; a sequence it lacks is absent (or left out of
``data["available"]``), never a zero image passed off as data. The availability mask is a bool ``(S,)`` vector in
the protocol's order. Array transforms act on that mask (or on sequence names); their dictionary twins act on
the subject dict and keep ``"available"`` and the mask in step.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends

from monai_seq2seq.core.protocols import Protocol, get_protocol

from .slices import present_keys

__all__ = [
    "MASK_KEY",
    "AvailabilityMask",
    "AvailabilityMaskd",
    "RandSilenceSequences",
    "RandSilenceSequencesd",
    "RandSourceTarget",
    "RandSourceTargetd",
    "SequenceCode",
    "SequenceCoded",
    "AvailabilityMaskD",
    "AvailabilityMaskDict",
    "RandSilenceSequencesD",
    "RandSilenceSequencesDict",
    "RandSourceTargetD",
    "RandSourceTargetDict",
    "SequenceCodeD",
    "SequenceCodeDict",
]

MASK_KEY = "available_mask"


def _mask_of(protocol: Protocol, names: Sequence[str]) -> torch.Tensor:
    mask = torch.zeros(len(protocol), dtype=torch.bool)
    for name in names:
        mask[protocol.index(name)] = True
    return mask


def _names_in(data: Mapping, protocol: Protocol) -> list[str]:
    return [str(k) for k in present_keys(data, protocol.names)]


class AvailabilityMask(Transform):
    """Sequence names -> bool availability mask ``(S,)`` in the protocol's order.

    Args:
        protocol: a registered protocol name (``"brain"``, ``"breast"``), a :class:`Protocol` or a file.

    Raises:
        ValueError: a name that is not a sequence of the protocol (the message lists the protocol's names).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, protocol: str | Protocol = "brain") -> None:
        self.protocol = get_protocol(protocol)

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        return _mask_of(self.protocol, names)


class AvailabilityMaskd(MapTransform):
    """Write the availability mask of a subject dict: sequences present as keys (and in ``"available"``).

    Also sets ``data["available"]`` to the present names in protocol order.

    Args:
        keys: ignored beyond the protocol's sequence names (kept for MONAI's ``MapTransform`` signature);
            ``None`` uses the protocol's names.
        protocol: see :class:`AvailabilityMask`.
        mask_key: where the ``(S,)`` bool mask goes.
        min_available: raise ``ValueError`` (naming the subject) when fewer sequences are present.

    Absent keys are always skipped (no ``allow_missing_keys``): which of the protocol's sequences a subject has
    is the input of this transform.
    """

    backend = AvailabilityMask.backend

    def __init__(
        self,
        keys: KeysCollection | None = None,
        protocol: str | Protocol = "brain",
        mask_key: str = MASK_KEY,
        min_available: int = 1,
    ) -> None:
        self.protocol = get_protocol(protocol)
        super().__init__(self.protocol.names if keys is None else keys, allow_missing_keys=True)
        self.mask_key = mask_key
        self.min_available = int(min_available)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        names = _names_in(d, self.protocol)
        if len(names) < self.min_available:
            raise ValueError(
                f"subject {d.get('subject', '?')!r} has {len(names)} of the {self.protocol.name} protocol's "
                f"sequences {self.protocol.names} ({names}); at least {self.min_available} are needed."
            )
        d["available"] = names
        d[self.mask_key] = _mask_of(self.protocol, names)
        return d


class RandSilenceSequences(Randomizable, Transform):
    """Paper's random silence on a mask: with probability ``prob`` make ``n`` available sequences unavailable.

    ``n`` is drawn uniformly in ``[min_silence, max_silence]``, capped so that ``min_keep`` stay available (the
    paper silences 1 to S - 1 of S sequences). Nothing happens when fewer than ``min_silence + min_keep`` are
    available.

    Shapes:
        bool ``(S,)`` -> bool ``(S,)`` (a new tensor).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self, prob: float = 1.0, min_silence: int = 1, max_silence: int | None = None, min_keep: int = 1
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}.")
        if min_silence < 1 or min_keep < 1 or (max_silence is not None and max_silence < min_silence):
            raise ValueError(
                f"need 1 <= min_silence <= max_silence and min_keep >= 1, got {min_silence}, {max_silence}, {min_keep}."
            )
        self.prob = float(prob)
        self.min_silence = int(min_silence)
        self.max_silence = None if max_silence is None else int(max_silence)
        self.min_keep = int(min_keep)
        self._drop: list[int] = []

    def randomize(self, available: Sequence[int]) -> None:
        """Draw which of the ``available`` positions to silence (stored for :meth:`__call__`)."""
        self._drop = []
        if self.R.rand() >= self.prob:
            return
        most = len(available) - self.min_keep
        if self.max_silence is not None:
            most = min(most, self.max_silence)
        if most < self.min_silence:
            return
        n = int(self.R.randint(self.min_silence, most + 1))
        self._drop = sorted(int(available[i]) for i in self.R.choice(len(available), size=n, replace=False))

    def __call__(self, mask: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if randomize:
            self.randomize(torch.nonzero(mask).flatten().tolist())
        out = mask.clone()
        out[self._drop] = False
        return out


class RandSilenceSequencesd(Randomizable, MapTransform):
    """Dictionary twin of :class:`RandSilenceSequences`: the silenced sequences' keys are deleted.

    ``data["available"]`` and ``data[mask_key]`` (when present) are updated; a subject never loses more than
    ``S - min_keep`` sequences.

    Args:
        keys: the protocol's sequence keys, in protocol order.
        prob, min_silence, max_silence, min_keep: see :class:`RandSilenceSequences`.
        mask_key: availability mask to update if the dict has one.

    Absent keys are always skipped (no ``allow_missing_keys``): which of the protocol's sequences a subject has
    is the input of this transform.
    """

    backend = RandSilenceSequences.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        min_silence: int = 1,
        max_silence: int | None = None,
        min_keep: int = 1,
        mask_key: str = MASK_KEY,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        self.silencer = RandSilenceSequences(prob, min_silence, max_silence, min_keep)
        self.mask_key = mask_key

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSilenceSequencesd:
        super().set_random_state(seed, state)
        self.silencer.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self.silencer.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.keys)
        present = present_keys(d, keys)
        self.silencer.R = self.R
        self.randomize([keys.index(k) for k in present])
        dropped = {keys[i] for i in self.silencer._drop}
        for key in dropped:
            d.pop(key)
        d["available"] = [k for k in d.get("available", present) if k not in dropped]
        if self.mask_key in d:
            mask = torch.as_tensor(d[self.mask_key], dtype=torch.bool).clone()
            mask[[keys.index(k) for k in dropped]] = False
            d[self.mask_key] = mask
        return d


class RandSourceTarget(Randomizable, Transform):
    """Draw a target among the available sequences and ``num_sources`` sources among the others.

    Args:
        num_sources: sources per draw (1: the paper's one-to-one translation); ``None``: every other
            available sequence (multi-source).
        targets: restrict targets to these protocol positions (e.g. only 3D sequences); ``None``: any.

    Shapes:
        bool mask ``(S,)`` -> ``(sources, target)``: a list of protocol positions and one position.

    Raises:
        ValueError: fewer than two sequences available (nothing to translate).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, num_sources: int | None = 1, targets: Sequence[int] | None = None) -> None:
        if num_sources is not None and num_sources < 1:
            raise ValueError(f"num_sources must be >= 1 or None, got {num_sources}.")
        self.num_sources = num_sources
        self.targets = None if targets is None else [int(t) for t in targets]
        self._draw: tuple[list[int], int] = ([], -1)

    def randomize(self, available: Sequence[int]) -> None:
        available = [int(a) for a in available]
        if len(available) < 2:
            raise ValueError(f"source/target sampling needs at least 2 available sequences, got {available}.")
        candidates = available if self.targets is None else [a for a in available if a in self.targets]
        if not candidates:
            raise ValueError(f"none of the allowed targets {self.targets} is available ({available}).")
        target = int(candidates[self.R.randint(len(candidates))])
        others = [a for a in available if a != target]
        n = len(others) if self.num_sources is None else min(self.num_sources, len(others))
        sources = sorted(int(others[i]) for i in self.R.choice(len(others), size=n, replace=False))
        self._draw = (sources, target)

    def __call__(self, mask: torch.Tensor, randomize: bool = True) -> tuple[list[int], int]:
        if randomize:
            self.randomize(torch.nonzero(torch.as_tensor(mask, dtype=torch.bool)).flatten().tolist())
        return self._draw


class RandSourceTargetd(Randomizable, MapTransform):
    """Dictionary twin of :class:`RandSourceTarget`: names the drawn sequences and copies their images.

    Writes ``source_names`` (list), ``target_name``, ``"source"`` (the first source's image, or all sources
    concatenated on the frame axis when ``concat_sources``), ``"target"`` (its image) and ``"target_code"``
    (one-hot ``(code_dim,)``) into the dict.

    Args:
        keys: the protocol's sequence keys, in protocol order.
        protocol: see :class:`AvailabilityMask` (gives the code length).
        num_sources, targets: see :class:`RandSourceTarget` (``targets`` by name here).
        concat_sources: concatenate several sources' frames into ``"source"``.

    Absent keys are always skipped (no ``allow_missing_keys``): which of the protocol's sequences a subject has
    is the input of this transform.
    """

    backend = RandSourceTarget.backend

    def __init__(
        self,
        keys: KeysCollection | None = None,
        protocol: str | Protocol = "brain",
        num_sources: int | None = 1,
        targets: Sequence[str] | None = None,
        concat_sources: bool = False,
    ) -> None:
        self.protocol = get_protocol(protocol)
        MapTransform.__init__(self, self.protocol.names if keys is None else keys, allow_missing_keys=True)
        positions = None if targets is None else [list(self.keys).index(self.protocol.canonical(t)) for t in targets]
        self.sampler = RandSourceTarget(num_sources, positions)
        self.concat_sources = bool(concat_sources)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSourceTargetd:
        super().set_random_state(seed, state)
        self.sampler.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self.sampler.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.keys)
        present = present_keys(d, keys)
        self.sampler.R = self.R
        try:
            self.randomize([keys.index(k) for k in present])
        except ValueError as err:
            raise ValueError(f"subject {d.get('subject', '?')!r}: {err}") from err
        sources, target = self.sampler._draw
        d["source_names"] = [str(keys[i]) for i in sources]
        d["target_name"] = str(keys[target])
        images = [d[keys[i]] for i in sources]
        d["source"] = torch.cat([torch.as_tensor(i) for i in images], 0) if self.concat_sources else images[0]
        d["target"] = d[keys[target]]
        d["target_code"] = self.protocol.code(str(keys[target]))
        return d


class SequenceCode(Transform):
    """Sequence name(s) -> one-hot condition code(s) of length ``code_dim`` (paper: 64) in protocol order.

    Shapes:
        one name -> ``(code_dim,)``; a list of N names -> ``(N, code_dim)``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, protocol: str | Protocol = "brain", dtype: torch.dtype = torch.float32) -> None:
        self.protocol = get_protocol(protocol)
        self.dtype = dtype

    def __call__(self, name: str | int | Sequence[str | int]) -> torch.Tensor:
        return self.protocol.code(name, dtype=self.dtype)


class SequenceCoded(MapTransform):
    """Dictionary twin of :class:`SequenceCode`: ``data[key]`` names -> ``data[f"{key}{suffix}"]`` codes.

    Args:
        keys: keys holding sequence names. protocol: see :class:`SequenceCode`. suffix: appended to each key.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = SequenceCode.backend

    def __init__(
        self,
        keys: KeysCollection = "target_name",
        protocol: str | Protocol = "brain",
        suffix: str = "_code",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.coder = SequenceCode(protocol)
        self.suffix = suffix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}{self.suffix}"] = self.coder(d[key])
        return d


AvailabilityMaskD = AvailabilityMaskDict = AvailabilityMaskd
RandSilenceSequencesD = RandSilenceSequencesDict = RandSilenceSequencesd
RandSourceTargetD = RandSourceTargetDict = RandSourceTargetd
SequenceCodeD = SequenceCodeDict = SequenceCoded
