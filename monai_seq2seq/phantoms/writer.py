"""Write phantom cohorts to disk: brain in the BraTS 2021 layout, breast in the documented breast layout,
plus a decathlon-style ``datalist.json``; all writes are atomic (temporary file + ``os.replace``).

Brain: ``<root>/BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz`` and
``BraTS2021_XXXXX_unique-T1Gd.nii.gz``.
Breast: ``<root>/<sid>/<sid>_<Sequence>.nii.gz`` (4D as ``(x, y, z, t)``), ``<sid>_DCE.json`` /
``<sid>_FatSatDCE.json`` with ``"VolumeTiming"``, ``<sid>_DWI.bval``, ``<sid>_seg.nii.gz``,
``<sid>_unique-<Sequence>.nii.gz`` and optionally DICOM series in ``<sid>/dicom/<Sequence>/``.
A subject with clinical effects (``info["realism"]``, see :mod:`.realism`) also gets ``<sid>/<sid>_phantom.json``:
its generation info with the effects' true parameters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from monai_seq2seq.core.files import atomic_write_text
from monai_seq2seq.core.protocols import BRAIN, BREAST, Protocol
from monai_seq2seq.io.nifti_writer import save_nifti
from monai_seq2seq.io.sidecar import write_frame_info
from monai_seq2seq.phantoms.subject import PhantomSubject

__all__ = [
    "BRATS_SUFFIXES",
    "brain_subject_files",
    "breast_subject_files",
    "write_subject",
    "write_cohort",
    "write_datalist",
]

BRATS_SUFFIXES = {"T1": "t1", "T1Gd": "t1ce", "T2": "t2", "FLAIR": "flair"}
"""BraTS 2021 file suffix of each brain sequence."""

_DICOM_SEQUENCES = ("DCE", "FatSatDCE", "DWI")


def brain_subject_files(sid: str) -> dict[str, str]:
    """Relative paths of a brain subject's files (keys: sequences, ``label``, ``unique-T1Gd``)."""
    files = {name: f"{sid}/{sid}_{suffix}.nii.gz" for name, suffix in BRATS_SUFFIXES.items()}
    files["label"] = f"{sid}/{sid}_seg.nii.gz"
    files["unique-T1Gd"] = f"{sid}/{sid}_unique-T1Gd.nii.gz"
    return files


def breast_subject_files(sid: str, unique: Iterable[str] = ("DCE", "DWI")) -> dict[str, str]:
    """Relative paths of a breast subject's files (keys: sequences, ``label``, ``unique-<Sequence>``)."""
    files = {name: f"{sid}/{sid}_{name}.nii.gz" for name in BREAST.names}
    files["label"] = f"{sid}/{sid}_seg.nii.gz"
    for name in unique:
        files[f"unique-{name}"] = f"{sid}/{sid}_unique-{name}.nii.gz"
    return files


