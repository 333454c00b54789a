"""Datalists from BraTS 2021 and breast folders (monai_seq2seq.data.datalists)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImaged

from monai_seq2seq.data.datalists import (
    DatalistError,
    build_brats_datalist,
    build_breast_datalist,
    load_datalist,
    split_subjects,
    write_datalist,
)
from monai_seq2seq.io import Seq2SeqNiftiReader, write_dicom_series, write_frame_info


def _nii(path, shape=(4, 4, 2)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))


def _brats(root, n=5, missing=None):
    missing = missing or {}
    for i in range(n):
        sid = f"BraTS2021_{i:05d}"
        for suffix in ("t1", "t1ce", "t2", "flair", "seg"):
            if suffix not in missing.get(i, ()):
                _nii(root / sid / f"{sid}_{suffix}.nii.gz")
    return root


def _breast(root):
    s = root / "P001"
    for name in ("T1", "T2", "WashIn"):
        _nii(s / f"P001_{name}.nii.gz")
    _nii(s / "P001_DCE.nii.gz", (4, 4, 2, 6))
    write_frame_info(s / "P001_DCE.nii.gz", "time", [0, 90, 180, 270, 360, 450])
    _nii(s / "P001_DWI.nii.gz", (4, 4, 2, 4))
    write_frame_info(s / "P001_DWI.nii.gz", "bvalue", [0, 150, 800, 1500])
    _nii(s / "P001_seg.nii.gz")
    _nii(s / "P001_unique-DCE.nii.gz")
    (s / "notes.txt").write_text("ignored")
    t = root / "P002"
    _nii(t / "P002_FatSatT1.nii.gz")
    write_dicom_series(
        np.zeros((2, 4, 4, 2), np.float32),
        np.eye(4),
        t / "dicom" / "FatSatDCE",
        frame_axis="time",
        frame_values=[0, 60],
    )
    return root


def test_brats_datalist_available_and_paths(tmp_path):
    root = _brats(tmp_path / "brats", n=3, missing={1: ("t1ce", "seg")})
    dl = build_brats_datalist(root)
    assert dl["protocol"] == "brain" and dl["validation"] == [] and dl["testing"] == []
    entries = dl["training"]
    assert [e["subject"] for e in entries] == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    assert entries[0]["available"] == ["T1", "T1Gd", "T2", "FLAIR"]
    assert entries[1]["available"] == ["T1", "T2", "FLAIR"]
    assert "T1Gd" not in entries[1] and "label" not in entries[1]
    assert entries[0]["T1Gd"] == str((root / "BraTS2021_00000" / "BraTS2021_00000_t1ce.nii.gz").resolve())
    assert entries[0]["label"].endswith("BraTS2021_00000_seg.nii.gz")


def test_written_json_loads_with_monai(tmp_path):
    root = _brats(tmp_path / "brats", n=4)
    out = tmp_path / "lists" / "brats.json"
    dl = build_brats_datalist(root, out, fractions=(0.5, 0.25, 0.25), seed=1)
    raw = json.loads(out.read_text())
    assert raw == dl
    assert set(raw) >= {"name", "protocol", "training", "validation", "testing"}
    assert raw["training"][0]["T1"].startswith("../brats/")  # relative to the JSON's folder
    assert [len(raw[k]) for k in ("training", "validation", "testing")] == [2, 1, 1]
    items = load_decathlon_datalist(out, data_list_key="validation")
    sid = raw["validation"][0]["subject"]
    assert items[0]["T2"] == str((root / sid / f"{sid}_t2.nii.gz").resolve())
    assert list(tmp_path.joinpath("lists").glob("*.tmp")) == []


def test_load_datalist_keeps_subject_when_json_in_root(tmp_path):
    root = _brats(tmp_path / "brats", n=2)
    out = root / "datalist.json"
    build_brats_datalist(root, out)
    plain = load_decathlon_datalist(out)
    assert plain[0]["subject"] != "BraTS2021_00000"  # MONAI turns it into the subject folder's path
    items = load_datalist(out)
    assert items[0]["subject"] == "BraTS2021_00000"
    assert items[0]["available"] == ["T1", "T1Gd", "T2", "FLAIR"]
    assert items[0]["FLAIR"] == str(root.resolve() / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz")


def test_split_is_reproducible_and_disjoint():
    entries = [{"subject": f"s{i:02d}"} for i in range(20)]
    a = split_subjects(entries, (0.7, 0.2, 0.1), seed=3)
    b = split_subjects(list(reversed(entries)), (0.7, 0.2, 0.1), seed=3)
    assert a == b
    assert [len(a[k]) for k in ("training", "validation", "testing")] == [14, 4, 2]
    ids = [e["subject"] for k in a for e in a[k]]
    assert sorted(ids) == [e["subject"] for e in entries]
    c = split_subjects(entries, (0.7, 0.2, 0.1), seed=4)
    assert c["validation"] != a["validation"]
    with pytest.raises(DatalistError, match="summing to 1"):
        split_subjects(entries, (0.7, 0.2))


def test_breast_datalist(tmp_path):
    root = _breast(tmp_path / "breast")
    dl = build_breast_datalist(root, use_dicom=True)
    p1, p2 = dl["training"]
    assert p1["available"] == ["T1", "T2", "DCE", "WashIn", "DWI"]
    assert p1["unique-DCE"].endswith("P001_unique-DCE.nii.gz")
    assert p1["label"].endswith("P001_seg.nii.gz")
    assert p2["available"] == ["FatSatT1", "FatSatDCE"]
    assert p2["FatSatDCE"].endswith("dicom/FatSatDCE")
    no_dicom = build_breast_datalist(root)
    assert no_dicom["training"][1]["available"] == ["FatSatT1"]
    sample = LoadImaged(["DCE", "DWI"], reader=Seq2SeqNiftiReader(), ensure_channel_first=True)(p1)
    assert tuple(sample["DCE"].shape) == (6, 4, 4, 2)
    assert sample["DWI"].meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0]


def test_empty_root_and_missing_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatalistError, match="has no subject folders"):
        build_brats_datalist(tmp_path / "empty")
    with pytest.raises(DatalistError, match="does not exist"):
        build_breast_datalist(tmp_path / "nope")


def test_subject_without_sequences(tmp_path):
    root = _brats(tmp_path / "brats", n=2)
    bad = root / "BraTS2021_00009"
    _nii(bad / "BraTS2021_00009_seg.nii.gz")
    (bad / "README.txt").write_text("x")
    with pytest.raises(DatalistError, match=r"BraTS2021_00009'? has no recognised brain sequence"):
        build_brats_datalist(root)
    dl = build_brats_datalist(root, skip_empty=True)
    assert [e["subject"] for e in dl["training"]] == ["BraTS2021_00000", "BraTS2021_00001"]
    only_bad = tmp_path / "only_bad"
    _nii(only_bad / "x" / "x_other.nii.gz")
    with pytest.raises(DatalistError, match="no subject folder holds a recognised sequence"):
        build_breast_datalist(only_bad, skip_empty=True)


def test_two_files_for_one_sequence(tmp_path):
    root = _brats(tmp_path / "brats", n=1)
    _nii(root / "BraTS2021_00000" / "BraTS2021_00000_t1.nii")
    with pytest.raises(DatalistError, match=r"two files for 'T1'.*_t1.nii"):
        build_brats_datalist(root)


def test_write_datalist_atomic_overwrite(tmp_path):
    out = tmp_path / "d.json"
    write_datalist({"name": "a", "training": []}, out)
    write_datalist({"name": "b", "training": []}, out)
    assert json.loads(out.read_text())["name"] == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json"]


def test_load_datalist_names_missing_files(tmp_path):
    import json as _json

    from monai_seq2seq.data import DatalistError, load_datalist

    (tmp_path / "a_t1.nii.gz").write_bytes(b"x")
    listing = {"testing": [{"subject": "a", "T1": "a_t1.nii.gz", "T2": "a_t2.nii.gz", "available": ["T1", "T2"]}]}
    path = tmp_path / "datalist.json"
    path.write_text(_json.dumps(listing))
    with pytest.raises(DatalistError, match=r"do not exist: a: .*a_t2\.nii\.gz"):
        load_datalist(path, "testing")
    assert len(load_datalist(path, "testing", check_files=False)) == 1
    with pytest.raises(DatalistError, match="does not exist"):
        load_datalist(tmp_path / "nope.json", "testing")


def test_brats_builder_reads_brats2023_names(tmp_path):
    """BraTS 2023-2025 names (``<case>-t1n``: hyphen before the suffix) were refused as a folder without sequences."""
    for case in ("BraTS-GLI-00000-000", "BraTS-SSA-00126-000"):
        for suffix in ("t1n", "t1c", "t2w", "t2f", "seg"):
            _nii(tmp_path / "data" / case / f"{case}-{suffix}.nii.gz")
    built = build_brats_datalist(tmp_path / "data", tmp_path / "dl.json")
    assert [e["available"] for e in built["training"]] == [["T1", "T1Gd", "T2", "FLAIR"]] * 2
    entry = load_datalist(tmp_path / "dl.json")[0]
    assert entry["T1Gd"].endswith("BraTS-GLI-00000-000-t1c.nii.gz") and entry["label"].endswith("-seg.nii.gz")


def test_list_entries_relative_and_checked(tmp_path):
    """A sequence given as a list of files (DCE phases) is written relative and each file is checked on load."""
    from monai_seq2seq.data.datalists import _relativise

    phases = [tmp_path / "c" / f"c_{i:04d}.nii.gz" for i in range(2)]
    for p in phases:
        _nii(p)
    entry = _relativise({"subject": "c", "DCE": [str(p) for p in phases], "available": ["DCE"]}, tmp_path)
    assert entry["DCE"] == ["c/c_0000.nii.gz", "c/c_0001.nii.gz"]
    write_datalist({"training": [entry]}, tmp_path / "dl.json")
    assert load_datalist(tmp_path / "dl.json")[0]["DCE"] == [str(p) for p in phases]
    phases[1].unlink()
    with pytest.raises(DatalistError, match="c_0001"):
        load_datalist(tmp_path / "dl.json")
