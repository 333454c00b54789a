"""NIfTI 3D/4D reader with sidecar frame values (monai_seq2seq.io.nifti, .sidecar)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, LoadImage, LoadImaged

from monai_seq2seq.io import (
    FrameValuesError,
    Seq2SeqNiftiReader,
    UnreadableFileError,
    load_sequence,
    read_frame_info,
    register_readers,
    sidecar_paths,
    write_frame_info,
)

AFFINE = np.array([[0.0, -1.5, 0.0, 12.0], [0.9, 0.0, 0.0, -30.0], [0.0, 0.0, 2.0, 7.5], [0, 0, 0, 1]])


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


@pytest.fixture()
def vol4d():
    return np.arange(8 * 6 * 4 * 3, dtype=np.float32).reshape(8, 6, 4, 3)  # (x, y, z, t)


def test_sidecar_paths(tmp_path):
    j, b = sidecar_paths(tmp_path / "s1_DCE.nii.gz")
    assert j == tmp_path / "s1_DCE.json" and b == tmp_path / "s1_DCE.bval"
    j, b = sidecar_paths(tmp_path / "s1_DWI.nii")
    assert j.name == "s1_DWI.json" and b.name == "s1_DWI.bval"


def test_3d_channel_first_and_affine(tmp_path):
    data = np.random.default_rng(0).random((8, 6, 4)).astype(np.float32)
    path = _save(tmp_path / "s1_T1.nii.gz", data)
    img = LoadImage(reader=Seq2SeqNiftiReader(), image_only=True, ensure_channel_first=True)(path)
    assert isinstance(img, MetaTensor)
    assert tuple(img.shape) == (1, 8, 6, 4)
    np.testing.assert_allclose(img[0].numpy(), data)
    np.testing.assert_allclose(img.affine.numpy(), AFFINE, atol=1e-6)
    assert "frame_axis" not in img.meta and "frame_values" not in img.meta


def test_4d_dce_volume_timing_loadimaged(tmp_path, vol4d):
    path = _save(tmp_path / "s1_DCE.nii.gz", vol4d)
    (tmp_path / "s1_DCE.json").write_text(json.dumps({"VolumeTiming": [30.0, 120.0, 210.5], "RepetitionTime": 4}))
    out = LoadImaged("DCE", reader=Seq2SeqNiftiReader())({"DCE": str(path)})
    out = EnsureChannelFirstd("DCE")(out)
    img = out["DCE"]
    assert tuple(img.shape) == (3, 8, 6, 4)
    for t in range(3):
        np.testing.assert_array_equal(img[t].numpy(), vol4d[..., t])
    np.testing.assert_allclose(img.affine.numpy(), AFFINE, atol=1e-6)
    assert img.meta["frame_axis"] == "time"
    assert img.meta["frame_values"] == [0.0, 90.0, 180.5]  # seconds after the first frame


@pytest.mark.parametrize("how", ["bval", "json"])
def test_4d_dwi_bvalues(tmp_path, vol4d, how):
    path = _save(tmp_path / "s1_DWI.nii", vol4d)
    if how == "bval":
        (tmp_path / "s1_DWI.bval").write_text("0 800\t1500\n")
    else:
        (tmp_path / "s1_DWI.json").write_text(json.dumps({"BValues": [0, 800, 1500]}))
    img = load_sequence(path)
    assert tuple(img.shape) == (3, 8, 6, 4)
    assert img.meta["frame_axis"] == "bvalue"
    assert img.meta["frame_values"] == [0.0, 800.0, 1500.0]
    np.testing.assert_array_equal(img[2].numpy(), vol4d[..., 2])


def test_register_readers_by_name(tmp_path, vol4d, monkeypatch):
    from monai.transforms.io import array as io_array

    monkeypatch.setattr(io_array, "SUPPORTED_READERS", dict(io_array.SUPPORTED_READERS))  # undone after the test
    path = _save(tmp_path / "s1_DWI.nii.gz", vol4d)
    write_frame_info(path, "bvalue", [0, 150, 800])
    assert "seq2seqniftireader" in register_readers()
    img = LoadImage(reader="Seq2SeqNiftiReader", image_only=True, ensure_channel_first=True)(path)
    assert img.meta["frame_values"] == [0.0, 150.0, 800.0]
    auto = LoadImage(image_only=True, ensure_channel_first=True)(path)  # ours is tried first once registered
    assert auto.meta["frame_axis"] == "bvalue"
    assert isinstance(img, torch.Tensor)


def test_write_frame_info_round_trip(tmp_path):
    p = tmp_path / "s2_DCE.nii.gz"
    side = write_frame_info(p, "time", [0, 90, 180], extra={"ContrastBolusIngredient": "GADOLINIUM"})
    assert side == tmp_path / "s2_DCE.json"
    assert json.loads(side.read_text())["VolumeTiming"] == [0.0, 90.0, 180.0]
    assert read_frame_info(p, n_frames=3) == ("time", [0.0, 90.0, 180.0])
    assert read_frame_info(tmp_path / "none.nii.gz") is None
    assert list(tmp_path.glob("*.tmp")) == []


def test_frame_count_mismatch(tmp_path, vol4d):
    path = _save(tmp_path / "s1_DCE.nii.gz", vol4d)
    (tmp_path / "s1_DCE.json").write_text(json.dumps({"VolumeTiming": [0, 60]}))
    with pytest.raises(FrameValuesError, match=r"2 time value\(s\) \[0.0, 60.0\] for an image with 3 frame"):
        load_sequence(path)


def test_repeated_bvalues_are_directions_and_times_may_not_repeat(tmp_path, vol4d):
    """Before: an FSL .bval with repeated b-values (diffusion directions) was refused ('duplicate bvalue')."""
    path = _save(tmp_path / "s1_DWI.nii.gz", vol4d)
    (tmp_path / "s1_DWI.bval").write_text("0 800 800")
    img = load_sequence(path)
    assert img.meta["frame_axis"] == "bvalue" and img.meta["frame_values"] == [0.0, 800.0, 800.0]
    path = _save(tmp_path / "s1_DCE.nii.gz", vol4d)
    (tmp_path / "s1_DCE.json").write_text(json.dumps({"VolumeTiming": [0, 60, 60]}))
    with pytest.raises(FrameValuesError, match=r"duplicate time value\(s\) \[60.0\]"):
        load_sequence(path)
    (tmp_path / "s1_DCE.json").write_text(json.dumps({"VolumeTiming": [0, 120, 60]}))
    with pytest.raises(FrameValuesError, match="must increase"):
        load_sequence(path)


def test_contradicting_sidecars(tmp_path, vol4d):
    path = _save(tmp_path / "s1_DWI.nii.gz", vol4d)
    (tmp_path / "s1_DWI.bval").write_text("0 800 1500")
    (tmp_path / "s1_DWI.json").write_text(json.dumps({"BValues": [0, 1000, 1500]}))
    with pytest.raises(FrameValuesError, match="contradict"):
        load_sequence(path)


def test_require_frame_values_and_axis(tmp_path, vol4d):
    path = _save(tmp_path / "s1_DCE.nii.gz", vol4d)
    with pytest.raises(FrameValuesError, match="has no sidecar"):
        load_sequence(path, require_frame_values=True)
    assert "frame_values" not in load_sequence(path).meta  # tolerated by default
    write_frame_info(path, "bvalue", [0, 1, 2])
    with pytest.raises(FrameValuesError, match="expected frame axis 'time'"):
        load_sequence(path, frame_axis="time")


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "s1_T2.nii.gz"
    bad.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(UnreadableFileError, match="s1_T2.nii.gz"):
        load_sequence(bad)
    with pytest.raises(UnreadableFileError, match="missing.nii.gz"):
        load_sequence(tmp_path / "missing.nii.gz")
    good = _save(tmp_path / "s1_T1.nii", np.zeros((8, 6, 4), np.float32))
    truncated = tmp_path / "s1_FLAIR.nii"
    truncated.write_bytes(good.read_bytes()[:400])
    with pytest.raises(UnreadableFileError, match="s1_FLAIR.nii"):
        load_sequence(truncated)
    broken_json = _save(tmp_path / "s1_DCE.nii.gz", np.zeros((8, 6, 4, 2), np.float32))
    (tmp_path / "s1_DCE.json").write_text("{not json")
    with pytest.raises(UnreadableFileError, match="s1_DCE.json"):
        load_sequence(broken_json)


def test_loadimaged_reports_the_specific_error(tmp_path):
    bad = tmp_path / "s1_T2.nii.gz"
    bad.write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(UnreadableFileError, match="s1_T2.nii.gz"):
        LoadImaged("T2", reader=Seq2SeqNiftiReader())({"T2": str(bad)})


def test_multi_direction_dwi_averaged_to_the_protocol_bvalues(tmp_path):
    """b=0 once and 2 b-values x 6 directions (a small 64-direction .bval): read, averaged by b-value, selected."""
    from monai_seq2seq.core import DWI_BVALUES
    from monai_seq2seq.transforms import MatchProtocolFramesd

    bvals = [0.0] + [150.0] * 6 + [800.0] * 6 + [1500.0] * 6
    rng = np.random.default_rng(0)
    base = np.stack([1000.0 * np.exp(-b * 1e-3) * np.ones((4, 3, 2)) for b in bvals], axis=-1)
    noise = rng.normal(0, 5, base.shape)
    path = _save(tmp_path / "s1_DWI.nii.gz", (base + noise).astype(np.float32))
    (tmp_path / "s1_DWI.bval").write_text(" ".join(f"{b:g}" for b in bvals) + "\n")
    img = load_sequence(path)
    assert img.shape[0] == 19 and img.meta["frame_values"] == bvals
    out = MatchProtocolFramesd("DWI", "breast")({"DWI": img})["DWI"]
    assert out.shape[0] == 4 and out.meta["frame_values"] == list(DWI_BVALUES)
    expected = np.stack([(base + noise)[..., [i for i, v in enumerate(bvals) if v == b]].mean(-1) for b in DWI_BVALUES])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    write_frame_info(tmp_path / "s2_DWI.nii.gz", "bvalue", bvals)  # the writer keeps repeated b-values too
    assert (tmp_path / "s2_DWI.bval").read_text().split() == [f"{b:g}" for b in bvals]