def _json_default(value):
    """numpy scalars and arrays as plain JSON values."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else str(value)


def _check_free(root: Path, rel_paths: Iterable[str], overwrite: bool) -> None:
    if overwrite:
        return
    taken = [p for p in rel_paths if (root / p).exists()]
    if taken:
        raise FileExistsError(
            f"{len(taken)} file(s) already exist, e.g. {str(root / taken[0])!r}; pass overwrite=True to replace them."
        )


def write_subject(
    subject: PhantomSubject, protocol: Protocol, root: str | os.PathLike, overwrite: bool = False, dicom: bool = False
) -> dict:
    """Write one subject; returns its datalist entry (paths relative to ``root``).

    Args:
        subject: a generated subject.
        protocol: ``BRAIN`` (BraTS layout) or ``BREAST`` (breast layout).
        root: output folder.
        overwrite: replace existing files (otherwise any existing file raises before anything is written).
        dicom: breast only: also write the 4D sequences as DICOM series in ``<sid>/dicom/<Sequence>/``.

    Raises:
        FileExistsError: a target exists and ``overwrite`` is False.
    """
    root = Path(root)
    sid = subject.subject
    brain = protocol.name == BRAIN.name
    files = brain_subject_files(sid) if brain else breast_subject_files(sid, subject.unique)
    sidecar = f"{sid}/{sid}_phantom.json" if subject.info.get("realism") else None
    _check_free(root, [*files.values(), *([sidecar] if sidecar else [])], overwrite)
    for name in protocol.names:
        if name not in subject.images:
            continue
        img = subject.images[name]
        path = root / files[name]
        if img.ndim == 4:  # frames-first in memory, (x, y, z, t) on disk
            values = subject.frame_values[name]
            spec = protocol[name]
            step = float(values[1] - values[0]) if spec.frame_axis == "time" and len(values) > 1 else None
            save_nifti(np.moveaxis(img, 0, -1), subject.affine, path, overwrite=True, frame_step=step)
            write_frame_info(path, spec.frame_axis, values)
        else:
            save_nifti(img, subject.affine, path, overwrite=True)
    save_nifti(subject.label, subject.affine, root / files["label"], overwrite=True)
    for name, mask in subject.unique.items():
        save_nifti(mask, subject.affine, root / files[f"unique-{name}"], overwrite=True)
    if dicom and not brain:
        from pydicom.uid import generate_uid

        from monai_seq2seq.io.dicom_writer import write_dicom_series

        study_uid = generate_uid(entropy_srcs=[sid, "study"])
        frame_uid = generate_uid(entropy_srcs=[sid, "frame-of-reference"])
        for k, name in enumerate(_DICOM_SEQUENCES):
            out = root / sid / "dicom" / name
            if out.exists() and any(out.iterdir()) and not overwrite:
                raise FileExistsError(f"{str(out)!r} is not empty; pass overwrite=True to replace it.")
            spec = protocol[name]
            write_dicom_series(
                subject.images[name],
                subject.affine,
                out,
                frame_axis=spec.frame_axis,
                frame_values=subject.frame_values[name],
                series_description=name,
                patient_id=sid,
                patient_name=sid,
                series_number=k + 1,
                scan_options="FS" if name.startswith("FatSat") else None,
                contrast_agent="GADOLINIUM" if "DCE" in name else None,
                uid_seed=f"{sid}-{name}",
                study_instance_uid=study_uid,
                frame_of_reference_uid=frame_uid,
            )
    if sidecar:  # the generation info with the clinical effects' true parameters
        atomic_write_text(root / sidecar, json.dumps(subject.info, indent=1, default=_json_default) + "\n")
    entry = {"subject": sid}
    entry.update({k: v for k, v in files.items() if k in subject.images or k == "label" or k.startswith("unique-")})
    entry["available"] = [n for n in protocol.names if n in subject.images]
    return entry


def write_datalist(
    entries: list[dict],
    root: str | os.PathLike,
    protocol: Protocol,
    name: str,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    overwrite: bool = False,
) -> Path:
    """Write ``<root>/datalist.json`` (decathlon style, paths relative to ``root``).

    The entries are split in order: the first go to ``training``, then ``validation``, then ``testing``
    (``round(fraction * n)`` each).
    """
    n = len(entries)
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    n_train = max(0, n - n_val - n_test)
    data = {
        "name": name,
        "protocol": protocol.name,
        "description": f"monai-seq2seq {protocol.name} phantom cohort (synthetic, known ground truth)",
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + n_val],
        "testing": entries[n_train + n_val :],
    }
    path = Path(root) / "datalist.json"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_cohort(
    cohort,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    dicom: bool = False,
    progress: bool = True,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
) -> Path:
    """Generate and write every subject of a cohort, then ``datalist.json``.

    Args:
        cohort: a :class:`~.cohort.BrainPhantomCohort` or :class:`~.cohort.BreastPhantomCohort`.
        out_dir: output folder (created).
        overwrite: replace existing files; otherwise nothing is written when any target exists.
        dicom: breast only: also write DICOM series of DCE, FatSatDCE and DWI.
        progress: show a tqdm progress bar.
        val_fraction, test_fraction: datalist split fractions (in subject order).

    Returns:
        Path of the written ``datalist.json``.

    Raises:
        FileExistsError: a target exists and ``overwrite`` is False (checked for all subjects first).
    """
    root = Path(out_dir)
    protocol = cohort.protocol
    ids = cohort.subject_ids()
    if not overwrite:
        names = [(root / "datalist.json").name] if (root / "datalist.json").exists() else []
        if names:
            raise FileExistsError(f"{str(root / 'datalist.json')!r} exists; pass overwrite=True to replace it.")
        for sid in ids:
            files = brain_subject_files(sid) if protocol.name == BRAIN.name else breast_subject_files(sid)
            _check_free(root, files.values(), overwrite)
    root.mkdir(parents=True, exist_ok=True)
    indices = range(len(cohort))
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"{protocol.name} phantoms", unit="subject")
    entries = [write_subject(cohort.generate(i), protocol, root, overwrite=overwrite, dicom=dicom) for i in indices]
    return write_datalist(
        entries,
        root,
        protocol,
        name=f"{protocol.name}-phantom",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        overwrite=overwrite,
    )
