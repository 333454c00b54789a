"""Datalists: real folder layouts (BraTS 2021, BraTS 2023-2025, BraSyn, BIDS, MAMA-MIA, subject folders, DICOM
studies) to MONAI datalists, split and loaded.

Protocols (the sequence registries) live in :mod:`monai_seq2seq.core`; phantom cohorts in :mod:`monai_seq2seq.phantoms`.
"""

from .brasyn import BRATS2023_SUFFIXES, brasyn_filename, check_brasyn_protocol, is_brats2023_case
from .datalists import (
    DatalistError,
    build_brats_datalist,
    build_breast_datalist,
    load_datalist,
    scan_subject,
    split_subjects,
    write_datalist,
)
from .dicom_study import format_study_table, scan_dicom_study
from .inspect import InspectionReport, inspect_root
from .layouts import LAYOUTS, LayoutScan, SubjectScan, Unused, build_datalist, classify_file, detect_layout, scan_layout

__all__ = [
    "BRATS2023_SUFFIXES",
    "DatalistError",
    "InspectionReport",
    "LAYOUTS",
    "LayoutScan",
    "SubjectScan",
    "Unused",
    "brasyn_filename",
    "build_brats_datalist",
    "build_breast_datalist",
    "build_datalist",
    "check_brasyn_protocol",
    "classify_file",
    "detect_layout",
    "format_study_table",
    "inspect_root",
    "is_brats2023_case",
    "load_datalist",
    "scan_dicom_study",
    "scan_layout",
    "scan_subject",
    "split_subjects",
    "write_datalist",
]
