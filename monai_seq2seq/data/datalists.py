"""Datalists: scan a cohort folder into a MONAI decathlon-style JSON, recording each subject's sequences.

Layouts (docs/CONTRACTS.md):

- **Brain (BraTS 2021)**: ``<root>/BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``. The
  suffixes map to the ``BRAIN`` protocol through its aliases (BraTS 2023-2025
  ``BraTS-XXX-NNNNN-NNN/BraTS-XXX-NNNNN-NNN-{t1n,t1c,t2w,t2f,seg}.nii.gz`` work too); ``seg`` is the label.

Other layouts (BraSyn, BIDS, MAMA-MIA, DICOM studies), detected automatically, and the list of image files that
are not used: :func:`monai_seq2seq.data.build_datalist` (:mod:`.layouts`).
- **Breast**: ``<root>/<sid>/<sid>_<Sequence>.nii.gz`` with canonical names (``T1``, ``FatSatT1``, ``T2``,
  ``DCE``, ``FatSatDCE``, ``WashIn``, ``WashOut``, ``DWI``), optional ``<sid>_seg.nii.gz``; 4D images are
  ``(x, y, z, t)`` with sidecars ``<sid>_DCE.json`` (``VolumeTiming``) / ``<sid>_DWI.bval``, which the reader
  (:class:`monai_seq2seq.io.Seq2SeqNiftiReader`) finds next to the image. Optional DICOM series
  ``<root>/<sid>/dicom/<Sequence>/*.dcm`` are used for sequences without NIfTI when ``use_dicom=True``
  (read them with :class:`monai_seq2seq.io.DicomSeriesReader`).
- Phantoms (both layouts): ``<sid>_unique-<Sequence>.nii.gz`` ground-truth masks become entry keys
  ``"unique-<Sequence>"``.

Datalist JSON::

    {"name": ..., "protocol": "brain", "training": [...], "validation": [...], "testing": [...]}

with entries ``{"subject": sid, "<Sequence>": path, ..., "label": path (optional), "available": [names]}``;
``available`` lists the sequences present, in protocol order. Paths are relative to the JSON's folder when
the datalist is written with ``relative=True`` (the decathlon convention), otherwise absolute.

Load with :func:`load_datalist` (a thin wrapper of ``monai.data.load_decathlon_datalist`` that keeps
``subject`` and ``available`` exactly as written; MONAI's function alone turns any string that names an
existing path relative to the JSON's folder into a path, which hits ``subject`` when the JSON lies in
the cohort root next to the subject folders).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_seq2seq.core.files import atomic_write_text
from monai_seq2seq.core.protocols import BRAIN, BREAST, Protocol, get_protocol

__all__ = [
    "DatalistError",
    "SPLIT_KEYS",
    "scan_subject",
    "build_brats_datalist",
    "build_breast_datalist",
    "split_subjects",
    "write_datalist",
    "load_datalist",
]

SPLIT_KEYS = ("training", "validation", "testing")
_NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)
_LABEL_SUFFIXES = {"seg", "label", "labels", "mask"}


class DatalistError(ValueError):
    """A cohort folder does not fit its layout: no subjects, a subject without sequences, clashing files."""


def _entry_key(path: Path, sid: str, proto: Protocol) -> str | None:
    """The entry key of a file of subject ``sid``: ``"label"``, ``"unique-<Sequence>"``, a sequence name, or
    ``None`` when it is not a NIfTI file of the subject or names nothing of the protocol."""
    m = _NIFTI.match(path.name)
    if not path.is_file() or m is None:
        return None
    stem = m.group("stem")
    if not stem.startswith((f"{sid}_", f"{sid}-")):  # BraTS 2023-2025: <case>-t1n
        return None
    suffix = stem[len(sid) + 1 :]
    if suffix.lower() in _LABEL_SUFFIXES:
        return "label"
    if suffix.lower().startswith("unique-") and suffix[7:] in proto:
        return f"unique-{proto.canonical(suffix[7:])}"
    return proto.match_filename(path.name)


def _dicom_folders(subject_dir: Path, proto: Protocol, found: dict[str, Path]) -> dict[str, Path]:
    """Non-empty ``<sid>/dicom/<Sequence>/`` folders of sequences not in ``found``."""
    folders: dict[str, Path] = {}
    if not (subject_dir / "dicom").is_dir():
        return folders
    for seq_dir in sorted((subject_dir / "dicom").iterdir()):
        if seq_dir.is_dir() and seq_dir.name in proto:
            name = proto.canonical(seq_dir.name)
            if name not in found and name not in folders and any(seq_dir.iterdir()):
                folders[name] = seq_dir.resolve()
    return folders


def scan_subject(subject_dir: str | os.PathLike, protocol: str | Protocol, use_dicom: bool = False) -> dict[str, Any]:
    """One datalist entry from a subject folder ``<root>/<sid>`` (absolute paths).

    Args:
        subject_dir: the subject folder; its name is the subject id.
        protocol: names the sequences (canonical names and aliases, see ``Protocol.match_filename``).
        use_dicom: add ``<sid>/dicom/<Sequence>/`` folders for sequences without NIfTI.

    Returns:
        ``{"subject", <Sequence>: path..., "label"?, "unique-<Sequence>"?..., "available": [...]}``.

    Raises:
        DatalistError: no recognised sequence, or two files for one sequence (both named).
    """
    proto = get_protocol(protocol)
    subject_dir = Path(subject_dir)
    sid = subject_dir.name
    found: dict[str, Path] = {}
    extra: dict[str, Path] = {}
    for path in sorted(subject_dir.iterdir()):
        key = _entry_key(path, sid, proto)
        if key is None:
            continue
        target = found if key in proto.names else extra
        if key in target:
            raise DatalistError(f"subject {sid!r}: two files for {key!r}: {str(target[key])!r} and {str(path)!r}.")
        target[key] = path.resolve()
    if use_dicom:
        found.update(_dicom_folders(subject_dir, proto, found))
    if not found:
        raise DatalistError(
            f"subject folder {str(subject_dir)!r} has no recognised {proto.name} sequence "
            f"(expected files like {sid}_<name>.nii.gz with <name> one of {proto.names} or their aliases)."
        )
    entry: dict[str, Any] = {"subject": sid}
    available = [n for n in proto.names if n in found]
    for name in available:
        entry[name] = str(found[name])
    for key in sorted(extra):
        entry[key] = str(extra[key])
    entry["available"] = available
    return entry


def split_subjects(
    entries: Sequence[dict], fractions: Sequence[float] | None = None, seed: int = 0
) -> dict[str, list[dict]]:
    """Split entries into training/validation/testing by fractions, reproducibly.

    Subjects are sorted by id, then shuffled and cut by ``monai.data.partition_dataset`` (numpy
    ``RandomState(seed)``): ``round(f_val * n)`` to validation, ``round(f_test * n)`` to testing, the rest to
    training (each list sorted by subject id). The counts are computed here and given to MONAI as the ratios:
    MONAI rounds each fraction on its own, which can leave a subject out (0.33/0.33/0.34 of 10 gives 3/3/3).

    Args:
        entries: datalist entries with ``"subject"``.
        fractions: ``(train, val, test)`` or ``(train, val)``; ``None`` puts everyone in training.
        seed: shuffle seed, ``0 <= seed < 2**32``.

    Raises:
        DatalistError: negative fractions or fractions that do not sum to 1.
    """
    from monai.data import partition_dataset

    entries = sorted(entries, key=lambda e: e["subject"])
    if fractions is None:
        return {"training": list(entries), "validation": [], "testing": []}
    fr = [float(f) for f in fractions] + [0.0] * (3 - len(fractions))
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise DatalistError(f"split fractions must be 2 or 3 non-negative numbers summing to 1, got {list(fractions)}.")
    n = len(entries)
    n_val, n_test = round(fr[1] * n), round(fr[2] * n)
    if n_val + n_test > n:
        n_test = n - n_val
    if n == 0:
        return {"training": [], "validation": [], "testing": []}
    val, test, train = partition_dataset(entries, ratios=[n_val, n_test, n - n_val - n_test], shuffle=True, seed=seed)
    key = lambda e: e["subject"]  # noqa: E731
    return {"training": sorted(train, key=key), "validation": sorted(val, key=key), "testing": sorted(test, key=key)}


def _relativise(entry: dict, base: Path) -> dict:
    """Paths of an entry relative to ``base`` (a list of files, e.g. DCE phases, path by path)."""
    out = {}
    for k, v in entry.items():
        if k not in ("subject", "available") and isinstance(v, str):
            v = os.path.relpath(v, base)
        elif k not in ("subject", "available") and isinstance(v, list):
            v = [os.path.relpath(p, base) if isinstance(p, str) else p for p in v]
        out[k] = v
    return out


def write_datalist(datalist: dict, path: str | os.PathLike) -> Path:
    """Write a datalist JSON atomically (temporary file in the same folder, then ``os.replace``)."""
    return atomic_write_text(path, json.dumps(datalist, indent=2) + "\n")


def load_datalist(
    path: str | os.PathLike,
    key: str = "training",
    base_dir: str | os.PathLike | None = None,
    check_files: bool = True,
) -> list[dict]:
    """Entries of one split with absolute paths, via ``monai.data.load_decathlon_datalist``.

    ``subject`` and ``available`` are kept as written (see the module docstring).

    Args:
        path: the datalist JSON.
        key: the split to read.
        base_dir: folder relative paths refer to (default: the JSON's folder).
        check_files: raise :class:`DatalistError` naming every listed file that does not exist, before any
            work starts.
    """
    from monai.data import load_decathlon_datalist

    if not Path(path).is_file():
        raise DatalistError(f"datalist {str(path)!r} does not exist.")
    raw = json.loads(Path(path).read_text())
    if key not in raw:
        raise DatalistError(f"datalist {str(path)!r} has no {key!r} list; keys: {sorted(raw)}.")
    # issue 19 (helper C): an absolute base, or MONAI joins a relative JSON's folder into each path ("d/x.nii.gz")
    # and the check below joins it once more ("d/d/x.nii.gz"): `--datalist d/datalist.json` failed
    base_dir = Path(base_dir if base_dir is not None else Path(path).parent).resolve()
    items = load_decathlon_datalist(path, is_segmentation=True, data_list_key=key, base_dir=base_dir)
    for item, orig in zip(items, raw[key], strict=True):
        for k in ("subject", "available"):
            if k in orig:
                item[k] = orig[k]
    if check_files:
        base = Path(base_dir) if base_dir is not None else Path(path).resolve().parent
        # MONAI leaves a relative path as it is when the joined file does not exist
        missing = [
            f"{item.get('subject', '?')}: {base / value}"
            for item in items
            for name, values in item.items()
            if name not in ("subject", "available")
            for value in (values if isinstance(values, list) else [values])
            if isinstance(value, str) and not (base / value).exists()
        ]
        if missing:
            shown = "; ".join(missing[:10]) + (f"; ... ({len(missing)} in all)" if len(missing) > 10 else "")
            raise DatalistError(f"datalist {str(path)!r} ({key}) lists files that do not exist: {shown}.")
    return items


def _build(
    root: str | os.PathLike,
    protocol: Protocol,
    name: str,
    output: str | os.PathLike | None,
    fractions: Sequence[float] | None,
    seed: int,
    relative: bool,
    skip_empty: bool,
    use_dicom: bool,
    subject_pattern: str | None,
) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise DatalistError(f"datalist root {str(root)!r} does not exist or is not a folder.")
    pattern = re.compile(subject_pattern) if subject_pattern else None
    dirs = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (pattern is None or pattern.fullmatch(p.name))
    )
    if not dirs:
        what = f" matching {subject_pattern!r}" if subject_pattern else ""
        raise DatalistError(f"datalist root {str(root)!r} has no subject folders{what}.")
    entries = []
    for d in dirs:
        try:
            entries.append(scan_subject(d, protocol, use_dicom=use_dicom))
        except DatalistError:
            if not skip_empty:
                raise
    if not entries:
        raise DatalistError(f"datalist root {str(root)!r}: no subject folder holds a recognised sequence.")
    splits = split_subjects(entries, fractions, seed)
    if output is not None and relative:
        base = Path(output).resolve().parent
        splits = {k: [_relativise(e, base) for e in v] for k, v in splits.items()}
    datalist = {
        "name": name,
        "protocol": protocol.name,
        "root": str(root.resolve()),
        "seed": seed,
        "fractions": list(fractions) if fractions is not None else None,
        **splits,
    }
    if output is not None:
        write_datalist(datalist, output)
    return datalist


def build_brats_datalist(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    relative: bool = True,
    skip_empty: bool = False,
    protocol: str | Protocol = BRAIN,
    subject_pattern: str | None = None,
    name: str = "BraTS2021",
) -> dict:
    """Datalist of a BraTS 2021 folder ``<root>/BraTS2021_XXXXX/BraTS2021_XXXXX_<suffix>.nii.gz``.

    Args:
        root: the cohort folder; each sub-folder is a subject.
        output: JSON path to write (atomically); ``None`` only returns the dict.
        fractions: ``(train, val, test)`` split fractions; ``None``: everyone in ``training``.
        seed: shuffle seed of the split.
        relative: write paths relative to the JSON's folder (else absolute). Ignored without ``output``.
        skip_empty: skip subject folders without recognised sequences instead of raising.
        protocol: the protocol (default ``BRAIN``).
        subject_pattern: regular expression the subject folder names must match fully (e.g. ``BraTS2021_\\d+``).
        name: the datalist's ``name``.

    Returns:
        The datalist dict (as written).

    Raises:
        DatalistError: missing root, no subject folders, a subject folder without sequences, clashing files.
    """
    return _build(
        root, get_protocol(protocol), name, output, fractions, seed, relative, skip_empty, False, subject_pattern
    )


def build_breast_datalist(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    relative: bool = True,
    skip_empty: bool = False,
    use_dicom: bool = False,
    protocol: str | Protocol = BREAST,
    subject_pattern: str | None = None,
    name: str = "breast",
) -> dict:
    """Datalist of a breast folder ``<root>/<sid>/<sid>_<Sequence>.nii.gz`` (see the module docstring).

    Args are as :func:`build_brats_datalist`, plus ``use_dicom``: use ``<sid>/dicom/<Sequence>/`` folders for
    sequences that have no NIfTI.
    """
    return _build(
        root, get_protocol(protocol), name, output, fractions, seed, relative, skip_empty, use_dicom, subject_pattern
    )
