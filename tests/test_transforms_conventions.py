"""MONAI's conventions for the dictionary transforms: ``D``/``Dict`` aliases, ``allow_missing_keys=False``, one base."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform

import monai_seq2seq.transforms as T
from monai_seq2seq.core.protocols import BRAIN
from monai_seq2seq.transforms.base import InvertiblePerKeyd, PerKeyd
from monai_seq2seq.transforms.trained_on import TRAINED_ON_KEY

MODULES = [
    "dce",
    "dwi",
    "frames",
    "intensity",
    "missing",
    "slices",
    "spatial",
    "validation",
    "registration",
    "trained_on",
]

# dictionary transforms that take allow_missing_keys, with the arguments they need besides keys
WITH_ALLOW_MISSING = {
    "SortFramesd": {},
    "ResampleFramesd": {"target_values": [0.0, 60.0]},
    "CheckFrameCountd": {"expected": 6},
    "MatchProtocolFramesd": {"protocol": "breast"},
    "WashInOutd": {},
    "SelectBValuesd": {"bvalues": [0.0, 800.0]},
    "ADCMapd": {},
    "IVIMMapsd": {},
    "PercentileScaleIntensityd": {},
    "ToSymmetricRanged": {},
    "FromSymmetricRanged": {},
    "VolumeToSlicesd": {},
    "SlicesToVolumed": {},
    "Slices25Dd": {},
    "MatchGridd": {},
    "CheckTrainedOnd": {"trained_on": None},
    "RegisterToReferenced": {},
    "SequenceCoded": {},
}
# dictionary transforms whose input is which of the protocol's sequences a subject has: absent keys always skipped
ALWAYS_SKIP = {
    "DeriveMissingd",
    "AvailabilityMaskd",
    "RandSilenceSequencesd",
    "RandSourceTargetd",
    "CheckSequenced",
    "RandSubjectSpatialAugmentd",
}
INVERTIBLE = {
    "PercentileScaleIntensityd",
    "ToSymmetricRanged",
    "FromSymmetricRanged",
    "VolumeToSlicesd",
    "RandSubjectSpatialAugmentd",
}


def _dictionary_transforms() -> dict[str, type]:
    found = {}
    for name in T.__all__:
        obj = getattr(T, name)
        if inspect.isclass(obj) and issubclass(obj, MapTransform) and obj.__name__ == name:
            if obj.__module__ != "monai_seq2seq.transforms.base":  # PerKeyd and InvertiblePerKeyd: the bases
                found[name] = obj
    return found


def test_every_dictionary_transform_is_listed():
    assert set(_dictionary_transforms()) == set(WITH_ALLOW_MISSING) | ALWAYS_SKIP


@pytest.mark.parametrize("name", sorted(set(WITH_ALLOW_MISSING) | ALWAYS_SKIP))
def test_d_and_dict_aliases(name):
    cls = getattr(T, name)
    stem = name[:-1]
    module = importlib.import_module(cls.__module__)
    for alias in (f"{stem}D", f"{stem}Dict"):
        assert getattr(T, alias) is cls and getattr(module, alias) is cls
        assert alias in T.__all__ and alias in module.__all__


def test_module_all_lists_its_dictionary_transforms_and_aliases():
    for mod_name in MODULES:
        module = importlib.import_module(f"monai_seq2seq.transforms.{mod_name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, MapTransform) and obj.__module__ == module.__name__:
                assert name in module.__all__, f"{module.__name__}.{name}"


@pytest.mark.parametrize("name", sorted(WITH_ALLOW_MISSING))
def test_missing_key_raises_by_default_and_is_skipped_when_allowed(name):
    cls = getattr(T, name)
    assert inspect.signature(cls).parameters["allow_missing_keys"].default is False
    data = {"present_elsewhere": torch.ones(1, 2, 2, 2)}
    with pytest.raises(KeyError, match="DCE"):
        cls("DCE", **WITH_ALLOW_MISSING[name])(data)
    out = cls("DCE", allow_missing_keys=True, **WITH_ALLOW_MISSING[name])(data)
    records = {TRAINED_ON_KEY: []} if name == "CheckTrainedOnd" else {}  # its (empty) list of findings
    assert set(out) == set(data) | set(records) and out["present_elsewhere"] is data["present_elsewhere"]
    assert all(out[key] == value for key, value in records.items())


def _image(seed: int) -> MetaTensor:
    return MetaTensor(torch.rand(1, 6, 6, 4, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize(
    "name, kwargs, data",
    [
        ("AvailabilityMaskd", {"protocol": "brain"}, {"T1": _image(0)}),
        ("RandSilenceSequencesd", {"keys": BRAIN.names, "prob": 0.0}, {"T1": _image(0)}),
        ("RandSourceTargetd", {"protocol": "brain"}, {"T1": _image(0), "T2": _image(1)}),
        ("CheckSequenced", {"protocol": "brain"}, {"T1": _image(0)}),
        ("RandSubjectSpatialAugmentd", {"keys": BRAIN.names, "flip_prob": 0.0}, {"T1": _image(0)}),
    ],
)
def test_subject_level_transforms_always_skip_absent_sequences(name, kwargs, data):
    cls = getattr(T, name)
    assert "allow_missing_keys" not in inspect.signature(cls).parameters
    out = cls(**kwargs)(dict(data))
    assert "FLAIR" not in out and all(k in out for k in data)


@pytest.mark.parametrize("name", sorted(set(WITH_ALLOW_MISSING) | ALWAYS_SKIP))
def test_inversion_kept_where_it_was(name):
    assert issubclass(getattr(T, name), InvertibleTransform) == (name in INVERTIBLE)


def test_one_per_key_base():
    in_place = ["SortFramesd", "ResampleFramesd", "CheckFrameCountd", "SelectBValuesd", "SlicesToVolumed"]
    for name in in_place:
        assert issubclass(getattr(T, name), PerKeyd), name
    for name in ["PercentileScaleIntensityd", "ToSymmetricRanged", "FromSymmetricRanged", "VolumeToSlicesd"]:
        assert issubclass(getattr(T, name), InvertiblePerKeyd), name
    for mod_name in MODULES:
        module = importlib.import_module(f"monai_seq2seq.transforms.{mod_name}")
        private = [
            n for n, o in vars(module).items() if inspect.isclass(o) and issubclass(o, MapTransform) and n[0] == "_"
        ]
        assert not private, f"{module.__name__} defines its own per-key base {private}"


def test_per_key_inverse_round_trip_and_names_in_errors():
    img = MetaTensor(torch.rand(1, 4, 4, 4), meta={"filename_or_obj": "t1.nii.gz"})
    pipeline = T.ToSymmetricRanged(["T1", "T2"], allow_missing_keys=True)
    out = pipeline({"T1": img})
    assert len(out["T1"].applied_operations) == 1 and not img.applied_operations  # the input's trace is untouched
    back = pipeline.inverse(out)
    torch.testing.assert_close(back["T1"].as_tensor(), img.as_tensor())
    scaled = T.PercentileScaleIntensityd("T1")({"T1": img})["T1"]
    assert "intensity_range" in scaled.meta and "intensity_range" not in img.meta  # meta copied, not shared
    assert scaled.meta["filename_or_obj"] == "t1.nii.gz" and scaled.dtype == torch.float32
    with pytest.raises(ValueError, match=r"T1 \(t1.nii.gz\) is constant"):
        T.PercentileScaleIntensityd("T1")({"T1": MetaTensor(torch.ones(1, 2, 2, 2), meta=img.meta)})
