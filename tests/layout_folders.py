"""Folder builders for the real data layouts, from phantom subjects renamed as each data set names its files.

Shared by tests/test_data_layouts.py (detection) and tests/test_layouts_end_to_end.py (folder -> ``seq2seq
synthesize`` / ``seq2seq diffmap``). Each ``make_*`` builder writes one layout under ``root`` and returns it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = [
    "BIDS",
    "BRATS21",
    "BRATS23",
    "copy_file",
    "make_bids",
    "make_brats2021",
    "make_brats2023",
    "make_dicom_study",
    "make_mama_mia",
]

BRATS21 = {"T1": "t1", "T1Gd": "t1ce", "T2": "t2", "FLAIR": "flair", "label": "seg"}
BRATS23 = {"T1": "t1n", "T1Gd": "t1c", "T2": "t2w", "FLAIR": "t2f", "label": "seg"}
BIDS = {"T1": "T1w", "T1Gd": "ce-gadolinium_T1w", "T2": "T2w", "FLAIR": "FLAIR"}


def copy_file(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst``, making the parent folders."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def make_brats2021(brain: list[dict[str, Path]], root: Path, drop=()) -> Path:
    """BraTS 2021: ``BraTS2021_NNNNN/BraTS2021_NNNNN_{t1,t1ce,t2,flair,seg}.nii.gz``; ``drop``: keys left out."""
    for i, files in enumerate(brain):
        case = f"BraTS2021_{i:05d}"
        for key, src in files.items():
            if key not in drop:
                copy_file(src, root / case / f"{case}_{BRATS21[key]}.nii.gz")
    return root


def make_brats2023(brain: list[dict[str, Path]], root: Path, drop=None, tasks=("GLI", "MEN")) -> Path:
    """BraTS 2023-2025 ``BraTS-XXX-NNNNN-NNN-{t1n,t1c,t2w,t2f,seg}``; ``drop[i]``: the sequence left out of case
    ``i`` together with its segmentation (the BraSyn validation layout)."""
    for i, files in enumerate(brain):
        case = f"BraTS-{tasks[i]}-{i:05d}-000"
        for key, src in files.items():
            if drop is not None and key in (drop[i], "label"):
                continue  # BraSyn validation: no segmentation, one sequence removed
            copy_file(src, root / case / f"{case}-{BRATS23[key]}.nii.gz")
    return root


def make_bids(files: dict[str, Path], root: Path, subject: str = "sub-01", session: str | None = "ses-01") -> Path:
    """BIDS ``sub-*/[ses-*/]anat/sub-*_[ses-*_]<suffix>.nii.gz`` for the brain ``files`` given (``{"T1": path}``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    folder = root / subject / session / "anat" if session else root / subject / "anat"
    prefix = f"{subject}_{session}_" if session else f"{subject}_"
    for key, src in files.items():
        if key in BIDS:
            copy_file(src, folder / f"{prefix}{BIDS[key]}.nii.gz")
    return root


def make_mama_mia(breast: Path, root: Path, cases=("DUKE_001", "ISPY2_100899"), phases=None) -> Path:
    """MAMA-MIA: ``images/<case>/<case>_000t.nii.gz`` phases of the breast phantom ``breast`` (a subject folder)'s
    DCE, expert and automatic segmentations and patient info. ``phases[c]``: phases of case ``c`` (default 3, 4...)."""
    dce = nib.load(breast / f"{breast.name}_DCE.nii.gz")
    data = np.asarray(dce.dataobj)
    for c, case in enumerate(cases):
        for t in range(phases[c] if phases else 3 + c):
            path = root / "images" / case / f"{case.lower()}_{t:04d}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data[..., t], dce.affine), path)
        copy_file(breast / f"{breast.name}_seg.nii.gz", root / "segmentations" / "expert" / f"{case.lower()}.nii.gz")
        copy_file(breast / f"{breast.name}_seg.nii.gz", root / "segmentations" / "automatic" / f"{case.lower()}.nii.gz")
        (root / "patient_info_files").mkdir(exist_ok=True)
        (root / "patient_info_files" / f"{case.lower()}.json").write_text("{}")
    return root


def make_dicom_study(breast: Path, root: Path, drop=()) -> Path:
    """A PACS-export-like folder ``root/STUDY1/<series>/...`` from the breast phantom's DICOM series; ``drop``:
    series folder names left out."""
    for series in sorted((breast / "dicom").iterdir()):
        if series.name not in drop:
            shutil.copytree(series, root / "STUDY1" / series.name)
    return root
