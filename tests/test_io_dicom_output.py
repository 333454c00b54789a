"""Synthetic series and differentiation maps written as DICOM into the source study (issue 23), checked by tools
nobody here wrote: dciodvfy (dicom3tools), dcm2niix, MONAI's ITKReader, and by this project's reader.

A small source study (T1, a 4-frame DCE and a 3-b-value DWI on an oblique grid, with patient, institution and
operator names) is read with the bundles' reader; a synthetic T2 and a synthetic 6-frame FatSatDCE are written as
NIfTI (``SyntheticImageWriter``) and as DICOM (``SyntheticDicomWriter``), and a 3D and a 4D map as Parametric Maps.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from dicom_tools import dciodvfy_errors, dcm2niix, needs_dciodvfy, needs_dcm2niix, on_grid
from monai.data import ITKReader, MetaTensor
from monai.transforms import LoadImaged
from pydicom.uid import generate_uid

from monai_seq2seq.analysis import DifferentiationDicomWriter
from monai_seq2seq.core.protocols import BREAST
from monai_seq2seq.data.dicom_study import SYNTHETIC_REASON, scan_dicom_study
from monai_seq2seq.inference import SyntheticDicomWriter, SyntheticImageWriter, writes_format
from monai_seq2seq.io import (
    DicomSeriesReader,
    Seq2SeqReader,
    affine_to_dicom_geometry,
    read_dicom_series,
    write_dicom_study,
)
from monai_seq2seq.io.dicom_derived import COPIED_KEYWORDS, derived_kind, write_series_folder
from monai_seq2seq.io.dicom_synthetic import write_synthetic_series

REPO = Path(__file__).resolve().parents[1]
SHAPE = (10, 8, 5)
_ROT = np.array([[np.cos(0.2), -np.sin(0.2), 0.0], [np.sin(0.2), np.cos(0.2), 0.0], [0.0, 0.0, 1.0]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT @ np.diag([1.5, 1.2, 3.0])
AFFINE[:3, 3] = [-12.0, 20.5, 7.25]
IDENTIFYING = ("InstitutionName", "InstitutionAddress", "OperatorsName", "StationName", "PerformingPhysicianName")
SOURCE_TAGS = {
    "InstitutionName": "General Hospital",
    "OperatorsName": "Smith^Op",
    "StationName": "MR1",
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "AccessionNumber": "ACC123",
    "StudyDescription": "MR BREAST",
}


def _sha(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The source study, the subject as the bundles load it, its synthetic volumes, and the outputs."""
    root = tmp_path_factory.mktemp("dicom_out")
    rng = np.random.default_rng(23)
    affine = torch.as_tensor(AFFINE)
    sequences = {
        "T1": MetaTensor(torch.as_tensor(rng.random((1, *SHAPE)) * 800), affine=affine),
        "DCE": MetaTensor(
            torch.as_tensor(rng.random((4, *SHAPE)) * 500),
            affine=affine,
            meta={"frame_axis": "time", "frame_values": [0.0, 60.0, 120.0, 180.0]},
        ),
        "DWI": MetaTensor(
            torch.as_tensor(rng.random((3, *SHAPE)) * 300),
            affine=affine,
            meta={"frame_axis": "bvalue", "frame_values": [0.0, 800.0, 1500.0]},
        ),
    }
    study = root / "STUDY"
    write_dicom_study(
        sequences, study, patient_id="PAT-7", patient_name="Doe^Jane", uid_seed="s23", extra_tags=SOURCE_TAGS
    )
    before = _sha(study)
    keys = ["T1", "DCE", "DWI"]
    load = LoadImaged(keys, reader=Seq2SeqReader(protocol="breast"), ensure_channel_first=True, image_only=True)
    subject = load({k: str(study / k) for k in keys})
    t2 = torch.as_tensor(rng.random((1, *SHAPE)), dtype=torch.float32)
    fatsat_dce = torch.as_tensor(rng.random((6, *SHAPE)), dtype=torch.float32)
    subject.update(subject="PAT-7", synthetic={"T2": (t2, ["T1", "DCE", "DWI"]), "FatSatDCE": (fatsat_dce, ["DCE"])})
    out = root / "out"
    engine = SimpleNamespace(state=SimpleNamespace(output=[subject]))
    SyntheticImageWriter(out, BREAST, model_name="seq2seq_breast")(engine)
    writer = SyntheticDicomWriter(
        out,
        BREAST,
        model_name="seq2seq_breast",
        network="Seq2Seq-C small",
        metadata=REPO / "bundles" / "seq2seq_breast" / "configs" / "metadata.json",
        weights_sha256="ab" * 32,
    )
    files = writer.write_subject(subject)
    return SimpleNamespace(study=study, subject=subject, out=out, files=files, before=before, rng=rng)


