"""CheckTrainedOnd: a subject unlike the bundle's training data is said in the log and the sidecar, or stopped."""

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.phantoms import BrainPhantomCohort
from monai_seq2seq.transforms import TRAINED_ON_KEY, CheckTrainedOn, CheckTrainedOnd, TrainedOnMismatchError
from monai_seq2seq.transforms.trained_on import (
    format_spacing,
    geometry_findings,
    load_trained_on,
    outside_brain_fraction,
)

ROOT = Path(__file__).resolve().parents[1]
BRAIN = ROOT / "bundles" / "seq2seq_brain"
NAMES = ["T1", "T1Gd", "T2", "FLAIR"]


@pytest.fixture(scope="module")
def subject4():
    """A brain phantom subject at 4 mm and the shipped brain block with the spacing set to 4 mm (same field of view)."""
    sample = BrainPhantomCohort(1, seed=0, spacing=4.0)[0]
    block = load_trained_on(BRAIN)
    block["spacing_mm"] = [4.0, 4.0, 4.0]
    return sample, block


def _with_affine(img: MetaTensor, affine: np.ndarray) -> MetaTensor:
    return MetaTensor(img.as_tensor().clone(), affine=torch.as_tensor(affine, dtype=torch.float64), meta={})


def _ringed(img: MetaTensor, pad: int = 4) -> MetaTensor:
    """The phantom padded by ``pad`` voxels and wrapped in a bright scalp ring, separated by a dark skull gap."""
    vol = np.pad(img.numpy()[0], pad)
    idx = np.argwhere(vol > 0)
    centre, radius = idx.mean(0), (idx.max(0) - idx.min(0)) / 2
    grid = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    dist = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius, strict=True)))
    vol[(dist > 1.12) & (dist < 1.3)] = np.percentile(vol[vol > 0], 99)
    return MetaTensor(torch.from_numpy(vol[None].astype(np.float32)), affine=img.affine.clone(), meta={})


def test_format_spacing():
    assert format_spacing([1, 1, 5]) == "1x1x5 mm"
    assert format_spacing([2.0, 2.0, 2.0]) == "2 mm isotropic"


def test_matched_phantom_triggers_nothing_against_the_shipped_block():
    sample = BrainPhantomCohort(1, seed=1000, spacing=2.0)[0]  # inference.json's phantom: held out from training
    out = CheckTrainedOnd(NAMES, BRAIN)(sample)
    assert out[TRAINED_ON_KEY] == []


def test_spacing_1x1x5_warns_in_log_and_sample(subject4, caplog):
    sample, block = subject4
    d = {n: sample[n] for n in NAMES} | {"subject": "s1"}
    d["FLAIR"] = _with_affine(sample["FLAIR"], np.diag([1.0, 1.0, 5.0, 1.0]))
    with caplog.at_level(logging.WARNING, logger="monai_seq2seq.trained_on"):
        out = CheckTrainedOnd(NAMES, block)(d)
    assert "FLAIR spacing 1x1x5 mm, trained on 4 mm isotropic" in out[TRAINED_ON_KEY]
    assert all(line.startswith("FLAIR") for line in out[TRAINED_ON_KEY])  # the other sequences match
    assert "FLAIR spacing 1x1x5 mm" in caplog.text and "s1" in caplog.text
    assert out["FLAIR"].meta[TRAINED_ON_KEY] == out[TRAINED_ON_KEY]


def test_strict_stops_with_every_line(subject4):
    sample, block = subject4
    d = {"FLAIR": _with_affine(sample["FLAIR"], np.diag([1.0, 1.0, 5.0, 1.0])), "subject": "s1"}
    with pytest.raises(TrainedOnMismatchError, match=r"subject 's1'.*FLAIR spacing 1x1x5 mm.*--strict False"):
        CheckTrainedOnd(NAMES, block, strict=True, allow_missing_keys=True)(d)
    with pytest.raises(KeyError):
        CheckTrainedOnd(NAMES, block)(d)  # allow_missing_keys=False by default


