"""The phantom command line: brain/breast/toy/figure subcommands."""

import json
import subprocess
import sys

import numpy as np

from monai_seq2seq.cli.phantom import Phantom


def test_cli_brain_and_breast_write_cohorts(tmp_path):
    out = Phantom().brain(subjects=2, out=str(tmp_path / "brain"), spacing=6.0, progress=False)
    data = json.loads(open(out).read())
    assert [e["subject"] for e in data["training"]] == ["BraTS2021_00000", "BraTS2021_00001"]
    out = Phantom().breast(subjects=1, out=str(tmp_path / "breast"), spacing=8.0, progress=False)
    assert json.loads(open(out).read())["protocol"] == "breast"
    assert (tmp_path / "breast" / "BreastPhantom_00000" / "BreastPhantom_00000_DCE.json").is_file()


def test_cli_toy_archive(tmp_path):
    path = Phantom().toy(out=str(tmp_path), split="val", samples=4, progress=False)
    data = np.load(path)
    assert data["X1"].shape == (4, 128, 128) and data["labels"].shape == (4, 2)
    assert np.all(data["labels"][:, 0] != data["labels"][:, 1])


def test_cli_figure(tmp_path):
    paths = Phantom().figure(out=str(tmp_path), brain_spacing=4.0)
    assert [p.split("/")[-1] for p in paths] == ["brain_phantom.png", "breast_phantom.png", "toy_phantom.png"]
    for p in paths:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "monai_seq2seq.cli.phantom",
        "brain",
        "--subjects",
        "1",
        "--out",
        str(tmp_path),
        "--spacing",
        "8",
        "--progress",
        "False",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "BraTS2021_00000" / "BraTS2021_00000_t1ce.nii.gz").is_file()


def test_figure_slice_shows_planted_region_and_mimic():
    from monai_seq2seq.core.protocols import BRAIN
    from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
    from monai_seq2seq.phantoms.figures import MIMIC_LABELS, default_slice

    s = generate_brain_subject(0, 2, BrainPhantomConfig(spacing=2.0))  # ET in slices 55-70, mimics in 52-56
    z = default_slice(s, BRAIN)
    assert s.unique["T1Gd"][:, :, z].any() and np.isin(s.label[:, :, z], MIMIC_LABELS["brain"]).any()
    s.label[np.isin(s.label, MIMIC_LABELS["brain"])] = 0  # no mimic anywhere: the slice with the most ET
    assert default_slice(s, BRAIN) == int(np.argmax(s.unique["T1Gd"].sum(axis=(0, 1))))
