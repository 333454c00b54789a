"""The per-voxel uncertainty of each synthetic sequence as a DICOM Parametric Map beside its synthetic series
(issue 25, item 1): ``SyntheticDicomWriter`` with ``subject["uncertainty"]``.

A small source study (T1 and T2 on an oblique grid) is read with the bundles' reader; a tiny (untrained) breast
network synthesises FatSatT1 from T1 alone (members: the mirrored prediction) and the 6-frame FatSatDCE from T1 and
T2 (members: each source), each with its uncertainty (``UncertaintyEstimator``, as the bundles run it). Both are
written as NIfTI (``SyntheticImageWriter``) and as DICOM (``SyntheticDicomWriter``), and the uncertainty series are
checked against the NIfTI uncertainty, the synthetic series and dciodvfy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from dicom_tools import dciodvfy_errors, needs_dciodvfy
from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_seq2seq.core.protocols import BREAST
from monai_seq2seq.data.dicom_study import scan_dicom_study
from monai_seq2seq.inference import (
    Seq2SeqSynthesizer,
    SyntheticDicomWriter,
    SyntheticImageWriter,
    UncertaintyEstimator,
)
from monai_seq2seq.inference.dicom_output import UNCERTAINTY_SERIES_BASE, uncertainty_series_description
from monai_seq2seq.inference.uncertainty import FLIP_MEMBER
from monai_seq2seq.io import Seq2SeqReader, affine_to_dicom_geometry, write_dicom_study
from monai_seq2seq.networks import build_seq2seq

SHAPE = (12, 10, 5)
_ROT = np.array([[np.cos(0.2), -np.sin(0.2), 0.0], [np.sin(0.2), np.cos(0.2), 0.0], [0.0, 0.0, 1.0]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT @ np.diag([1.5, 1.2, 3.0])
AFFINE[:3, 3] = [-12.0, 20.5, 7.25]
SID = "PAT-25"
TARGETS = {"FatSatT1": ["T1"], "FatSatDCE": ["T1", "T2"]}  # one source (mirrored member), two sources


def _study(root: Path) -> Path:
    rng = np.random.default_rng(np.random.SeedSequence([25, 0, 1]))
    sequences = {
        k: MetaTensor(torch.as_tensor(rng.random((1, *SHAPE)) * 800.0), affine=torch.as_tensor(AFFINE))
        for k in ("T1", "T2")
    }
    write_dicom_study(sequences, root / "STUDY", patient_id=SID, patient_name="Doe^Jane", uid_seed="s25")
    return root / "STUDY"


def _with_uncertainty(subject: dict, sid: str) -> dict:
    """The subject with ``synthetic`` and ``uncertainty`` as ``SynthesisEvaluator`` leaves them."""
    torch.manual_seed(0)
    synth = Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="breast"), "breast", batch_size=4, progress=False)
    volumes = {k: torch.as_tensor(subject[k]).float() / float(subject[k].max()) for k in ("T1", "T2")}
    estimator = UncertaintyEstimator(verbose=False)
    synthetic, uncertain = {}, {}
    for target, sources in TARGETS.items():
        result = estimator(synth, {s: volumes[s] for s in sources}, target, sid)
        synthetic[target], uncertain[target] = (result.image, list(sources)), result
    return {**subject, "subject": sid, "synthetic": synthetic, "uncertainty": uncertain}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_uncertainty")
    study = _study(root)
    load = LoadImaged(["T1", "T2"], reader=Seq2SeqReader(protocol="breast"), ensure_channel_first=True, image_only=True)
    subject = _with_uncertainty(load({k: str(study / k) for k in ("T1", "T2")}), SID)
    out = root / "out"
    engine = SimpleNamespace(state=SimpleNamespace(output=[subject]))
    SyntheticImageWriter(out, BREAST, model_name="seq2seq_breast")(engine)
    writer = SyntheticDicomWriter(out, BREAST, network="Seq2Seq tiny", weights_sha256="cd" * 32, uid_seed="u25")
    files = writer.write_subject(subject)
    return SimpleNamespace(root=root, study=study, subject=subject, out=out, files=files)


def _read(folder: Path, stop_before_pixels: bool = False) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=stop_before_pixels) for p in sorted(folder.glob("*.dcm"))]


def _dicom(case, kind: str, target: str) -> Path:
    return case.out / SID / "dicom" / f"{kind}_{target}"


def _slice_indices(ds: pydicom.Dataset) -> list[int]:
    """The slice index on ``AFFINE``'s grid of each frame of a Parametric Map instance, by its plane position."""
    geo = affine_to_dicom_geometry(AFFINE)
    step = geo["slice_step"]
    positions = [f.PlanePositionSequence[0].ImagePositionPatient for f in ds.PerFrameFunctionalGroupsSequence]
    found = [float((np.asarray(p, float) - geo["origin"]) @ step / (step @ step)) for p in positions]
    assert np.allclose(found, np.round(found), atol=1e-3), found
    return [round(k) for k in found]


