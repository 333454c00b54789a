"""A DICOM study folder (a PACS export: any depth, many series, files with or without ``.dcm``) to datalist entries.

:func:`scan_dicom_study` reads every DICOM header under a folder, groups the files into series
(SeriesInstanceUID) and the series into subjects (StudyInstanceUID; the subject id is the PatientID), works out
each series' frames and geometry from the headers alone (:func:`monai_seq2seq.io.plan_dicom_series`: no pixel
data is read) and identifies it from its tags (:func:`monai_seq2seq.io.identify_sequence`). It returns the
datalist entries and one table row per series -- what was recognised, what was not, and why:

- synthetic (derived): a synthetic series, differentiation map or overlay this toolkit wrote into the study
  (``seq2seq synthesize --output_format dicom``), or another series that says it is synthetic;
- not MR (``Modality`` SR, PR, CT...), a localizer/scout, a derived map (ADC, FA, MIP, subtraction, MPR);
- headers that do not make one volume (mixed orientations, missing slices...): the reader's message;
- tags that name no sequence of the protocol (the series description and modality are in the row);
- a 4D sequence (DCE, DWI) with one frame;
- a second series of a sequence already taken (the one with more frames, then the later series, is kept);
- a DWI whose files carry no b-value: it is in the entry, and its row says to pass ``bvalues`` when reading.

A DCE acquired as one series per timepoint (single-frame series identified as the same time-axis sequence, on
one grid) is combined into one 4D entry. An entry names a series by its folder when the folder holds that series
alone, else by the list of its files; :class:`monai_seq2seq.io.Seq2SeqReader` (the bundles' reader) reads both.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from monai_seq2seq.core.errors import DicomTagError, FrameValuesError, SeriesConsistencyError, UnreadableFileError
from monai_seq2seq.core.protocols import BRAIN, BREAST, FrameAxis, Protocol, get_protocol
from monai_seq2seq.io import dicom_files, identify_sequence, plan_dicom_series, read_dicom_file
from monai_seq2seq.io.dicom_derived import derived_kind

from .datalists import DatalistError

__all__ = ["TABLE_COLUMNS", "SYNTHETIC_REASON", "scan_dicom_study", "format_study_table"]

TABLE_COLUMNS = (
    "subject",
    "series",
    "description",
    "modality",
    "files",
    "frames",
    "sequence",
    "status",
    "reason",
    "path",
)
"""The keys of each row :func:`scan_dicom_study` returns (``status``: ``"used"`` or ``"not used"``)."""

SYNTHETIC_REASON = "synthetic (derived)"
"""How a row's reason starts for a synthetic series or map (this toolkit's DICOM output, or another synthetic
series: :func:`monai_seq2seq.io.dicom_derived.derived_kind`): listed, never taken as an acquired input."""

_LOCALIZER = re.compile(r"\b(localizer|localiser|scout|survey|loc|3[\s_-]?plane|tri[\s_-]?pilot|aahscout\w*)\b")
_DERIVED_TYPES = {"ADC", "EADC", "FA", "MIP", "MNIP", "SUB", "SUBTRACTION", "MPR", "REFORMATTED", "PROJECTION IMAGE"}
_DERIVED_TEXT = re.compile(r"\b(adc|fa|eadc|exp|mip|sub|subtraction|mpr|colfa|tensor)\b")


@dataclass
class _Series:
    """One series of the study and what became of it."""

    uid: str
    headers: list[Dataset] = field(repr=False)
    files: list[Path] = field(repr=False)
    sequence: str | None = None
    n_frames: int = 0
    frame_axis: str | None = None
    frame_values: list[float] = field(default_factory=list)
    affine_key: tuple = ()
    reason: str = ""
    problem: str | None = None
    used: bool = False
    plan_axis: str | None = None

    def tag(self, key: str) -> str:
        return str(self.headers[0].get(key, "") or "").strip()

    @property
    def number(self) -> int:
        try:
            return int(self.tag("SeriesNumber"))
        except ValueError:
            return -1

    @property
    def name(self) -> str:
        return f"series {self.tag('SeriesNumber') or '?'} {self.tag('SeriesDescription')!r}"


def _read_headers(files: list[Path], rows: list[dict]) -> dict[str, _Series]:
    """Headers grouped by SeriesInstanceUID; unreadable files and files without a UID become rows."""
    series: dict[str, _Series] = {}
    for path in files:
        try:
            ds = read_dicom_file(path)
        except UnreadableFileError as err:
            rows.append(_row(None, "-", status="not used", reason=f"unreadable: {err}", path=str(path), files=1))
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            reason = "no SeriesInstanceUID (0020,000E): cannot be grouped into a series"
            rows.append(_row(None, "-", status="not used", reason=reason, path=str(path), files=1))
            continue
        s = series.setdefault(uid, _Series(uid, [], []))
        s.headers.append(ds)
        s.files.append(path)
    return series


def _skip_reason(s: _Series) -> str | None:
    """Why a series is no acquired MR sequence (synthetic, not MR, localizer, derived map), or ``None``."""
    synthetic = derived_kind(s.headers[0])
    if synthetic is not None:
        return f"{SYNTHETIC_REASON}: {synthetic}, not an acquired sequence"
    modality = s.tag("Modality").upper()
    if modality and modality != "MR":
        return f"modality {modality} is not MR"
    image_type = {str(t).upper() for t in (s.headers[0].get("ImageType", []) or [])}
    text = " ".join(s.tag(k) for k in ("SeriesDescription", "ProtocolName", "SequenceName")).lower()
    if "LOCALIZER" in image_type or _LOCALIZER.search(text.replace("_", " ")):
        return "localizer/scout (ImageType or description): no diagnostic sequence"
    derived = image_type & _DERIVED_TYPES
    if derived or ("DERIVED" in image_type and _DERIVED_TEXT.search(text.replace("_", " "))):
        what = ", ".join(sorted(derived)) or "a map"
        return f"derived image ({what}; ImageType {sorted(image_type)}): not an acquired sequence"
    return None


def _plan(s: _Series, bvalues: Sequence[float] | None) -> None:
    """Frames and geometry from the headers (``s.reason`` set when they make no volume)."""
    try:
        plan = plan_dicom_series(s.headers, BREAST, bvalues, label=f"{s.name}", lenient=True)
    except (DicomTagError, SeriesConsistencyError, FrameValuesError, ValueError) as err:
        s.reason = f"cannot be read as one volume: {err}"
        return
    s.n_frames, s.frame_axis, s.frame_values = len(plan.frames), plan.frame_axis, list(plan.frame_values)
    s.plan_axis = plan.frame_axis
    s.affine_key = (plan.shape[:3], tuple(round(float(v), 2) for v in plan.affine.reshape(-1)))
    s.problem = plan.problem


def _identify(series: list[_Series], proto: Protocol) -> int:
    """Identify every readable series with ``proto``; returns how many were identified."""
    count = 0
    for s in series:
        if s.n_frames:
            s.sequence = identify_sequence(s.headers, proto, frame_axis=s.plan_axis, n_frames=s.n_frames)
            count += s.sequence is not None
    return count


def _choose_protocol(series: list[_Series], protocol: str | Protocol | None) -> Protocol:
    """The given protocol, or (``None``) the one of BRAIN/BREAST whose names identify the most series."""
    if protocol is not None:
        return get_protocol(protocol)
    counts = [(_identify(series, p), -i, p) for i, p in enumerate((BRAIN, BREAST))]
    return max(counts, key=lambda c: c[:2])[2]


def _combine_timepoints(series: list[_Series], proto: Protocol, bvalues) -> list[_Series]:
    """Single-frame series of one time-axis sequence on one grid, read together as one 4D series (a DCE of one
    series per timepoint); returns the series list with each such group replaced by one combined series."""
    groups: dict[tuple, list[_Series]] = defaultdict(list)
    for s in series:
        if s.sequence and proto[s.sequence].frame_axis == FrameAxis.TIME and s.n_frames == 1 and not s.reason:
            groups[(s.sequence, s.affine_key)].append(s)
    out = list(series)
    for (name, _), members in groups.items():
        if len(members) < 2:
            continue
        combined = _Series(
            ",".join(m.uid for m in members),
            [h for m in members for h in m.headers],
            [f for m in members for f in m.files],
            sequence=name,
        )
        _plan(combined, bvalues)
        if combined.reason or combined.frame_axis != FrameAxis.TIME or combined.n_frames != len(members):
            continue
        for m in members:
            out.remove(m)
        out.append(combined)
    return out


def _check_frames(s: _Series, proto: Protocol) -> None:
    """A 4D protocol sequence read as one frame cannot be used."""
    spec = proto[s.sequence]
    if spec.is_4d and s.n_frames < 2 and not s.reason:
        s.reason = (
            f"identified as {s.sequence} but has 1 frame: the protocol's {s.sequence} has {spec.frames} "
            f"({spec.frame_axis}); no b-value or temporal tag splits this series"
        )


def _pick(candidates: list[_Series]) -> tuple[_Series, list[_Series]]:
    """The series kept for a sequence: most frames, then the later series (a repeat replaces a failed run)."""
    ordered = sorted(candidates, key=lambda s: (s.n_frames, s.number), reverse=True)
    return ordered[0], ordered[1:]


def _subject_ids(series: list[_Series]) -> dict[str, str]:
    """StudyInstanceUID -> subject id: the PatientID (file-name safe), with the StudyDate (or an index) when one
    patient has several studies."""
    studies: dict[str, _Series] = {}
    for s in series:
        studies.setdefault(s.tag("StudyInstanceUID") or "?", s)
    by_patient: dict[str, list[str]] = defaultdict(list)
    for study, s in studies.items():
        pid = re.sub(r"[^A-Za-z0-9._-]+", "_", s.tag("PatientID")).strip("_") or "subject"
        by_patient[pid].append(study)
    ids: dict[str, str] = {}
    for pid, study_uids in by_patient.items():
        for k, study in enumerate(sorted(study_uids, key=lambda u: (studies[u].tag("StudyDate"), u))):
            date = re.sub(r"[^0-9]", "", studies[study].tag("StudyDate"))
            ids[study] = pid if len(study_uids) == 1 else f"{pid}_{date or k}" if date else f"{pid}_{k}"
        if len({ids[u] for u in study_uids}) < len(study_uids):  # two studies on one date
            for k, study in enumerate(sorted(study_uids)):
                ids[study] = f"{pid}_{k}"
    return ids


def _location(s: _Series, all_files: list[str]) -> str | list[str]:
    """The series' own folder when it holds nothing else (DICOM), else the sorted list of its files (always for
    series read together, which a folder would give as several)."""
    files = sorted(str(f) for f in s.files)
    if len({h.get("SeriesInstanceUID") for h in s.headers}) > 1:
        return files
    folder = os.path.commonpath([os.path.dirname(f) for f in files])
    prefix = folder.rstrip(os.sep) + os.sep
    inside = sum(1 for f in all_files if f.startswith(prefix))
    return folder if inside == len(files) else files


def _row(s: _Series | None, subject: str, **kw: Any) -> dict[str, Any]:
    row = dict.fromkeys(TABLE_COLUMNS, "")
    row["subject"] = subject
    if s is not None:
        frames = "-"
        if s.n_frames:
            frames = str(s.n_frames)
            if s.frame_axis is not None:
                frames += f" {s.frame_axis} [" + ", ".join(f"{v:g}" for v in s.frame_values) + "]"
        row.update(
            series=s.tag("SeriesNumber"),
            description=s.tag("SeriesDescription") or s.tag("ProtocolName"),
            modality=s.tag("Modality") or "?",
            files=len(s.files),
            frames=frames,
            sequence=s.sequence or "",
        )
    row.update(kw)
    return row


def _subject_entry(sid: str, members: list[_Series], proto: Protocol, all_files: list[str], rows: list[dict]):
    """The entry of one study and its table rows."""
    by_seq: dict[str, list[_Series]] = defaultdict(list)
    for s in members:
        if s.reason or s.sequence is None:
            continue
        by_seq[s.sequence].append(s)
    entry: dict[str, Any] = {"subject": sid}
    for name in proto.names:
        if name not in by_seq:
            continue
        kept, others = _pick(by_seq[name])
        kept.used = True
        entry[name] = _location(kept, all_files)
        for o in others:
            o.reason = f"{kept.name} is also identified as {name} and was kept (more frames, or acquired later)"
    entry["available"] = [n for n in proto.names if n in entry]
    for s in sorted(members, key=lambda m: (m.number, m.uid)):
        status = "used" if s.used else "not used"
        reason = s.reason
        if s.used and s.problem:  # a DWI without b-values: in the entry, readable with bvalues=
            status, reason = "used (needs bvalues)", s.problem
        elif not s.used and not reason:
            reason = (
                f"its tags name no {proto.name} sequence (SeriesDescription {s.tag('SeriesDescription')!r}, "
                f"ProtocolName {s.tag('ProtocolName')!r}); rename the series or convert it to NIfTI by hand"
            )
        path = _location(s, all_files)
        rows.append(_row(s, sid, status=status, reason=reason, path=path if isinstance(path, str) else path[0]))
    return entry


def scan_dicom_study(
    root: str | os.PathLike,
    protocol: str | Protocol | None = None,
    *,
    bvalues: Sequence[float] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Datalist entries of a DICOM study folder and a table of what was recognised and what was not.

    Args:
        root: the folder (searched at any depth; files with or without ``.dcm``).
        protocol: names the sequences; ``None``: BRAIN or BREAST, whichever identifies more series.
        bvalues: b-values of DWI series whose files carry none (one per frame), as the reader will get them.

    Returns:
        ``(entries, rows)``: one entry per study (``{"subject", <Sequence>: folder or list of files, "available"}``,
        CONTRACTS.md), subjects with no recognised sequence left out; one row per series (and per unreadable
        file), keys :data:`TABLE_COLUMNS`, ``status`` ``"used"``, ``"used (needs bvalues)"`` or ``"not used"``
        with the ``reason``.

    Raises:
        DatalistError: ``root`` is not a folder or holds no DICOM file.
    """
    root = Path(root)
    try:
        files = dicom_files(root)
    except UnreadableFileError as err:
        raise DatalistError(str(err)) from err
    if not files:
        raise DatalistError(f"{str(root)!r} holds no DICOM files (.dcm, .ima, or files with the DICOM preamble).")
    rows: list[dict[str, Any]] = []
    series = list(_read_headers(files, rows).values())
    for s in series:
        s.reason = _skip_reason(s) or ""
        if not s.reason:
            _plan(s, bvalues)
    proto = _choose_protocol(series, protocol)
    _identify(series, proto)
    series = _combine_timepoints(series, proto, bvalues)
    for s in series:
        if s.sequence is not None and proto[s.sequence].frame_axis != FrameAxis.BVALUE:
            s.problem = None  # the DWI check of the plan is for series this protocol reads as DWI
        if s.sequence is not None and s.problem is None:
            _check_frames(s, proto)
    ids = _subject_ids(series)
    all_files = [str(f) for f in files]
    entries = []
    for study in sorted(set(ids), key=lambda u: ids[u]):
        members = [s for s in series if (s.tag("StudyInstanceUID") or "?") == study]
        entry = _subject_entry(ids[study], members, proto, all_files, rows)
        if entry["available"]:
            entries.append(entry)
    return entries, rows


def format_study_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`scan_dicom_study` as a plain-text table (one line a series)."""
    cols = ("subject", "series", "description", "modality", "frames", "sequence", "status", "reason")
    text = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in text if i < len(cols) - 1]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in text]
    return "\n".join(lines)
