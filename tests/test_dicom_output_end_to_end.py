"""End to end from DICOM (issue 23, "done when"): a phantom subject exported as a DICOM study -> ``seq2seq datalist``
-> ``seq2seq synthesize --output_format both`` and ``seq2seq diffmap --output_format both``, run as the console
script, as a user would.

The synthetic series and maps join the source study, pass dciodvfy, convert back with dcm2niix to the NIfTI output
(voxels within one rescale step, affine within 1e-3 mm), read the same with this project's reader and MONAI's
ITKReader, and reference the source series; the synthetic DCE reads back with its timepoints; the inputs are not
modified; the study folder holding the acquired and the synthetic series is scanned by ``seq2seq inspect`` and
``seq2seq datalist`` with the synthetic series listed as derived and not used. The README section "Results as
DICOM" shows these commands.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_tools import DCIODVFY, DCM2NIIX, dciodvfy_errors, dcm2niix, on_grid
from monai.data import ITKReader
from monai.transforms import LoadImaged

from monai_seq2seq.core import BREAST
from monai_seq2seq.data import load_datalist
from monai_seq2seq.io import DicomSeriesReader, read_dicom_series

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SEQ2SEQ = Path(sys.executable).with_name("seq2seq")
BUNDLE = REPO / "bundles" / "seq2seq_breast"
SYNTHETIC = ("T1", "FatSatT1", "T2", "FatSatDCE")  # the breast protocol's sequences the study lacks; WashIn/Out derive


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAGER": "cat", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(SEQ2SEQ), *argv], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"`seq2seq {shlex.join(argv)}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def _sha(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


PHANTOM = "BreastPhantom_00000"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The commands of the README section "Results as DICOM", in a fresh folder."""
    work = tmp_path_factory.mktemp("dicom_e2e")
    _run(["phantom", "breast", "--subjects", "1", "--seed", "7", "--spacing", "4", "--dicom", "True"], work)
    # mkdir -p study/STUDY1 && cp -r phantom_breast/<subject>/dicom/{DCE,DWI} study/STUDY1/  (FatSatDCE left out)
    for name in ("DCE", "DWI"):
        shutil.copytree(work / "phantom_breast" / PHANTOM / "dicom" / name, work / "study" / "STUDY1" / name)
    study = work / "study"
    before = _sha(study)
    _run(["datalist", "study", "--out", "datalist.json"], work)
    (entry,) = load_datalist(work / "datalist.json", "training")
    common = ["--bundle", str(BUNDLE), "--datalist", "datalist.json", "--output_format", "both"]
    _run(["synthesize", *common, "--out", "syn"], work)
    _run(["diffmap", *common, "--out", "maps"], work)
    assert entry["subject"] == PHANTOM
    return {"work": work, "study": study, "entry": entry, "sid": PHANTOM, "before": before}


def _dicom(run, kind: str) -> Path:
    return run["work"] / kind / run["sid"] / "dicom"


def _sources(run) -> dict[str, pydicom.Dataset]:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in run["study"].rglob("*.dcm")]
    return {ds.SOPInstanceUID: ds for ds in headers}


def test_one_synthetic_series_per_missing_sequence_in_the_source_study(run):
    folders = sorted(p.name for p in _dicom(run, "syn").iterdir())
    # the uncertainty of each synthetic series beside it (the breast bundle's uncertainty is on by default)
    assert folders == sorted([f"synthetic_{n}" for n in SYNTHETIC] + [f"uncertainty_{n}" for n in SYNTHETIC])
    sources = _sources(run)
    study_uids = {ds.StudyInstanceUID for ds in sources.values()}
    source_series = {ds.SeriesInstanceUID for ds in sources.values()}
    for name in SYNTHETIC:
        for path in sorted((_dicom(run, "syn") / f"synthetic_{name}").glob("*.dcm")):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert {ds.StudyInstanceUID} == study_uids and ds.SeriesInstanceUID not in source_series
            refs = [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence]
            assert refs and set(refs) <= set(sources), f"{path.name} references images outside the study"
            assert {s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence} <= source_series


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian's dicom3tools) is not installed")
def test_every_object_written_passes_dciodvfy(run):
    files = sorted(_dicom(run, "syn").rglob("*.dcm")) + sorted(_dicom(run, "maps").rglob("*.dcm"))
    assert len(files) > 100
    errors = [e for path in files for e in dciodvfy_errors(path)]
    assert not errors, "\n".join(errors[:20])


@pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix is not installed (pip install dcm2niix)")
@pytest.mark.parametrize("name", SYNTHETIC)
def test_dcm2niix_converts_the_series_back_to_the_nifti_output(run, name, tmp_path):
    (converted,) = dcm2niix(_dicom(run, "syn") / f"synthetic_{name}", tmp_path)
    reference = nib.load(run["work"] / "syn" / run["sid"] / f"{run['sid']}_{name}_synthetic.nii.gz")
    image = nib.load(converted)
    assert image.shape == reference.shape
    data, affine = on_grid(image.get_fdata(), image.affine, reference.affine, reference.shape[:3])
    np.testing.assert_allclose(affine, reference.affine, atol=1e-3)
    step = float(pydicom.dcmread(next((_dicom(run, "syn") / f"synthetic_{name}").glob("*.dcm"))).RescaleSlope)
    assert np.abs(data - reference.get_fdata()).max() <= step


def test_our_reader_and_itk_read_the_series_the_same(run):
    for name in ("T1", "T2"):
        folder = _dicom(run, "syn") / f"synthetic_{name}"
        ours, meta = read_dicom_series(folder, protocol="breast")
        reader = ITKReader()
        itk_array, itk_meta = reader.get_data(reader.read(str(folder)))
        np.testing.assert_allclose(np.asarray(itk_array), ours, atol=1e-5)
        np.testing.assert_allclose(np.asarray(itk_meta["affine"]), meta["affine"], atol=1e-4)
        nifti = nib.load(run["work"] / "syn" / run["sid"] / f"{run['sid']}_{name}_synthetic.nii.gz")
        np.testing.assert_allclose(meta["affine"], nifti.affine, atol=1e-3)
        assert meta["sequence"] == name


def test_the_synthetic_dce_reads_back_with_its_timepoints(run):
    load = LoadImaged("x", reader=DicomSeriesReader(protocol="breast"), ensure_channel_first=True, image_only=True)
    image = load({"x": str(_dicom(run, "syn") / "synthetic_FatSatDCE")})["x"]
    assert image.shape[0] == 6 and image.meta["frame_axis"] == "time"
    assert image.meta["frame_values"] == list(BREAST["FatSatDCE"].frame_values)


def test_the_inputs_are_not_modified(run):
    assert _sha(run["study"]) == run["before"]


@pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix is not installed (pip install dcm2niix)")
def test_maps_are_parametric_maps_that_convert_back_and_reference_the_study(run, tmp_path):
    folders = sorted(p.name for p in _dicom(run, "maps").iterdir())
    maps = ("DCE", "WashIn", "WashOut", "DWI")
    assert folders == sorted([f"diffmap_{n}" for n in maps] + [f"diffmap_{n}_overlay" for n in maps])
    source_series = {ds.SeriesInstanceUID for ds in _sources(run).values()}
    (pm,) = sorted((_dicom(run, "maps") / "diffmap_WashIn").glob("*.dcm"))
    ds = pydicom.dcmread(pm)
    assert ds.SOPClassUID == pydicom.uid.ParametricMapStorage
    assert {s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence} <= source_series
    (converted,) = dcm2niix(_dicom(run, "maps") / "diffmap_WashIn", tmp_path)
    reference = nib.load(run["work"] / "maps" / run["sid"] / f"{run['sid']}_WashIn_diffmap.nii.gz")
    image = nib.load(converted)
    data, affine = on_grid(image.get_fdata(), image.affine, reference.affine, reference.shape[:3])
    np.testing.assert_allclose(affine, reference.affine, atol=1e-3)
    np.testing.assert_allclose(data, reference.get_fdata(), atol=1e-6)


def test_inspect_lists_the_synthetic_series_of_the_study_as_derived(run):
    work = run["work"]
    combined = work / "combined"
    shutil.copytree(run["study"], combined)
    for folder in _dicom(run, "syn").iterdir():  # the synthetic series beside the acquired ones, as in PACS
        shutil.copytree(folder, combined / "STUDY1" / folder.name)
    printed = _run(["inspect", "combined", "--bundle", str(BUNDLE)], work).stdout
    for name in SYNTHETIC:
        assert f"SYNTHETIC {name} (monai-seq2seq)': synthetic (derived): synthetic {name}" in printed, printed[-3000:]
    _run(["datalist", "combined", "--out", "combined.json"], work)
    (entry,) = load_datalist(work / "combined.json", "training")
    assert entry["available"] == run["entry"]["available"] == ["DCE", "DWI"]
