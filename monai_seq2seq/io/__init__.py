"""I/O: NIfTI 3D/4D reader and writer with frame sidecars, DICOM MR series (DCE/DWI split, vendor b-values)
and a DICOM writer."""

from monai_seq2seq.core.errors import DicomTagError, FrameValuesError, SeriesConsistencyError, UnreadableFileError

from .dicom_identify import has_contrast_agent, has_fat_saturation, identify_sequence
from .dicom_multiframe import enhanced_frame_headers, is_multiframe
from .dicom_series import (
    DicomSeriesPlan,
    DicomSeriesReader,
    DicomSlice,
    dicom_files,
    plan_dicom_series,
    read_dicom_file,
    read_dicom_series,
    scan_dicom_folder,
)
from .dicom_vendor import get_bvalue, require_tag
from .dicom_writer import affine_to_dicom_geometry, write_dicom_series, write_dicom_study
from .nifti import Seq2SeqNiftiReader, load_sequence
from .nifti_writer import affine_of, save_nifti, save_volume
from .reader import Seq2SeqReader, is_dicom_source
from .registry import register_readers
from .sidecar import read_frame_info, sidecar_paths, write_frame_info, write_sidecar_json

__all__ = [
    "DicomSeriesPlan",
    "DicomSeriesReader",
    "DicomSlice",
    "DicomTagError",
    "FrameValuesError",
    "SeriesConsistencyError",
    "Seq2SeqNiftiReader",
    "Seq2SeqReader",
    "UnreadableFileError",
    "affine_of",
    "affine_to_dicom_geometry",
    "dicom_files",
    "enhanced_frame_headers",
    "get_bvalue",
    "has_contrast_agent",
    "has_fat_saturation",
    "identify_sequence",
    "is_dicom_source",
    "is_multiframe",
    "load_sequence",
    "plan_dicom_series",
    "read_dicom_file",
    "read_dicom_series",
    "read_frame_info",
    "register_readers",
    "require_tag",
    "save_nifti",
    "save_volume",
    "scan_dicom_folder",
    "sidecar_paths",
    "write_dicom_series",
    "write_dicom_study",
    "write_frame_info",
    "write_sidecar_json",
]