def _real_world(ds: pydicom.Dataset) -> np.ndarray:
    """The instance's values through its Real World Value Mapping, ``(X, Y, Z)`` on ``AFFINE``'s grid."""
    (mapping,) = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence
    values = ds.pixel_array * float(mapping.RealWorldValueSlope) + float(mapping.RealWorldValueIntercept)
    volume = np.full(SHAPE, np.nan)
    for frame, k in zip(values, _slice_indices(ds), strict=True):
        volume[:, :, k] = frame.T  # (Rows = Y, Columns = X) -> (X, Y)
    return volume


@pytest.mark.parametrize(("target", "frames"), [("FatSatT1", 1), ("FatSatDCE", 6)])
def test_one_parametric_map_series_per_target_beside_its_synthetic_series(case, target, frames):
    maps = _read(_dicom(case, "uncertainty", target), stop_before_pixels=True)
    synthetic = _read(_dicom(case, "synthetic", target), stop_before_pixels=True)
    assert len(maps) == frames, "one Parametric Map instance per frame of the synthetic sequence"
    assert len(synthetic) == frames * SHAPE[2]
    assert {ds.SOPClassUID for ds in maps} == {pydicom.uid.ParametricMapStorage}
    assert len({ds.SeriesInstanceUID for ds in maps}) == 1 and len({ds.SOPInstanceUID for ds in maps}) == frames
    number = UNCERTAINTY_SERIES_BASE + 1 + BREAST.index(target)
    for ds in maps:
        assert int(ds.SeriesNumber) == number == {"FatSatT1": 4002, "FatSatDCE": 4005}[target]
        assert ds.SeriesDescription == uncertainty_series_description(target) == f"UNCERTAINTY {target} (monai-seq2seq)"
        assert ds.StudyInstanceUID == synthetic[0].StudyInstanceUID == case.subject["T1"].meta["StudyInstanceUID"]
        assert ds.FrameOfReferenceUID == synthetic[0].FrameOfReferenceUID
        assert ds.SeriesInstanceUID != synthetic[0].SeriesInstanceUID
        assert ds.ContentLabel == "UNCERTAINTY" and ds.Manufacturer == "monai-seq2seq"
        assert synthetic[0].SeriesInstanceUID in {s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence}
    if frames > 1:
        for t, ds in enumerate(maps):
            assert f"t={BREAST[target].frame_values[t]:g} s" in ds.ContentDescription


