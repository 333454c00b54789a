"""A DICOM study folder as a PACS export gives it -> datalist entries and a table of what was recognised and why."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_seq2seq.data.datalists import DatalistError
from monai_seq2seq.data.dicom_study import TABLE_COLUMNS, format_study_table, scan_dicom_study
from monai_seq2seq.io import Seq2SeqReader, write_dicom_series, write_dicom_study
from monai_seq2seq.phantoms import BreastPhantomCohort


def _sample(subject) -> dict:
    affine = torch.as_tensor(subject.affine)
    out = {}
    for name, img in subject.images.items():
        meta = {}
        if name in subject.frame_values:
            meta = {
                "frame_axis": "time" if "DCE" in name else "bvalue",
                "frame_values": list(subject.frame_values[name]),
            }
        arr = np.asarray(img, dtype=np.float32)
        out[name] = MetaTensor(arr if arr.ndim == 4 else arr[None], affine=affine, meta=meta)
    return out


def _strip_suffixes(folder):
    """PACS exports often name files IM0001... without a suffix."""
    for p in sorted(folder.rglob("*.dcm")):
        p.rename(p.with_name(p.stem))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Two patients, each a study nested three levels deep, one series per folder, plus a localizer, an SR-like
    non-MR series and an unnamed series sharing a folder with another."""
    root = tmp_path_factory.mktemp("pacs")
    cohort = BreastPhantomCohort(2, seed=11, shape=(40, 24, 16), spacing=8.0)
    for i in range(2):
        subject = cohort.generate(i)
        sample = _sample(subject)
        keep = {k: sample[k] for k in ("T1", "T2", "DCE", "DWI")} if i == 0 else {k: sample[k] for k in ("T1", "DCE")}
        study = root / "EXPORT" / f"PAT{i}" / "STUDY_20240101"
        names = {"T1": "t1_fl3d_tra", "T2": "t2_tse_tra", "DCE": "fl3d_dyn_vibrant", "DWI": "ep2d_diff_tra"}
        for k, (name, vol) in enumerate(keep.items()):
            write_dicom_series(
                vol,
                out_dir=study / f"SER{k + 1:03d}",
                series_description=names[name],
                patient_id=f"PAT{i}",
                series_number=k + 1,
                study_instance_uid=f"1.2.3.{i}",
                frame_of_reference_uid=f"1.2.3.{i}.9",
                echo_time_ms=100.0 if name == "T2" else 3.0,
                repetition_time_ms=4000.0 if name == "T2" else 7.0,
                uid_seed=f"{i}-{name}",
            )
        t1 = np.asarray(sample["T1"][0])
        write_dicom_series(  # a localizer: one slice of each plane would not stack; one plane is enough here
            t1[..., :1],
            subject.affine,
            study / "SER900",
            series_description="AAHScout_localizer",
            patient_id=f"PAT{i}",
            series_number=900,
            study_instance_uid=f"1.2.3.{i}",
            uid_seed=f"{i}-loc",
        )
        write_dicom_series(  # an unknown MR series sharing SER001's folder
            t1,
            subject.affine,
            study / "SER001",
            series_description="research_sequence_x",
            patient_id=f"PAT{i}",
            series_number=50,
            study_instance_uid=f"1.2.3.{i}",
            uid_seed=f"{i}-x",
            file_prefix="X",
        )
        write_dicom_series(
            t1[..., :2],
            subject.affine,
            study / "SER990",
            series_description="dose report",
            patient_id=f"PAT{i}",
            series_number=990,
            study_instance_uid=f"1.2.3.{i}",
            uid_seed=f"{i}-sr",
            extra_tags={"Modality": "OT"},
        )
    _strip_suffixes(root)
    (root / "EXPORT" / "DICOMDIR").write_bytes(b"not read")
    (root / "EXPORT" / "notes.txt").write_text("exported by PACS")
    return root


def test_study_folder_gives_entries_and_table(export):
    entries, rows = scan_dicom_study(export, "breast")
    assert [e["subject"] for e in entries] == ["PAT0", "PAT1"]
    first, second = entries
    assert first["available"] == ["T1", "T2", "DCE", "DWI"] and second["available"] == ["T1", "DCE"]
    assert first["DCE"].endswith("SER003") and first["DWI"].endswith("SER004")
    assert isinstance(first["T1"], list) and len(first["T1"]) > 1  # SER001 also holds another series
    assert all(set(r) == set(TABLE_COLUMNS) for r in rows)
    by = {(r["subject"], r["description"]): r for r in rows}
    assert by[("PAT0", "ep2d_diff_tra")]["frames"].startswith("4 bvalue [0, 150, 800, 1500]")
    assert (
        by[("PAT0", "fl3d_dyn_vibrant")]["sequence"] == "DCE" and by[("PAT0", "fl3d_dyn_vibrant")]["status"] == "used"
    )
    loc = by[("PAT0", "AAHScout_localizer")]
    assert loc["status"] == "not used" and "localizer" in loc["reason"] and loc["modality"] == "MR"
    unknown = by[("PAT1", "research_sequence_x")]
    assert unknown["status"] == "not used" and "name no breast sequence" in unknown["reason"]
    other = by[("PAT0", "dose report")]
    assert other["status"] == "not used" and other["reason"] == "modality OT is not MR"
    table = format_study_table(rows)
    assert "AAHScout_localizer" in table and "not used" in table


