"""Intensity, 2.5D, missing-sequence, spatial and validation transforms: array versions and dictionary twins."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, ScaleIntensityRangePercentiles

from monai_seq2seq.core import BRAIN, BREAST
from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.transforms import (
    MASK_KEY,
    AvailabilityMask,
    AvailabilityMaskd,
    CheckSequence,
    CheckSequenced,
    FromSymmetricRange,
    FromSymmetricRanged,
    GridMismatchError,
    MatchGrid,
    MatchGridd,
    PercentileScaleIntensity,
    PercentileScaleIntensityd,
    RandFrameSpatialAugment,
    RandSilenceSequences,
    RandSilenceSequencesd,
    RandSourceTarget,
    RandSourceTargetd,
    RandSubjectSpatialAugmentd,
    SequenceCode,
    SequenceCoded,
    Slices25D,
    Slices25Dd,
    SlicesToVolume,
    SlicesToVolumed,
    ToSymmetricRange,
    ToSymmetricRanged,
    VolumeToSlices,
    VolumeToSlicesd,
)

NAMES = ["T1", "T1Gd", "T2", "FLAIR"]


def _meta_image(frames=1, shape=(6, 5, 4), seed=0, affine=None):
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(rng.gamma(2.0, 50.0, size=(frames, *shape)), dtype=torch.float32)
    affine = torch.diag(torch.tensor([1.5, 1.0, 2.0, 1.0], dtype=torch.float64)) if affine is None else affine
    return MetaTensor(data, affine=affine, meta={"filename_or_obj": f"/data/s{seed}.nii.gz"})


# --- intensity ---------------------------------------------------------------------------------------------------


def test_percentile_scale_equals_monai_and_inverts():
    img = _meta_image(frames=3)
    ours = PercentileScaleIntensity(0.5, 99.5)(img)
    monai_ref = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True, channel_wise=False)(img.clone())
    torch.testing.assert_close(ours.as_tensor(), torch.as_tensor(monai_ref), rtol=0, atol=1e-6)
    assert float(ours.min()) == 0.0 and float(ours.max()) == 1.0
    torch.testing.assert_close(ours.affine, img.affine)
    low, high = ours.meta["intensity_range"]
    inside = (img >= low) & (img <= high)
    back = PercentileScaleIntensity().inverse(ours)
    torch.testing.assert_close(back.as_tensor()[inside], img.as_tensor()[inside], rtol=1e-5, atol=1e-3)
    assert not back.applied_operations and "intensity_range" not in back.meta


def test_percentile_scale_one_scale_per_series_keeps_enhancement():
    base = _meta_image(frames=1).as_tensor()
    series = MetaTensor(torch.cat([base, base * 2.0]), affine=torch.eye(4))
    out = PercentileScaleIntensity(0.0, 100.0)(series)
    # frame 1 is twice frame 0 in the source; a shared scale keeps frame 1 brighter everywhere
    assert bool((out[1] >= out[0]).all()) and float(out[1].mean()) > 1.5 * float(out[0].mean())


def test_percentile_scale_numpy_and_errors():
    arr = np.random.default_rng(1).random((2, 4, 4, 4)).astype(np.float32)
    out = PercentileScaleIntensity()(arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.max() == 1.0
    bad = _meta_image()
    bad[0, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"s0.nii.gz.*1 non-finite voxels \(1 NaN, 0 Inf\)"):
        PercentileScaleIntensity()(bad)
    with pytest.raises(ValueError, match="constant"):
        PercentileScaleIntensity()(torch.full((1, 3, 3, 3), 7.0))
    with pytest.raises(ValueError, match="no non-zero"):
        PercentileScaleIntensity(nonzero=True)(torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="plain tensor"):
        PercentileScaleIntensity().inverse(torch.rand(1, 2, 2, 2))


def test_percentile_dict_twin_names_key_and_matches_array():
    sample = {"T1": _meta_image(seed=1), "T2": _meta_image(seed=2)}
    out = PercentileScaleIntensityd(["T1", "T2", "FLAIR"], allow_missing_keys=True)(sample)
    for key in ("T1", "T2"):
        torch.testing.assert_close(out[key], PercentileScaleIntensity()(sample[key]))
    inverse = PercentileScaleIntensityd(["T1", "T2"]).inverse(out)
    assert torch.allclose(inverse["T1"].as_tensor().max(), out["T1"].meta["intensity_range"][1] * torch.ones(()))
    sample["T2"][0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"T2 \(/data/s2.nii.gz\).*Inf"):
        PercentileScaleIntensityd(["T1", "T2"])(sample)


def test_percentile_dict_twin_fixed_window_for_ratio_maps():
    rng = np.random.default_rng(0)
    wash = 0.03 + rng.normal(0, 0.02, (1, 16, 16, 8))  # weak background enhancement and noise
    wash[0, 8, 8, 2:5] = 1.0  # a small lesion enhancing by 100%: 3 voxels, under the top 0.5%
    sample = {"WashIn": MetaTensor(torch.as_tensor(wash, dtype=torch.float32)), "T1": _meta_image(seed=1)}
    windows = BREAST.intensity_windows()
    out = PercentileScaleIntensityd(["WashIn", "T1"], fixed_ranges=windows)(sample)
    expected = np.clip(wash / 2.0, 0, 1)  # window [0, 2]: an enhancement of 100% is 0.5 in every scan
    np.testing.assert_allclose(out["WashIn"].numpy(), expected, atol=1e-6)
    assert out["WashIn"].meta["intensity_range"] == [0.0, 2.0]
    torch.testing.assert_close(out["T1"], PercentileScaleIntensity()(sample["T1"]))  # others: percentiles
    by_percentile = PercentileScaleIntensity()(sample["WashIn"])
    assert float(by_percentile.max()) == 1.0 and float(by_percentile.quantile(0.9)) > 0.3  # noise stretched
    back = PercentileScaleIntensityd(["WashIn", "T1"], fixed_ranges=windows).inverse(out)
    np.testing.assert_allclose(back["WashIn"].numpy(), np.clip(wash, 0, 2), atol=1e-6)
    assert "intensity_range" not in back["WashIn"].meta
    zeros = MetaTensor(torch.zeros(1, 4, 4, 4))  # no enhancement anywhere: a valid map, not a constant-image error
    assert float(PercentileScaleIntensity(fixed_range=(0.0, 2.0))(zeros).max()) == 0.0
    with pytest.raises(ValueError, match="fixed_range"):
        PercentileScaleIntensity(fixed_range=(2.0, 0.0))


def test_symmetric_range_round_trip():
    img = MetaTensor(torch.rand(2, 3, 3, 3))
    net = ToSymmetricRange()(img)
    assert float(net.min()) >= -1 and float(net.max()) <= 1
    torch.testing.assert_close(net.as_tensor(), img.as_tensor() * 2 - 1)
    torch.testing.assert_close(ToSymmetricRange().inverse(net).as_tensor(), img.as_tensor())
    torch.testing.assert_close(FromSymmetricRange()(net).as_tensor(), img.as_tensor())
    d = ToSymmetricRanged("x")({"x": img})
    torch.testing.assert_close(FromSymmetricRanged("x")(d)["x"].as_tensor(), img.as_tensor())
    torch.testing.assert_close(ToSymmetricRanged("x").inverse(d)["x"].as_tensor(), img.as_tensor())


def test_pipeline_inverse_through_compose():
    img = _meta_image(frames=2)
    pipe = Compose([PercentileScaleIntensity(), ToSymmetricRange()])
    out = pipe(img)
    back = pipe.inverse(out)
    low, high = out.meta["intensity_range"]
    inside = (img >= low) & (img <= high)
    torch.testing.assert_close(back.as_tensor()[inside], img.as_tensor()[inside], rtol=1e-5, atol=1e-3)


# --- 2.5D --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_volume_to_slices_round_trip_every_axis(axis):
    img = _meta_image(frames=2, shape=(5, 6, 7))
    slices = VolumeToSlices(axis=axis, num_slices=3)(img)
    depth = img.shape[1 + axis % 3]
    plane = [s for a, s in enumerate(img.shape[1:]) if a != axis % 3]
    assert tuple(slices.shape) == (depth, 2, 3, *plane)
    # channel 1 is the slice itself, channels 0/2 its neighbours (edges replicate)
    moved = img.as_tensor().movedim(1 + axis % 3, 0)
    torch.testing.assert_close(slices[:, :, 1].as_tensor(), moved)
    torch.testing.assert_close(slices[1:, :, 0].as_tensor(), moved[:-1])
    torch.testing.assert_close(slices[0, :, 0].as_tensor(), moved[0])
    back = VolumeToSlices(axis=axis).inverse(slices)
    assert torch.equal(back.as_tensor(), img.as_tensor())
    torch.testing.assert_close(back.affine, img.affine)
    assert torch.equal(SlicesToVolume(axis=axis)(slices.as_tensor()), img.as_tensor())
    torch.testing.assert_close(SlicesToVolume(axis=axis, mode="mean")(slices.as_tensor()), img.as_tensor())


def test_slices_to_volume_mean_averages_overlapping_predictions():
    slabs = torch.zeros(4, 1, 3, 2, 2)
    slabs[:, :, 0] = 1.0  # every stack predicts 1 for its lower neighbour, 0 elsewhere
    out = SlicesToVolume(mode="mean")(slabs)
    # slice z is voted on by stack z (0), stack z + 1 (1: its lower neighbour) and stack z - 1 (0); at the
    # edges the missing stack does not vote: 1/2 at z = 0, 0 at the last slice
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1 / 2, 1 / 3, 1 / 3, 0.0]))
    with pytest.raises(ValueError, match="odd C"):
        SlicesToVolume()(torch.zeros(4, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="mode"):
        SlicesToVolume(mode="max")


def test_slices_dict_twins_match_arrays():
    sample = {"T1": _meta_image(seed=1), "DCE": _meta_image(frames=6, seed=2)}
    out = VolumeToSlicesd(["T1", "DCE"], axis=1)(sample)
    assert out["DCE"].shape == (5, 6, 3, 6, 4)
    torch.testing.assert_close(out["T1"], VolumeToSlices(axis=1)(sample["T1"]))
    back = VolumeToSlicesd(["T1", "DCE"], axis=1).inverse(out)
    assert torch.equal(back["DCE"].as_tensor(), sample["DCE"].as_tensor())
    again = SlicesToVolumed(["T1"], axis=1)({"T1": out["T1"].as_tensor()})
    assert torch.equal(again["T1"], sample["T1"].as_tensor())
    with pytest.raises(ValueError, match="odd"):
        VolumeToSlices(num_slices=2)
    with pytest.raises(ValueError, match=r"\(T, X, Y, Z\)"):
        VolumeToSlices()(torch.zeros(3, 4, 4))


def test_slices25d_array_and_dict_share_position():
    img = _meta_image(frames=2, shape=(8, 8, 10))
    stack = Slices25D(roi_size=(4, 4), random=True).set_random_state(5)(img)
    assert stack.shape == (2, 3, 4, 4)
    sample = {"T1": img, "T2": img.clone() * 2}
    out = Slices25Dd(["T1", "T2"], roi_size=(4, 4), random=True).set_random_state(5)(sample)
    torch.testing.assert_close(out["T2"], out["T1"] * 2)
    torch.testing.assert_close(out["T1"], stack)


# --- missing sequences -------------------------------------------------------------------------------------------


def test_availability_mask_array_and_dict():
    assert AvailabilityMask("brain")(["T2", "T1"]).tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="unknown sequence 'DWI'"):
        AvailabilityMask("brain")(["DWI"])
    out = AvailabilityMaskd(protocol="brain")({"T1": 1, "FLAIR": 2, "subject": "a"})
    assert out[MASK_KEY].tolist() == [True, False, False, True] and out["available"] == ["T1", "FLAIR"]
    with pytest.raises(ValueError, match=r"subject 'a' has 1 .* at least 2"):
        AvailabilityMaskd(protocol="brain", min_available=2)({"T1": 1, "subject": "a"})


def test_rand_silence_array_keeps_min_and_is_reproducible():
    silencer = RandSilenceSequences(prob=1.0, min_keep=1).set_random_state(0)
    mask = torch.tensor([True, True, False, True])
    seen = set()
    for _ in range(50):
        out = silencer(mask)
        assert 1 <= int(out.sum()) <= 2 and not bool((out & ~mask).any())
        seen.add(int(out.sum()))
    assert seen == {1, 2}  # both 1 and 2 of 3 silenced over 50 draws
    a = [RandSilenceSequences().set_random_state(3)(mask).tolist() for _ in range(2)]
    assert a[0] == a[1]
    assert torch.equal(RandSilenceSequences(prob=0.0)(mask), mask)


def test_rand_silence_dict_updates_keys_available_and_mask():
    sample = AvailabilityMaskd(protocol="brain")({k: torch.zeros(1) for k in NAMES})
    transform = RandSilenceSequencesd(NAMES, prob=1.0).set_random_state(1)
    for _ in range(20):
        out = transform(sample)
        kept = [k for k in NAMES if k in out]
        assert 1 <= len(kept) <= 3 and out["available"] == kept
        assert out[MASK_KEY].tolist() == [k in kept for k in NAMES]
    assert all(k in sample for k in NAMES)  # the input dict is untouched


def test_source_target_sampling():
    sampler = RandSourceTarget(num_sources=1).set_random_state(0)
    mask = torch.tensor([True, False, True, True])
    targets = set()
    for _ in range(30):
        sources, target = sampler(mask)
        assert mask[target] and len(sources) == 1 and sources[0] != target and mask[sources[0]]
        targets.add(target)
    assert targets == {0, 2, 3}
    sources, target = RandSourceTarget(num_sources=None).set_random_state(0)(mask)
    assert sorted([*sources, target]) == [0, 2, 3]
    assert RandSourceTarget(targets=[1, 2]).set_random_state(0)(mask)[1] == 2
    with pytest.raises(ValueError, match="at least 2"):
        RandSourceTarget()(torch.tensor([True, False, False, False]))
    sample = {k: torch.full((1, 2, 2, 2), float(i)) for i, k in enumerate(NAMES) if k != "T2"}
    out = RandSourceTargetd(protocol="brain", targets=["T1Gd"]).set_random_state(0)(sample)
    assert out["target_name"] == "T1Gd" and float(out["target"].max()) == 1.0
    assert out["target_code"].shape == (64,) and int(out["target_code"].argmax()) == 1
    assert out["source_names"][0] in ("T1", "FLAIR") and torch.equal(out["source"], sample[out["source_names"][0]])
    with pytest.raises(ValueError, match="subject 'x'"):
        RandSourceTargetd(protocol="brain")({"T1": torch.zeros(1), "subject": "x"})


def test_sequence_code_array_and_dict():
    code = SequenceCode("breast")("DWI")
    assert code.shape == (64,) and int(code.argmax()) == BREAST.index("DWI") and float(code.sum()) == 1
    assert SequenceCode("brain")(["T1", "t1ce"]).argmax(1).tolist() == [0, 1]
    out = SequenceCoded("target_name", protocol="brain")({"target_name": "flair"})
    assert torch.equal(out["target_name_code"], BRAIN.code("FLAIR"))


# --- spatial -----------------------------------------------------------------------------------------------------


def test_subject_augmentation_moves_every_frame_and_sequence_alike():
    base = torch.arange(8 * 8 * 6, dtype=torch.float32).reshape(1, 8, 8, 6)
    affine = torch.eye(4, dtype=torch.float64)
    sample = {
        "DCE": MetaTensor(torch.cat([base, base * 2, base * 3]), affine=affine),
        "T1": MetaTensor(base + 5, affine=affine),
        "label": MetaTensor((base > 100).float(), affine=affine),
    }
    aug = RandSubjectSpatialAugmentd(
        ["T1", "DCE"],
        roi_size=(6, 6, 4),
        flip_prob=0.5,
        flip_axes=(0, 1),
        affine_prob=1.0,
        rotate_range=0.3,
        scale_range=0.1,
    ).set_random_state(2)
    out = aug(sample)
    assert out["DCE"].shape == (3, 6, 6, 4) and out["label"].shape == (1, 6, 6, 4)
    torch.testing.assert_close(out["DCE"][1], out["DCE"][0] * 2, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(out["DCE"][0], out["T1"][0] - 5, rtol=1e-4, atol=1e-3)
    assert set(torch.unique(out["label"]).tolist()) <= {0.0, 1.0}  # nearest for labels
    assert not torch.equal(out["T1"][0], (base + 5)[0, 1:7, 1:7, 1:5])  # something moved
    restored = aug.inverse(out)
    assert restored["T1"].shape == (1, 8, 8, 6)
    bad = dict(sample, T1=MetaTensor(torch.zeros(1, 8, 8, 5), affine=affine))
    with pytest.raises(ValueError, match="one grid for the whole subject"):
        aug(bad)


def test_frame_augment_array_matches_dict_with_same_seed():
    img = MetaTensor(torch.rand(2, 8, 8, 6), affine=torch.eye(4, dtype=torch.float64))
    a = RandFrameSpatialAugment(roi_size=(5, 5, 5), flip_prob=1.0).set_random_state(4)(img)
    b = RandSubjectSpatialAugmentd(["x"], roi_size=(5, 5, 5), flip_prob=1.0).set_random_state(4)({"x": img})["x"]
    torch.testing.assert_close(a.as_tensor(), b.as_tensor())


# --- validation --------------------------------------------------------------------------------------------------


def test_match_grid_raises_or_resamples():
    ref = _meta_image(shape=(6, 6, 4), seed=1)
    shifted = _meta_image(
        shape=(6, 6, 4),
        seed=2,
        affine=torch.tensor([[1.5, 0, 0, 3.0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]], dtype=torch.float64),
    )
    assert MatchGrid()(ref.clone(), ref) is not None
    with pytest.raises(GridMismatchError, match=r"T2 .* grid of T1: affine differs by up to 3"):
        MatchGrid()(shifted, ref, name="T2", reference_name="T1")
    with pytest.raises(GridMismatchError, match="spatial shape"):
        MatchGrid()(_meta_image(shape=(6, 6, 5)), ref)
    shifted.meta["frame_values"] = [0.0]
    out = MatchGrid(mode="resample")(shifted, ref)
    torch.testing.assert_close(out.affine, ref.affine)
    assert out.meta["frame_values"] == [0.0]
    # a 3 mm shift along x is two voxels of 1.5 mm
    torch.testing.assert_close(out[0, 3:, :, :].as_tensor(), shifted[0, 1:4, :, :].as_tensor(), rtol=1e-4, atol=1e-3)
    d = MatchGridd(["T1", "T2"], reference_key="T1", mode="resample")({"T1": ref, "T2": shifted})
    torch.testing.assert_close(d["T2"].affine, ref.affine)
    with pytest.raises(GridMismatchError):
        MatchGridd(["T1", "T2"])({"T1": ref, "T2": shifted})


def test_check_sequence_messages():
    spec = BREAST["DCE"]
    good = MetaTensor(torch.rand(6, 3, 3, 3), meta={"frame_axis": "time"})
    assert CheckSequence(spec)(good) is good
    with pytest.raises(FrameValuesError, match=r"has 8 frames; sequence 'DCE' of the protocol expects 6 time"):
        CheckSequence(spec)(torch.rand(8, 3, 3, 3))
    with pytest.raises(FrameValuesError, match="frame axis 'bvalue'"):
        CheckSequence(spec)(MetaTensor(torch.rand(6, 3, 3, 3), meta={"frame_axis": "bvalue"}))
    with pytest.raises(ValueError, match="constant"):
        CheckSequence(BRAIN["T1"])(torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="NaN"):
        CheckSequence(BRAIN["T1"])(torch.tensor([[[[float("nan"), 1.0]]]]))
    with pytest.raises(ValueError, match=r"\(T, X, Y, Z\)"):
        CheckSequence(BRAIN["T1"])(torch.rand(3, 3, 3))
    subject = {"T1": torch.rand(1, 3, 3, 3), "subject": "s1"}
    with pytest.raises(ValueError, match=r"subject 's1' has 1 sequence\(s\) \['T1'\].*at least 2"):
        CheckSequenced("brain", min_available=2)(subject)
    subject["FLAIR"] = MetaTensor(torch.rand(2, 3, 3, 3), meta={"filename_or_obj": "f.nii"})
    with pytest.raises(FrameValuesError, match=r"FLAIR \(f.nii\) has 2 frames"):
        CheckSequenced("brain")(subject)