def _series(case, name: str) -> list[pydicom.Dataset]:
    folder = case.out / "PAT-7" / "dicom" / f"synthetic_{name}"
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


def test_writes_format_chooses_writers_and_names_the_flag():
    assert writes_format("nifti", "nifti") and not writes_format("nifti", "dicom")
    assert writes_format("DICOM", "dicom") and not writes_format("dicom", "nifti")
    assert writes_format("both", "nifti") and writes_format("both", "dicom")
    with pytest.raises(ValueError, match="--output_format nifti, dicom or both"):
        writes_format("dicm", "dicom")


def test_one_series_per_synthetic_sequence_in_the_source_study(case):
    source = pydicom.dcmread(next((case.study / "T1").glob("*.dcm")))
    t2, dce = _series(case, "T2"), _series(case, "FatSatDCE")
    assert len(t2) == SHAPE[2] and len(dce) == 6 * SHAPE[2]
    for files, name, number in ((t2, "T2", 1003), (dce, "FatSatDCE", 1005)):
        ds = files[0]
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert len({f.SeriesInstanceUID for f in files}) == 1 and len({f.SOPInstanceUID for f in files}) == len(files)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == f"SYNTHETIC {name} (monai-seq2seq)" and int(ds.SeriesNumber) == number
        text = ds.DerivationDescription
        for words in ("SYNTHETIC", name, "Seq2Seq-C small", "seq2seq_breast", "ab" * 32, "DCE (series"):
            assert words in text, f"{words!r} not in DerivationDescription {text!r}"
        assert derived_kind(ds) == f"synthetic {name}"


def test_patient_and_study_copied_nothing_identifying_added(case):
    source = pydicom.dcmread(next((case.study / "DCE").glob("*.dcm")))
    assert any(k in source for k in IDENTIFYING)  # the source has them, so leaving them out is a choice
    for ds in (_series(case, "T2")[0], _series(case, "FatSatDCE")[0]):
        for keyword in COPIED_KEYWORDS:
            if keyword in source:
                assert ds[keyword].value == source[keyword].value, keyword
        assert str(ds.PatientName) == "Doe^Jane" and ds.PatientBirthDate == "19700101"
        assert not [k for k in IDENTIFYING if k in ds], "identifying attributes were added"
        assert ds.Manufacturer == "monai-seq2seq"


def test_every_slice_references_the_source_images_at_its_position(case):
    sources = {}
    for name in ("T1", "DCE", "DWI"):
        for p in (case.study / name).glob("*.dcm"):
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            sources[ds.SOPInstanceUID] = ds
    for ds in _series(case, "T2"):
        refs = [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence]
        assert len(refs) == 1 + 4 + 3  # T1 + every DCE frame + every DWI frame at this position
        for uid in refs:
            np.testing.assert_allclose(
                np.asarray(sources[uid].ImagePositionPatient, float), np.asarray(ds.ImagePositionPatient, float)
            )
        assert all(item.SpatialLocationsPreserved == "YES" for item in ds.SourceImageSequence)
        series = {s.SeriesInstanceUID: s for s in ds.ReferencedSeriesSequence}
        assert set(series) == {sources[u].SeriesInstanceUID for u in refs}
        listed = {i.ReferencedSOPInstanceUID for s in series.values() for i in s.ReferencedInstanceSequence}
        assert listed == set(refs)


def test_our_reader_reads_the_nifti_values_within_one_rescale_step(case):
    array, meta = read_dicom_series(case.out / "PAT-7" / "dicom" / "synthetic_T2", protocol="breast")
    nifti = nib.load(case.out / "PAT-7" / "PAT-7_T2_synthetic.nii.gz")
    step = float(_series(case, "T2")[0].RescaleSlope)
    assert 0 < step < 1e-4
    assert np.abs(array - nifti.get_fdata()).max() <= step
    np.testing.assert_allclose(meta["affine"], nifti.affine, atol=1e-4)
    assert meta["sequence"] == "T2"


