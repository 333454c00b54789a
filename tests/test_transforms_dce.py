"""Frame transforms (sort, resample in time, count) and DCE wash-in/wash-out maps."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.phantoms.signal import wash_in_out as phantom_wash_in_out
from monai_seq2seq.transforms import (
    CheckFrameCount,
    CheckFrameCountd,
    ResampleFrames,
    ResampleFramesd,
    SortFrames,
    SortFramesd,
    WashInOut,
    WashInOutd,
)
from monai_seq2seq.transforms.dce import wash_in_out

AFFINE = torch.diag(torch.tensor([0.8, 0.8, 2.0, 1.0], dtype=torch.float64))


def _series(times, axis="time", shape=(3, 2, 2)):
    """Frames whose every voxel equals ``10 + 2 t`` plus a voxel offset: linear in time."""
    offset = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    data = torch.stack([10 + 2 * float(t) + offset for t in times])
    return MetaTensor(
        data, affine=AFFINE, meta={"frame_axis": axis, "frame_values": list(times), "filename_or_obj": "dce.nii.gz"}
    )


def test_sort_frames_permutes_data_and_meta():
    img = _series([90.0, 0.0, 180.0])
    out = SortFrames(expected_axis="time")(img)
    assert out.meta["frame_values"] == [0.0, 90.0, 180.0]
    torch.testing.assert_close(out.as_tensor(), _series([0.0, 90.0, 180.0]).as_tensor())
    torch.testing.assert_close(out.affine, AFFINE)
    arr = SortFrames(frame_values=[2, 1])(np.stack([np.full((2, 2, 2), 2.0), np.ones((2, 2, 2))]))
    assert isinstance(arr, np.ndarray) and arr[0].max() == 1.0
    with pytest.raises(FrameValuesError, match=r"dce.nii.gz.*duplicate frame values \[90.0\]"):
        SortFrames()(_series([0.0, 90.0, 90.0]))
    with pytest.raises(FrameValuesError, match="expected frame axis 'bvalue'"):
        SortFrames(expected_axis="bvalue")(img)
    with pytest.raises(FrameValuesError, match="has 3 frames but 2 frame values"):
        SortFrames(frame_values=[0, 1])(img.as_tensor())
    with pytest.raises(FrameValuesError, match="no 'frame_values'"):
        SortFrames()(torch.zeros(2, 2, 2, 2))


def test_resample_frames_is_linear_in_time_and_exact_on_acquired_frames():
    img = _series([0.0, 65.0, 130.0, 195.0, 260.0])
    targets = [0.0, 90.0, 130.0, 200.0, 260.0]
    out = ResampleFrames(targets)(img)
    assert out.shape == (5, 3, 2, 2) and out.meta["frame_values"] == targets
    torch.testing.assert_close(out.as_tensor(), _series(targets).as_tensor(), rtol=1e-6, atol=1e-4)
    assert torch.equal(out[2].as_tensor(), img[2].as_tensor())  # 130 s was acquired: copied bit for bit
    torch.testing.assert_close(out.affine, AFFINE)
    shuffled = _series([130.0, 0.0, 260.0, 65.0, 195.0])
    torch.testing.assert_close(ResampleFrames(targets)(shuffled).as_tensor(), out.as_tensor())


def test_resample_frames_errors_and_extrapolation():
    img = _series([0.0, 60.0, 120.0])
    with pytest.raises(FrameValuesError, match=r"\[180.0\] lie outside the acquired range \[0.0, 120.0\]"):
        ResampleFrames([0.0, 180.0])(img)
    held = ResampleFrames([0.0, 180.0], extrapolate=True)(img)
    torch.testing.assert_close(held[1].as_tensor(), img[2].as_tensor())
    with pytest.raises(FrameValuesError, match="duplicate"):
        ResampleFrames([0.0])(_series([0.0, 0.0]))
    with pytest.raises(FrameValuesError, match=r"outside the acquired range \[0.0, 0.0\]"):
        ResampleFrames([0.0, 30.0])(_series([0.0]))
    with pytest.raises(FrameValuesError, match="expected frame axis 'time'"):
        ResampleFrames([0.0])(_series([0.0, 1.0], axis="bvalue"))


def test_frame_count_check():
    img = _series([0.0, 1.0])
    assert CheckFrameCount(2)(img) is img
    with pytest.raises(FrameValuesError, match=r"dce.nii.gz' has 2 frames; expected 6"):
        CheckFrameCount(6)(img)
    with pytest.raises(FrameValuesError, match=r"DWI \(dce.nii.gz\) has 2 frames; expected 4"):
        CheckFrameCountd(["DCE", "DWI"], [2, 4])({"DCE": img, "DWI": img})


def test_frame_dict_twins_match_arrays():
    sample = {"DCE": _series([90.0, 0.0, 180.0]), "T1": _series([0.0])}
    out = SortFramesd(["DCE", "DWI"], allow_missing_keys=True)(sample)
    torch.testing.assert_close(out["DCE"].as_tensor(), SortFrames()(sample["DCE"]).as_tensor())
    out = ResampleFramesd("DCE", target_values=[0.0, 45.0])(sample)
    torch.testing.assert_close(out["DCE"].as_tensor(), ResampleFrames([0.0, 45.0])(sample["DCE"]).as_tensor())
    with pytest.raises(FrameValuesError, match=r"DCE \(dce.nii.gz\): requested"):
        ResampleFramesd("DCE", target_values=[500.0])(sample)


def test_wash_in_out_formula_numpy_torch_and_phantom_agree():
    series = np.array([[100.0, 0.0, 50.0], [180.0, 2.0, 50.0], [150.0, 4.0, 60.0]], dtype=np.float32)
    raw = {"min_signal_fraction": 0.0}  # no dark-voxel threshold: the plain ratios and the eps floor
    wash_in, wash_out = wash_in_out(series, **raw)
    np.testing.assert_allclose(wash_in, [0.8, 2.0 / 1e-6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(wash_out, [(150 - 180) / 180, 1.0, 0.2], rtol=1e-6)
    assert isinstance(wash_in, np.ndarray) and wash_in.dtype == np.float32
    t_in, t_out = wash_in_out(torch.as_tensor(series), **raw)
    assert isinstance(t_in, torch.Tensor)
    np.testing.assert_array_equal(t_out.numpy(), wash_out)
    p_in, p_out = phantom_wash_in_out(series, **raw)
    np.testing.assert_array_equal(p_in, wash_in)
    np.testing.assert_array_equal(p_out, wash_out)
    late_in, late_out = wash_in_out(series, early_frame=2, late_frame=2, **raw)
    np.testing.assert_allclose(late_in, [0.5, 4.0 / 1e-6, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(late_out, 0.0)
    # the default threshold (0.1 x each denominator frame's 99th percentile) zeroes the dark voxel: S0 = 0 < 9.9
    d_in, d_out = wash_in_out(series)
    np.testing.assert_allclose(d_in, [0.8, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(d_out, [(150 - 180) / 180, 0.0, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(phantom_wash_in_out(series)[0], d_in)


def test_wash_in_out_zeroes_only_voxels_too_dark_to_measure():
    rng = np.random.default_rng(3)
    bright = rng.uniform(400.0, 600.0, size=1000)  # fat-like, never thresholded
    dark = rng.uniform(10.0, 40.0, size=300)  # below 0.1 x p99 (about 60)
    s0 = np.concatenate([bright, dark]).astype(np.float32)
    series = np.stack([s0, s0 * 1.5 + rng.normal(0, 5, s0.shape), s0 * 1.2]).astype(np.float32)
    wash_in, wash_out = wash_in_out(series)
    plain_in, plain_out = wash_in_out(series, min_signal_fraction=0.0)
    np.testing.assert_array_equal(wash_in[:1000], plain_in[:1000])
    np.testing.assert_array_equal(wash_out[:1000], plain_out[:1000])
    assert np.all(wash_in[1000:] == 0) and np.all(wash_out[1000:] == 0)
    assert np.std(plain_in[1000:]) > 3 * np.std(plain_in[:1000])  # what the threshold removes is the noisy part
    big = torch.rand(2, 17_000_000) + 1.0  # past torch.quantile's 16 M limit
    big_in, _ = wash_in_out(big, min_signal_fraction=0.5)
    assert big_in.shape == (17_000_000,) and bool(torch.isfinite(big_in).all())
    with pytest.raises(ValueError, match="min_signal_fraction"):
        wash_in_out(series, min_signal_fraction=1.0)
    with pytest.raises(ValueError, match="min_signal_fraction"):
        WashInOut(min_signal_fraction=-0.1)


def test_wash_in_out_transform_and_errors():
    img = _series([0.0, 90.0, 450.0])
    maps = WashInOut()(img)
    assert maps.shape == (2, 3, 2, 2) and "frame_values" not in maps.meta and "wash-in" in maps.meta["formula"]
    torch.testing.assert_close(maps.affine, AFFINE)
    expected_in, expected_out = wash_in_out(img.as_tensor())
    torch.testing.assert_close(maps[0].as_tensor(), expected_in)
    torch.testing.assert_close(WashInOut("out")(img)[0].as_tensor(), expected_out)
    with pytest.raises(ValueError, match="at least 2 frames"):
        WashInOut()(_series([0.0]))
    bad = img.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        WashInOut()(bad)
    with pytest.raises(FrameValuesError, match="frame axis is 'bvalue'"):
        WashInOut()(_series([0.0, 1.0], axis="bvalue"))
    with pytest.raises(ValueError, match="output"):
        WashInOut("peak")


def test_wash_in_out_dict_adds_keys_and_refuses_overwrite():
    img = _series([0.0, 90.0, 450.0])
    out = WashInOutd("DCE")({"DCE": img, "available": ["DCE"], "subject": "s"})
    assert out["WashIn"].shape == (1, 3, 2, 2) and out["available"] == ["DCE", "WashIn", "WashOut"]
    torch.testing.assert_close(out["WashOut"].as_tensor(), WashInOut("out")(img).as_tensor())
    with pytest.raises(ValueError, match=r"subject 's' already has \['WashIn'\]"):
        WashInOutd("DCE")({"DCE": img, "WashIn": img[:1], "subject": "s"})
    again = WashInOutd("DCE", overwrite=True)({"DCE": img, "WashIn": img[:1]})
    torch.testing.assert_close(again["WashIn"].as_tensor(), out["WashIn"].as_tensor())
    assert WashInOutd("DCE", allow_missing_keys=True)({"T1": img}) == {"T1": img}
    with pytest.raises(KeyError, match="DCE"):
        WashInOutd("DCE")({"T1": img})
