"""DICOM writer + series reader round trips, geometry against MONAI's ITK/Nibabel readers, 4D splitting."""

from __future__ import annotations

import copy
import random
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from monai.data import ITKReader, NibabelReader
from monai.transforms import LoadImaged

from monai_seq2seq.io import (
    DicomSeriesReader,
    affine_to_dicom_geometry,
    identify_sequence,
    read_dicom_series,
    scan_dicom_folder,
    write_dicom_series,
    write_dicom_study,
)


def _oblique_affine() -> np.ndarray:
    """RAS affine with rotated in-plane axes; slice axis along row x column in LPS (right-handed)."""
    th = 0.3
    rot = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.2), -np.sin(0.2)], [0.0, np.sin(0.2), np.cos(0.2)]])
    a = np.eye(4)
    a[:3, :3] = tilt @ rot @ np.diag([0.8, 0.9, 2.5])
    a[:3, 3] = [10.0, -20.0, 30.0]
    return a


AFFINE = _oblique_affine()


@pytest.fixture()
def vol4d():
    return np.random.default_rng(1).integers(0, 3000, size=(3, 8, 6, 4)).astype(np.float32)  # (T, X, Y, Z)


def _shuffle_names(folder, seed=0):
    """Rename the files to random names so that file order says nothing about slice or frame order."""
    files = sorted(folder.glob("*.dcm"))
    names = [f"x{i:03d}.dcm" for i in range(len(files))]
    random.Random(seed).shuffle(names)
    tmp = folder / "tmp"
    tmp.mkdir()
    for f, n in zip(files, names, strict=True):
        shutil.move(str(f), str(tmp / n))
    for f in tmp.iterdir():
        shutil.move(str(f), str(folder / f.name))
    tmp.rmdir()


def test_round_trip_4d_dce_shuffled(tmp_path, vol4d):
    write_dicom_series(
        vol4d,
        AFFINE,
        tmp_path,
        frame_axis="time",
        frame_values=[0, 75.5, 150],
        series_description="ax vibrant dyn",
        uid_seed="t1",
    )
    _shuffle_names(tmp_path)
    arr, meta = read_dicom_series(tmp_path)
    assert arr.shape == (8, 6, 4, 3)
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d)
    np.testing.assert_allclose(meta["affine"], AFFINE, atol=1e-4)
    assert meta["frame_axis"] == "time"
    np.testing.assert_allclose(meta["frame_values"], [0.0, 75.5, 150.0], atol=1e-4)
    assert meta["original_channel_dim"] == -1
    assert meta["sequence"] == "DCE"
    assert meta["space"] == "RAS"


def test_round_trip_dwi_float_values(tmp_path):
    vol = np.random.default_rng(2).random((4, 8, 6, 4)).astype(np.float32) * 5.0 - 1.0
    write_dicom_series(vol, AFFINE, tmp_path, frame_axis="bvalue", frame_values=[1500, 0, 800, 150])
    _shuffle_names(tmp_path, seed=3)
    arr, meta = read_dicom_series(tmp_path)
    assert meta["frame_axis"] == "bvalue"
    assert meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0]  # frames come back in increasing b
    order = [1, 3, 2, 0]
    np.testing.assert_allclose(np.moveaxis(arr, -1, 0), vol[order], atol=6.0 / 65535)
    np.testing.assert_allclose(meta["affine"], AFFINE, atol=1e-4)
    assert meta["sequence"] == "DWI"
    ds = pydicom.dcmread(sorted(tmp_path.glob("*.dcm"))[0])
    assert ds[0x0018, 0x9087].VR == "FD"
    assert "DIFFUSION" in ds.ImageType