def test_synthetic_dce_reads_back_with_its_timepoints(case):
    load = LoadImaged("x", reader=DicomSeriesReader(protocol="breast"), ensure_channel_first=True, image_only=True)
    image = load({"x": str(case.out / "PAT-7" / "dicom" / "synthetic_FatSatDCE")})["x"]
    assert tuple(image.shape) == (6, *SHAPE)
    assert image.meta["frame_axis"] == "time"
    assert image.meta["frame_values"] == list(BREAST["FatSatDCE"].frame_values)
    assert image.meta["sequence"] == "FatSatDCE"
    volume = case.subject["synthetic"]["FatSatDCE"][0].numpy()
    assert np.abs(image.numpy() - volume).max() <= float(_series(case, "FatSatDCE")[0].RescaleSlope)
    ds = _series(case, "FatSatDCE")[-1]
    assert int(ds.TemporalPositionIdentifier) == 6 and int(ds.NumberOfTemporalPositions) == 6


def test_synthetic_dwi_reads_back_with_its_bvalues(case, tmp_path):
    sources = []  # a new study: the b-values alone are checked here
    volume = case.rng.random((3, *SHAPE)).astype(np.float32)
    folder = tmp_path / "synthetic_DWI"
    write_synthetic_series(
        volume, AFFINE, folder, sequence="DWI", sources=sources, derivation_description="SYNTHETIC DWI",
        frame_axis="bvalue", frame_values=[0, 800, 1500], subject_id="S1",
    )  # fmt: skip
    array, meta = read_dicom_series(folder, protocol="breast")
    assert meta["frame_axis"] == "bvalue" and meta["frame_values"] == [0.0, 800.0, 1500.0]
    assert np.abs(np.moveaxis(array, -1, 0) - volume).max() <= float(
        pydicom.dcmread(next(folder.iterdir())).RescaleSlope
    )


def test_itk_reads_back_what_our_reader_reads(case):
    folder = case.out / "PAT-7" / "dicom" / "synthetic_T2"
    ours, meta = read_dicom_series(folder, protocol="breast")
    reader = ITKReader()
    itk_array, itk_meta = reader.get_data(reader.read(str(folder)))
    np.testing.assert_allclose(np.asarray(itk_array), ours, atol=1e-5)
    np.testing.assert_allclose(np.asarray(itk_meta["affine"]), meta["affine"], atol=1e-4)


@needs_dciodvfy
def test_every_synthetic_file_passes_dciodvfy(case):
    errors = [e for path in case.files for e in dciodvfy_errors(path)]
    assert not errors, "\n".join(errors[:20])


@needs_dcm2niix
@pytest.mark.parametrize("name", ["T2", "FatSatDCE"])
def test_dcm2niix_converts_back_to_the_nifti_output(case, tmp_path, name):
    (converted,) = dcm2niix(case.out / "PAT-7" / "dicom" / f"synthetic_{name}", tmp_path)
    reference = nib.load(case.out / "PAT-7" / f"PAT-7_{name}_synthetic.nii.gz")
    image = nib.load(converted)
    assert image.shape == reference.shape
    data, affine = on_grid(image.get_fdata(), image.affine, reference.affine, reference.shape[:3])
    np.testing.assert_allclose(affine, reference.affine, atol=1e-3)
    step = float(_series(case, name)[0].RescaleSlope)
    assert np.abs(data - reference.get_fdata()).max() <= step


def test_inputs_are_never_modified(case):
    assert _sha(case.study) == case.before


def test_a_subject_without_dicom_source_gets_a_new_study(tmp_path, caplog):
    volume = torch.rand(1, *SHAPE)
    subject = {"subject": "S9", "T1": MetaTensor(torch.rand(1, *SHAPE), affine=torch.as_tensor(AFFINE))}
    subject["synthetic"] = {"T2": (volume, ["T1"])}
    writer = SyntheticDicomWriter(tmp_path, BREAST, uid_seed="seed")
    with caplog.at_level(logging.WARNING):
        files = writer.write_subject(subject)
    assert "no source DICOM series" in caplog.text and "new study" in caplog.text
    ds = pydicom.dcmread(files[0])
    assert ds.PatientID == "S9" and str(ds.PatientName) == "" and "SourceImageSequence" not in ds
    again = SyntheticDicomWriter(tmp_path / "again", BREAST, uid_seed="seed").write_subject(subject)
    assert pydicom.dcmread(again[0]).SOPInstanceUID == ds.SOPInstanceUID  # deterministic with a seed
    assert pydicom.dcmread(again[0]).StudyInstanceUID == ds.StudyInstanceUID


