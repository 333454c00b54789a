"""Bad DICOM input gives specific errors that name the file, tag or frame at fault."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from monai_seq2seq.io import (
    DicomSeriesReader,
    DicomTagError,
    FrameValuesError,
    SeriesConsistencyError,
    UnreadableFileError,
    read_dicom_series,
    scan_dicom_folder,
    write_dicom_series,
)

AFFINE = np.array([[1.0, 0.0, 0.0, 5.0], [0.0, 1.2, 0.0, -3.0], [0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def _series(tmp_path, n_t=1, axis=None, values=None):
    vol = np.arange(n_t * 8 * 8 * 4, dtype=np.float32).reshape(n_t, 8, 8, 4)
    paths = write_dicom_series(vol, AFFINE, tmp_path, frame_axis=axis, frame_values=values)
    return {(int(p.stem.split("_")[-2]), int(p.stem.split("_")[-1])): p for p in paths}  # (frame, slice) -> path


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        elif isinstance(key, str) and key.startswith("tag_"):
            ds[int(key[4:], 16)].value = value
        else:
            setattr(ds, key, value)
    ds.save_as(path)


@pytest.mark.parametrize(
    "keyword, tag",
    [
        ("ImagePositionPatient", "(0020,0032)"),
        ("ImageOrientationPatient", "(0020,0037)"),
        ("PixelSpacing", "(0028,0030)"),
        ("SeriesInstanceUID", "(0020,000E)"),
    ],
)
def test_missing_required_tag_names_tag_and_file(tmp_path, keyword, tag):
    files = _series(tmp_path)
    _edit(files[(0, 2)], **{keyword: None})
    with pytest.raises(DicomTagError, match="lacks the required tag") as err:
        read_dicom_series(tmp_path)
    assert "IM_000_0002.dcm" in str(err.value) and keyword in str(err.value) and tag in str(err.value)


def test_malformed_tag(tmp_path):
    files = _series(tmp_path)
    _edit(files[(0, 1)], ImageOrientationPatient=[1, 0, 0, 0, 1])
    msg = r"IM_000_0001.dcm.*ImageOrientationPatient \(0020,0037\) needs 6 values, got 5"
    with pytest.raises(DicomTagError, match=msg):
        read_dicom_series(tmp_path)


def test_corrupt_file_is_named(tmp_path):
    _series(tmp_path)
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 50 + b"garbage")
    with pytest.raises(UnreadableFileError, match="broken.dcm"):
        read_dicom_series(tmp_path)


def test_truncated_pixel_data_is_named(tmp_path):
    files = _series(tmp_path)
    data = files[(0, 3)].read_bytes()
    files[(0, 3)].write_bytes(data[:-40])
    with pytest.raises(UnreadableFileError, match="IM_000_0003.dcm"):
        read_dicom_series(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("no dicom here")
    with pytest.raises(UnreadableFileError, match="holds no DICOM files"):
        scan_dicom_folder(tmp_path)
    with pytest.raises(UnreadableFileError, match="does not exist"):
        read_dicom_series(tmp_path / "nope")
    with pytest.raises(UnreadableFileError, match="nope"):
        DicomSeriesReader().read(str(tmp_path / "nope"))


def test_two_orientations_in_one_series(tmp_path):
    files = _series(tmp_path)
    _edit(files[(0, 1)], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    with pytest.raises(SeriesConsistencyError, match=r"two different orientations.*IM_000_0001.dcm"):
        read_dicom_series(tmp_path)


def test_two_pixel_spacings_in_one_series(tmp_path):
    files = _series(tmp_path)
    _edit(files[(0, 2)], PixelSpacing=[1.2, 1.1])
    with pytest.raises(SeriesConsistencyError, match=r"two different pixel spacings.*IM_000_0002.dcm"):
        read_dicom_series(tmp_path)


def test_non_uniform_slice_spacing(tmp_path):
    files = _series(tmp_path)
    ds = pydicom.dcmread(files[(0, 3)])
    pos = [float(v) for v in ds.ImagePositionPatient]
    _edit(files[(0, 3)], ImagePositionPatient=[pos[0], pos[1], pos[2] + 1.0])
    with pytest.raises(SeriesConsistencyError, match=r"non-uniform slice spacing.*\[2\.0, 2\.0, 3\.0\]"):
        read_dicom_series(tmp_path)


def test_missing_slice_is_non_uniform(tmp_path):
    files = _series(tmp_path)
    files[(0, 1)].unlink()
    with pytest.raises(SeriesConsistencyError, match=r"\[4\.0, 2\.0\]"):
        read_dicom_series(tmp_path)


def test_duplicate_bvalue(tmp_path):
    files = _series(tmp_path, 3, "bvalue", [0, 800, 1500])
    _edit(files[(2, 1)], tag_00189087=800.0)
    with pytest.raises(SeriesConsistencyError, match=r"duplicate b-value 800 .*IM_001_0001.dcm.*IM_002_0001.dcm"):
        read_dicom_series(tmp_path)


def test_duplicate_timepoint(tmp_path):
    files = _series(tmp_path, 3, "time", [0, 60, 120])
    _edit(files[(1, 2)], TemporalPositionIdentifier=3)
    with pytest.raises(SeriesConsistencyError, match=r"duplicate timepoint 3 .*IM_00[12]_0002.dcm"):
        read_dicom_series(tmp_path)


def test_duplicate_slice_without_frame_tags(tmp_path):
    files = _series(tmp_path)
    ds = pydicom.dcmread(files[(0, 0)])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "copy.dcm")
    with pytest.raises(SeriesConsistencyError, match=r"duplicate timepoint.*(copy|IM_000_0000)\.dcm"):
        read_dicom_series(tmp_path)


def test_frames_with_different_slice_counts(tmp_path):
    files = _series(tmp_path, 3, "bvalue", [0, 800, 1500])
    files[(1, 3)].unlink()
    msg = r"different slice counts \(bvalue 0: 4, bvalue 800: 3, bvalue 1500: 4\)"
    with pytest.raises(SeriesConsistencyError, match=msg):
        read_dicom_series(tmp_path)


def test_frames_covering_other_positions(tmp_path):
    files = _series(tmp_path, 2, "time", [0, 60])
    for k in range(4):
        ds = pydicom.dcmread(files[(1, k)])
        pos = [float(v) for v in ds.ImagePositionPatient]
        _edit(files[(1, k)], ImagePositionPatient=[pos[0], pos[1], pos[2] + 10.0])
    with pytest.raises(SeriesConsistencyError, match="frame time 2 covers other positions"):
        read_dicom_series(tmp_path)


def test_bvalue_missing_on_some_files(tmp_path):
    files = _series(tmp_path, 2, "bvalue", [0, 800])
    ds = pydicom.dcmread(files[(1, 0)])
    del ds[0x00189087]
    ds.save_as(files[(1, 0)])
    with pytest.raises(DicomTagError, match=r"IM_001_0000.dcm.* lacks a diffusion b-value"):
        read_dicom_series(tmp_path)


def test_non_mr_modality(tmp_path):
    files = _series(tmp_path)
    _edit(files[(0, 0)], Modality="CT")
    with pytest.raises(DicomTagError, match=r"IM_000_0000.dcm.*Modality \(0008,0060\) is 'CT'"):
        read_dicom_series(tmp_path)


def test_time_frames_without_timing(tmp_path):
    files = _series(tmp_path, 2, "time", [0, 60])
    for p in files.values():
        _edit(p, TriggerTime=None, TemporalResolution=None, AcquisitionTime="080000")
    with pytest.raises(DicomTagError, match=r"cannot time the 2 temporal positions"):
        read_dicom_series(tmp_path)


def test_dwi_without_bvalue_tags_is_not_read_as_a_time_series(tmp_path):
    """Before: frames told apart by AcquisitionTime only were read as a *time* series named DWI."""
    files = _series(tmp_path, 3, "time", [0, 30, 60])
    for p in files.values():
        _edit(
            p,
            SeriesDescription="ep2d_diff_tra",
            ProtocolName="ep2d_diff_tra",
            TemporalPositionIdentifier=None,
            TriggerTime=None,
            NumberOfTemporalPositions=None,
            TemporalResolution=None,
        )
    with pytest.raises(
        FrameValuesError, match=r"'ep2d_diff_tra'.* identified as DWI .*no b-value.*AcquisitionTime.*bvalues="
    ):
        read_dicom_series(tmp_path)
    arr, meta = read_dicom_series(tmp_path, bvalues=[0, 800, 1500])
    assert meta["frame_axis"] == "bvalue" and meta["frame_values"] == [0.0, 800.0, 1500.0] and arr.shape[-1] == 3
    with pytest.raises(FrameValuesError, match=r"gives 2 b-values for 3 frame"):
        read_dicom_series(tmp_path, bvalues=[0, 800])
    with pytest.raises(FrameValuesError, match="identified as DWI"):  # through the reader the bundles use
        DicomSeriesReader().get_data(str(tmp_path))
    _, meta = read_dicom_series(tmp_path, protocol="brain")  # no diffusion sequence in the brain protocol
    assert meta["frame_axis"] == "time"


def test_bvalues_contradicting_the_tags(tmp_path):
    _series(tmp_path, 2, "bvalue", [0, 800])
    with pytest.raises(FrameValuesError, match=r"tags give \[0.0, 800.0\] but bvalues=\[0.0, 1000.0\]"):
        read_dicom_series(tmp_path, bvalues=[0, 1000])
    assert read_dicom_series(tmp_path, bvalues=[0, 800])[1]["frame_values"] == [0.0, 800.0]
