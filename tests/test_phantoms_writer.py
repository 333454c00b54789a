"""Writing cohorts: BraTS and breast layouts, sidecars, datalist, atomic/no-overwrite, reload equality."""

import json

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_seq2seq.io.sidecar import read_frame_info
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, write_cohort

BREAST_KW = dict(shape=(40, 24, 16), spacing=8.0)


def test_brain_cohort_brats_layout_and_reload(tmp_path):
    cohort = BrainPhantomCohort(1, seed=2, spacing=4.0)
    datalist = write_cohort(cohort, tmp_path, progress=False)
    subject = cohort.generate(0)
    sid = subject.subject
    folder = tmp_path / sid
    expected = {f"{sid}_{s}.nii.gz" for s in ("t1", "t1ce", "t2", "flair", "seg", "unique-T1Gd")}
    assert {p.name for p in folder.iterdir()} == expected
    for name, suffix in (("T1", "t1"), ("T1Gd", "t1ce"), ("T2", "t2"), ("FLAIR", "flair")):
        img = nib.load(folder / f"{sid}_{suffix}.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj), subject.images[name])
        np.testing.assert_allclose(img.affine, subject.affine)
    seg = nib.load(folder / f"{sid}_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(seg.dataobj), subject.label)
    assert seg.get_data_dtype() == np.uint8
    entries = load_decathlon_datalist(datalist, data_list_key="training", base_dir=tmp_path)
    assert entries[0]["T1Gd"] == str(folder / f"{sid}_t1ce.nii.gz")
    data = json.loads(datalist.read_text())
    assert data["protocol"] == "brain" and data["training"][0]["available"] == ["T1", "T1Gd", "T2", "FLAIR"]
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_no_overwrite_unless_asked(tmp_path):
    cohort = BrainPhantomCohort(1, seed=2, spacing=6.0)
    write_cohort(cohort, tmp_path, progress=False)
    target = tmp_path / "BraTS2021_00000" / "BraTS2021_00000_t1.nii.gz"
    before = target.read_bytes()
    with pytest.raises(FileExistsError):
        write_cohort(BrainPhantomCohort(1, seed=3, spacing=6.0), tmp_path, progress=False)
    assert target.read_bytes() == before
    write_cohort(BrainPhantomCohort(1, seed=3, spacing=6.0), tmp_path, progress=False, overwrite=True)
    assert target.read_bytes() != before


def test_breast_layout_4d_sidecars_and_reload(tmp_path):
    cohort = BreastPhantomCohort(2, seed=0, **BREAST_KW)
    datalist = write_cohort(cohort, tmp_path, progress=False, val_fraction=0.5)
    subject = cohort.generate(0)
    sid = subject.subject
    folder = tmp_path / sid
    for name, arr in subject.images.items():
        img = nib.load(folder / f"{sid}_{name}.nii.gz")
        data = np.asarray(img.dataobj)
        if arr.ndim == 4:
            assert data.shape == (*arr.shape[1:], arr.shape[0])  # (x, y, z, t) on disk
            data = np.moveaxis(data, -1, 0)
        np.testing.assert_array_equal(data, arr)
        np.testing.assert_allclose(img.affine, subject.affine)
    assert json.loads((folder / f"{sid}_DCE.json").read_text())["VolumeTiming"] == subject.frame_values["DCE"]
    assert read_frame_info(folder / f"{sid}_DWI.nii.gz") == ("bvalue", [0.0, 150.0, 800.0, 1500.0])
    assert read_frame_info(folder / f"{sid}_FatSatDCE.nii.gz")[0] == "time"
    for name in ("seg", "unique-DCE", "unique-DWI"):
        assert (folder / f"{sid}_{name}.nii.gz").is_file()
    data = json.loads(datalist.read_text())
    assert len(data["training"]) == 1 and len(data["validation"]) == 1
    assert data["training"][0]["DWI"] == f"{sid}/{sid}_DWI.nii.gz"


def test_breast_loads_through_the_project_reader(tmp_path):
    from monai.transforms import LoadImaged

    from monai_seq2seq.io import Seq2SeqNiftiReader

    cohort = BreastPhantomCohort(1, seed=0, **BREAST_KW)
    datalist = write_cohort(cohort, tmp_path, progress=False)
    entry = load_decathlon_datalist(datalist, data_list_key="training", base_dir=tmp_path)[0]
    loaded = LoadImaged(["DCE", "DWI", "T1"], reader=Seq2SeqNiftiReader(), ensure_channel_first=True)(entry)
    sample = cohort[0]
    for key in ("DCE", "DWI", "T1"):
        np.testing.assert_array_equal(loaded[key].numpy(), sample[key].numpy())
    assert loaded["DCE"].meta["frame_values"] == sample["DCE"].meta["frame_values"]


def test_breast_dicom_series_round_trip(tmp_path):
    from monai_seq2seq.io import read_dicom_series

    cohort = BreastPhantomCohort(1, seed=0, shape=(24, 16, 6), spacing=12.0)
    write_cohort(cohort, tmp_path, progress=False, dicom=True)
    subject = cohort.generate(0)
    folder = tmp_path / subject.subject / "dicom"
    assert {p.name for p in folder.iterdir()} == {"DCE", "FatSatDCE", "DWI"}
    for name in ("DWI", "DCE"):
        arr, meta = read_dicom_series(folder / name)
        arr = np.moveaxis(np.asarray(arr), -1, 0)
        ref = subject.images[name]
        assert arr.shape == ref.shape
        np.testing.assert_allclose(arr, ref, rtol=0, atol=1e-3 * float(ref.max()))
        np.testing.assert_allclose(np.asarray(meta["affine"]), subject.affine, atol=1e-4)
        assert [float(v) for v in meta["frame_values"]] == subject.frame_values[name]
