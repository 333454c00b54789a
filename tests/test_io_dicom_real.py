"""Real scanner files shipped inside installed packages (no download): nibabel's Siemens DWI mosaics, pydicom's MR."""

from __future__ import annotations

import gzip
import os
import shutil
import warnings

import nibabel
import numpy as np
import pydicom
import pytest
from monai.data import ITKReader
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from monai_seq2seq.io import DicomTagError, UnreadableFileError, get_bvalue, read_dicom_file, read_dicom_series

NIB_DATA = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data")
SIEMENS = {0.0: "siemens_dwi_0.dcm.gz", 1000.0: "siemens_dwi_1000.dcm.gz"}


def _local(name: str) -> str:
    path = get_testdata_file(name, download=False)  # never touches the network
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed locally")
    return path


def _siemens(name: str) -> str:
    path = os.path.join(NIB_DATA, name)
    if not os.path.isfile(path):
        pytest.skip(f"nibabel test file {name} is not installed")
    return path


@pytest.mark.parametrize("bvalue, name", sorted(SIEMENS.items()))
def test_siemens_csa_bvalue(bvalue, name):
    ds = read_dicom_file(_siemens(name))
    assert ds.Manufacturer == "SIEMENS"
    assert (0x0018, 0x9087) not in ds  # only the CSA header knows the b-value
    assert get_bvalue(ds) == bvalue


def test_siemens_mosaic_dwi_series(tmp_path):
    for name in SIEMENS.values():
        shutil.copy(_siemens(name), tmp_path / name)
    arr, meta = read_dicom_series(tmp_path)
    assert arr.shape == (128, 128, 48, 2)  # 7x7 mosaic of 128x128 tiles holding 48 slices, 2 b-values
    assert meta["frame_axis"] == "bvalue"
    assert meta["frame_values"] == [0.0, 1000.0]
    assert meta["sequence"] == "DWI"
    # reference geometry from nibabel's own mosaic wrapper: (row, col, slice) -> LPS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(pydicom.dcmread(gzip.open(_siemens(SIEMENS[0.0]))))
        expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ wrapper.affine[:, [1, 0, 2, 3]]
        np.testing.assert_allclose(meta["affine"], expected, atol=1e-4)
        np.testing.assert_array_equal(arr[..., 0], np.transpose(wrapper.get_data(), (1, 0, 2)))
    np.testing.assert_allclose(meta["affine"][:3, 3], [115.0, 135.028779, -78.710481], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(meta["affine"][:3, :3], axis=0), [1.796875, 1.796875, 3.0], atol=1e-6)


def test_siemens_single_mosaic_is_3d(tmp_path):
    shutil.copy(_siemens(SIEMENS[1000.0]), tmp_path / "b1000.dcm.gz")
    arr, meta = read_dicom_series(tmp_path)
    assert arr.shape == (128, 128, 48)
    assert "frame_axis" not in meta


def test_pydicom_mr_small_against_itk(tmp_path):
    path = _local("MR_small.dcm")
    arr, meta = read_dicom_series([path], protocol="brain")
    assert arr.shape == (64, 64, 1)
    reader = ITKReader()
    itk_arr, itk_meta = reader.get_data(reader.read(path))
    np.testing.assert_array_equal(arr, np.asarray(itk_arr, dtype=np.float32))
    itk_aff = np.asarray(itk_meta["affine"])
    np.testing.assert_allclose(meta["affine"][:, [0, 1, 3]], itk_aff[:, [0, 1, 3]], atol=1e-4)
    np.testing.assert_allclose(meta["affine"][:3, 3], [83.9063, 91.2, 6.6406], atol=1e-4)
    # a single slice: ITK uses 1 mm, we use SliceThickness (0.8 mm)
    np.testing.assert_allclose(meta["affine"][:3, 2], [0.0, 0.0, 0.8], atol=1e-6)
    assert meta["sequence"] == "T2"  # no description; TR 4000 ms / TE 240 ms