@pytest.mark.parametrize("with_directions", [True, False])
def test_multi_direction_dwi_reads_one_frame_per_direction(tmp_path, with_directions):
    """A DWI series with b=1000 in three gradient directions (the ordinary clinical DWI): one frame per direction,
    the b-value repeated, as an FSL .bval gives it; told apart by DiffusionGradientOrientation, else by
    acquisition order at each position; MatchProtocolFramesd then averages the directions."""
    from monai.transforms import LoadImage

    from monai_seq2seq.transforms import MatchProtocolFramesd

    vol = np.random.default_rng(4).random((4, 8, 6, 4)).astype(np.float32) * 100.0 + 10.0
    paths = write_dicom_series(vol, AFFINE, tmp_path, frame_axis="bvalue", frame_values=[0, 1000, 1001, 1002])
    directions = {1: [1.0, 0.0, 0.0], 2: [0.0, 1.0, 0.0], 3: [0.0, 0.0, 1.0]}
    for path in paths:
        frame = int(path.stem.split("_")[-2])
        if frame:
            ds = pydicom.dcmread(path)
            ds[0x0018, 0x9087].value = 1000.0
            if with_directions:
                ds.DiffusionGradientOrientation = directions[frame]
            ds.save_as(path)
    _shuffle_names(tmp_path, seed=5)
    arr, meta = read_dicom_series(tmp_path)
    assert meta["frame_axis"] == "bvalue" and meta["frame_values"] == [0.0, 1000.0, 1000.0, 1000.0]
    np.testing.assert_allclose(np.moveaxis(arr, -1, 0), vol, rtol=1e-3, atol=0.01)

    loaded = LoadImage(reader=DicomSeriesReader(), image_only=True, ensure_channel_first=True)(str(tmp_path))
    match = MatchProtocolFramesd("DWI", protocol="breast", bvalues=None, missing_bvalues="monoexp")
    out = match({"DWI": loaded})["DWI"]
    assert out.meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0]


def test_multi_direction_dwi_with_a_missing_repeat_is_refused(tmp_path):
    paths = write_dicom_series(
        np.ones((3, 8, 6, 4), np.float32), AFFINE, tmp_path, frame_axis="bvalue", frame_values=[0, 1000, 1001]
    )
    for path in paths:
        frame, slice_ = (int(v) for v in path.stem.split("_")[-2:])
        if frame == 2:
            if slice_ == 1:
                path.unlink()
                continue
            ds = pydicom.dcmread(path)
            ds[0x0018, 0x9087].value = 1000.0
            ds.save_as(path)
    with pytest.raises(Exception, match=r"duplicate b-value 1000 .*same number of them"):
        read_dicom_series(tmp_path)


def test_written_tags(tmp_path, vol4d):
    paths = write_dicom_series(
        vol4d,
        AFFINE,
        tmp_path,
        frame_axis="time",
        frame_values=[0, 90, 180],
        series_description="DCE",
        patient_id="P7",
        series_time_s=3600.0,
    )
    assert len(paths) == 12
    ds = pydicom.dcmread(paths[5])  # frame 1, slice 1
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
    assert ds.PatientID == "P7"
    assert (ds.Rows, ds.Columns) == (6, 8)
    assert ds.TemporalPositionIdentifier == 2 and ds.NumberOfTemporalPositions == 3
    assert float(ds.TriggerTime) == 90000.0
    assert ds.AcquisitionTime == "010130.000000"
    geo = affine_to_dicom_geometry(AFFINE)
    np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], geo["orientation"], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.9, 0.8], atol=1e-6)
    assert float(ds.SliceThickness) == pytest.approx(2.5)
    lps = np.diag([-1, -1, 1, 1]) @ AFFINE
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], lps[:3, 3] + lps[:3, 2], atol=1e-5)
    np.testing.assert_array_equal(ds.pixel_array, vol4d[1, :, :, 1].T)


