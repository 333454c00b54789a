"""Real layouts, detected by one entry point (monai_seq2seq.data.build_datalist, ``seq2seq datalist``).

Each layout is made from phantom subjects (4 mm brain, a small breast) renamed exactly as the real data set names
its files: BraTS 2021, BraTS 2023-2025, BraSyn validation, BIDS (sessions, ``ce-``/``acq-`` entities, ``dwi/``),
MAMA-MIA and a DICOM study folder. Image files that match no sequence are listed with the reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from layout_folders import BIDS, BRATS21, copy_file, make_brats2023, make_mama_mia

from monai_seq2seq.data import (
    DatalistError,
    brasyn_filename,
    build_brats_datalist,
    build_datalist,
    detect_layout,
    load_datalist,
    scan_layout,
)
from monai_seq2seq.io import load_sequence
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, write_cohort

# the folder builders are shared with tests/test_layouts_end_to_end.py
_copy, _brats23, _mama = copy_file, make_brats2023, make_mama_mia


@pytest.fixture(scope="module")
def brain(tmp_path_factory) -> list[dict[str, Path]]:
    """Two 4 mm brain phantom subjects: ``{"T1": path, ..., "label": path}`` each (BraTS 2021 files)."""
    root = tmp_path_factory.mktemp("brain")
    write_cohort(BrainPhantomCohort(2, seed=7, spacing=4.0), root / "cohort", progress=False)
    subjects = sorted(d for d in (root / "cohort").iterdir() if d.is_dir())
    return [{k: d / f"{d.name}_{v}.nii.gz" for k, v in BRATS21.items()} for d in subjects]


@pytest.fixture(scope="module")
def breast(tmp_path_factory) -> Path:
    """One small breast phantom subject folder (NIfTI and DICOM series)."""
    root = tmp_path_factory.mktemp("breast")
    cohort = BreastPhantomCohort(1, seed=7, shape=(40, 24, 16), spacing=8.0)
    write_cohort(cohort, root / "cohort", dicom=True, progress=False)
    return next(d for d in (root / "cohort").iterdir() if d.is_dir())


def _entries(datalist: dict) -> dict[str, dict]:
    return {e["subject"]: e for k in ("training", "validation", "testing") for e in datalist[k]}


def _unused(datalist_or_scan) -> dict[str, str]:
    rows = datalist_or_scan["unused"] if isinstance(datalist_or_scan, dict) else datalist_or_scan.unused
    return {
        (r["path"] if isinstance(r, dict) else r.path): (r["reason"] if isinstance(r, dict) else r.reason) for r in rows
    }


def test_brats2021_and_unrecognised_files_listed(brain, tmp_path):
    root = tmp_path / "BraTS2021_Training_Data"
    for files in brain:
        for src in files.values():
            _copy(src, root / src.parent.name / src.name)
    sid = brain[0]["T1"].parent.name
    _copy(brain[0]["T1"], root / sid / f"{sid}_adc.nii.gz")  # a name the protocol does not know
    _copy(brain[0]["T1"], root / sid / f"{sid}_t1.nrrd")  # a sequence in a format the bundles do not read
    _copy(brain[0]["T1"], root / "template.nii.gz")  # outside any subject folder
    assert detect_layout(root) == "brats2021"
    built = build_datalist(root, tmp_path / "dl.json")
    assert built["layout"] == "brats2021" and built["protocol"] == "brain"
    assert [e["available"] for e in built["training"]] == [["T1", "T1Gd", "T2", "FLAIR"]] * 2
    unused = _unused(built)
    assert "names no sequence of protocol 'brain'" in unused[f"{sid}/{sid}_adc.nii.gz"]
    assert "looks like T1, but .nrrd" in unused[f"{sid}/{sid}_t1.nrrd"]
    assert "outside the subject folders" in unused["template.nii.gz"]
    entry = load_datalist(tmp_path / "dl.json")[0]
    assert entry["T1Gd"].endswith("_t1ce.nii.gz") and entry["label"].endswith("_seg.nii.gz")


def test_brats2023_names_for_every_task(brain, tmp_path):
    root = _brats23(brain, tmp_path / "data", tasks=("MET", "SSA"))
    assert detect_layout(root) == "brats2023"
    built = build_datalist(root, tmp_path / "dl.json")
    entries = _entries(built)
    assert sorted(entries) == ["BraTS-MET-00000-000", "BraTS-SSA-00001-000"]
    assert all(e["available"] == ["T1", "T1Gd", "T2", "FLAIR"] and "label" in e for e in entries.values())
    assert entries["BraTS-MET-00000-000"]["T1Gd"].endswith("BraTS-MET-00000-000-t1c.nii.gz")
    assert built["unused"] == []
    # the BraTS builder accepts them too (it refused them: "no recognised brain sequence")
    assert _entries(build_brats_datalist(root)).keys() == entries.keys()


def test_brasyn_layout_and_names(brain, tmp_path):
    root = _brats23(brain, tmp_path / "val", drop=["T1Gd", "FLAIR"])
    scan = scan_layout(root)
    assert scan.layout == "brasyn"
    missing = {s.subject: [n for n in scan.protocol.names if n not in s.sequences] for s in scan.subjects}
    assert missing == {"BraTS-GLI-00000-000": ["T1Gd"], "BraTS-MEN-00001-000": ["FLAIR"]}
    assert "BraTS-GLI-00000-000" in scan.table() and "--brasyn True" in scan.table()
    assert brasyn_filename("BraTS-GLI-00000-000", "T1Gd") == "BraTS-GLI-00000-000-t1c.nii.gz"
    assert brasyn_filename("BraTS-MEN-00001-000", "flair") == "BraTS-MEN-00001-000-t2f.nii.gz"
    with pytest.raises(ValueError, match="not a BraTS 2023-2025 case id"):
        brasyn_filename("BraTS2021_00000", "T1Gd")


def test_brasyn_writer_names_the_missing_sequence(tmp_path):
    from types import SimpleNamespace

    from monai.data import MetaTensor

    from monai_seq2seq.core import BRAIN, BREAST
    from monai_seq2seq.inference import SyntheticImageWriter

    writer = SyntheticImageWriter(tmp_path / "out", BRAIN, brasyn=True)
    t1 = MetaTensor(torch.rand(1, 4, 4, 3), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    case = "BraTS-GLI-00001-000"
    subject = {"subject": case, "T1": t1, "synthetic": {"T1Gd": (torch.rand(1, 4, 4, 3), ["T1"])}}
    writer(SimpleNamespace(state=SimpleNamespace(output=[subject])))
    assert sorted(p.name for p in (tmp_path / "out" / case).iterdir()) == [f"{case}-t1c.nii.gz"]
    assert np.allclose(nib.load(tmp_path / "out" / case / f"{case}-t1c.nii.gz").affine[0, 0], 2.0)
    with pytest.raises(ValueError, match="brain protocol"):
        SyntheticImageWriter(tmp_path / "out2", BREAST, brasyn=True)


@pytest.mark.slow
def test_seq2seq_synthesize_brasyn_end_to_end(brain, tmp_path, capsys):
    """``seq2seq datalist`` then ``seq2seq synthesize --brasyn True`` writes the challenge's file names."""
    from monai_seq2seq.cli import main

    root = _brats23(brain, tmp_path / "val", drop=["T1Gd", "FLAIR"])
    main(["datalist", str(root), "--out", str(tmp_path / "dl.json")])
    assert "layout: brasyn" in capsys.readouterr().out
    out = tmp_path / "syn"
    main(["synthesize", "--datalist", str(tmp_path / "dl.json"), "--brasyn", "True", "--out", str(out)])
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz"))
    assert written == [
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz",
        "BraTS-MEN-00001-000/BraTS-MEN-00001-000-t2f.nii.gz",
    ]