@pytest.mark.parametrize("variant", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm"])
def test_pydicom_mr_small_encodings_agree(tmp_path, variant):
    ref, ref_meta = read_dicom_series([_local("MR_small.dcm")])
    arr, meta = read_dicom_series([_local(variant)])
    np.testing.assert_array_equal(arr, ref)
    np.testing.assert_allclose(meta["affine"], ref_meta["affine"])


def test_pydicom_truncated_file_is_named(tmp_path):
    path = _local("MR_truncated.dcm")
    with pytest.raises(UnreadableFileError, match="MR_truncated.dcm"):
        read_dicom_series([path])


def test_unsupported_compression_is_named(tmp_path):
    path = _local("MR_small_jpeg_ls_lossless.dcm")
    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception:
        with pytest.raises(UnreadableFileError, match="MR_small_jpeg_ls_lossless.dcm"):
            read_dicom_series([path])
    else:
        pytest.skip("a JPEG-LS decoder is installed")


def _base_ds(manufacturer: str) -> Dataset:
    ds = Dataset()
    ds.Manufacturer = manufacturer
    return ds


def test_vendor_bvalues():
    std = _base_ds("ACME")
    std.add_new(0x00189087, "FD", 800.0)
    assert get_bvalue(std) == 800.0
    philips = _base_ds("Philips Medical Systems")
    philips.add_new(0x20011003, "FL", 1500.0)
    assert get_bvalue(philips) == 1500.0
    philips_un = _base_ds("Philips Medical Systems")
    philips_un.add_new(0x20011003, "UN", np.float32(150.0).tobytes())  # implicit VR / unknown private tag
    assert get_bvalue(philips_un) == 150.0
    ge = _base_ds("GE MEDICAL SYSTEMS")
    ge.add_new(0x00431039, "IS", [1000000800, 8, 0, 0])  # GE adds 1e9 in some software versions
    assert get_bvalue(ge) == 800.0
    ge_plain = _base_ds("GE MEDICAL SYSTEMS")
    ge_plain.add_new(0x00431039, "IS", [1000, 8, 0, 0])
    assert get_bvalue(ge_plain) == 1000.0
    assert get_bvalue(_base_ds("SIEMENS")) is None  # no CSA header, no standard tag


def test_header_only_file_names_pixel_data_tag():
    path = os.path.join(NIB_DATA, "csa_slice_norm.dcm")  # a Siemens mosaic header without pixel data
    if not os.path.isfile(path):
        pytest.skip("nibabel test file csa_slice_norm.dcm is not installed")
    with pytest.raises(DicomTagError, match=r"csa_slice_norm.dcm' lacks the required tag PixelData \(7FE0,0010\)"):
        read_dicom_series([path])


def test_philips_enhanced_multiframe(tmp_path):
    """A Philips enhanced MR file (176 frames in one file): per-frame geometry from the functional groups."""
    shutil.copy(_siemens("philips_mprage.dcm.gz"), tmp_path / "mprage.dcm.gz")
    arr, meta = read_dicom_series(tmp_path, protocol="brain")
    assert arr.shape == (256, 256, 176)
    assert "frame_axis" not in meta
    assert meta["sequence"] == "T1"  # SeriesDescription MPRAGE_S2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(pydicom.dcmread(gzip.open(tmp_path / "mprage.dcm.gz")))
        ref = np.diag([-1.0, -1.0, 1.0, 1.0]) @ wrapper.affine[:, [1, 0, 2, 3]]
    # nibabel stacks the slices the other way round: flip its slice axis to compare
    ref[:3, 3] += 175 * ref[:3, 2]
    ref[:3, 2] *= -1
    np.testing.assert_allclose(meta["affine"], ref, atol=5e-3)
    # the first slice is frame 1 (InStackPositionNumber 1): its PlanePositionSequence position, in RAS
    np.testing.assert_allclose(meta["affine"][:3, 3], [-92.7090416, 125.1276697, 136.4952569], atol=1e-5)


def test_enhanced_multiframe_frame_count_mismatch(tmp_path):
    ds = read_dicom_file(_siemens("philips_mprage.dcm.gz"))
    ds.NumberOfFrames = 175
    ds.save_as(tmp_path / "bad.dcm")
    with pytest.raises(DicomTagError, match=r"bad.dcm'.*NumberOfFrames \(0028,0008\) is 175 .* 176 items"):
        read_dicom_series(tmp_path)


def test_mosaic_corner_is_nibabels_slice_step_is_the_header_spacing(tmp_path):
    """Why io/dicom_series._mosaic_slices takes the corner from nibabel's MosaicWrapper but not its slice normal."""
    shutil.copy(_siemens(SIEMENS[0.0]), tmp_path / "b0.dcm.gz")
    _, meta = read_dicom_series(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(pydicom.dcmread(gzip.open(tmp_path / "b0.dcm.gz")))
    assert isinstance(wrapper, dicomwrappers.MosaicWrapper)
    np.testing.assert_array_equal(np.diag([-1.0, -1.0, 1.0]) @ meta["affine"][:3, 3], wrapper.image_position)
    # SpacingBetweenSlices is 3.0: our slice axis has that length; nibabel crosses the cosines as written
    # (ImageOrientationPatient's column cosine has norm 0.9999997) and its slices come out 2.99996 mm apart
    assert abs(np.linalg.norm(meta["affine"][:3, 2]) - 3.0) < 1e-12
    assert abs(np.linalg.norm(wrapper.affine[:3, 2]) - 3.0) > 1e-7
