"""Frames of 4D series (sort, resample along the frame axis, count) and DCE wash-in/wash-out maps.

Complements ``test_transforms_dce.py``: exactness of the interpolation, bit-exact copies of acquired frames,
type round trips (numpy, torch, MetaTensor), the one wash-in/out formula and the dictionary twins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.phantoms.signal import wash_in_out as phantom_wash_in_out
from monai_seq2seq.transforms.dce import WASH_FORMULA, WashInOut, WashInOutd, wash_in_out
from monai_seq2seq.transforms.frames import (
    CheckFrameCount,
    CheckFrameCountd,
    ResampleFrames,
    ResampleFramesd,
    SortFrames,
    SortFramesd,
)

SHAPE = (2, 3, 2)
AFFINE = torch.tensor(
    [[0.7, 0.0, 0.0, -10.0], [0.0, 0.7, 0.0, 5.0], [0.0, 0.0, 2.5, 1.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
)


def _meta_series(data, values, axis="time", filename="sub-01_dce.nii.gz"):
    return MetaTensor(
        torch.as_tensor(data),
        affine=AFFINE.clone(),
        meta={"frame_axis": axis, "frame_values": list(values), "filename_or_obj": filename},
    )


def _linear(times, dtype=torch.float64):
    """``(T, *SHAPE)`` frames with voxel ``v`` equal to ``a_v + b_v t``: linear in time, a different line per voxel."""
    n = int(np.prod(SHAPE))
    a = torch.linspace(100.0, 200.0, n, dtype=dtype).reshape(SHAPE)
    b = torch.linspace(-0.5, 1.5, n, dtype=dtype).reshape(SHAPE)
    return torch.stack([a + b * float(t) for t in times])


def _random(n_frames, seed=0, dtype=torch.float32):
    return torch.rand((n_frames, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- SortFrames


def test_sort_shuffled_frames_moves_data_and_meta_together():
    times = [240.0, 0.0, 120.5, 60.0, 30.25]
    data = _random(len(times))
    img = _meta_series(data, times)
    out = SortFrames(expected_axis="time")(img)

    assert isinstance(out, MetaTensor)
    assert out.meta["frame_values"] == sorted(times)
    assert out.meta["frame_axis"] == "time"
    for i, t in enumerate(sorted(times)):  # each output frame is the input frame acquired at that time
        assert torch.equal(out[i].as_tensor(), data[times.index(t)])
    torch.testing.assert_close(out.affine, AFFINE)
    assert img.meta["frame_values"] == times  # the input's meta is not reordered behind its data's back
    assert torch.equal(img.as_tensor(), data)


def test_sort_numpy_in_numpy_out_with_explicit_values():
    data = _random(3).numpy()
    out = SortFrames(frame_values=[3.0, 1.0, 2.0])(data)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, data[[1, 2, 0]])


def test_sort_duplicate_frame_values_are_named():
    img = _meta_series(_random(5), [0.0, 30.0, 60.0, 30.0, 60.0])
    with pytest.raises(FrameValuesError, match=r"sub-01_dce\.nii\.gz.*duplicate frame values \[30\.0, 60\.0\]"):
        SortFrames()(img)
    with pytest.raises(FrameValuesError, match=r"DCE of P7 has duplicate frame values \[5\.0\]"):
        SortFrames(frame_values=[5.0, 5.0])(torch.zeros(2, *SHAPE), name="DCE of P7")


# ---------------------------------------------------------------- ResampleFrames


def test_resample_linear_signal_is_exact_at_arbitrary_times():
    acquired = [130.0, 0.0, 250.0, 60.5]  # unsorted on purpose
    targets = [0.0, 17.25, 61.0, 99.9, 131.0, 249.999]
    out = ResampleFrames(targets)(_meta_series(_linear(acquired), acquired))
    assert out.shape == (len(targets), *SHAPE)
    assert out.meta["frame_values"] == targets and out.meta["frame_axis"] == "time"
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.as_tensor(), _linear(targets), rtol=0, atol=1e-9)
    torch.testing.assert_close(out.affine, AFFINE)


def test_resample_returns_acquired_frames_bit_exactly():
    acquired = [0.0, 0.1, 0.3, 7.7]
    # not linear, and magnitudes so far apart that ``low + 1 * (high - low)`` loses ``high``: only a copy is exact
    data = _random(4, seed=3) * torch.tensor([1e6, 1e-6, 1e6, 1e-6]).reshape(4, 1, 1, 1)
    targets = [0.3, 0.1, 7.7, 0.0, 0.1]
    out = ResampleFrames(targets)(_meta_series(data, acquired))
    for i, t in enumerate(targets):
        assert torch.equal(out[i].as_tensor(), data[acquired.index(t)]), t
    mid = ResampleFrames([0.2])(_meta_series(data, acquired))
    torch.testing.assert_close(mid[0].as_tensor(), 0.5 * (data[1] + data[2]), rtol=1e-6, atol=0)


def test_resample_outside_range_raises_unless_extrapolating():
    acquired = [10.0, 20.0, 40.0]
    data = _random(3, seed=1)
    img = _meta_series(data, acquired)
    with pytest.raises(
        FrameValuesError,
        match=r"sub-01_dce.*\[5\.0, 41\.0\] lie outside the acquired range "
        r"\[10\.0, 40\.0\]",
    ):
        ResampleFrames([5.0, 20.0, 41.0])(img)
    held = ResampleFrames([5.0, 20.0, 41.0, 1000.0], extrapolate=True)(img)
    assert held.meta["frame_values"] == [5.0, 20.0, 41.0, 1000.0]
    assert torch.equal(held[0].as_tensor(), data[0])  # below the range: first frame held
    assert torch.equal(held[1].as_tensor(), data[1])
    assert torch.equal(held[2].as_tensor(), data[2]) and torch.equal(held[3].as_tensor(), data[2])


def test_resample_single_frame():
    data = _random(1)
    img = _meta_series(data, [0.0])
    with pytest.raises(FrameValuesError, match="single frame cannot be interpolated"):
        ResampleFrames([0.0, 30.0])(img)
    assert torch.equal(ResampleFrames([0.0])(img).as_tensor(), data)
    held = ResampleFrames([0.0, 30.0], extrapolate=True)(img)
    assert torch.equal(held.as_tensor(), torch.cat([data, data]))


def test_resample_types_and_argument_checks():
    data = np.stack([np.zeros(SHAPE), np.ones(SHAPE)])  # float64 numpy without meta
    out = ResampleFrames([2.5, 10.0], frame_values=[0.0, 10.0])(data)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (2, *SHAPE)
    np.testing.assert_array_equal(out[0], 0.25)
    np.testing.assert_array_equal(out[1], 1.0)
    ints = ResampleFrames([5.0], frame_values=[0.0, 10.0])(
        torch.stack([torch.zeros(SHAPE, dtype=torch.int64), torch.ones(SHAPE, dtype=torch.int64)])
    )
    assert ints.dtype == torch.float32 and torch.equal(ints, torch.full((1, *SHAPE), 0.5))  # not truncated to 0
    with pytest.raises(FrameValuesError, match="no 'frame_values'"):
        ResampleFrames([1.0])(data)
    with pytest.raises(FrameValuesError, match="expected frame axis 'time', its meta says 'bvalue'"):
        ResampleFrames([0.0])(_meta_series(_random(2), [0.0, 1000.0], axis="bvalue"))
    with pytest.raises(ValueError, match="finite"):
        ResampleFrames([0.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        ResampleFrames([])


# ---------------------------------------------------------------- CheckFrameCount


def test_check_frame_count():
    img = _meta_series(_random(8), range(8))
    assert CheckFrameCount(8)(img) is img
    arr = _random(6).numpy()
    assert CheckFrameCount(6)(arr) is arr
    with pytest.raises(FrameValuesError, match=r"image 'sub-01_dce.nii.gz' has 8 frames; expected 6"):
        CheckFrameCount(6)(img)
    with pytest.raises(FrameValuesError, match=r"^DCE of P3 has 6 frames; expected 5"):
        CheckFrameCount(5, name="DCE of P3")(arr)


def test_check_frame_count_dict():
    sample = {"DCE": _meta_series(_random(6), range(6)), "DWI": _random(4)}
    assert CheckFrameCountd(["DCE", "DWI"], [6, 4])(sample)["DWI"] is sample["DWI"]
    with pytest.raises(FrameValuesError, match=r"^DWI has 4 frames; expected 6"):
        CheckFrameCountd(["DCE", "DWI"], np.int64(6))(sample)
    with pytest.raises(ValueError, match="2 expected counts for 1 keys"):
        CheckFrameCountd("DCE", [6, 4])
    with pytest.raises(KeyError):
        CheckFrameCountd(["DCE", "T2"], 6, allow_missing_keys=False)(sample)


# ---------------------------------------------------------------- wash-in / wash-out


def test_wash_in_out_hand_computed():
    # voxels: enhancing then washing out; persistent; zero pre-contrast signal (eps floor); flat
    series = np.array([[100.0, 0.0, 40.0, 7.0], [250.0, 3.0, 60.0, 7.0], [200.0, 6.0, 90.0, 7.0]], dtype=np.float32)
    raw = {"min_signal_fraction": 0.0}  # the plain ratios; the dark-voxel threshold is tested in test_transforms_dce
    wash_in, wash_out = wash_in_out(series, **raw)
    assert isinstance(wash_in, np.ndarray) and wash_in.dtype == np.float32 and wash_in.shape == (4,)
    np.testing.assert_allclose(wash_in, [1.5, 3.0 / 1e-6, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(wash_out, [-0.2, 1.0, 0.5, 0.0], rtol=1e-6)
    _, out_eps = wash_in_out(series, eps=10.0, **raw)
    np.testing.assert_allclose(out_eps, [-0.2, 0.3, 0.5, 0.0], rtol=1e-6)  # max(3, 10) = 10
    w_in, w_out = wash_in_out(series, pre_frame=1, early_frame=2, late_frame=0, **raw)
    np.testing.assert_allclose(w_in, [-0.2, 1.0, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(w_out, [-0.5, -1.0, -50.0 / 90.0, 0.0], rtol=1e-6)


def test_wash_in_out_torch_types_and_errors():
    series = torch.tensor([[[2.0, 4.0]], [[3.0, 2.0]], [[6.0, 1.0]]], dtype=torch.float64)
    wash_in, wash_out = wash_in_out(series)
    assert isinstance(wash_in, torch.Tensor) and not isinstance(wash_in, MetaTensor)
    assert wash_in.dtype == torch.float32 and wash_in.shape == (1, 2)
    torch.testing.assert_close(wash_in, torch.tensor([[0.5, -0.5]]))
    torch.testing.assert_close(wash_out, torch.tensor([[1.0, -0.5]]))
    with pytest.raises(ValueError, match="at least 2 frames.*got 1"):
        wash_in_out(series[:1])


def test_phantom_wash_in_out_is_the_transforms_formula():
    rng = np.random.default_rng(0)
    series = rng.uniform(0.0, 2.0, size=(6, 4, 3, 2)).astype(np.float32)
    series[0, 0, 0, 0] = 0.0  # exercises the eps floor as well
    p_in, p_out = phantom_wash_in_out(series, eps=1e-3)
    t_in, t_out = wash_in_out(series, eps=1e-3)
    assert p_in.dtype == np.float32 and p_out.dtype == np.float32 and p_in.shape == (4, 3, 2)
    np.testing.assert_array_equal(p_in, t_in)
    np.testing.assert_array_equal(p_out, t_out)
    np.testing.assert_allclose(p_in[1, 1, 1], (series[1, 1, 1, 1] - series[0, 1, 1, 1]) / series[0, 1, 1, 1], rtol=1e-6)
    q_in, _ = phantom_wash_in_out(series.tolist(), eps=1e-3)  # nested lists, as the phantom may pass
    assert isinstance(q_in, np.ndarray)
    np.testing.assert_array_equal(q_in, t_in)


def test_wash_in_out_transform():
    times = [0.0, 90.0, 450.0]
    img = _meta_series(_linear(times, torch.float32) + 1.0, times)
    img.meta["spacing"] = [0.7, 0.7, 2.5]
    both = WashInOut()(img)
    expected_in, expected_out = wash_in_out(img.as_tensor())
    assert isinstance(both, MetaTensor) and both.shape == (2, *SHAPE) and both.dtype == torch.float32
    assert torch.equal(both[0].as_tensor(), expected_in) and torch.equal(both[1].as_tensor(), expected_out)
    torch.testing.assert_close(both.affine, AFFINE)
    assert "frame_values" not in both.meta and "frame_axis" not in both.meta
    assert both.meta["spacing"] == [0.7, 0.7, 2.5]
    assert both.meta["derived_from"] == "sub-01_dce.nii.gz" and both.meta["formula"] == WASH_FORMULA
    assert isinstance(WASH_FORMULA, str) and "max(S[pre], eps)" in WASH_FORMULA
    assert img.meta["frame_values"] == times  # the input keeps its frame meta
    only_in, only_out = WashInOut("in")(img), WashInOut("out")(img)
    assert only_in.shape == (1, *SHAPE) and only_out.shape == (1, *SHAPE)
    assert torch.equal(only_in[0].as_tensor(), expected_in) and torch.equal(only_out[0].as_tensor(), expected_out)
    arr = WashInOut()(img.numpy().astype(np.float64))  # numpy in, numpy float32 out
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, both.numpy())


def test_wash_in_out_transform_errors():
    with pytest.raises(ValueError, match="at least 2 frames"):
        WashInOut()(_meta_series(_random(1), [0.0]))
    bad = _meta_series(_random(3) + 1.0, [0.0, 60.0, 120.0])
    bad[2, 1, 1, 1] = float("nan")
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"sub-01_dce.nii.gz' has 2 non-finite voxels \(1 NaN, 1 Inf\)"):
        WashInOut()(bad)
    with pytest.raises(FrameValuesError, match="frame axis is 'bvalue'"):
        WashInOut()(_meta_series(_random(3), [0.0, 500.0, 1000.0], axis="bvalue"))
    with pytest.raises(ValueError, match="'both', 'in' or 'out'"):
        WashInOut("peak")
    plain = WashInOut()(_random(2) + 1.0)  # no frame meta at all: accepted
    assert type(plain) is torch.Tensor and plain.shape == (2, *SHAPE)


def test_wash_in_out_dict_creates_keys_and_refuses_overwrite():
    times = [0.0, 90.0, 450.0]
    img = _meta_series(_random(3, seed=5) + 0.5, times)
    out = WashInOutd("DCE")({"DCE": img, "T1": _random(1)})
    assert set(out) == {"DCE", "T1", "WashIn", "WashOut"} and out["DCE"] is img
    assert out["WashIn"].shape == (1, *SHAPE) and out["WashOut"].shape == (1, *SHAPE)
    assert torch.equal(out["WashIn"].as_tensor(), WashInOut("in")(img).as_tensor())
    assert torch.equal(out["WashOut"].as_tensor(), WashInOut("out")(img).as_tensor())
    torch.testing.assert_close(out["WashOut"].affine, AFFINE)

    named = WashInOutd("DCE", wash_in_key="wi", wash_out_key="wo")({"DCE": img})
    assert set(named) == {"DCE", "wi", "wo"}

    acquired = torch.zeros(1, *SHAPE)
    with pytest.raises(ValueError, match=r"already has \['WashOut'\].*overwrite=True"):
        WashInOutd("DCE")({"DCE": img, "WashOut": acquired})
    again = WashInOutd("DCE", overwrite=True)({"DCE": img, "WashOut": acquired})
    assert torch.equal(again["WashOut"].as_tensor(), out["WashOut"].as_tensor())
    kept = WashInOutd("DCE", keep_existing=True)({"DCE": img, "WashOut": acquired, "available": ["DCE", "WashOut"]})
    assert kept["WashOut"] is acquired and kept["available"] == ["DCE", "WashOut", "WashIn"]
    assert torch.equal(kept["WashIn"].as_tensor(), out["WashIn"].as_tensor())
    both = {"DCE": img, "WashIn": acquired, "WashOut": acquired}
    assert WashInOutd("DCE", keep_existing=True)(dict(both)) == both
    with pytest.raises(ValueError, match="contradict"):
        WashInOutd("DCE", overwrite=True, keep_existing=True)


def test_derive_missing_computes_what_the_protocol_derives_and_keeps_the_rest():
    from monai_seq2seq.core.protocols import Protocol, SequenceSpec
    from monai_seq2seq.transforms import DeriveMissingd

    img = _meta_series(_random(3, seed=6) + 0.5, [0.0, 90.0, 450.0])
    out = DeriveMissingd("breast")({"DCE": img, "available": ["DCE"]})
    assert out["available"] == ["DCE", "WashIn", "WashOut"]
    assert torch.equal(out["WashIn"].as_tensor(), WashInOut("in")(img).as_tensor())
    acquired = torch.zeros(1, *SHAPE)
    kept = DeriveMissingd("breast")({"DCE": img, "WashIn": acquired})
    assert kept["WashIn"] is acquired and "WashOut" in kept
    assert DeriveMissingd("breast")({"T1": acquired}) == {"T1": acquired}  # no DCE: nothing to derive from
    assert DeriveMissingd("brain")({"T1": acquired}) == {"T1": acquired}  # nothing derived in the protocol
    odd = Protocol(
        name="odd",
        sequences=(SequenceSpec("T1"), SequenceSpec("T1map", derived_from="T1")),
    )
    with pytest.raises(NotImplementedError, match=r"derives \['T1map'\] from T1"):
        DeriveMissingd(odd)

    assert WashInOutd("DCE", allow_missing_keys=True)({"T1": acquired}) == {"T1": acquired}
    with pytest.raises(KeyError):
        WashInOutd("DCE")({"T1": acquired})
    with pytest.raises(ValueError, match="one DCE key"):
        WashInOutd(["DCE", "DCE2"])


# ---------------------------------------------------------------- dictionary twins


def test_dict_twins_equal_their_array_transforms():
    dce_times, b_values = [120.0, 0.0, 60.0, 240.0], [800.0, 0.0, 50.0]
    sample = {
        "DCE": _meta_series(_random(4, seed=7) + 0.5, dce_times),
        "DWI": _meta_series(_random(3, seed=8), b_values, axis="bvalue", filename="sub-01_dwi.nii.gz"),
    }

    sorted_d = SortFramesd(["DCE", "DWI"])(sample)
    for key in ("DCE", "DWI"):
        expected = SortFrames()(sample[key])
        assert torch.equal(sorted_d[key].as_tensor(), expected.as_tensor())
        assert sorted_d[key].meta["frame_values"] == expected.meta["frame_values"]

    targets = [0.0, 30.0, 200.0]
    resampled = ResampleFramesd("DCE", target_values=targets)(sample)
    assert torch.equal(resampled["DCE"].as_tensor(), ResampleFrames(targets)(sample["DCE"]).as_tensor())
    assert resampled["DWI"] is sample["DWI"]
    held = ResampleFramesd("DCE", target_values=[-10.0], extrapolate=True)(sample)
    assert torch.equal(held["DCE"].as_tensor(), ResampleFrames([-10.0], extrapolate=True)(sample["DCE"]).as_tensor())
    with pytest.raises(FrameValuesError, match=r"^DCE \(sub-01_dce.nii.gz\): requested frame values \[300.0\]"):
        ResampleFramesd("DCE", target_values=[300.0])(sample)
    with pytest.raises(FrameValuesError, match="expected frame axis 'time'"):
        ResampleFramesd("DWI", target_values=[0.0])(sample)

    counted = CheckFrameCountd(["DCE", "DWI"], [4, 3])(sample)
    assert counted["DCE"] is sample["DCE"] and counted["DWI"] is sample["DWI"]

    maps = WashInOutd("DCE")(sorted_d)
    both = WashInOut()(sorted_d["DCE"])
    assert torch.equal(torch.cat([maps["WashIn"], maps["WashOut"]]).as_tensor(), both.as_tensor())

    with pytest.raises(KeyError):
        SortFramesd(["DCE", "T2"], allow_missing_keys=False)(sample)


# -- MatchProtocolFrames: a 4D series gets the protocol's frames or is refused, never used as it is ---------------

PROTOCOL_TIMES = [0.0, 90.0, 180.0, 270.0, 360.0, 450.0]


def _dce(times, filename="s1_DCE.nii.gz", meta=True):
    data = torch.stack([torch.full(SHAPE, 100.0 + t) for t in times])  # linear in time: resampling is exact
    if not meta:
        return MetaTensor(data, affine=AFFINE.clone(), meta={"filename_or_obj": filename})
    return _meta_series(data, times, filename=filename)


def test_match_frames_dce_without_timing_is_refused():
    """Before: a DCE NIfTI without a sidecar reached the network as it was."""
    from monai_seq2seq.transforms import MatchProtocolFramesd

    data = {"DCE": _dce(PROTOCOL_TIMES, meta=False)}
    opts = {"times": "--dce_times"}
    with pytest.raises(
        FrameValuesError,
        match=r"DCE \(s1_DCE.nii.gz\): 6 frame\(s\) and no frame times.*VolumeTiming.*"
        r'--dce_times "\[0,90,180,270,360,450\]"',
    ):
        MatchProtocolFramesd("DCE", "breast", options=opts)(data)
    out = MatchProtocolFramesd("DCE", "breast", times=[0, 60, 120, 180, 240, 300, 360, 420, 480])(
        {"DCE": _dce([0, 60, 120, 180, 240, 300, 360, 420, 480], meta=False)}
    )["DCE"]
    assert out.meta["frame_values"] == PROTOCOL_TIMES
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([100.0 + t for t in PROTOCOL_TIMES], dtype=out.dtype))


def test_match_frames_dce_timing_that_contradicts_the_protocol():
    from monai_seq2seq.transforms import MatchProtocolFrames

    match = MatchProtocolFrames("time", PROTOCOL_TIMES)
    same = _dce(PROTOCOL_TIMES)
    assert match(same) is same  # the protocol's times: used as they are
    short = _dce([0.0, 45.0, 90.0, 135.0, 180.0, 225.0])  # same count, half the time: not the protocol's frames
    with pytest.raises(
        FrameValuesError,
        match=r"s1_DCE.nii.gz.*\[0, 45, 90, 135, 180, 225\] s do not cover .*"
        r"\[270, 360, 450\] s lie outside",
    ):
        match(short)
    other = _dce([0.0, 70.0, 140.0, 210.0, 280.0, 350.0, 420.0, 452.0])  # covers the protocol's times: resampled
    out = match(other)
    assert out.shape[0] == 6 and out.meta["frame_values"] == PROTOCOL_TIMES
    assert out.meta["acquired_frame_values"] == [0.0, 70.0, 140.0, 210.0, 280.0, 350.0, 420.0, 452.0]
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([100.0 + t for t in PROTOCOL_TIMES], dtype=out.dtype))
    near = match(_dce([0.0, 90.0, 180.0, 270.0, 360.0, 447.0]))  # within 5 s of the end: held, not refused
    assert near.meta["frame_values"] == PROTOCOL_TIMES
    with pytest.raises(FrameValuesError, match=r"contradict the ones given"):
        MatchProtocolFrames("time", PROTOCOL_TIMES, acquired_values=[0, 1, 2, 3, 4, 5])(same)
    with pytest.raises(FrameValuesError, match=r"told apart by 'bvalue'.*needs frame times"):
        match(_meta_series(torch.ones(2, *SHAPE), [0, 800], axis="bvalue"))


def _dwi(bvalues, meta=True):
    data = torch.stack([torch.full(SHAPE, 1000.0 * float(np.exp(-b * 1e-3))) for b in bvalues])
    if not meta:
        return MetaTensor(data, affine=AFFINE.clone(), meta={"filename_or_obj": "s1_DWI.nii.gz"})
    return _meta_series(data, bvalues, axis="bvalue", filename="s1_DWI.nii.gz")


def test_match_frames_dwi_missing_bvalues_refused_or_synthesised():
    from monai_seq2seq.transforms import MatchProtocolFramesd

    data = {"DWI": _dwi([0.0, 1000.0, 1000.0, 1500.0])}
    with pytest.raises(
        FrameValuesError,
        match=r"acquired b-values \[0, 1000, 1500\].* lack the protocol's \[150, 800\]"
        r".*--missing_bvalues monoexp or ivim",
    ):
        MatchProtocolFramesd("DWI", "breast", options={"missing_bvalues": "--missing_bvalues"})(data)
    out = MatchProtocolFramesd("DWI", "breast", missing_bvalues="monoexp")(data)["DWI"]
    assert out.meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0] and out.meta["synthesised_bvalues"] == [150.0, 800.0]
    torch.testing.assert_close(
        out[:, 0, 0, 0],
        torch.tensor([1000.0 * np.exp(-b * 1e-3) for b in (0, 150, 800, 1500)], dtype=out.dtype),
        rtol=1e-4,
        atol=1e-3,
    )
    with pytest.raises(FrameValuesError, match=r"no b-values.*\.bval.*bvalues= \"\[0,150,800,1500\]\""):
        MatchProtocolFramesd("DWI", "breast")({"DWI": _dwi([0, 150, 800, 1500], meta=False)})
    given = MatchProtocolFramesd("DWI", "breast", bvalues=[0, 150, 800, 1500])(
        {"DWI": _dwi([0, 150, 800, 1500], False)}
    )
    assert given["DWI"].meta["frame_axis"] == "bvalue"
    t1 = MetaTensor(torch.ones(1, *SHAPE))
    assert MatchProtocolFramesd(["T1", "DWI"], "breast", allow_missing_keys=True)({"T1": t1})["T1"] is t1


def test_breast_bundle_preprocessing_refuses_a_dce_without_timing(tmp_path):
    """The bundle's own preprocessing, on a written phantom subject whose DCE sidecar was removed."""
    from monai.bundle import ConfigParser

    from monai_seq2seq.data import build_breast_datalist, load_datalist
    from monai_seq2seq.phantoms import BreastPhantomCohort, write_cohort

    write_cohort(BreastPhantomCohort(1, seed=2, shape=(40, 24, 16), spacing=8.0), tmp_path / "c", progress=False)
    build_breast_datalist(tmp_path / "c", output=tmp_path / "dl.json", fractions=[0, 0, 1])
    (entry,) = load_datalist(tmp_path / "dl.json", "testing")
    parser = ConfigParser()
    parser.read_config("bundles/seq2seq_breast/configs/inference.json")
    parser["datalist"], parser["drop"] = str(tmp_path / "dl.json"), []
    from monai.transforms import Compose

    preprocessing = Compose([parser.get_parsed_content("load"), parser.get_parsed_content("frames")])
    assert "@frames" in parser["preprocessing"]["transforms"]
    sample = preprocessing(dict(entry))
    assert sample["DCE"].meta["frame_values"] == PROTOCOL_TIMES and sample["DWI"].shape[0] == 4
    next((tmp_path / "c").rglob("*_DCE.json")).unlink()
    with pytest.raises(Exception) as info:
        preprocessing(dict(entry))
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, FrameValuesError) and "_DCE.nii.gz): 6 frame(s) and no frame times" in str(cause)
    assert "--dce_times" in str(cause)