def test_existing_output_refused_then_replaced_and_inputs_protected(case, tmp_path):
    writer = SyntheticDicomWriter(case.out, BREAST)
    with pytest.raises(FileExistsError, match="--overwrite True"):
        writer.write_subject(case.subject)
    inside = SyntheticDicomWriter(case.study / "DCE", BREAST)  # output under an input series folder
    with pytest.raises(ValueError, match="overlaps the input"):
        inside.write_subject(case.subject)
    copy = tmp_path / "copy"
    first = SyntheticDicomWriter(copy, BREAST, uid_seed="a").write_subject(case.subject)
    first_uid = pydicom.dcmread(first[0]).SOPInstanceUID
    second = SyntheticDicomWriter(copy, BREAST, uid_seed="b", overwrite=True).write_subject(case.subject)
    assert [p.name for p in first] == [p.name for p in second]
    assert pydicom.dcmread(second[0]).SOPInstanceUID != first_uid
    assert not [p for p in (copy / "PAT-7" / "dicom").iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_partial_series_and_keeps_the_old_one(tmp_path, monkeypatch):
    datasets = []
    for _ in range(3):
        ds = pydicom.Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = pydicom.uid.SecondaryCaptureImageStorage, generate_uid()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        datasets.append((f"{len(datasets)}.dcm", ds))
    old = write_series_folder(tmp_path / "series", datasets[:1], overwrite=False)
    real = pydicom.dcmwrite

    def disk_full_at_the_second_file(path, ds, **kwargs):
        if Path(path).name == "1.dcm":
            raise OSError("disk full")
        real(path, ds, **kwargs)

    monkeypatch.setattr(pydicom, "dcmwrite", disk_full_at_the_second_file)
    with pytest.raises(OSError, match="disk full"):
        write_series_folder(tmp_path / "series", datasets, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        write_series_folder(tmp_path / "other", datasets, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]  # no partial folder, no new series
    assert [p.name for p in (tmp_path / "series").iterdir()] == [old[0].name]


def _slice_indices(ds: pydicom.Dataset) -> list[int]:
    """The slice index of ``AFFINE``'s grid of each frame of a multi-frame object, by its plane position."""
    geo = affine_to_dicom_geometry(AFFINE)
    step = geo["slice_step"]
    positions = [f.PlanePositionSequence[0].ImagePositionPatient for f in ds.PerFrameFunctionalGroupsSequence]
    found = [float((np.asarray(p, float) - geo["origin"]) @ step / (step @ step)) for p in positions]
    assert np.allclose(found, np.round(found), atol=1e-3), found
    return [round(k) for k in found]


def _maps(case):
    rng = np.random.default_rng(5)
    return {
        "DCE": torch.as_tensor(rng.random((6, *SHAPE)) * 0.3, dtype=torch.float32),  # the protocol's frames
        "T1": torch.as_tensor(rng.random((1, *SHAPE)) * 0.2, dtype=torch.float32),
    }


@pytest.fixture(scope="module")
def maps(case):
    subject = {k: case.subject[k] for k in ("T1", "DCE", "DWI")}
    info = {"DCE": {"sources": ["DCE", "T1", "DWI"]}, "T1": {"sources": ["T1", "DCE"]}}
    writer = DifferentiationDicomWriter(case.out, BREAST, network="Seq2Seq-C small")
    files = writer.write_subject("PAT-7", subject, _maps(case), info)
    return SimpleNamespace(files=files, maps=_maps(case))


def test_maps_are_parametric_maps_with_float_values_and_references(case, maps):
    folder = case.out / "PAT-7" / "dicom"
    dce = [pydicom.dcmread(p) for p in sorted((folder / "diffmap_DCE").glob("*.dcm"))]
    assert len(dce) == 6, "one Parametric Map instance per frame of a 4D map"
    source_uids = {pydicom.dcmread(next((case.study / k).glob("*.dcm"))).SeriesInstanceUID for k in ("DCE", "T1")}
    for t, ds in enumerate(dce):
        assert ds.SOPClassUID == pydicom.uid.ParametricMapStorage and derived_kind(ds) == "differentiation map of DCE"
        assert f"t={BREAST['DCE'].frame_values[t]:g} s" in ds.ContentDescription
        expected = np.transpose(maps.maps["DCE"][t].numpy(), (2, 1, 0))  # (slices, Rows, Columns)
        for frame, k in zip(ds.pixel_array, _slice_indices(ds), strict=True):  # highdicom orders frames its way
            np.testing.assert_array_equal(frame, expected[k])
        assert source_uids <= {s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence}
        assert ds.StudyInstanceUID == dce[0].StudyInstanceUID == case.subject["DCE"].meta["StudyInstanceUID"]
    overlay = [pydicom.dcmread(p) for p in sorted((folder / "diffmap_DCE_overlay").glob("*.dcm"))]
    assert len(overlay) == SHAPE[2] and overlay[0].PhotometricInterpretation == "RGB"
    assert overlay[0].pixel_array.shape == (SHAPE[1], SHAPE[0], 3) and "SourceImageSequence" in overlay[0]
    assert derived_kind(overlay[0]) == "differentiation map overlay of DCE"


@needs_dciodvfy
def test_every_map_file_passes_dciodvfy(maps):
    errors = [e for path in maps.files for e in dciodvfy_errors(path)]
    assert not errors, "\n".join(errors[:20])


@needs_dcm2niix
def test_dcm2niix_converts_a_parametric_map_back(case, maps, tmp_path):
    (converted,) = dcm2niix(case.out / "PAT-7" / "dicom" / "diffmap_T1", tmp_path)
    image = nib.load(converted)
    data, affine = on_grid(image.get_fdata(), image.affine, AFFINE, SHAPE)
    np.testing.assert_allclose(affine, AFFINE, atol=1e-3)
    np.testing.assert_allclose(data, maps.maps["T1"][0].numpy(), atol=1e-6)


def test_a_map_without_dicom_source_is_skipped_with_a_warning(tmp_path, caplog):
    subject = {"T1": MetaTensor(torch.rand(1, *SHAPE), affine=torch.as_tensor(AFFINE))}
    writer = DifferentiationDicomWriter(tmp_path, BREAST)
    with caplog.at_level(logging.WARNING):
        files = writer.write_subject("S1", subject, {"T1": torch.rand(1, *SHAPE)}, {"T1": {"sources": ["T1"]}})
    assert files == [] and "not written as DICOM" in caplog.text


def test_study_scan_lists_synthetic_series_and_maps_as_derived(case, maps, tmp_path):
    import shutil

    combined = tmp_path / "combined"
    shutil.copytree(case.study, combined / "STUDY")
    shutil.copytree(case.out / "PAT-7" / "dicom", combined / "STUDY" / "derived")
    entries, rows = scan_dicom_study(combined, "breast")
    alone, _ = scan_dicom_study(case.study, "breast")
    assert (
        [sorted(e["available"]) for e in entries] == [sorted(e["available"]) for e in alone] == [["DCE", "DWI", "T1"]]
    )
    derived = {r["description"]: r for r in rows if str(r["reason"]).startswith(SYNTHETIC_REASON)}
    assert set(derived) == {
        "SYNTHETIC T2 (monai-seq2seq)",
        "SYNTHETIC FatSatDCE (monai-seq2seq)",
        "DIFFMAP DCE (monai-seq2seq)",
        "DIFFMAP DCE overlay (monai-seq2seq)",
        "DIFFMAP T1 (monai-seq2seq)",
        "DIFFMAP T1 overlay (monai-seq2seq)",
    }
    assert all(r["status"] == "not used" for r in derived.values())
    assert "synthetic FatSatDCE" in derived["SYNTHETIC FatSatDCE (monai-seq2seq)"]["reason"]


@pytest.mark.parametrize(
    ("output_format", "expected"),
    [
        ("nifti", {"SyntheticImageWriter"}),
        ("dicom", {"SyntheticDicomWriter"}),
        ("both", {"SyntheticImageWriter", "SyntheticDicomWriter"}),
    ],
)
@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_bundle_output_format_selects_the_writers(bundle, output_format, expected):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    assert parser["output_format"] == "nifti"  # the default keeps the NIfTI output
    parser["output_format"] = output_format
    writers = {type(h).__name__ for h in parser.get_parsed_content("handlers")} - {"ProgressBar"}
    assert writers == expected


def test_bundle_refuses_an_unknown_output_format():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "seq2seq_brain" / "configs" / "inference.json"))
    parser["bundle_root"] = str(REPO / "bundles" / "seq2seq_brain")
    parser["output_format"] = "png"
    with pytest.raises(Exception) as err:
        parser.get_parsed_content("handlers")
    assert "--output_format nifti, dicom or both" in repr(err.value) + repr(err.value.__cause__)


def test_metadata_of_the_bundle_is_in_the_description(case):
    meta = json.loads((REPO / "bundles" / "seq2seq_breast" / "configs" / "metadata.json").read_text())
    assert f"seq2seq_breast {meta['version']}" in _series(case, "T2")[0].DerivationDescription
