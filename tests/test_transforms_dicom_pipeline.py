"""End to end: a breast subject given as DICOM series -> load -> sort -> resample -> normalise -> 2.5D -> back
to NIfTI on the scanner grid, with the DICOM geometry as the NIfTI affine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged

from monai_seq2seq.core import BREAST, DCE_TIMES_S, DWI_BVALUES
from monai_seq2seq.io import DicomSeriesReader, FrameValuesError, save_volume, write_dicom_study
from monai_seq2seq.transforms import (
    CheckSequenced,
    FromSymmetricRange,
    MatchGridd,
    PercentileScaleIntensity,
    PercentileScaleIntensityd,
    ResampleFramesd,
    SelectBValuesd,
    SlicesToVolume,
    SortFramesd,
    ToSymmetricRanged,
    VolumeToSlicesd,
    WashInOutd,
)

ACQUIRED_TIMES = [0.0, 65.0, 130.0, 195.0, 260.0, 325.0, 390.0, 455.0]  # 8 frames, not the protocol's 6
ACQUIRED_B = [0.0, 50.0, 800.0, 1500.0]  # b = 150 missing, b = 50 extra
SHAPE = (12, 10, 5)


def _affine() -> np.ndarray:
    th = 0.25
    a = np.eye(4)
    a[:3, :3] = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]]) @ np.diag(
        [0.7, 0.7, 3.0]
    )
    a[:3, 3] = [-40.0, 25.0, 12.0]
    return a


def _subject() -> dict:
    """A breast-like subject: a lesion that enhances fast and washes out, with restricted diffusion."""
    rng = np.random.default_rng(0)
    base = 400 + 30 * rng.random(SHAPE)
    lesion = np.zeros(SHAPE, bool)
    lesion[4:8, 3:7, 1:4] = True
    times = np.asarray(ACQUIRED_TIMES)
    curve = np.where(times > 0, 1.0 + 1.2 * (1 - np.exp(-times / 60.0)) - 0.0015 * times, 1.0)
    dce = np.stack([base * np.where(lesion, c, 1.0 + 0.1 * (t > 0)) for c, t in zip(curve, times, strict=True)])
    adc = np.where(lesion, 0.8e-3, 1.8e-3)
    dwi = np.stack([base * np.exp(-b * adc) for b in ACQUIRED_B])
    affine = torch.as_tensor(_affine())
    return {
        "T1": MetaTensor(base[None].astype(np.float32), affine=affine),
        "DCE": MetaTensor(
            dce.astype(np.float32), affine=affine, meta={"frame_axis": "time", "frame_values": ACQUIRED_TIMES}
        ),
        "DWI": MetaTensor(
            dwi.astype(np.float32), affine=affine, meta={"frame_axis": "bvalue", "frame_values": ACQUIRED_B}
        ),
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("P1") / "dicom"
    subject = _subject()
    write_dicom_study(subject, root, patient_id="P1", uid_seed="pipeline")
    return root, subject


def _pipeline(keys):
    return Compose(
        [
            LoadImaged(keys, reader=DicomSeriesReader(), ensure_channel_first=True, image_only=True),
            SortFramesd(["DCE", "DWI"]),
            ResampleFramesd("DCE", target_values=DCE_TIMES_S),
            SelectBValuesd("DWI", bvalues=DWI_BVALUES),
            WashInOutd("DCE"),
            CheckSequenced("breast", min_available=2),
            MatchGridd(keys, reference_key="T1"),
            PercentileScaleIntensityd(keys),
            ToSymmetricRanged(keys),
        ]
    )


def test_breast_dicom_to_network_and_back_to_nifti(study, tmp_path):
    root, subject = study
    keys = ["T1", "DCE", "DWI"]
    data = _pipeline(keys)({k: str(root / k) for k in keys})

    # the reader saw 8 timepoints and 4 b-values; the protocol's frames came out, in order
    assert data["DCE"].shape == (6, *SHAPE) and data["DCE"].meta["frame_values"] == list(DCE_TIMES_S)
    assert data["DWI"].shape == (4, *SHAPE) and data["DWI"].meta["frame_values"] == list(DWI_BVALUES)
    assert data["DWI"].meta["synthesised_bvalues"] == [150.0]
    assert data["WashIn"].shape == (1, *SHAPE) and data["WashOut"].shape == (1, *SHAPE)
    for key in keys:
        np.testing.assert_allclose(np.asarray(data[key].affine), _affine(), atol=1e-4)
        assert float(data[key].min()) >= -1 and float(data[key].max()) <= 1
    # the lesion enhances fast and washes out (about +0.77 and -0.14); the background gains 10 % and plateaus
    lesion = np.zeros(SHAPE, bool)
    lesion[4:8, 3:7, 1:4] = True
    wash_in, wash_out = data["WashIn"][0].numpy(), data["WashOut"][0].numpy()
    assert 0.6 < wash_in[lesion].mean() < 0.9 and wash_out[lesion].mean() < -0.1
    np.testing.assert_allclose(wash_in[~lesion], 0.1, atol=1e-3)
    np.testing.assert_allclose(wash_out[~lesion], 0.0, atol=1e-3)

    # 2.5D along the slice axis; an identity "network" on the slices; exact reassembly; inverse transforms
    slices = VolumeToSlicesd(keys, axis=-1, num_slices=3)(data)
    assert slices["DCE"].shape == (SHAPE[2], 6, 3, SHAPE[0], SHAPE[1])
    prediction = slices["DCE"].as_tensor().clone()
    volume = FromSymmetricRange()(SlicesToVolume(axis=-1)(prediction))
    low, high = data["DCE"].meta["intensity_range"]
    restored = PercentileScaleIntensity.unscale(volume, low, high)

    out = save_volume(
        restored,
        np.asarray(data["DCE"].affine),
        tmp_path / "P1_DCE_synthetic.nii.gz",
        description="synthetic DCE (identity)",
        frame_axis="time",
        frame_values=data["DCE"].meta["frame_values"],
    )
    nii = nib.load(str(out))
    np.testing.assert_allclose(nii.affine, _affine(), atol=1e-4)
    assert nii.shape == (*SHAPE, 6)
    # voxels inside the percentile window come back to the source intensities at the protocol's timepoints:
    # frame 2 (180 s) lies between acquired 130 s and 195 s
    source = subject["DCE"].numpy()
    w = (180.0 - 130.0) / 65.0
    expected = (1 - w) * source[2] + w * source[3]
    got = np.asarray(nii.dataobj)[..., 2]
    inside = (expected > low) & (expected < high)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(got[inside], expected[inside], rtol=2e-3, atol=0.5)


def test_unexpected_frame_count_is_named(study):
    root, _ = study
    load = LoadImaged(["DCE"], reader=DicomSeriesReader(), ensure_channel_first=True, image_only=True)
    data = load({"DCE": str(root / "DCE")})
    with pytest.raises(FrameValuesError, match=r"DCE .* has 8 frames; sequence 'DCE' of the protocol expects 6"):
        CheckSequenced(BREAST)(data)