def test_bids_sessions_entities_and_unused(brain, tmp_path):
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    for ses, keys in (("ses-01", ("T1", "T1Gd", "T2", "FLAIR")), ("ses-02", ("T1", "T2"))):
        for key in keys:
            acq = "acq-mprage_" if (ses, key) == ("ses-02", "T1") else ""
            _copy(brain[0][key], root / "sub-01" / ses / "anat" / f"sub-01_{ses}_{acq}{BIDS[key]}.nii.gz")
    for key in ("T1", "FLAIR"):
        _copy(brain[1][key], root / "sub-02" / "anat" / f"sub-02_{BIDS[key]}.nii.gz")
    _copy(brain[1]["T2"], root / "sub-02" / "anat" / "sub-02_acq-lowres_T1w.nii.gz")  # a second T1w
    _copy(brain[1]["T2"], root / "sub-02" / "func" / "sub-02_task-rest_bold.nii.gz")
    assert detect_layout(root) == "bids"
    built = build_datalist(root, tmp_path / "dl.json")
    entries = _entries(built)
    assert built["protocol"] == "brain"
    assert {k: e["available"] for k, e in entries.items()} == {
        "sub-01_ses-01": ["T1", "T1Gd", "T2", "FLAIR"],
        "sub-01_ses-02": ["T1", "T2"],
        "sub-02": ["T1", "FLAIR"],
    }
    assert entries["sub-01_ses-01"]["T1Gd"].endswith("sub-01_ses-01_ce-gadolinium_T1w.nii.gz")
    assert entries["sub-01_ses-02"]["T1"].endswith("acq-mprage_T1w.nii.gz")
    unused = _unused(built)
    assert "a second file for T1" in unused["sub-02/anat/sub-02_acq-lowres_T1w.nii.gz"]
    assert "BIDS func/ is not used" in unused["sub-02/func/sub-02_task-rest_bold.nii.gz"]