def test_affine_matches_itk_and_nibabel(tmp_path, vol4d):
    """Same data written as DICOM and as NIfTI: our reader, ITKReader and NibabelReader agree."""
    vol = vol4d[0]
    write_dicom_series(vol, AFFINE, tmp_path / "dcm")
    ours, meta = read_dicom_series(tmp_path / "dcm")
    itk_reader = ITKReader()
    itk_arr, itk_meta = itk_reader.get_data(itk_reader.read(str(tmp_path / "dcm")))
    np.testing.assert_allclose(meta["affine"], np.asarray(itk_meta["affine"]), atol=1e-4)
    np.testing.assert_array_equal(ours, np.asarray(itk_arr))
    nib.save(nib.Nifti1Image(vol, AFFINE), str(tmp_path / "v.nii.gz"))
    nib_reader = NibabelReader()
    nib_arr, nib_meta = nib_reader.get_data(nib_reader.read(str(tmp_path / "v.nii.gz")))
    np.testing.assert_allclose(meta["affine"], nib_meta["affine"], atol=1e-4)
    np.testing.assert_array_equal(ours, nib_arr)
    assert np.isnan(meta["original_channel_dim"])


def test_reversed_slice_axis_reads_same_world_geometry(tmp_path):
    vol = np.arange(8 * 6 * 4, dtype=np.float32).reshape(8, 6, 4)
    flipped = AFFINE.copy()
    flipped[:3, 2] *= -1  # slice axis against row x column
    write_dicom_series(vol, flipped, tmp_path)
    arr, meta = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(arr, vol[:, :, ::-1])
    expected = flipped.copy()
    expected[:3, 2] *= -1
    expected[:3, 3] = flipped[:3, 3] + 3 * flipped[:3, 2]
    np.testing.assert_allclose(meta["affine"], expected, atol=1e-4)


def test_loadimaged_with_reader_gives_channel_first(tmp_path, vol4d):
    write_dicom_series(vol4d, AFFINE, tmp_path / "DCE", frame_axis="time", frame_values=[0, 60, 120])
    out = LoadImaged("DCE", reader=DicomSeriesReader(), ensure_channel_first=True)({"DCE": str(tmp_path / "DCE")})
    img = out["DCE"]
    assert tuple(img.shape) == (3, 8, 6, 4)
    np.testing.assert_array_equal(img.numpy(), vol4d)
    np.testing.assert_allclose(img.affine.numpy(), AFFINE, atol=1e-4)
    assert img.meta["frame_values"] == [0.0, 60.0, 120.0]


def test_split_by_acquisition_time_only(tmp_path, vol4d):
    paths = write_dicom_series(
        vol4d, AFFINE, tmp_path, frame_axis="time", frame_values=[0, 45, 90], series_time_s=10 * 3600.0
    )
    for p in paths:  # keep only AcquisitionTime, with per-slice offsets inside a frame (2D acquisition)
        ds = pydicom.dcmread(p)
        for kw in ("TemporalPositionIdentifier", "NumberOfTemporalPositions", "TriggerTime", "TemporalResolution"):
            delattr(ds, kw)
        k = int(p.stem.split("_")[-1])
        t = int(p.stem.split("_")[-2])
        secs = t * 45 + k * 2.0
        ds.AcquisitionTime = f"10{int(secs // 60):02d}{secs % 60:09.6f}"
        ds.save_as(p)
    _shuffle_names(tmp_path, seed=5)
    arr, meta = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d)
    np.testing.assert_allclose(meta["frame_values"], [0.0, 45.0, 90.0])


def test_two_series_in_one_folder(tmp_path, vol4d):
    write_dicom_series(
        vol4d[0], AFFINE, tmp_path, series_description="t2_tse_tra", series_number=1, file_prefix="A", uid_seed="s"
    )
    write_dicom_series(
        vol4d[:2],
        AFFINE,
        tmp_path,
        series_description="ep2d_diff",
        series_number=2,
        frame_axis="bvalue",
        frame_values=[0, 800],
        file_prefix="B",
        uid_seed="s",
    )
    groups = scan_dicom_folder(tmp_path)
    assert sorted(len(v) for v in groups.values()) == [4, 8]
    with pytest.raises(ValueError, match="holds 2 series"):
        read_dicom_series(tmp_path)
    uid = next(u for u, h in groups.items() if len(h) == 8)
    arr, meta = read_dicom_series(tmp_path, series_uid=uid)
    assert arr.shape == (8, 6, 4, 2) and meta["frame_values"] == [0.0, 800.0]
    uid3 = next(u for u, h in groups.items() if len(h) == 4)
    _, meta3 = read_dicom_series(tmp_path, series_uid=uid3, protocol="brain")
    assert meta3["sequence"] == "T2"


