"""Protocols: the ordered, typed registry of the MRI sequences a network translates between.

A protocol fixes the order of its sequences, which is the index of each sequence's one-hot code,
whether a sequence is 3D or 4D, what its frame axis means (DCE acquisition times, DWI b-values) and
how many frames the network sees, plus the aliases that map file names (BraTS, BIDS) to sequences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FrameAxis",
    "SequenceSpec",
    "Protocol",
    "BRAIN",
    "BREAST",
    "register_protocol",
    "get_protocol",
    "list_protocols",
    "DCE_TIMES_S",
    "DWI_BVALUES",
]


class FrameAxis:
    """Meaning of the frame axis of a 4D sequence."""

    TIME = "time"  # DCE: acquisition time in seconds after the pre-contrast frame
    BVALUE = "bvalue"  # DWI: diffusion weighting in s/mm^2

    ALL = (TIME, BVALUE)


DCE_TIMES_S: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0, 360.0, 450.0)
"""Paper's breast DCE: pre-contrast + 5 post-contrast frames over 7.5 min."""

DWI_BVALUES: tuple[float, ...] = (0.0, 150.0, 800.0, 1500.0)
"""Paper's breast DWI b-values in s/mm^2."""


def _normalise_token(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass(frozen=True)
class SequenceSpec:
    """One MRI sequence of a protocol.

    Args:
        name: canonical name, e.g. ``"T1Gd"``.
        frames: number of frames the network sees (1 for a 3D sequence).
        frame_axis: ``"time"`` (DCE) or ``"bvalue"`` (DWI) for 4D sequences, ``None`` for 3D.
        frame_values: the nominal frame values (seconds or s/mm^2), ``len == frames`` for 4D.
        aliases: other names of the sequence in file names (case and punctuation are ignored).
        derived_from: name of the sequence this one is computed from (wash-in from DCE), if any.
        intensity_window: ``(low, high)`` mapped to [0, 1] instead of the per-volume percentiles, for maps whose
            values are physical quantities (wash-in/out are ratios: 1.0 is a 100% enhancement in any scan).
            Percentiles of such a map are set by its noise and would clip what it measures.
    """

    name: str
    frames: int = 1
    frame_axis: str | None = None
    frame_values: tuple[float, ...] = ()
    aliases: tuple[str, ...] = ()
    derived_from: str | None = None
    intensity_window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a sequence needs a non-empty name.")
        if self.frames < 1:
            raise ValueError(f"sequence {self.name!r}: frames must be >= 1, got {self.frames}.")
        if self.frames > 1 and self.frame_axis not in FrameAxis.ALL:
            raise ValueError(f"4D sequence {self.name!r} needs frame_axis in {FrameAxis.ALL}, got {self.frame_axis!r}.")
        if self.frame_values and len(self.frame_values) != self.frames:
            raise ValueError(f"sequence {self.name!r}: {len(self.frame_values)} frame values for {self.frames} frames.")
        if len(set(self.frame_values)) != len(self.frame_values):
            raise ValueError(f"sequence {self.name!r}: duplicate frame values {self.frame_values}.")
        object.__setattr__(self, "frame_values", tuple(float(v) for v in self.frame_values))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if self.intensity_window is not None:
            window = tuple(float(v) for v in self.intensity_window)
            if len(window) != 2 or not window[0] < window[1]:
                raise ValueError(
                    f"sequence {self.name!r}: intensity_window must be (low, high) with low < high, "
                    f"got {self.intensity_window}."
                )
            object.__setattr__(self, "intensity_window", window)

    @property
    def is_4d(self) -> bool:
        return self.frames > 1 or self.frame_axis is not None

    def matches(self, token: str) -> bool:
        """Whether ``token`` names this sequence (canonical name or alias, case and punctuation ignored)."""
        key = _normalise_token(token)
        return key == _normalise_token(self.name) or key in {_normalise_token(a) for a in self.aliases}


@dataclass(frozen=True)
class Protocol:
    """An ordered set of sequences; the order defines each sequence's code index.

    Args:
        name: protocol name, e.g. ``"brain"``.
        sequences: the sequences, in code order.
        code_dim: length of the one-hot sequence code (paper: 64); must be >= the number of sequences.
        description: free text.
    """

    name: str
    sequences: tuple[SequenceSpec, ...]
    code_dim: int = 64
    description: str = ""
    _lookup: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequences", tuple(self.sequences))
        if not self.sequences:
            raise ValueError(f"protocol {self.name!r} has no sequences.")
        if self.code_dim < len(self.sequences):
            raise ValueError(f"protocol {self.name!r}: code_dim {self.code_dim} < {len(self.sequences)} sequences.")
        lookup: dict[str, int] = {}
        for idx, spec in enumerate(self.sequences):
            for key in (spec.name, *spec.aliases):
                norm = _normalise_token(key)
                if norm in lookup and lookup[norm] != idx:
                    raise ValueError(
                        f"protocol {self.name!r}: name/alias {key!r} is used by both "
                        f"{self.sequences[lookup[norm]].name!r} and {spec.name!r}."
                    )
                lookup[norm] = idx
        names = [s.name for s in self.sequences]
        for spec in self.sequences:
            if spec.derived_from is not None and spec.derived_from not in names:
                raise ValueError(f"{spec.name!r} is derived from unknown sequence {spec.derived_from!r}.")
        self._lookup.update(lookup)

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self):
        return iter(self.sequences)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sequences]

    @property
    def frames(self) -> list[int]:
        """Frames per sequence, in code order (the network's ``target_frames``)."""
        return [s.frames for s in self.sequences]

    def with_derived(self, names: Iterable[str]) -> list[str]:
        """``names`` and every sequence computed from them (transitively), in protocol order.

        A subject without DCE has no wash-in/wash-out either: dropping DCE to simulate its absence must drop the
        maps computed from it, or they would tell the network what DCE was (``["DCE"]`` -> ``["DCE", "WashIn",
        "WashOut"]`` for the breast protocol). Names outside the protocol are kept, after the protocol's.
        """
        wanted = {self.canonical(n) if n in self else n for n in names}
        grew = True
        while grew:
            extra = {s.name for s in self.sequences if s.derived_from in wanted and s.name not in wanted}
            wanted |= extra
            grew = bool(extra)
        return [n for n in self.names if n in wanted] + sorted(n for n in wanted if n not in self.names)

    def intensity_windows(self) -> dict[str, list[float]]:
        """``{name: [low, high]}`` of the sequences normalised by a fixed window (see :class:`SequenceSpec`)."""
        return {s.name: list(s.intensity_window) for s in self.sequences if s.intensity_window is not None}

    def index(self, name: str | int) -> int:
        """Code index of a sequence given by canonical name, alias or index.

        Raises:
            ValueError: the name is not a sequence of this protocol.
        """
        if isinstance(name, int):
            if not 0 <= name < len(self.sequences):
                raise ValueError(f"protocol {self.name!r} has no sequence index {name} (0..{len(self) - 1}).")
            return name
        idx = self._lookup.get(_normalise_token(str(name)))
        if idx is None:
            raise ValueError(f"unknown sequence {name!r} for protocol {self.name!r}; known: {self.names}.")
        return idx

    def __getitem__(self, name: str | int) -> SequenceSpec:
        return self.sequences[self.index(name)]

    def canonical(self, name: str | int) -> str:
        """Canonical name of a sequence given by name, alias or index."""
        return self[name].name

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalise_token(name) in self._lookup

    def match_filename(self, filename: str | Path) -> str | None:
        """Sequence named by a file name, or ``None``.

        The stem (without ``.nii.gz``, ``.nii``, ``.json``, ...) is split at ``_``; the last token is the
        BraTS/BIDS suffix (``t1ce``, ``T1w``, ``flair``); BraTS 2023 names end in ``-t2f`` etc. A BIDS
        ``ce-<agent>`` entity turns a ``T1w``
        suffix into the contrast-enhanced sequence when the protocol has an alias ``ce-T1w``.
        """
        stem = Path(str(filename)).name
        stem = re.sub(r"(\.nii\.gz|\.nii|\.json|\.bval|\.bvec|\.mha|\.nrrd|\.dcm)$", "", stem, flags=re.I)
        tokens = stem.split("_")
        if not tokens:
            return None
        suffix = tokens[-1]
        has_ce = any(t.lower().startswith("ce-") for t in tokens[:-1])
        if has_ce and f"ce-{suffix}" in self:
            return self.canonical(f"ce-{suffix}")
        if suffix in self:
            return self.canonical(suffix)
        last_dash = suffix.rsplit("-", 1)[-1]  # BraTS 2023: BraTS-GLI-00000-000-t2f
        if "-" in suffix and last_dash in self:
            return self.canonical(last_dash)
        return None

    def code(self, name: str | int | Sequence[str | int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One-hot code(s): shape ``(code_dim,)`` for one sequence, ``(N, code_dim)`` for a list."""
        if isinstance(name, (str, int)):
            out = torch.zeros(self.code_dim, dtype=dtype)
            out[self.index(name)] = 1
            return out
        idx = torch.as_tensor([self.index(n) for n in name], dtype=torch.long)
        return torch.nn.functional.one_hot(idx, self.code_dim).to(dtype)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "code_dim": self.code_dim,
            "description": self.description,
            "sequences": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()} for s in self.sequences
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Build a protocol from a mapping like :meth:`to_dict`'s output.

        Raises:
            ValueError: a required field is missing or a sequence entry is malformed.
        """
        try:
            name = str(data["name"])
            seqs_raw = data["sequences"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"a protocol needs 'name' and 'sequences'; got keys {list(data)}.") from err
        seqs = []
        for entry in seqs_raw:
            if isinstance(entry, str):
                entry = {"name": entry}
            unknown = set(entry) - {
                "name",
                "frames",
                "frame_axis",
                "frame_values",
                "aliases",
                "derived_from",
                "intensity_window",
            }
            if unknown:
                raise ValueError(f"protocol {name!r}: unknown sequence field(s) {sorted(unknown)}.")
            seqs.append(
                SequenceSpec(
                    name=str(entry["name"]),
                    frames=int(entry.get("frames", 1)),
                    frame_axis=entry.get("frame_axis"),
                    frame_values=tuple(entry.get("frame_values", ())),
                    aliases=tuple(entry.get("aliases", ())),
                    derived_from=entry.get("derived_from"),
                    intensity_window=entry.get("intensity_window"),
                )
            )
        return cls(
            name=name,
            sequences=tuple(seqs),
            code_dim=int(data.get("code_dim", 64)),
            description=str(data.get("description", "")),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Protocol:
        """Read a protocol from a JSON or YAML file."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"protocol file {str(path)!r} does not exist.")
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"protocol file {str(path)!r} must hold a mapping at the top level.")
        return cls.from_dict(data)


BRAIN = Protocol(
    name="brain",
    description="BraTS 2021 brain protocol: T1, T1Gd, T2, FLAIR (3D).",
    sequences=(
        SequenceSpec("T1", aliases=("t1", "T1w", "t1n")),
        SequenceSpec("T1Gd", aliases=("t1ce", "t1gd", "t1c", "T1CE", "ce-T1w", "T1post")),
        SequenceSpec("T2", aliases=("t2", "T2w", "t2w")),
        SequenceSpec("FLAIR", aliases=("flair", "t2f", "T2FLAIR")),
    ),
)

BREAST = Protocol(
    name="breast",
    description="Breast protocol of the paper: 8 sequences, DCE/FatSatDCE (6 timepoints) and DWI (4 b-values) 4D.",
    sequences=(
        SequenceSpec("T1", aliases=("t1", "T1w")),
        SequenceSpec("FatSatT1", aliases=("fst1", "t1fs", "t1fatsat", "fatsat_t1")),
        SequenceSpec("T2", aliases=("t2", "T2w")),
        SequenceSpec("DCE", frames=6, frame_axis=FrameAxis.TIME, frame_values=DCE_TIMES_S, aliases=("dce",)),
        SequenceSpec(
            "FatSatDCE",
            frames=6,
            frame_axis=FrameAxis.TIME,
            frame_values=DCE_TIMES_S,
            aliases=("fsdce", "dcefs", "dcefatsat"),
        ),
        # fixed windows: 0..200% enhancement at the first post-contrast frame; -50..+100% change from it to the
        # last frame (phantom lesions: washout curves about -20%, persistent ones up to about +70%)
        SequenceSpec(
            "WashIn", aliases=("wash-in", "washin", "wash_in"), derived_from="DCE", intensity_window=(0.0, 2.0)
        ),
        SequenceSpec(
            "WashOut", aliases=("wash-out", "washout", "wash_out"), derived_from="DCE", intensity_window=(-0.5, 1.0)
        ),
        SequenceSpec("DWI", frames=4, frame_axis=FrameAxis.BVALUE, frame_values=DWI_BVALUES, aliases=("dwi",)),
    ),
)

_REGISTRY: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol, overwrite: bool = False) -> Protocol:
    """Add a protocol to the registry under its (lower-case) name."""
    key = protocol.name.lower()
    if key in _REGISTRY and not overwrite and _REGISTRY[key] != protocol:
        raise ValueError(f"a different protocol named {protocol.name!r} is already registered.")
    _REGISTRY[key] = protocol
    return protocol


def get_protocol(protocol: str | Path | Protocol | Mapping[str, Any]) -> Protocol:
    """A protocol by registered name, by JSON/YAML file path, from a mapping, or passed through."""
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, Mapping):
        return Protocol.from_dict(protocol)
    key = str(protocol)
    if key.lower() in _REGISTRY:
        return _REGISTRY[key.lower()]
    if Path(key).suffix.lower() in (".json", ".yaml", ".yml"):
        return Protocol.from_file(key)
    raise ValueError(f"unknown protocol {key!r}; registered: {list_protocols()} (or give a .json/.yaml file).")


def list_protocols() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtin(protocols: Iterable[Protocol]) -> None:
    for p in protocols:
        register_protocol(p)


_register_builtin((BRAIN, BREAST))