def test_bids_dwi(breast, tmp_path):
    sid = breast.name
    root = tmp_path / "bids"
    _copy(breast / f"{sid}_T1.nii.gz", root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _copy(breast / f"{sid}_FatSatT1.nii.gz", root / "sub-01" / "anat" / "sub-01_ce-gadolinium_T1w.nii.gz")
    _copy(breast / f"{sid}_DWI.nii.gz", root / "sub-01" / "dwi" / "sub-01_dwi.nii.gz")
    _copy(breast / f"{sid}_DWI.bval", root / "sub-01" / "dwi" / "sub-01_dwi.bval")
    # BIDS is brain by default (as most BIDS data sets with dwi/ are): the dwi file is listed, with the fix
    as_brain = build_datalist(root)
    assert as_brain["protocol"] == "brain" and _entries(as_brain)["sub-01"]["available"] == ["T1", "T1Gd"]
    assert "it names DWI of protocol 'breast'" in _unused(as_brain)["sub-01/dwi/sub-01_dwi.nii.gz"]
    built = build_datalist(root, protocol="breast")
    entry = _entries(built)["sub-01"]
    assert built["protocol"] == "breast" and entry["available"] == ["T1", "DWI"]
    assert load_sequence(entry["DWI"]).meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0]
    # a contrast-enhanced T1w is not the breast protocol's plain T1
    assert "contrast-enhanced (ce-gadolinium)" in _unused(built)["sub-01/anat/sub-01_ce-gadolinium_T1w.nii.gz"]


def test_mama_mia_phases_in_order_without_timing(breast, tmp_path):
    root = _mama(breast, tmp_path / "MAMA-MIA")
    assert detect_layout(root) == "mama-mia"
    scan = scan_layout(root)
    assert "no timing" in scan.table()
    built = build_datalist(root, tmp_path / "dl.json")
    entries = _entries(built)
    assert built["protocol"] == "breast" and sorted(entries) == ["DUKE_001", "ISPY2_100899"]
    entry = load_datalist(tmp_path / "dl.json")[0]
    assert entry["available"] == ["DCE"] and entry["label"].endswith("segmentations/expert/duke_001.nii.gz")
    assert [Path(p).name for p in entry["DCE"]] == [f"duke_001_{t:04d}.nii.gz" for t in range(3)]
    dce = load_sequence(entry["DCE"])
    assert dce.shape[0] == 3 and "frame_values" not in dce.meta  # the layout has no timing
    original = np.moveaxis(np.asarray(nib.load(breast / f"{breast.name}_DCE.nii.gz").dataobj)[..., :3], -1, 0)
    assert np.allclose(dce.numpy(), original)  # phases in order
    assert "not an expert segmentation" in _unused(built)["segmentations/automatic/duke_001.nii.gz"]