def test_entries_read_with_the_bundles_reader(export):
    entries, _ = scan_dicom_study(export, "breast")
    keys = ["T1", "DCE", "DWI"]
    data = LoadImaged(keys, reader=Seq2SeqReader(), ensure_channel_first=True, image_only=True)(
        {k: entries[0][k] for k in keys}
    )
    assert data["DCE"].shape[0] == 6 and data["DCE"].meta["frame_axis"] == "time"
    assert data["DWI"].meta["frame_values"] == [0.0, 150.0, 800.0, 1500.0]
    assert data["T1"].shape[0] == 1 and data["T1"].meta["sequence"] == "T1"  # the T1 of a shared folder, by its files
    assert data["T1"].shape[1:] == data["DCE"].shape[1:]


def test_protocol_chosen_from_the_series(export):
    entries, _ = scan_dicom_study(export)  # DCE and DWI only the breast protocol has
    assert entries[0]["available"] == ["T1", "T2", "DCE", "DWI"]


def test_dwi_without_bvalue_tags_is_listed_with_its_fix(tmp_path):
    vol = np.random.default_rng(0).integers(1, 1000, size=(3, 6, 5, 4)).astype(np.float32)
    write_dicom_series(
        vol,
        np.eye(4),
        tmp_path / "a" / "b",
        frame_axis="time",
        frame_values=[0, 30, 60],
        series_description="ep2d_diff_tra",
        patient_id="P9",
    )
    entries, rows = scan_dicom_study(tmp_path, "breast")
    assert entries[0]["available"] == ["DWI"]
    (row,) = rows
    assert row["status"] == "used (needs bvalues)" and "no b-value" in row["reason"] and "bvalues" in row["reason"]
    entries, rows = scan_dicom_study(tmp_path, "breast", bvalues=[0, 800, 1500])
    assert rows[0]["status"] == "used" and rows[0]["frames"] == "3 bvalue [0, 800, 1500]"


def test_dce_of_one_series_per_timepoint_is_combined(tmp_path):
    vol = np.random.default_rng(1).integers(1, 1000, size=(3, 6, 5, 4)).astype(np.float32)
    for t in range(3):
        write_dicom_series(
            vol[t],
            np.eye(4),
            tmp_path / f"S{t}",
            series_description="dyn_vibrant",
            series_number=10 + t,
            series_time_s=8 * 3600.0 + 60.0 * t,
            study_instance_uid="1.9",
            uid_seed=f"t{t}",
            contrast_agent="GADOLINIUM",
        )
    entries, rows = scan_dicom_study(tmp_path, "breast")
    assert isinstance(entries[0]["DCE"], list) and len(entries[0]["DCE"]) == 12
    assert [r["status"] for r in rows] == ["used"] and rows[0]["frames"] == "3 time [0, 60, 120]"
    img = LoadImaged("DCE", reader=Seq2SeqReader(), ensure_channel_first=True, image_only=True)(entries[0])["DCE"]
    np.testing.assert_array_equal(img.numpy(), vol)


def test_errors(tmp_path):
    with pytest.raises(DatalistError, match="does not exist"):
        scan_dicom_study(tmp_path / "nope", "breast")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DatalistError, match="holds no DICOM files"):
        scan_dicom_study(tmp_path, "breast")
    shutil.rmtree(tmp_path)


def test_study_written_by_write_dicom_study_nested(tmp_path):
    subject = BreastPhantomCohort(1, seed=5, shape=(40, 24, 16), spacing=8.0).generate(0)
    sample = _sample(subject)
    write_dicom_study(sample, tmp_path / "a" / "b" / "c" / "study", patient_id="Q1", uid_seed="q")
    entries, rows = scan_dicom_study(tmp_path, "breast")
    assert [e["subject"] for e in entries] == ["Q1"]
    assert entries[0]["available"] == [
        n for n in ("T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "WashIn", "WashOut", "DWI") if n in sample
    ]
    assert all(r["status"] == "used" for r in rows)
