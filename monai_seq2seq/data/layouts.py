"""Real folder layouts to datalists: one entry point that recognises the layout and says what it did not use.

:func:`build_datalist` (and ``seq2seq datalist ROOT``) recognises, from the folder alone:

- ``brats2021``: ``BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``;
- ``brats2023``: BraTS 2023-2025 (GLI, MEN, MET, PED, SSA, ...)
  ``BraTS-XXX-NNNNN-NNN/BraTS-XXX-NNNNN-NNN-{t1n,t1c,t2w,t2f,seg}.nii.gz``;
- ``brasyn``: the same names with one sequence missing in every case (the BraSyn validation and test sets; the
  synthesis writer's ``brasyn`` mode writes the missing sequence under the challenge's name,
  :func:`~monai_seq2seq.data.brasyn.brasyn_filename`);
- ``bids``: ``sub-*/[ses-*/]{anat,dwi}/`` with the suffixes ``T1w``, ``T2w``, ``FLAIR``, ``dwi`` (``.bval`` beside
  it) and the entities ``ce-<agent>`` (contrast-enhanced: ``T1Gd`` of the brain protocol), ``acq-``, ``run-``;
  each session is one entry, its subject id ``sub-01_ses-01``;
- ``mama-mia``: ``images/<case>/<case>_0000.nii.gz`` (pre-contrast), ``_0001``, ``_0002``... (post-contrast
  phases), ``segmentations/expert/<case>.nii.gz``: the phases, in order, become the protocol's DCE. The layout
  has no frame timing next to the images: without ``dce_times`` the entry lists the phase files (the NIfTI reader
  stacks them as frames, without frame times); with ``dce_times`` the phases are stacked into
  ``<derived_dir>/<case>/<case>_DCE.nii.gz`` with a BIDS sidecar (``VolumeTiming``) that the bundles read;
- ``subjects``: any other folder of subject folders ``<sid>/<sid>_<Sequence>.nii.gz`` (our phantom and breast
  layouts, docs/CONTRACTS.md), names matched through the protocol's aliases;
- ``dicom``: a folder with DICOM files and no NIfTI (a PACS export), read by
  :mod:`monai_seq2seq.data.dicom_study` when it is installed.

Every file that looks like an image (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ``.mhd``, ``.mgz``, ``.dcm``)
and is not used is listed with the reason (:attr:`LayoutScan.unused`, the ``unused`` list of the written JSON,
the table of ``seq2seq datalist``); nothing is dropped without a word.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_seq2seq.core.protocols import BRAIN, BREAST, FrameAxis, Protocol, get_protocol, list_protocols

from .brasyn import is_brats2023_case
from .datalists import DatalistError, _relativise, split_subjects, write_datalist

__all__ = [
    "LAYOUTS",
    "Unused",
    "SubjectScan",
    "LayoutScan",
    "classify_file",
    "detect_layout",
    "scan_layout",
    "build_datalist",
    "datalist_from_scan",
    "default_derived_dir",
]

LAYOUTS: dict[str, str] = {
    "brats2021": "BraTS 2021 (BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz)",
    "brats2023": "BraTS 2023-2025 (BraTS-XXX-NNNNN-NNN/BraTS-XXX-NNNNN-NNN-{t1n,t1c,t2w,t2f,seg}.nii.gz)",
    "brasyn": "BraSyn validation/test (BraTS 2023-2025 names, one sequence missing per case)",
    "bids": "BIDS (sub-*/[ses-*/]anat/ and dwi/)",
    "mama-mia": "MAMA-MIA DCE (images/<case>/<case>_0000.nii.gz pre-contrast, _0001... post-contrast)",
    "subjects": "subject folders (<sid>/<sid>_<Sequence>.nii.gz)",
    "dicom": "DICOM study folder",
}
"""The layouts :func:`detect_layout` recognises, with a one-line description."""

_IMAGE_EXTS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".dcm", ".ima")
_NIFTI_EXTS = (".nii.gz", ".nii")
_DICOM_EXTS = (".dcm", ".ima")
_LABEL_SUFFIXES = {"seg", "label", "labels"}
_BRATS2021 = re.compile(r"^BraTS2021_\d+$")
_BIDS_MODALITIES = ("anat", "dwi")
_GROUP_AT = 20  # more unused files than this in one folder: one row for the folder


def _image_ext(path: Path) -> str | None:
    name = path.name.lower()
    return next((ext for ext in _IMAGE_EXTS if name.endswith(ext)), None)


@dataclass
class Unused:
    """A file (or a folder of files) that looks like an image and is not in the datalist, and why."""

    path: str
    reason: str
    subject: str = "-"

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "path": self.path, "reason": self.reason}


@dataclass
class SubjectScan:
    """What was recognised in one subject (or session, or case) folder.

    ``sequences`` maps canonical names to a file (or, for MAMA-MIA phases, a list of files stacked as frames);
    ``extra`` holds ``label`` and ``unique-<Sequence>``; ``frame_times`` the DCE timing given for phase lists.
    """

    subject: str
    folder: Path
    sequences: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    frame_times: dict[str, list[float]] = field(default_factory=dict)

    def entry(self, protocol: Protocol) -> dict[str, Any]:
        """The datalist entry (CONTRACTS.md): ``subject``, one key per sequence, ``label``..., ``available``."""
        available = [n for n in protocol.names if n in self.sequences]
        entry: dict[str, Any] = {"subject": self.subject}
        entry.update({n: self.sequences[n] for n in available})
        entry.update({k: self.extra[k] for k in sorted(self.extra)})
        entry["available"] = available
        return entry


@dataclass
class LayoutScan:
    """The result of :func:`scan_layout`: the layout, the protocol, each subject and every unused image file."""

    root: Path
    layout: str
    protocol: Protocol
    subjects: list[SubjectScan]
    unused: list[Unused] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: str = ""

    def entries(self) -> list[dict[str, Any]]:
        """Datalist entries of the subjects with at least one recognised sequence."""
        return [s.entry(self.protocol) for s in self.subjects if s.sequences]

    def table(self) -> str:
        """A plain-text table: per subject what was recognised and what not; then the unused files and why."""
        lines = [f"layout: {self.layout}: {LAYOUTS.get(self.layout, '')}", f"protocol: {self.protocol.name}"]
        lines += [f"root: {self.root}"] + [f"note: {n}" for n in self.notes]
        rows = [("subject", "sequences", "missing", "label", "notes")]
        for s in self.subjects:
            found = [
                _describe(n, s.sequences[n], s.frame_times.get(n)) for n in self.protocol.names if n in s.sequences
            ]
            missing = [n for n in self.protocol.names if n not in s.sequences]
            notes = list(s.notes) + ([] if s.sequences else ["not in the datalist: no recognised sequence"])
            rows.append(
                (s.subject, " ".join(found) or "-", " ".join(missing) or "-", "yes" if "label" in s.extra else "no")
                + ("; ".join(notes) or "",)
            )
        lines += _format_rows(rows)
        n_used = sum(1 for s in self.subjects if s.sequences)
        lines.append(f"{n_used} of {len(self.subjects)} subject(s) in the datalist.")
        if self.details:
            lines += ["series:"] + ["  " + line for line in self.details.splitlines()]
        elif self.unused:
            lines.append(f"not used ({len(self.unused)}):")
            lines += [
                "  " + r
                for r in _format_rows(
                    [("subject", "file", "reason")] + [(u.subject, u.path, u.reason) for u in self.unused]
                )
            ]
        else:
            lines.append("every image file found is used.")
        return "\n".join(lines)


def _describe(name: str, value: Any, times: list[float] | None) -> str:
    if isinstance(value, list):
        timing = f", times {','.join(f'{t:g}' for t in times)} s" if times else ", no timing"
        return f"{name}({len(value)} phases{timing})"
    return name


def _format_rows(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]


# ---------------------------------------------------------------------------------------------------- one file


def _entities(stem: str) -> tuple[list[str], str]:
    tokens = stem.split("_")
    return tokens[:-1], tokens[-1]


def _other_protocols(filename: str, protocol: Protocol) -> list[str]:
    found = []
    for name in list_protocols():
        other = get_protocol(name)
        if other.name != protocol.name and _match(filename, other)[0] is not None:
            found.append(f"{_match(filename, other)[0]} of protocol {other.name!r}")
    return found


def _match(filename: str, protocol: Protocol) -> tuple[str | None, str | None]:
    """``(sequence, None)`` or ``(None, reason)``; a BIDS ``ce-`` entity on a suffix whose contrast-enhanced
    form the protocol lacks is refused (a contrast-enhanced T1w is not the breast protocol's plain T1)."""
    ext = _image_ext(Path(filename)) or ""
    stem = filename[: len(filename) - len(ext)] if ext else filename
    entities, suffix = _entities(stem)
    ce = next((e for e in entities if e.lower().startswith("ce-")), None)
    seq = protocol.match_filename(filename)
    if seq is not None and ce is not None and f"ce-{suffix}" not in protocol:
        return None, f"contrast-enhanced ({ce}) {suffix}: protocol {protocol.name!r} has no contrast-enhanced {suffix}"
    if seq is None:
        return None, f"{suffix!r} names no sequence of protocol {protocol.name!r} ({', '.join(protocol.names)})"
    return seq, None


def classify_file(path: str | os.PathLike, subject: str, protocol: str | Protocol) -> tuple[str | None, str | None]:
    """What a file of a subject folder is.

    Args:
        path: the file.
        subject: the subject id (a ``<subject>_`` or ``<subject>-`` prefix of the name is stripped).
        protocol: names the sequences.

    Returns:
        ``(key, None)`` for a file the datalist uses (a sequence name, ``"label"``, ``"unique-<Sequence>"``);
        ``(None, reason)`` for an image file it does not use; ``(None, None)`` for a file that is no image
        (sidecars, tables).
    """
    proto = get_protocol(protocol)
    path = Path(path)
    ext = _image_ext(path)
    if ext is None:
        return None, None
    stem = path.name[: -len(ext)]
    prefixed = len(stem) > len(subject) + 1 and stem.startswith(subject) and stem[len(subject)] in "_-"
    rest = stem[len(subject) + 1 :] if prefixed else stem
    if ext in _NIFTI_EXTS and rest.lower() in _LABEL_SUFFIXES:
        return "label", None
    if ext in _NIFTI_EXTS and rest.lower().startswith("unique-") and rest[7:] in proto:
        return f"unique-{proto.canonical(rest[7:])}", None
    seq, reason = _match(path.name, proto)
    if seq is None:
        others = _other_protocols(path.name, proto)
        return None, reason + (f"; it names {' / '.join(others)}: pass that protocol" if others else "")
    if ext not in _NIFTI_EXTS:
        return None, f"looks like {seq}, but {ext} files are not read by the bundles: convert it to .nii.gz"
    return seq, None


# ---------------------------------------------------------------------------------------------------- detection


def _mama_images(root: Path) -> Path | None:
    """The ``images`` folder of a MAMA-MIA layout under (or at) ``root``, or ``None``."""
    for images in (root / "images", root):
        if not images.is_dir():
            continue
        cases = sorted(d for d in images.iterdir() if d.is_dir())[:5]
        for case in cases:
            if any(_phase_index(f, case.name) is not None for f in case.iterdir()):
                return images
    return None


def _phase_index(path: Path, case: str) -> int | None:
    m = re.fullmatch(r"(?P<case>.+)_(?P<phase>\d{4})\.nii(\.gz)?", path.name, flags=re.IGNORECASE)
    if m is None or m.group("case").lower() != case.lower() or not path.is_file():
        return None
    return int(m.group("phase"))


def _walk_images(root: Path, limit: int | None = None):
    """Image-like files under ``root`` (hidden folders skipped), at most ``limit``."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if _image_ext(Path(name)) is not None:
                yield Path(folder) / name
                count += 1
                if limit is not None and count >= limit:
                    return


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of a folder (a key of :data:`LAYOUTS`; ``brats2023`` also stands for BraSyn until scanned).

    Raises:
        DatalistError: ``root`` is no folder, or holds neither NIfTI nor DICOM files.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatalistError(f"datalist root {str(root)!r} does not exist or is not a folder.")
    names = [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if _mama_images(root) is not None:
        return "mama-mia"
    if any(n.startswith("sub-") for n in names):
        return "bids"
    if any(_BRATS2021.match(n) for n in names) or _BRATS2021.match(root.name):
        return "brats2021"
    if any(is_brats2023_case(n) for n in names) or is_brats2023_case(root.name):
        return "brats2023"
    exts = {_image_ext(p) for p in _walk_images(root, limit=2000)}
    if exts & set(_NIFTI_EXTS):
        return "subjects"
    if exts & set(_DICOM_EXTS) or _has_extensionless_dicom(root):
        return "dicom"
    raise DatalistError(
        f"datalist root {str(root)!r} holds no NIfTI (.nii/.nii.gz) and no DICOM files; layouts recognised: "
        f"{', '.join(LAYOUTS)}."
    )


def _has_extensionless_dicom(root: Path, limit: int = 200) -> bool:
    """Whether a file without extension under ``root`` starts like DICOM (``DICM`` at byte 128), as PACS exports."""
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if "." in name:
                continue
            seen += 1
            try:
                with open(Path(folder) / name, "rb") as fh:
                    if fh.read(132)[128:132] == b"DICM":
                        return True
            except OSError:
                pass
            if seen >= limit:
                return False
    return False


def _guess_protocol(root: Path) -> Protocol:
    """The registered protocol naming the most distinct sequences among the NIfTI names (ties: brain)."""
    best, best_count = BRAIN, -1
    names = [p.name for p in _walk_images(root, limit=2000) if _image_ext(p) in _NIFTI_EXTS]
    for key in [BRAIN.name] + [k for k in list_protocols() if k != BRAIN.name]:
        proto = get_protocol(key)
        count = len({seq for seq in (_match(n, proto)[0] for n in names) if seq is not None})
        if count > best_count:
            best, best_count = proto, count
    return best


# ---------------------------------------------------------------------------------------------------- scanning


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _add_files(scan: SubjectScan, files, proto: Protocol, root: Path, unused: list[Unused], seen: set[Path]) -> None:
    """Classify the files of one subject into ``scan``; unused images go to ``unused`` with the reason."""
    for path in sorted(files):
        if not path.is_file():
            continue
        seen.add(path)
        key, reason = classify_file(path, scan.subject, proto)
        if key is None:
            if reason:
                unused.append(Unused(_rel(path, root), reason, scan.subject))
            continue
        target = scan.sequences if key in proto.names else scan.extra
        if key in target:
            unused.append(
                Unused(_rel(path, root), f"a second file for {key} (kept {Path(target[key]).name})", scan.subject)
            )
            continue
        target[key] = str(path.resolve())


def _dicom_series_folders(scan: SubjectScan, proto: Protocol, seen: set[Path]) -> None:
    """``<sid>/dicom/<Sequence>/`` series for sequences without NIfTI (the breast layout's ``use_dicom``)."""
    dicom = scan.folder / "dicom"
    if not dicom.is_dir():
        return
    for folder in sorted(d for d in dicom.iterdir() if d.is_dir() and d.name in proto):
        name = proto.canonical(folder.name)
        files = [f for f in folder.iterdir() if f.is_file()]
        if name not in scan.sequences and files:
            scan.sequences[name] = str(folder.resolve())
            scan.notes.append(f"{name} from DICOM series {folder.name}/")
            seen.update(files)


def _scan_subject_dirs(root: Path, proto: Protocol, unused: list[Unused], seen: set[Path], use_dicom: bool):
    """Subject folders ``<root>/<sid>/`` (or ``root`` itself when it holds the images)."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if any(_image_ext(f) for f in root.iterdir() if f.is_file()) and not any(
        _image_ext(f) for d in dirs for f in d.iterdir() if f.is_file()
    ):
        dirs = [root]
    scans = []
    for d in dirs:
        files = [f for f in d.iterdir() if f.is_file()]
        if not any(_image_ext(f) for f in files) and not (d / "dicom").is_dir():
            continue
        scan = SubjectScan(d.name, d)
        _add_files(scan, files, proto, root, unused, seen)
        if use_dicom:
            _dicom_series_folders(scan, proto, seen)
        scans.append(scan)
    return scans


def _scan_bids(root: Path, proto: Protocol, unused: list[Unused], seen: set[Path]) -> list[SubjectScan]:
    """``sub-*/[ses-*/]{anat,dwi}/``: one scan per session (``sub-01_ses-01``) or per subject."""
    scans = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("sub-")):
        sessions = sorted(d for d in sub.iterdir() if d.is_dir() and d.name.startswith("ses-"))
        for sid, folder in [(f"{sub.name}_{s.name}", s) for s in sessions] or [(sub.name, sub)]:
            scan = SubjectScan(sid, folder)
            files = [f for mod in _BIDS_MODALITIES if (folder / mod).is_dir() for f in (folder / mod).iterdir()]
            _add_files(scan, files, proto, root, unused, seen)
            scans.append(scan)
    return scans


def _times_for(dce_times, case: str) -> list[float] | None:
    if dce_times is None:
        return None
    if isinstance(dce_times, Mapping):
        lookup = {str(k).lower(): v for k, v in dce_times.items()}
        value = lookup.get(case.lower())
        return None if value is None else [float(t) for t in value]
    return [float(t) for t in dce_times]


def _scan_mama(images: Path, root: Path, proto: Protocol, unused: list[Unused], seen: set[Path], dce_times):
    """``images/<case>/<case>_NNNN.nii.gz`` phases (in order) as the protocol's DCE; expert segmentations."""
    dce = next((s.name for s in proto if s.frame_axis == FrameAxis.TIME), None)
    if dce is None:
        raise DatalistError(f"MAMA-MIA layout at {str(root)!r}: protocol {proto.name!r} has no DCE (time) sequence.")
    seg_dir = images.parent / "segmentations" / "expert"
    segs = {}
    if seg_dir.is_dir():
        segs = {f.name.lower().split(".nii")[0]: f for f in seg_dir.iterdir() if _image_ext(f) in _NIFTI_EXTS}
    scans = []
    for case in sorted(d for d in images.iterdir() if d.is_dir()):
        scan = SubjectScan(case.name, case)
        phases = {i: f for f in case.iterdir() if (i := _phase_index(f, case.name)) is not None}
        seen.update(phases.values())
        _mama_dce(
            scan,
            dce,
            [phases[i] for i in sorted(phases)],
            sorted(phases),
            _times_for(dce_times, case.name),
            root,
            unused,
        )
        seg = segs.get(case.name.lower())
        if seg is not None:
            scan.extra["label"] = str(seg.resolve())
            seen.add(seg)
        else:
            scan.notes.append(f"no expert segmentation {_rel(seg_dir, root)}/{case.name.lower()}.nii.gz")
        scans.append(scan)
    return scans


def _mama_dce(scan: SubjectScan, dce: str, files: list[Path], index: list[int], times, root: Path, unused) -> None:
    """Put the phase files of one case as ``dce`` into ``scan``, or list them as unused with the reason."""
    reason = None
    if len(files) < 2:
        reason = f"{len(files)} phase file(s): a DCE needs the pre-contrast and at least one post-contrast phase"
    elif index != list(range(len(files))):
        reason = f"phases {[f'{i:04d}' for i in index]} are not numbered 0000, 0001, ... without gaps"
    elif times is not None and len(times) != len(files):
        reason = f"{len(files)} phases, but dce_times gives {len(times)} time(s) {times}"
    if reason is not None:
        unused += [Unused(_rel(f, root), f"{dce}: {reason}", scan.subject) for f in files]
        return
    scan.sequences[dce] = [str(f.resolve()) for f in files]
    if times is not None:
        scan.frame_times[dce] = times
    else:
        scan.notes.append(f"{dce}: no timing in this layout (pass dce_times, seconds per phase)")


def _scan_dicom(root: Path, protocol, bvalues: Sequence[float] | None) -> LayoutScan:
    """A DICOM study folder through :func:`monai_seq2seq.data.dicom_study.scan_dicom_study` (series identified
    from their tags; ``protocol`` ``None`` lets it choose the protocol that identifies more series)."""
    from .dicom_study import format_study_table, scan_dicom_study

    entries, rows = scan_dicom_study(root, protocol, bvalues=bvalues)
    if protocol is not None:
        proto = get_protocol(protocol)
    else:  # the scanner's choice, from the sequences it recognised
        found = {str(r.get("sequence")) for r in rows if r.get("sequence")}
        proto = BRAIN if found <= set(BRAIN.names) else BREAST
    subjects = []
    for entry in entries:
        scan = SubjectScan(str(entry["subject"]), root)
        for key, value in entry.items():
            if key in proto.names:
                scan.sequences[key] = value
            elif key not in ("subject", "available"):
                scan.extra[key] = value
        scan.notes += [
            f"{r['sequence']}: {r['reason']}"
            for r in rows
            if r["subject"] == scan.subject and str(r.get("status", "")).startswith("used (")
        ]
        subjects.append(scan)
    unused = [
        Unused(_rel(Path(str(r["path"])), root) if r.get("path") else "?", _series_reason(r), str(r["subject"]))
        for r in rows
        if r.get("status") == "not used"
    ]
    return LayoutScan(root.resolve(), "dicom", proto, subjects, unused, details=format_study_table(rows))


def _series_reason(row: Mapping[str, Any]) -> str:
    what = f"series {row.get('series')} {row.get('description')!r}".strip() if row.get("series") != "" else ""
    return f"{what}: {row.get('reason')}" if what else str(row.get("reason"))


def _leftover_reason(rel: Path, layout: str, n: int) -> str:
    parts = rel.parts
    dicom = f"DICOM series folder ({n} files)" if n > 1 else "DICOM file"
    if parts and parts[0] == "derivatives":
        return "BIDS derivatives are not scanned"
    if layout == "bids" and len(parts) > 1:
        mod = parts[-2]
        return f"BIDS {mod}/ is not used (only {', '.join(m + '/' for m in _BIDS_MODALITIES)})"
    if layout == "mama-mia":
        if "segmentations" in parts:
            return "not an expert segmentation (segmentations/expert/<case>.nii.gz is used)"
        return "not a phase <case>_NNNN.nii.gz of the MAMA-MIA layout"
    if "dicom" in parts:
        return f"{dicom}: pass use_dicom=True to use DICOM series of sequences without NIfTI"
    return f"outside the subject folders of the {layout} layout"


def _leftovers(root: Path, layout: str, seen: set[Path], skip: Path | None) -> list[Unused]:
    """Every image-like file under ``root`` that no subject scan looked at; folders of many files as one row."""
    by_folder: dict[Path, list[Path]] = {}
    for path in _walk_images(root):
        if path in seen or (skip is not None and skip in path.parents):
            continue
        by_folder.setdefault(path.parent, []).append(path)
    rows = []
    for folder, files in sorted(by_folder.items()):
        dicom = all(_image_ext(f) in _DICOM_EXTS for f in files)
        if dicom or len(files) > _GROUP_AT:
            rel = Path(_rel(folder, root))
            what = f"{rel}/ ({len(files)} files)"
            rows.append(
                Unused(what, _leftover_reason(rel / files[0].name, layout, len(files)), _subject_of(rel, layout))
            )
            continue
        for f in files:
            rel = Path(_rel(f, root))
            rows.append(Unused(str(rel), _leftover_reason(rel, layout, 1), _subject_of(rel.parent, layout)))
    return rows


def _subject_of(rel: Path, layout: str = "") -> str:
    """The subject folder a leftover (folder-relative path of a file's folder) lies in, or ``"-"``."""
    parts = [p for p in rel.parts if p != "."]
    if layout == "mama-mia":
        return parts[1] if len(parts) > 1 and parts[0] == "images" else "-"
    if layout == "bids":
        return parts[0] if parts and parts[0].startswith("sub-") else "-"
    return parts[0] if parts and parts[0] != "derivatives" else "-"


def scan_layout(
    root: str | os.PathLike,
    protocol: str | Protocol | None = None,
    *,
    layout: str = "auto",
    dce_times: Sequence[float] | Mapping[str, Sequence[float]] | str | os.PathLike | None = None,
    use_dicom: bool = False,
    skip: str | os.PathLike | None = None,
    bvalues: Sequence[float] | None = None,
) -> LayoutScan:
    """Recognise the layout of ``root`` and scan it: each subject's sequences and every unused image file.

    Nothing is written. See :func:`build_datalist` for the arguments.

    Raises:
        DatalistError: unknown layout, no image files, a DICOM folder without the DICOM study scanner.
    """
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in LAYOUTS:
        raise DatalistError(f"unknown layout {layout!r}; known: auto, {', '.join(LAYOUTS)}.")
    if layout == "dicom":
        return _scan_dicom(root, protocol, bvalues)
    proto = _layout_protocol(root, layout, protocol)
    unused: list[Unused] = []
    seen: set[Path] = set()
    if layout == "bids":
        subjects = _scan_bids(root, proto, unused, seen)
    elif layout == "mama-mia":
        images = _mama_images(root) or root
        subjects = _scan_mama(images, root, proto, unused, seen, _read_times(dce_times))
    else:
        subjects = _scan_subject_dirs(root, proto, unused, seen, use_dicom)
    if layout in ("brats2023", "brasyn"):
        layout = _brats2023_or_brasyn(subjects, proto)
    scan = LayoutScan(root.resolve(), layout, proto, subjects, unused)
    scan.unused += _leftovers(root, layout, seen, Path(skip) if skip is not None else None)
    if layout == "brasyn":
        scan.notes.append("one sequence missing per case: synthesise it with `--brasyn True` for the challenge's names")
    return scan


def _layout_protocol(root: Path, layout: str, protocol) -> Protocol:
    if protocol is not None:
        return get_protocol(protocol)
    if layout in ("brats2021", "brats2023", "brasyn"):
        return BRAIN
    if layout == "mama-mia":
        return BREAST
    return _guess_protocol(root)


def _brats2023_or_brasyn(subjects: list[SubjectScan], proto: Protocol) -> str:
    """``brasyn`` when every case lacks exactly one sequence, else ``brats2023``."""
    if subjects and all(len(s.sequences) == len(proto) - 1 for s in subjects):
        return "brasyn"
    return "brats2023"


def _read_times(dce_times) -> Sequence[float] | Mapping[str, Sequence[float]] | None:
    """``dce_times`` as given, or read from a JSON file (a list, or ``{case: [seconds...]}``)."""
    if dce_times is None or isinstance(dce_times, (Mapping, list, tuple)):
        return dce_times
    path = Path(dce_times)
    if not path.is_file():
        raise DatalistError(f"dce_times {str(dce_times)!r} is neither a list of seconds nor a JSON file.")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatalistError(f"cannot read dce_times from {str(path)!r}: {err}") from err


# ---------------------------------------------------------------------------------------------------- building


def _stack_phases(scan: SubjectScan, name: str, derived: Path) -> None:
    """Stack the phase files of ``scan.sequences[name]`` into ``<derived>/<sid>/<sid>_<name>.nii.gz`` with timing."""
    import nibabel as nib
    import numpy as np

    from monai_seq2seq.io.nifti_writer import save_nifti
    from monai_seq2seq.io.sidecar import write_frame_info

    files = scan.sequences[name]
    images = [nib.load(f) for f in files]
    first = images[0]
    for f, img in zip(files[1:], images[1:], strict=True):
        if img.shape != first.shape or not np.allclose(img.affine, first.affine, atol=1e-3):
            raise DatalistError(
                f"subject {scan.subject!r}: phase {Path(f).name} has shape {img.shape} and affine differing from "
                f"{Path(files[0]).name} ({first.shape}): the phases are not on one grid."
            )
    data = np.stack([np.asanyarray(img.dataobj) for img in images], axis=-1)
    out = derived / scan.subject / f"{scan.subject}_{name}.nii.gz"
    times = scan.frame_times[name]
    steps = np.diff(times)
    save_nifti(data, first.affine, out, overwrite=True, frame_step=float(steps[0]) if len(steps) else None)
    write_frame_info(out, FrameAxis.TIME, times)
    scan.sequences[name] = str(out.resolve())


def build_datalist(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    protocol: str | Protocol | None = None,
    *,
    layout: str = "auto",
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    relative: bool = True,
    dce_times: Sequence[float] | Mapping[str, Sequence[float]] | str | os.PathLike | None = None,
    derived_dir: str | os.PathLike | None = None,
    use_dicom: bool = False,
    bvalues: Sequence[float] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Datalist of a folder in any recognised layout (module docstring), detected from the folder.

    Args:
        root: the data set's folder.
        out: JSON path to write (atomically); ``None`` only returns the dict.
        protocol: the protocol (name, file or object); ``None``: brain for BraTS/BraSyn, breast for MAMA-MIA,
            else the registered protocol that names the most sequences found.
        layout: ``"auto"`` or a key of :data:`LAYOUTS`.
        fractions: ``(train, val, test)`` split fractions; ``None``: everyone in ``training``.
        seed: shuffle seed of the split.
        relative: write paths relative to the JSON's folder (else absolute). Ignored without ``out``.
        dce_times: MAMA-MIA DCE timing, seconds per phase (pre-contrast first): one list for every case, a
            mapping ``{case: [seconds...]}``, or a JSON file holding either. Cases with timing get a 4D NIfTI with
            a ``VolumeTiming`` sidecar in ``derived_dir``.
        derived_dir: folder for the stacked DCE files (default: ``derived`` beside ``out``).
        use_dicom: subject folders: use ``<sid>/dicom/<Sequence>/`` series for sequences without NIfTI.
        bvalues: DICOM studies: b-values of DWI series whose files carry none (one per frame).
        name: the datalist's ``name`` (default: the layout).

    Returns:
        The datalist: ``name``, ``protocol``, ``layout``, ``root``, ``seed``, ``fractions``, the three splits
        (entries as docs/CONTRACTS.md) and ``unused`` (``{"subject", "path", "reason"}`` of every unused image).

    Raises:
        DatalistError: no recognised subject (the message holds the table), unreadable timing, phases not on
            one grid, ``dce_times`` without ``out`` or ``derived_dir``.
    """
    derived = default_derived_dir(out, derived_dir)
    scan = scan_layout(
        root, protocol, layout=layout, dce_times=dce_times, use_dicom=use_dicom, skip=derived, bvalues=bvalues
    )
    return datalist_from_scan(
        scan, out, fractions=fractions, seed=seed, relative=relative, derived_dir=derived, name=name
    )


def default_derived_dir(out: str | os.PathLike | None, derived_dir: str | os.PathLike | None) -> Path | None:
    """Where stacked DCE files go: ``derived_dir``, else ``derived`` beside ``out``, else ``None``."""
    if derived_dir is not None:
        return Path(derived_dir)
    return Path(out).parent / "derived" if out is not None else None


def datalist_from_scan(
    scan: LayoutScan,
    out: str | os.PathLike | None = None,
    *,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    relative: bool = True,
    derived_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The datalist of a :class:`LayoutScan` (stacking timed DCE phases into ``derived_dir``), written to ``out``.

    Arguments and result as :func:`build_datalist`.
    """
    if not scan.entries():
        raise DatalistError(f"no subject of {str(scan.root)!r} has a recognised sequence:\n{scan.table()}")
    for subject in scan.subjects:
        for seq in list(subject.frame_times):
            if not isinstance(subject.sequences.get(seq), list):
                continue  # stacked already
            if derived_dir is None:
                raise DatalistError(
                    "dce_times given: the phases are stacked into a 4D NIfTI with its timing; pass out or derived_dir."
                )
            _stack_phases(subject, seq, Path(derived_dir))
    splits = split_subjects(scan.entries(), fractions, seed)
    if out is not None and relative:
        base = Path(out).resolve().parent
        splits = {k: [_relativise(e, base) for e in v] for k, v in splits.items()}
    datalist = {
        "name": name or scan.layout,
        "protocol": scan.protocol.name,
        "layout": scan.layout,
        "root": str(scan.root),
        "seed": seed,
        "fractions": list(fractions) if fractions is not None else None,
        **splits,
        "unused": [u.to_dict() for u in scan.unused],
    }
    if out is not None:
        write_datalist(datalist, out)
    return datalist
