"""The one NIfTI writer (io/nifti_writer.py): headers, affines and sidecars as nibabel reads them back, and the
bytes of the two writers it replaced (inference/nifti_out.save_volume, phantoms/writer.save_nifti)."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.io import FrameValuesError, affine_of, read_frame_info, save_nifti, save_volume

AFFINE = np.array([[-0.9, 0.1, 0.0, 90.0], [0.1, 0.9, 0.0, -126.0], [0.0, 0.0, 2.5, -72.0], [0.0, 0.0, 0.0, 1.0]])


def _volume(frames: int) -> torch.Tensor:
    return torch.arange(frames * 4 * 5 * 3, dtype=torch.float32).reshape(frames, 4, 5, 3) / 7.0


def _old_save_volume_bytes(volume, affine, path, description, time_axis):
    """The recipe of the former inference/nifti_out.save_volume, step by step, as a reference for the bytes."""
    data = volume.numpy()
    array = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    image = nib.Nifti1Image(array.astype(np.float32), affine)
    image.header["descrip"] = description.encode()[:79]
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec" if time_axis else None)
    nib.save(image, str(path))
    return path.read_bytes()


def _old_save_nifti_bytes(array, affine, path, frame_step):
    """The recipe of the former phantoms/writer.save_nifti."""
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if array.ndim == 4 and frame_step is not None:
        zooms = list(img.header.get_zooms())
        zooms[3] = float(frame_step)
        img.header.set_zooms(zooms)
    nib.save(img, str(path))
    return path.read_bytes()


@pytest.mark.parametrize("frames, axis", [(1, None), (3, "time"), (3, "bvalue")])
def test_save_volume_bytes_as_before(tmp_path, frames, axis):
    volume = _volume(frames)
    values = {"time": [0.0, 60.0, 120.0], "bvalue": [0.0, 150.0, 800.0]}.get(axis)
    out = save_volume(
        volume, AFFINE, tmp_path / "new" / "s_X.nii.gz", "SYNTHETIC X", frame_axis=axis, frame_values=values
    )
    (tmp_path / "old").mkdir()
    expected = _old_save_volume_bytes(volume, AFFINE, tmp_path / "old" / "s_X.nii.gz", "SYNTHETIC X", axis == "time")
    assert out.read_bytes() == expected


@pytest.mark.parametrize("dtype, frame_step", [(np.float32, None), (np.uint8, None), (np.float32, 65.0)])
def test_save_nifti_bytes_as_before(tmp_path, dtype, frame_step):
    array = (np.arange(4 * 5 * 3 * (2 if frame_step else 1)) % 7).astype(dtype).reshape(4, 5, 3, -1).squeeze()
    out = save_nifti(array, AFFINE, tmp_path / "new" / "a.nii.gz", frame_step=frame_step)
    (tmp_path / "old").mkdir()
    assert out.read_bytes() == _old_save_nifti_bytes(array, AFFINE, tmp_path / "old" / "a.nii.gz", frame_step)


def test_save_volume_4d_time_reads_back(tmp_path):
    volume = _volume(3)
    path = save_volume(
        volume,
        AFFINE,
        tmp_path / "s1" / "s1_DCE_synthetic.nii.gz",
        description="SYNTHETIC DCE from T1+T2 " * 5,
        sidecar={"Synthetic": True, "Sources": ["T1", "T2"]},
        frame_axis="time",
        frame_values=[30.0, 90.0, 150.0],
    )
    img = nib.load(str(path))
    assert img.shape == (4, 5, 3, 3) and img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.moveaxis(volume.numpy(), 0, -1))
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
    np.testing.assert_allclose(img.header.get_qform(), AFFINE, atol=1e-5)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header["descrip"].tobytes().rstrip(b"\0") == ("SYNTHETIC DCE from T1+T2 " * 5).encode()[:79]
    sidecar = json.loads((tmp_path / "s1" / "s1_DCE_synthetic.json").read_text())
    assert list(sidecar.items()) == [
        ("Synthetic", True),
        ("Sources", ["T1", "T2"]),
        ("VolumeTiming", [30.0, 90.0, 150.0]),
    ]
    assert not (tmp_path / "s1" / "s1_DCE_synthetic.bval").exists()
    assert read_frame_info(path, n_frames=3) == ("time", [0.0, 60.0, 120.0])


def test_save_volume_4d_bvalue_writes_json_and_bval(tmp_path):
    path = save_volume(
        _volume(3), AFFINE, tmp_path / "s_DWI.nii.gz", "DWI", sidecar={"Model": "m"}, frame_axis="bvalue",
        frame_values=[0, 150, 800],
    )  # fmt: skip
    assert nib.load(str(path)).header.get_xyzt_units() == ("mm", "unknown")
    assert json.loads((tmp_path / "s_DWI.json").read_text()) == {"Model": "m"}
    assert (tmp_path / "s_DWI.bval").read_text() == "0 150 800\n"
    assert read_frame_info(path, n_frames=3) == ("bvalue", [0.0, 150.0, 800.0])


def test_save_volume_3d_map_sidecar_takes_any_value(tmp_path):
    path = save_volume(
        _volume(1), AFFINE, tmp_path / "m.nii", "map", sidecar={"DifferentiationMap": True, "w": np.float32(0.5)}
    )
    assert nib.load(str(path)).shape == (4, 5, 3)
    assert json.loads((tmp_path / "m.json").read_text()) == {"DifferentiationMap": True, "w": "0.5"}
    assert read_frame_info(path) is None


def test_save_volume_refuses_bad_input_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"expects \(T, X, Y, Z\)"):
        save_volume(torch.zeros(4, 5, 3), AFFINE, tmp_path / "a.nii.gz", "x")
    with pytest.raises(FrameValuesError, match="must increase"):
        save_volume(_volume(3), AFFINE, tmp_path / "b.nii.gz", "x", frame_axis="time", frame_values=[0, 90, 60])
    assert list(tmp_path.iterdir()) == []


def test_save_nifti_keeps_dtype_frame_step_and_refuses_overwrite(tmp_path):
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1, 2, 0] = 1
    path = save_nifti(mask, AFFINE, tmp_path / "sub" / "seg.nii.gz")
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint8 and img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b""
    np.testing.assert_array_equal(np.asarray(img.dataobj), mask)
    with pytest.raises(FileExistsError, match="seg.nii.gz' exists; pass overwrite=True"):
        save_nifti(mask, AFFINE, path)
    save_nifti(np.zeros((4, 5, 3, 2), np.float32), AFFINE, path, overwrite=True, frame_step=65.0)
    assert nib.load(str(path)).header.get_zooms()[3] == 65.0


def test_affine_of():
    t = MetaTensor(torch.zeros(1, 2, 2, 2), affine=torch.as_tensor(AFFINE))
    np.testing.assert_allclose(affine_of(t), AFFINE)
    np.testing.assert_allclose(affine_of(type("O", (), {"meta": {"affine": AFFINE}})()), AFFINE)
    np.testing.assert_array_equal(affine_of(torch.zeros(2)), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        affine_of(type("O", (), {"meta": {"affine": np.eye(3)}})())
