"""Datalists: BraTS and breast folder layouts to MONAI datalists, split and loaded.

Protocols (the sequence registries) live in :mod:`monai_seq2seq.core`; phantom cohorts in :mod:`monai_seq2seq.phantoms`.
"""

from .datalists import (
    DatalistError,
    build_brats_datalist,
    build_breast_datalist,
    load_datalist,
    scan_subject,
    split_subjects,
    write_datalist,
)

__all__ = [
    "DatalistError",
    "build_brats_datalist",
    "build_breast_datalist",
    "load_datalist",
    "scan_subject",
    "split_subjects",
    "write_datalist",
]