@pytest.mark.parametrize(
    "kwargs, protocol, expected",
    [
        ({"series_description": "t1_fl3d_tra"}, "breast", "T1"),
        ({"series_description": "t1_fl3d_tra", "scan_options": "FS"}, "breast", "FatSatT1"),
        ({"series_description": "T1 SPAIR"}, "breast", "FatSatT1"),
        ({"series_description": "t1_mprage", "contrast_agent": "Gadobutrol"}, "brain", "T1Gd"),
        ({"series_description": "T1 post"}, "brain", "T1Gd"),
        ({"series_description": "t2_tse_tra"}, "breast", "T2"),
        ({"series_description": "t2_flair_tra"}, "brain", "FLAIR"),
        ({"series_description": "ax dyn", "scan_options": ["FS"]}, "breast", "FatSatDCE"),
        ({"series_description": "washin map"}, "breast", "WashIn"),
        ({"series_description": "wash-out"}, "breast", "WashOut"),
        ({"series_description": "", "repetition_time_ms": 4000.0, "echo_time_ms": 100.0}, "brain", "T2"),
        ({"series_description": "localizer"}, "breast", None),
    ],
)
def test_identify_sequence(tmp_path, kwargs, protocol, expected):
    paths = write_dicom_series(np.zeros((4, 4, 2), np.float32), np.eye(4), tmp_path, **kwargs)
    assert identify_sequence([pydicom.dcmread(p) for p in paths], protocol) == expected


def test_identify_4d_from_frames(tmp_path):
    paths = write_dicom_series(
        np.zeros((2, 4, 4, 2), np.float32),
        np.eye(4),
        tmp_path,
        series_description="s",
        frame_axis="time",
        frame_values=[0, 60],
        scan_options="FS",
    )
    headers = [pydicom.dcmread(p) for p in paths]
    assert identify_sequence(headers, "breast", frame_axis="time", n_frames=2) == "FatSatDCE"
    assert identify_sequence(headers, "brain", frame_axis="time", n_frames=2) is None


def test_writer_rejects_bad_input(tmp_path, vol4d):
    with pytest.raises(ValueError, match="pass frame_axis"):
        write_dicom_series(vol4d, AFFINE, tmp_path)
    with pytest.raises(ValueError, match="2 bvalue value"):
        write_dicom_series(vol4d, AFFINE, tmp_path, frame_axis="bvalue", frame_values=[0, 800])
    sheared = AFFINE.copy()
    sheared[0, 2] += 0.5
    with pytest.raises(ValueError, match="sheared"):
        write_dicom_series(vol4d[0], sheared, tmp_path)
    with pytest.raises(ValueError, match=r"\(X, Y, Z\) or \(T, X, Y, Z\)"):
        write_dicom_series(np.zeros((4, 4)), AFFINE, tmp_path)


def test_writer_takes_metatensor_meta(tmp_path, vol4d):
    from monai.data import MetaTensor

    mt = MetaTensor(vol4d, affine=AFFINE, meta={"frame_axis": "bvalue", "frame_values": [0.0, 150.0, 800.0]})
    write_dicom_series(mt, out_dir=tmp_path)
    arr, meta = read_dicom_series(tmp_path)
    assert meta["frame_values"] == [0.0, 150.0, 800.0]
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d)


