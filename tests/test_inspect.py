"""seq2seq inspect: sequences from headers, what the bundle would do, every problem in one line."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_seq2seq.cli import main
from monai_seq2seq.cli.inspect import format_report, inspect_cohort
from monai_seq2seq.data.inspect import inspect_root
from monai_seq2seq.phantoms import BrainPhantomCohort

ROOT = Path(__file__).resolve().parents[1]
BRAIN = ROOT / "bundles" / "seq2seq_brain"
SID = "BraTS2021_00001"


@pytest.fixture(scope="module")
def sample():
    return BrainPhantomCohort(1, seed=0, spacing=4.0)[0]


def _cohort(root: Path, sample, shifts: dict[str, float] | None = None) -> Path:
    """A BraTS 2021 folder of one subject without T1Gd, with an extra image the layout does not know."""
    folder = root / SID
    folder.mkdir(parents=True)
    affine = np.asarray(sample["T1"].affine, dtype=np.float64)
    for name, suffix in {"T1": "t1", "T2": "t2", "FLAIR": "flair"}.items():
        moved = affine.copy()
        moved[0, 3] += (shifts or {}).get(name, 0.0)
        nib.save(nib.Nifti1Image(sample[name].numpy()[0], moved), str(folder / f"{SID}_{suffix}.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), affine), str(folder / f"{SID}_localizer.nii.gz"))
    return root


def test_inspect_root_lists_sequences_missing_and_unrecognised(sample, tmp_path):
    report = inspect_root(_cohort(tmp_path / "c", sample))
    assert report.protocol == "brain" and len(report.subjects) == 1
    subject = report.subjects[0]
    assert list(subject.sequences) == ["T1", "T2", "FLAIR"] and subject.missing == ["T1Gd"]
    t1 = subject.sequences["T1"]
    assert t1.shape == [49, 58, 47] and t1.spacing == [4.0, 4.0, 4.0] and t1.axcodes == "RAS" and t1.frames == 1
    assert Path(t1.file).name == f"{SID}_t1.nii.gz"
    assert any(f"{SID}_localizer.nii.gz" in f for f in report.unrecognised)
    assert subject.unrecognised == [f"{SID}/{SID}_localizer.nii.gz"]
    assert not subject.errors


def test_shifted_sequence_is_an_error_naming_both(sample, tmp_path):
    report = inspect_root(_cohort(tmp_path / "c", sample, shifts={"T2": 10.0}))
    assert report.subjects[0].errors == [
        "T2: affine differs from T1 by 10.0 mm (not aligned: register the sequences, e.g. --register rigid, "
        "or fix the files)"
    ]


def test_inspect_cohort_plans_and_compares_with_training(sample, tmp_path):
    report = inspect_cohort(_cohort(tmp_path / "c", sample), BRAIN)
    plan = report["subjects"][0]["plan"]
    assert plan["synthesise"] == ["T1Gd"] and plan["analyse"] == ["T1", "T2", "FLAIR"] and plan["refuse"] == []
    assert "T1 spacing 4 mm isotropic, trained on 2 mm isotropic" in plan["trained_on"]
    json.dumps(report)  # JSON-ready
    refused = inspect_cohort(_cohort(tmp_path / "d", sample, shifts={"FLAIR": 10.0}), BRAIN)
    plan = refused["subjects"][0]["plan"]
    assert plan["refuse"] and plan["synthesise"] == [] and "FLAIR: affine differs from T1" in plan["refuse"][0]


def test_duplicate_bvalues_and_missing_frame_values_from_a_datalist(tmp_path):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.float32), affine), str(tmp_path / "s_T1.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4, 5), np.float32), affine), str(tmp_path / "s_DWI.nii.gz"))
    (tmp_path / "s_DWI.bval").write_text("0 1000 1000 1000 1500\n")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4, 6), np.float32), affine), str(tmp_path / "s_DCE.nii.gz"))
    entry = {"subject": "s", "T1": "s_T1.nii.gz", "DWI": "s_DWI.nii.gz", "DCE": "s_DCE.nii.gz"}
    (tmp_path / "dl.json").write_text(json.dumps({"protocol": "breast", "testing": [entry]}))
    report = inspect_root(tmp_path / "dl.json")
    subject = report.subjects[0]
    assert subject.sequences["DWI"].frames == 5
    lines = subject.warnings + subject.errors
    assert any(line.startswith("DWI: duplicate b-values ['1000']") for line in lines)
    assert any(line.startswith("DCE: 6 frames without frame values") for line in lines)
    assert "DWI: 5 frame(s), the protocol's DWI has 4" in subject.errors


def test_command_prints_the_table_and_writes_json(sample, tmp_path, capsys):
    root = _cohort(tmp_path / "c", sample)
    out = tmp_path / "inspect.json"
    main(["inspect", str(root), "--bundle", str(BRAIN), "--out", str(out)])
    printed = capsys.readouterr().out
    assert f"subject {SID}" in printed and "synthesise: T1Gd" in printed
    assert "T1         49x58x47       4 mm isotropic     RAS    1" in printed
    assert f"{SID}_localizer.nii.gz" in printed
    assert json.loads(out.read_text())["subjects"][0]["missing"] == ["T1Gd"]
    assert format_report(json.loads(out.read_text())) in printed
