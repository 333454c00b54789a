"""Seq2SeqReader picks the NIfTI or the DICOM reader per datalist entry; the breast bundle reads DICOM entries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImaged

from monai_seq2seq.core.errors import UnreadableFileError
from monai_seq2seq.io import DicomSeriesReader, Seq2SeqNiftiReader, Seq2SeqReader, is_dicom_source, write_dicom_series

BREAST_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_breast"


@pytest.fixture()
def files(tmp_path):
    vol = np.random.default_rng(0).integers(1, 500, size=(3, 6, 5, 4)).astype(np.float32)  # (T, X, Y, Z)
    write_dicom_series(vol, np.eye(4), tmp_path / "dwi", frame_axis="bvalue", frame_values=[0, 800, 1500])
    nii = tmp_path / "s_T1.nii.gz"
    nib.save(nib.Nifti1Image(vol[0], np.eye(4)), nii)
    return tmp_path, vol


def test_reader_choice(files):
    root, vol = files
    reader = Seq2SeqReader()
    assert isinstance(reader.choose(str(root / "s_T1.nii.gz")), Seq2SeqNiftiReader)
    assert isinstance(reader.choose(str(root / "dwi")), DicomSeriesReader)
    dcm = sorted((root / "dwi").glob("*.dcm"))
    assert isinstance(reader.choose([str(p) for p in dcm]), DicomSeriesReader)
    assert is_dicom_source(dcm[0]) and not is_dicom_source(root / "s_T1.nii.gz") and not is_dicom_source(root / "x")
    assert reader.verify_suffix(str(root / "dwi")) and reader.verify_suffix("a.nii.gz")
    with pytest.raises(UnreadableFileError, match=r"'.*/missing' does not exist"):
        reader.choose(str(root / "missing"))
    (root / "notes.txt").write_text("x")
    with pytest.raises(UnreadableFileError, match="neither a NIfTI file"):
        reader.choose(str(root / "notes.txt"))


def test_one_load_reads_nifti_and_dicom_entries(files):
    """Before: the bundles' load had Seq2SeqNiftiReader only ('NIfTI file .../dicom/DWI does not exist')."""
    root, vol = files
    entry = {"T1": str(root / "s_T1.nii.gz"), "DWI": str(root / "dwi")}
    data = LoadImaged(["T1", "DWI"], reader=Seq2SeqReader(), ensure_channel_first=True, image_only=True)(entry)
    np.testing.assert_array_equal(data["DWI"].numpy(), vol)
    assert data["DWI"].meta["frame_values"] == [0.0, 800.0, 1500.0]
    np.testing.assert_array_equal(data["T1"][0].numpy(), vol[0])
    with pytest.raises(UnreadableFileError, match="gone.nii.gz' does not exist"):  # not swallowed by LoadImage
        LoadImaged("T1", reader=Seq2SeqReader(), image_only=True)({"T1": str(root / "gone.nii.gz")})


def test_bundle_configs_read_with_seq2seq_reader():
    for bundle in ("seq2seq_brain", "seq2seq_breast"):
        for config in ("inference", "train"):
            cfg = json.loads((BREAST_BUNDLE.parent / bundle / "configs" / f"{config}.json").read_text())
            assert cfg["load"]["reader"].startswith("$monai_seq2seq.io.Seq2SeqReader("), (bundle, config)


def _breast_dicom_datalist(root: Path) -> Path:
    from monai_seq2seq.data import build_breast_datalist
    from monai_seq2seq.phantoms import BreastPhantomCohort, write_cohort

    write_cohort(
        BreastPhantomCohort(1, seed=3, shape=(40, 24, 16), spacing=8.0), root / "cohort", dicom=True, progress=False
    )
    for pattern in ("*_DCE.*", "*_DWI.*", "*_T2.nii.gz"):  # DCE and DWI only as DICOM; T2 to synthesise
        for p in (root / "cohort").rglob(pattern):
            p.unlink()
    out = root / "dl.json"
    build_breast_datalist(root / "cohort", output=out, fractions=[0, 0, 1], use_dicom=True)
    return out


def test_breast_bundle_synthesizes_from_dicom_entries(tmp_path):
    from monai_seq2seq.cli import main

    datalist = _breast_dicom_datalist(tmp_path)
    entry = json.loads(datalist.read_text())["testing"][0]
    assert entry["DWI"].endswith("dicom/DWI") and entry["DCE"].endswith("dicom/DCE")
    start = time.perf_counter()
    args = ["synthesize", "--bundle", str(BREAST_BUNDLE), "--datalist", str(datalist), "--out", str(tmp_path / "out")]
    main(args + ["--load_weights", "False", "--network_def#name", "tiny", "--drop", "[]"])
    assert time.perf_counter() - start < 60
    written = sorted(p.name for p in (tmp_path / "out").rglob("*.nii.gz"))
    assert any("T2" in n and "synthetic" in n for n in written), written
    assert not any("DWI" in n or "DCE_" in n for n in written), written  # the subject's own DICOM are not replaced