def test_write_dicom_study_round_trip(tmp_path, vol4d):
    from monai.data import MetaTensor

    sample = {
        "T1": MetaTensor(vol4d[:1], affine=AFFINE),
        "FatSatT1": MetaTensor(vol4d[1:2], affine=AFFINE),
        "FatSatDCE": MetaTensor(vol4d, affine=AFFINE, meta={"frame_axis": "time", "frame_values": [0, 90, 180]}),
        "DWI": MetaTensor(vol4d, affine=AFFINE, meta={"frame_axis": "bvalue", "frame_values": [0, 800, 1500]}),
        "available": ["T1", "FatSatT1", "FatSatDCE", "DWI"],
        "subject": "P9",
    }
    written = write_dicom_study(sample, tmp_path / "P9" / "dicom", patient_id="P9", uid_seed="x")
    assert sorted(written) == ["DWI", "FatSatDCE", "FatSatT1", "T1"]
    headers = {n: pydicom.dcmread(p[0]) for n, p in written.items()}
    assert len({h.StudyInstanceUID for h in headers.values()}) == 1
    assert len({h.SeriesInstanceUID for h in headers.values()}) == 4
    assert headers["FatSatDCE"].ContrastBolusAgent == "GADOLINIUM" and headers["FatSatDCE"].ScanOptions == "FS"
    assert headers["DWI"].SeriesNumber == 8
    for name in written:
        arr, meta = read_dicom_series(tmp_path / "P9" / "dicom" / name)
        assert meta["sequence"] == name
        np.testing.assert_allclose(meta["affine"], AFFINE, atol=1e-4)
        np.testing.assert_array_equal(np.moveaxis(arr.reshape(8, 6, 4, -1), -1, 0), sample[name].numpy())


def test_registered_dicom_reader_is_auto_selected_for_folders(tmp_path, vol4d, monkeypatch):
    from monai.transforms import LoadImage
    from monai.transforms.io import array as io_array

    from monai_seq2seq.io import register_readers

    monkeypatch.setattr(io_array, "SUPPORTED_READERS", dict(io_array.SUPPORTED_READERS))  # undone after the test
    register_readers()
    write_dicom_series(vol4d, AFFINE, tmp_path, frame_axis="bvalue", frame_values=[0, 800, 1500])
    img = LoadImage(image_only=True, ensure_channel_first=True)(str(tmp_path))
    assert tuple(img.shape) == (3, 8, 6, 4)
    assert img.meta["frame_values"] == [0.0, 800.0, 1500.0]
    img2 = LoadImage(reader="DicomSeriesReader", image_only=True, ensure_channel_first=True)(str(tmp_path))
    np.testing.assert_array_equal(img2.numpy(), vol4d)