def test_not_skull_stripped(subject4):
    sample, block = subject4
    ringed = _ringed(sample["T1"])
    found = CheckTrainedOn(block, "T1", log=False).findings(ringed, "T1")
    skull = [f for f in found if "skull-stripped" in f]
    assert len(skull) == 1 and skull[0].startswith("T1 is not skull-stripped: ")
    assert int(skull[0].split(": ")[1].split("%")[0]) >= 20
    assert outside_brain_fraction(sample["T1"].numpy()[0], [4.0] * 3) < 0.02  # the stripped phantom itself


def test_orientation_and_frames():
    block = {"orientation": "RAS", "frame_values": {"DCE": [0, 90, 180]}}
    flipped = geometry_findings("T1", [2, 2, 2], "LPS", [10, 10, 10], block)
    assert flipped == ["T1 orientation LPS, trained on RAS: slices are mirrored (reorient the files to RAS)"]
    sagittal = geometry_findings("T1", [2, 2, 2], "ASR", [10, 10, 10], block)
    assert "another plane" in sagittal[0]
    frames = geometry_findings("DCE", [2, 2, 2], "RAS", [10, 10, 10], block, frame_values=[0, 60, 120])
    assert frames == ["DCE frame values [0.0, 60.0, 120.0], trained on [0.0, 90.0, 180.0]"]


def test_shipped_bundles_record_what_they_were_trained_on():
    for name, protocol in (("seq2seq_brain", "brain"), ("seq2seq_breast", "breast")):
        meta = json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text())
        block = meta["trained_on"]
        assert block["protocol"] == protocol and block["spacing_mm"] == [2.0, 2.0, 2.0]
        assert block["orientation"] == "RAS" and "trained-on" in block["command"]
        assert set(block["intensity"]) >= {"normalisation", "T1", "T2"}
        assert block["skull_stripped"] is (True if protocol == "brain" else None)
        inference = json.loads((ROOT / "bundles" / name / "configs" / "inference.json").read_text())
        assert inference["strict"] is False and "@check_trained_on" in inference["preprocessing"]["transforms"]


def _write_subject(root: Path, sample, sid: str, affine: np.ndarray) -> Path:
    folder = root / sid
    folder.mkdir(parents=True)
    suffix = {"T1": "t1", "T2": "t2", "FLAIR": "flair"}
    entry = {"subject": sid}
    for name, s in suffix.items():  # T1Gd missing: synthesised
        path = folder / f"{sid}_{s}.nii.gz"
        nib.save(nib.Nifti1Image(sample[name].numpy()[0], affine), str(path))
        entry[name] = str(path)
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"name": "t", "protocol": "brain", "testing": [entry]}))
    return datalist


def test_bundle_sidecar_warns_and_strict_stops(subject4, tmp_path):
    from monai_seq2seq.cli.bundle import run_bundle_config

    sample, _ = subject4
    datalist = _write_subject(tmp_path / "data", sample, "BraTS2021_00001", np.diag([1.0, 1.0, 5.0, 1.0]))
    out = tmp_path / "out"
    run_bundle_config(BRAIN, "inference", datalist=str(datalist), output_dir=str(out), drop=[])
    sidecar = json.loads((out / "BraTS2021_00001" / "BraTS2021_00001_T1Gd_synthetic.json").read_text())
    assert "FLAIR spacing 1x1x5 mm, trained on 2 mm isotropic" in sidecar["TrainedOnWarnings"]
    with pytest.raises(Exception) as info:  # noqa: PT011 - MONAI may wrap it: the cause is looked for below
        run_bundle_config(
            BRAIN, "inference", datalist=str(datalist), output_dir=str(tmp_path / "o2"), drop=[], strict=True
        )
    err, chain = info.value, []
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    stop = [e for e in chain if isinstance(e, TrainedOnMismatchError)]
    assert stop and "T1 spacing 1x1x5 mm, trained on 2 mm isotropic" in str(stop[0])
    assert not (tmp_path / "o2" / "BraTS2021_00001").exists()
