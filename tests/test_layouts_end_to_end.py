"""Every real layout goes from its folder to synthetic NIfTI (``seq2seq synthesize``) and to maps (``seq2seq
diffmap``), run as the console script in a fresh folder, as a user would (issue 19, "done when").

Each layout is made from one phantom subject (4 mm) renamed as the data set names its files, with one sequence
taken away (for BraSyn, the one missing by design; MAMA-MIA has DCE only; the DICOM study lacks one series). Then:
``seq2seq datalist ROOT --out ROOT/datalist.json``, ``seq2seq synthesize`` and ``seq2seq diffmap`` exit 0; a
``<subject>_<Seq>_synthetic.nii.gz`` is written for exactly the protocol sequences the subject lacks and no formula
derives from what it has (the breast bundle computes WashIn/WashOut from a DCE series), on the grid of the
subject's reference sequence (its first sequence in protocol order); the ranking covers exactly the sequences the
subject has plus those derived maps.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from layout_folders import BRATS23, make_bids, make_brats2021, make_brats2023, make_dicom_study, make_mama_mia
from monai.transforms import LoadImage

from monai_seq2seq.core import BREAST, get_protocol
from monai_seq2seq.data import load_datalist
from monai_seq2seq.io import Seq2SeqReader
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, write_cohort

REPO = Path(__file__).resolve().parents[1]
SEQ2SEQ = Path(sys.executable).with_name("seq2seq")
BRAIN_BUNDLE = REPO / "bundles" / "seq2seq_brain"
BREAST_BUNDLE = REPO / "bundles" / "seq2seq_breast"
DCE_TIMES = json.dumps([float(t) for t in BREAST["DCE"].frame_values])


@pytest.fixture(scope="module")
def brain(tmp_path_factory) -> list[dict[str, Path]]:
    """One 4 mm brain phantom subject: ``{"T1": path, ..., "label": path}`` (BraTS 2021 file names)."""
    root = tmp_path_factory.mktemp("brain")
    write_cohort(BrainPhantomCohort(1, seed=7, spacing=4.0), root / "cohort", progress=False)
    names = {"T1": "t1", "T1Gd": "t1ce", "T2": "t2", "FLAIR": "flair", "label": "seg"}
    return [
        {k: d / f"{d.name}_{v}.nii.gz" for k, v in names.items()}
        for d in sorted((root / "cohort").iterdir())
        if d.is_dir()
    ]


@pytest.fixture(scope="module")
def breast(tmp_path_factory) -> Path:
    """One 4 mm breast phantom subject folder (NIfTI and DICOM series of DCE, FatSatDCE and DWI)."""
    root = tmp_path_factory.mktemp("breast")
    cohort = BreastPhantomCohort(1, seed=7, shape=(40, 24, 16), spacing=4.0)
    write_cohort(cohort, root / "c", dicom=True, progress=False)
    return next(d for d in (root / "c").iterdir() if d.is_dir())


# layout -> (builder(brain, breast, root), bundle, extra `seq2seq datalist` arguments)
LAYOUTS = {
    "brats2021": (lambda brain, breast, root: make_brats2021(brain, root, drop=("T1Gd",)), BRAIN_BUNDLE, []),
    "brats2023": (lambda brain, breast, root: make_brats2023_without(brain, root, "T1Gd", "FLAIR"), BRAIN_BUNDLE, []),
    "brasyn": (lambda brain, breast, root: make_brats2023(brain, root, drop=["FLAIR"]), BRAIN_BUNDLE, []),
    "bids": (
        lambda brain, breast, root: make_bids({k: v for k, v in brain[0].items() if k != "T1Gd"}, root),
        BRAIN_BUNDLE,
        [],
    ),
    "mama-mia": (
        lambda brain, breast, root: make_mama_mia(
            breast, root, cases=("DUKE_001",), phases=[len(json.loads(DCE_TIMES))]
        ),
        BREAST_BUNDLE,
        ["--dce_times", DCE_TIMES],
    ),
    "dicom": (lambda brain, breast, root: make_dicom_study(breast, root, drop=("FatSatDCE",)), BREAST_BUNDLE, []),
}


def make_brats2023_without(brain, root: Path, *keys: str) -> Path:
    """BraTS 2023+ with its segmentation, but without ``keys`` (two: with one missing sequence in every case the
    folder is, by definition, the BraSyn layout)."""
    make_brats2023(brain, root)
    for key in keys:
        for path in root.rglob(f"*-{BRATS23[key]}.nii.gz"):
            path.unlink()
    return root


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAGER": "cat", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(SEQ2SEQ), *argv], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"`seq2seq {shlex.join(argv)}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def _affine(path: str, protocol: str) -> np.ndarray:
    """The affine of a sequence as nibabel reads it (a DICOM series: through the bundles' reader, RAS as well)."""
    if str(path).endswith((".nii", ".nii.gz")):
        return nib.load(path).affine
    return np.asarray(LoadImage(reader=Seq2SeqReader(protocol=protocol), image_only=True)(path).affine, dtype=float)


def _datalist(layout: str, brain, breast, tmp_path: Path) -> tuple[Path, Path, dict, list[str]]:
    """Build the layout's folder, run ``seq2seq datalist`` on it: (datalist, bundle, the entry, what it lacks)."""
    build, bundle, datalist_args = LAYOUTS[layout]
    root = build(brain, breast, tmp_path / "data")
    printed = _run(["datalist", str(root), "--out", str(root / "datalist.json"), *datalist_args], tmp_path).stdout
    assert f"layout: {layout}" in printed
    (entry,) = load_datalist(root / "datalist.json", "training")
    protocol = get_protocol(json.loads((root / "datalist.json").read_text())["protocol"])
    lacks = [n for n in protocol.names if n not in entry["available"]]
    assert entry["available"] and lacks, f"{layout}: the subject should have some sequences and lack some: {entry}"
    return root / "datalist.json", bundle, entry, lacks


def _expected(entry: dict, protocol_name: str) -> tuple[list[str], list[str]]:
    """(what a bundle analyses, what it synthesises): acquired sequences plus maps derived from them by formula
    (the breast bundle computes WashIn/WashOut from a DCE series), and the rest."""
    protocol = get_protocol(protocol_name)
    has = entry["available"]
    analysed = [n for n in protocol.names if n in has or protocol[n].derived_from in has]
    return analysed, [n for n in protocol.names if n not in analysed]


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_folder_to_synthetic_nifti(layout, brain, breast, tmp_path):
    datalist, bundle, entry, _ = _datalist(layout, brain, breast, tmp_path)
    subject, has = entry["subject"], entry["available"]
    _, lacks = _expected(entry, "brain" if bundle == BRAIN_BUNDLE else "breast")
    _run(["synthesize", "--bundle", str(bundle), "--datalist", str(datalist), "--out", "syn"], tmp_path)
    written = sorted(p.name for p in (tmp_path / "syn" / subject).glob("*_synthetic.nii.gz"))
    assert written == sorted(f"{subject}_{n}_synthetic.nii.gz" for n in lacks)
    reference = _affine(entry[has[0]], "brain" if bundle == BRAIN_BUNDLE else "breast")
    for name in lacks:
        synthetic = nib.load(tmp_path / "syn" / subject / f"{subject}_{name}_synthetic.nii.gz")
        assert np.allclose(synthetic.affine, reference, atol=1e-4), f"{layout}: {name} is off the {has[0]} grid"


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_folder_to_maps(layout, brain, breast, tmp_path):
    datalist, bundle, entry, _ = _datalist(layout, brain, breast, tmp_path)
    argv = ["diffmap", "--bundle", str(bundle), "--datalist", str(datalist), "--out", "maps", "--num_subjects", "1"]
    _run(argv, tmp_path)
    ranking = json.loads((tmp_path / "maps" / "ranking.json").read_text())
    has, _ = _expected(entry, "brain" if bundle == BRAIN_BUNDLE else "breast")
    assert ranking["sequences"] == has and [row["sequence"] for row in ranking["table"]] == has, ranking