def _enhanced_from_classic(paths, out_path, private_ipp=False):
    """Pack single-frame files into one enhanced-style multi-frame dataset (per-frame functional groups)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    classic = [pydicom.dcmread(p) for p in paths]
    ds = copy.deepcopy(classic[0])
    for kw in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "TemporalPositionIdentifier",
        "TriggerTime",
        "RescaleSlope",
        "RescaleIntercept",
    ):
        if kw in ds:
            delattr(ds, kw)
    if (0x0018, 0x9087) in ds:
        del ds[0x0018, 0x9087]
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = classic[0].ImageOrientationPatient
    measures = Dataset()
    measures.PixelSpacing = classic[0].PixelSpacing
    measures.SliceThickness = classic[0].SliceThickness
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    frames = []
    for c in classic:
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = c.ImagePositionPatient
        item.PlanePositionSequence = Sequence([pos])
        if (0x0018, 0x9087) in c:
            diff = Dataset()
            diff.add_new(0x00189087, "FD", c[0x0018, 0x9087].value)
            item.MRDiffusionSequence = Sequence([diff])
        scale = Dataset()
        scale.RescaleSlope, scale.RescaleIntercept = c.RescaleSlope, c.RescaleIntercept
        item.PixelValueTransformationSequence = Sequence([scale])
        if private_ipp:  # a vendor macro that repeats a (wrong) position must not win
            block = item.private_block(0x2005, "Philips MR Imaging DD 005", create=True)
            vendor = Dataset()
            vendor.ImagePositionPatient = [0, 0, 0]
            block.add_new(0x0E, "SQ", Sequence([vendor]))
        frames.append(item)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(classic)
    ds.PixelData = b"".join(c.PixelData for c in classic)
    ds.save_as(out_path, enforce_file_format=True)


def test_enhanced_multiframe_4d_dwi(tmp_path, vol4d):
    paths = write_dicom_series(vol4d, AFFINE, tmp_path / "classic", frame_axis="bvalue", frame_values=[800, 0, 1500])
    order = list(range(len(paths)))
    random.Random(0).shuffle(order)  # frames stored in a scrambled order inside the file
    (tmp_path / "enh").mkdir()
    _enhanced_from_classic([paths[i] for i in order], tmp_path / "enh" / "dwi.dcm", private_ipp=True)
    arr, meta = read_dicom_series(tmp_path / "enh")
    assert meta["frame_axis"] == "bvalue" and meta["frame_values"] == [0.0, 800.0, 1500.0]
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d[[1, 0, 2]])
    np.testing.assert_allclose(meta["affine"], AFFINE, atol=1e-4)


def test_writer_is_deterministic_with_uid_seed(tmp_path, vol4d):
    a = write_dicom_series(vol4d[0], AFFINE, tmp_path / "a", uid_seed="seed")
    b = write_dicom_series(vol4d[0], AFFINE, tmp_path / "b", uid_seed="seed")
    c = write_dicom_series(vol4d[0], AFFINE, tmp_path / "c", uid_seed="other")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert pydicom.dcmread(a[0]).SeriesInstanceUID != pydicom.dcmread(c[0]).SeriesInstanceUID


def test_dce_as_one_series_per_timepoint(tmp_path, vol4d):
    """Some scanners store each DCE timepoint as its own series: a list of UIDs reads them as one 4D series."""
    uids = []
    for t, secs in enumerate([0.0, 80.0, 160.0]):
        paths = write_dicom_series(
            vol4d[t],
            AFFINE,
            tmp_path,
            series_description="t1_vibe_dyn",
            series_number=t + 1,
            series_time_s=9 * 3600.0 + secs,
            file_prefix=f"S{t}",
            uid_seed="d",
        )
        uids.append(pydicom.dcmread(paths[0]).SeriesInstanceUID)
    _shuffle_names(tmp_path, seed=2)
    assert len(set(uids)) == 3
    arr, meta = read_dicom_series(tmp_path, series_uid=list(reversed(uids)))
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d)
    assert meta["frame_axis"] == "time" and meta["frame_values"] == [0.0, 80.0, 160.0]
    assert meta["sequence"] == "DCE"


def test_enhanced_file_nibabel_refuses_is_read(tmp_path, vol4d):
    """Why io/dicom_multiframe.py is ours: nibabel's MultiframeWrapper needs DimensionIndexValues in every frame
    (and wrapper_from_data the Enhanced MR SOP class); files that place frames by their functional groups alone,
    as the enhanced-style files built here, are refused by nibabel and read by us."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    paths = write_dicom_series(vol4d, AFFINE, tmp_path / "classic", frame_axis="bvalue", frame_values=[0, 800, 1500])
    (tmp_path / "enh").mkdir()
    _enhanced_from_classic(paths, tmp_path / "enh" / "dwi.dcm")
    ds = pydicom.dcmread(tmp_path / "enh" / "dwi.dcm")
    with pytest.raises(dicomwrappers.WrapperError, match="Not enough information for affine"):
        _ = dicomwrappers.wrapper_from_data(ds).affine
    with pytest.raises(dicomwrappers.WrapperError, match="DimensionIndexValues"):
        _ = dicomwrappers.MultiframeWrapper(ds).image_shape
    arr, meta = read_dicom_series(tmp_path / "enh")
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), vol4d)
    np.testing.assert_allclose(meta["affine"], AFFINE, atol=1e-4)
