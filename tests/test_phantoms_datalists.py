"""The phantom cohorts on disk go through the same datalist builders as real BraTS and breast folders."""

import json

from monai_seq2seq.data import build_brats_datalist, build_breast_datalist, load_datalist
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, write_cohort


def _subjects(datalist: dict) -> dict:
    entries = [e for split in ("training", "validation", "testing") for e in datalist.get(split, [])]
    return {e["subject"]: sorted(e["available"]) for e in entries}


def test_brain_cohort_through_brats_builder(tmp_path):
    written = write_cohort(BrainPhantomCohort(2, seed=7, spacing=8.0), tmp_path / "brats", progress=False)
    built = build_brats_datalist(tmp_path / "brats", tmp_path / "built.json")
    assert _subjects(built) == _subjects(json.loads(written.read_text()))
    assert all(v == ["FLAIR", "T1", "T1Gd", "T2"] for v in _subjects(built).values())
    entry = load_datalist(tmp_path / "built.json", "training")[0]
    assert entry["T1Gd"].endswith("_t1ce.nii.gz") and entry["label"].endswith("_seg.nii.gz")


def test_breast_cohort_through_breast_builder(tmp_path):
    cohort = BreastPhantomCohort(1, seed=7, shape=(40, 24, 16), spacing=8.0)
    written = write_cohort(cohort, tmp_path / "breast", progress=False)
    built = build_breast_datalist(tmp_path / "breast", tmp_path / "built.json")
    assert _subjects(built) == _subjects(json.loads(written.read_text()))
    assert len(next(iter(_subjects(built).values()))) == 8


def test_phantom_cohorts_through_build_datalist(tmp_path):
    """The one entry point recognises both phantom layouts (BraTS 2021 names; breast subject folders)."""
    from monai_seq2seq.data import build_datalist

    brain = write_cohort(BrainPhantomCohort(1, seed=7, spacing=8.0), tmp_path / "brats", progress=False)
    built = build_datalist(tmp_path / "brats")
    assert (built["layout"], built["protocol"]) == ("brats2021", "brain") and built["unused"] == []
    assert _subjects(built) == _subjects(json.loads(brain.read_text()))
    cohort = BreastPhantomCohort(1, seed=7, shape=(40, 24, 16), spacing=8.0)
    breast = write_cohort(cohort, tmp_path / "breast", progress=False)
    built = build_datalist(tmp_path / "breast")
    assert (built["layout"], built["protocol"]) == ("subjects", "breast") and built["unused"] == []
    assert _subjects(built) == _subjects(json.loads(breast.read_text()))
