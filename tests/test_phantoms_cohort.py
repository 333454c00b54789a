"""The lazy cohorts honour the sample-dict contract and plug into MONAI datasets."""

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, RandFlipd, ScaleIntensityd

from monai_seq2seq.core.protocols import BRAIN, BREAST
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort

BRAIN_KW = dict(spacing=4.0)
BREAST_KW = dict(shape=(40, 24, 16), spacing=8.0)


def test_brain_sample_contract():
    cohort = BrainPhantomCohort(3, seed=1, **BRAIN_KW)
    assert len(cohort) == 3 and cohort.subject_ids()[2] == "BraTS2021_00002"
    s = cohort[1]
    assert s["subject"] == "BraTS2021_00001"
    assert s["available"] == BRAIN.names
    for name in BRAIN.names:
        t = s[name]
        assert isinstance(t, MetaTensor) and t.shape == (1, 49, 58, 47) and t.dtype == torch.float32
        np.testing.assert_allclose(t.affine.numpy(), cohort.generate(1).affine)
    assert s["label"].shape == (1, 49, 58, 47) and s["unique-T1Gd"].shape == (1, 49, 58, 47)
    np.testing.assert_array_equal(s["unique-T1Gd"].numpy(), (s["label"] == 4).float().numpy())
    np.testing.assert_array_equal(cohort[-2]["T1"].numpy(), s["T1"].numpy())
    with pytest.raises(IndexError):
        cohort[3]


def test_breast_sample_contract_4d_frames_on_channel_axis():
    cohort = BreastPhantomCohort(2, seed=0, **BREAST_KW)
    s = cohort[0]
    assert s["available"] == BREAST.names
    for spec in BREAST.sequences:
        t = s[spec.name]
        assert t.shape == (spec.frames, 40, 24, 16)
        if spec.is_4d:
            assert t.meta["frame_axis"] == spec.frame_axis
            assert t.meta["frame_values"] == list(spec.frame_values)
        else:
            assert "frame_axis" not in t.meta
    assert {"unique-DCE", "unique-DWI", "label"} <= set(s)


def test_lazy_and_deterministic_items():
    cohort = BreastPhantomCohort(2, seed=7, **BREAST_KW)
    a, b = cohort[1], cohort[1]
    torch.testing.assert_close(a["DCE"].as_tensor(), b["DCE"].as_tensor(), rtol=0, atol=0)
    other = BreastPhantomCohort(2, seed=8, **BREAST_KW)[1]
    assert not torch.equal(a["DCE"].as_tensor(), other["DCE"].as_tensor())
    assert len(cohort[0:2]) == 2


def test_monai_cache_dataset_and_loader():
    cohort = BrainPhantomCohort(2, seed=0, **BRAIN_KW)
    keys = BRAIN.names + ["label"]
    transform = Compose([ScaleIntensityd(BRAIN.names), RandFlipd(keys, prob=1.0, spatial_axis=0)])
    ds = CacheDataset(cohort, transform=transform, progress=False)
    item = ds[0]
    assert float(item["T1"].max()) == pytest.approx(1.0)
    assert item["T1"].affine[0, 0] == pytest.approx(-4.0)  # the flip is tracked in the affine
    loader = DataLoader(Dataset(BreastPhantomCohort(2, **BREAST_KW)), batch_size=2)
    batch = next(iter(loader))
    assert batch["DCE"].shape == (2, 6, 40, 24, 16)


def test_config_overrides_are_validated():
    with pytest.raises(TypeError):
        BrainPhantomCohort(2, not_a_field=1)
    with pytest.raises(ValueError):
        BrainPhantomCohort(-1)