@pytest.mark.parametrize("target", list(TARGETS))
def test_values_read_back_equal_the_nifti_uncertainty(case, target):
    nifti = nib.load(case.out / SID / f"{SID}_{target}_uncertainty.nii.gz")
    np.testing.assert_allclose(nifti.affine, AFFINE, atol=1e-4)
    expected = np.asarray(nifti.get_fdata(), dtype=np.float64).reshape(*SHAPE, -1)  # (X, Y, Z, T)
    maps = _read(_dicom(case, "uncertainty", target))
    assert expected.shape[-1] == len(maps)
    for t, ds in enumerate(maps):
        assert ds.pixel_array.dtype == np.float32  # float values: no quantisation
        np.testing.assert_allclose(_real_world(ds), expected[..., t], atol=1e-6, rtol=0)
        np.testing.assert_allclose(
            _real_world(ds), case.subject["uncertainty"][target].uncertainty[t].numpy(), atol=1e-6
        )
    assert float(expected.max()) > 1e-4, "a zero map would not test the values"


def test_each_frame_derives_from_the_synthetic_images_of_its_frame_and_position(case):
    synthetic = {ds.SOPInstanceUID: ds for ds in _read(_dicom(case, "synthetic", "FatSatDCE"), True)}
    for t, ds in enumerate(_read(_dicom(case, "uncertainty", "FatSatDCE"), True)):
        for frame in ds.PerFrameFunctionalGroupsSequence:
            refs = [i.ReferencedSOPInstanceUID for i in frame.DerivationImageSequence[0].SourceImageSequence]
            ours = [synthetic[u] for u in refs if u in synthetic]
            assert len(ours) == 1, "exactly the synthetic image of this frame at this position"
            assert int(ours[0].TemporalPositionIdentifier) == t + 1
            np.testing.assert_allclose(
                np.asarray(ours[0].ImagePositionPatient, float),
                np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float),
                atol=1e-3,
            )


@pytest.mark.parametrize("target", list(TARGETS))
def test_how_it_was_computed_is_in_the_derivation_and_content_description(case, target):
    sidecar = json.loads((case.out / SID / f"{SID}_{target}_uncertainty.json").read_text())
    ds = _read(_dicom(case, "uncertainty", target), True)[0]
    (item,) = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
    text = item.DerivationDescription
    for words in (sidecar["Method"], sidecar["Formula"], sidecar["IntensitySpace"], "cd" * 32, "Seq2Seq tiny"):
        assert words in text, f"{words!r} not in {text!r}"
    assert f"members: {', '.join(sidecar['Members'])}" in text
    assert (FLIP_MEMBER in sidecar["Members"]) == (target == "FatSatT1")  # one source: the mirrored member
    assert "mirrored" in text if target == "FatSatT1" else "mirrored" not in text
    assert "fused" in text and "T1 (series" in text
    assert ds.ContentDescription.startswith(f"UNCERTAINTY of synthetic {target}, [0,1] units")
    (mapping,) = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence
    assert mapping.LUTLabel == "UNCERTAINTY" and "[0,1] units" in mapping.LUTExplanation
    assert mapping.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"


def test_uncertainty_off_writes_no_uncertainty_series(case, tmp_path):
    for off in ({}, None):
        subject = {**case.subject, "uncertainty": off}
        out = tmp_path / f"off_{off is None}"
        files = SyntheticDicomWriter(out, BREAST).write_subject(subject)
        assert sorted(p.name for p in (out / SID / "dicom").iterdir()) == [f"synthetic_{t}" for t in sorted(TARGETS)]
        assert all(p.parent.name.startswith("synthetic_") for p in files)
    subject = {k: v for k, v in case.subject.items() if k != "uncertainty"}  # no key at all
    SyntheticDicomWriter(tmp_path / "nokey", BREAST).write_subject(subject)
    assert not list((tmp_path / "nokey").rglob("uncertainty_*"))