def test_mama_mia_with_dce_times(breast, tmp_path):
    root = _mama(breast, tmp_path / "MAMA-MIA")
    times = tmp_path / "times.json"
    times.write_text(json.dumps({"duke_001": [0, 90, 180], "ISPY2_100899": [0, 60, 120]}))
    built = build_datalist(root, tmp_path / "out" / "dl.json", dce_times=str(times))
    entries = _entries(built)
    assert "ISPY2_100899" not in entries  # 4 phases, 3 times: not used, and said so
    reason = _unused(built)["images/ISPY2_100899/ispy2_100899_0000.nii.gz"]
    assert "4 phases, but dce_times gives 3" in reason
    entry = next(e for e in load_datalist(tmp_path / "out" / "dl.json") if e["subject"] == "DUKE_001")
    assert entry["DCE"].endswith("derived/DUKE_001/DUKE_001_DCE.nii.gz")
    dce = load_sequence(entry["DCE"])
    assert dce.shape[0] == 3 and dce.meta["frame_axis"] == "time" and dce.meta["frame_values"] == [0.0, 90.0, 180.0]


def test_dicom_study_folder(breast, tmp_path, capsys):
    """A folder of DICOM and no NIfTI goes to the DICOM study scanner (helper module data/dicom_study.py)."""
    from monai_seq2seq.cli import main

    root = tmp_path / "pacs_export"
    shutil.copytree(breast / "dicom", root / "STUDY1")
    assert detect_layout(root) == "dicom"
    built = build_datalist(root, tmp_path / "dl.json")
    assert built["layout"] == "dicom" and built["protocol"] == "breast"
    (entry,) = load_datalist(tmp_path / "dl.json")
    assert entry["available"] == ["DCE", "FatSatDCE", "DWI"]
    main(["datalist", str(root)])
    printed = capsys.readouterr().out
    assert "layout: dicom" in printed and "series:" in printed


def test_subject_folders_guess_protocol_and_use_dicom(breast, tmp_path):
    root = tmp_path / "breast"
    sid = breast.name
    for name in ("T1", "T2", "FatSatT1"):
        _copy(breast / f"{sid}_{name}.nii.gz", root / sid / f"{sid}_{name}.nii.gz")
    _copy(breast / f"{sid}_T1.nii.gz", root / sid / f"{sid}_ADC.nii.gz")
    shutil.copytree(breast / "dicom" / "DWI", root / sid / "dicom" / "DWI")
    scan = scan_layout(root)
    assert scan.layout == "subjects" and scan.protocol.name == "breast"
    assert [n for n in scan.protocol.names if n in scan.subjects[0].sequences] == ["T1", "FatSatT1", "T2"]
    unused = _unused(scan)
    assert "names no sequence of protocol 'breast'" in unused[f"{sid}/{sid}_ADC.nii.gz"]
    assert any("use_dicom=True" in r for p, r in unused.items() if p.startswith(f"{sid}/dicom/DWI"))
    with_dicom = scan_layout(root, use_dicom=True)
    assert with_dicom.subjects[0].sequences["DWI"].endswith("dicom/DWI")


def test_cli_datalist_table_and_errors(brain, tmp_path, capsys):
    from monai_seq2seq.cli import main

    root = _brats23(brain, tmp_path / "data")
    sid = "BraTS-GLI-00000-000"
    _copy(brain[0]["T1"], root / sid / f"{sid}-t1n-old.nii.gz")
    main(["datalist", str(root)])
    printed = capsys.readouterr().out
    assert "layout: brats2023" in printed and "nothing written" in printed and "t1n-old" in printed
    assert not (tmp_path / "dl.json").exists()
    main(["datalist", str(root), "--out", str(tmp_path / "dl.json")])
    assert "wrote" in capsys.readouterr().out
    assert len(load_datalist(tmp_path / "dl.json")) == 2
    with pytest.raises(SystemExit) as err:
        main(["datalist", str(tmp_path / "nowhere")])
    assert err.value.code == 1
    assert "does not exist" in capsys.readouterr().err


def test_no_images_and_unknown_layout(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("x")
    with pytest.raises(DatalistError, match="holds no NIfTI"):
        build_datalist(tmp_path / "empty")
    with pytest.raises(DatalistError, match="unknown layout 'nnunet'"):
        scan_layout(tmp_path / "empty", layout="nnunet")