def test_existing_uncertainty_refused_before_anything_is_written_then_replaced(case, tmp_path):
    out = tmp_path / "again"
    (out / SID / "dicom" / "uncertainty_FatSatT1").mkdir(parents=True)
    (out / SID / "dicom" / "uncertainty_FatSatT1" / "old.dcm").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="--overwrite True"):
        SyntheticDicomWriter(out, BREAST).write_subject(case.subject)
    assert not (out / SID / "dicom" / "synthetic_FatSatT1").exists(), "refused before the synthetic series"
    files = SyntheticDicomWriter(out, BREAST, overwrite=True).write_subject(case.subject)
    assert sorted(p.name for p in (out / SID / "dicom" / "uncertainty_FatSatT1").iterdir()) == ["PM_000.dcm"]
    assert len([p for p in files if p.parent.name.startswith("uncertainty_")]) == 1 + 6
    assert not [p for p in (out / SID / "dicom").iterdir() if p.name.startswith(".")], "no partial folder left"
    inside = SyntheticDicomWriter(case.study / "T1", BREAST)  # output under an input series folder
    with pytest.raises(ValueError, match="overlaps the input"):
        inside.write_subject(case.subject)


def test_a_subject_without_dicom_source_gets_its_uncertainty_in_the_new_study(tmp_path):
    rng = np.random.default_rng(np.random.SeedSequence([25, 1, 1]))
    subject = {
        k: MetaTensor(torch.as_tensor(rng.random((1, *SHAPE))), affine=torch.as_tensor(AFFINE)) for k in ("T1", "T2")
    }
    subject = _with_uncertainty(subject, "S9")
    SyntheticDicomWriter(tmp_path, BREAST, uid_seed="seed").write_subject(subject)
    synthetic = _read(tmp_path / "S9" / "dicom" / "synthetic_FatSatT1", True)[0]
    (pm,) = _read(tmp_path / "S9" / "dicom" / "uncertainty_FatSatT1")
    assert pm.PatientID == synthetic.PatientID == "S9"
    assert pm.StudyInstanceUID == synthetic.StudyInstanceUID and pm.FrameOfReferenceUID == synthetic.FrameOfReferenceUID
    assert [s.SeriesInstanceUID for s in pm.ReferencedSeriesSequence] == [synthetic.SeriesInstanceUID]
    np.testing.assert_allclose(_real_world(pm), subject["uncertainty"]["FatSatT1"].uncertainty[0].numpy(), atol=1e-6)


def test_an_uncertainty_of_another_shape_is_refused(case, tmp_path):
    result = case.subject["uncertainty"]["FatSatT1"]
    wrong = dataclasses.replace(result, uncertainty=result.uncertainty[..., :-1])
    subject = {**case.subject, "synthetic": {"FatSatT1": case.subject["synthetic"]["FatSatT1"]}}
    subject["uncertainty"] = {"FatSatT1": wrong}
    with pytest.raises(ValueError, match=r"uncertainty of FatSatT1 has shape \(1, 12, 10, 4\).*--uncertainty False"):
        SyntheticDicomWriter(tmp_path, BREAST).write_subject(subject)
    assert not (tmp_path / SID).exists(), "refused before the synthetic series was written"


def test_study_scan_never_takes_the_uncertainty_as_an_acquired_sequence(case, tmp_path):
    combined = tmp_path / "combined"
    shutil.copytree(case.study, combined / "STUDY")
    shutil.copytree(case.out / SID / "dicom", combined / "STUDY" / "derived")
    entries, rows = scan_dicom_study(combined, "breast")
    assert [sorted(e["available"]) for e in entries] == [["T1", "T2"]]
    listed = {r["description"]: r for r in rows}
    for target in TARGETS:
        row = listed[uncertainty_series_description(target)]
        assert row["status"] == "not used" and f"uncertainty of {target}" in str(row), row


@needs_dciodvfy
def test_every_uncertainty_file_passes_dciodvfy(case):
    files = [p for p in case.files if p.parent.name.startswith("uncertainty_")]
    assert len(files) == 1 + 6
    errors = [e for path in files for e in dciodvfy_errors(path)]
    assert not errors, "\n".join(errors[:20])
