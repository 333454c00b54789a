"""RegisterToReference(d): elastix (mutual information, multi-resolution, fixed seed) recovers known rigid motion.

A phantom's T2 is moved by a known rigid transform (a few mm and degrees, resampled with MONAI) and registered back
to its T1: the recovered transform must map a grid of points within 0.5 voxel of where the known one maps them.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from monai_seq2seq.cli.bundle import bundle_workflow
from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort
from monai_seq2seq.transforms import REGISTRATION_KEY, RegisterToReference, RegisterToReferenced, same_grid

pytest.importorskip("itk")
BRAIN = str(Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain")


def _rigid(angles_deg, shift_mm, centre) -> np.ndarray:
    """4x4 RAS rotation about ``centre`` (x, then y, then z) followed by a shift."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = centre - out[:3, :3] @ centre + np.asarray(shift_mm)
    return out


def _centre(img: MetaTensor) -> np.ndarray:
    return (img.affine.double().numpy() @ np.append((np.asarray(img.shape[1:]) - 1) / 2, 1.0))[:3]


def _move(img: MetaTensor, motion: np.ndarray) -> MetaTensor:
    """``img`` after the subject moved by ``motion``: the point ``x`` of the result shows what ``motion @ x`` showed."""
    placed = img.clone()
    placed.affine = torch.as_tensor(np.linalg.inv(motion)) @ img.affine.double()
    return SpatialResample(mode="bilinear", padding_mode="zeros")(
        placed, dst_affine=img.affine, spatial_size=tuple(img.shape[1:])
    )


def _worst_error_voxels(found: dict, motion: np.ndarray, reference: MetaTensor) -> float:
    """Largest distance (in voxels) between where the found and the true transforms map a 5x5x5 grid of points.

    The true transform from the reference's world to the moved image's is ``motion^-1``.
    """
    matrix, truth = np.asarray(found["matrix_ras"]), np.linalg.inv(motion)
    affine = reference.affine.double().numpy()
    grid = np.meshgrid(*[np.linspace(0.2, 0.8, 5) * (n - 1) for n in reference.shape[1:]], indexing="ij")
    points = affine[:3, :3] @ np.stack(grid).reshape(3, -1) + affine[:3, 3:]
    error = (matrix[:3, :3] - truth[:3, :3]) @ points + (matrix[:3, 3:] - truth[:3, 3:])
    spacing = float(np.linalg.norm(affine[:3, :3], axis=0).min())
    return float(np.linalg.norm(error, axis=0).max()) / spacing


@pytest.fixture(scope="module")
def subject():
    return BrainPhantomCohort(1, seed=0, spacing=4.0)[0]


def test_rigid_motion_is_recovered_within_half_a_voxel_deterministically(subject):
    t1, t2 = subject["T1"], subject["T2"]
    motion = _rigid((3.0, -2.0, 4.0), (4.0, -3.0, 2.0), _centre(t2))
    moved = _move(t2, motion)
    registration = RegisterToReference("rigid")
    out = registration(moved, t1, name="T2", reference_name="T1")
    found = out.meta[REGISTRATION_KEY]
    assert _worst_error_voxels(found, motion, t1) < 0.5
    assert found["transform"] == "rigid" and found["reference"] == "T1" and len(found["parameters"]) == 6
    assert found["rotation_deg"] == pytest.approx(np.degrees(np.arccos((np.trace(motion[:3, :3]) - 1) / 2)), abs=1.0)
    assert found["translation_norm_mm"] == pytest.approx(np.linalg.norm(np.linalg.inv(motion)[:3, 3]), abs=2.0)
    assert same_grid(out, t1) and out.meta["filename_or_obj"] == t2.meta["filename_or_obj"]
    brain = t2[0] > 0.05 * float(t2.max())
    before = np.corrcoef(moved[0][brain].numpy(), t2[0][brain].numpy())[0, 1]
    after = np.corrcoef(out[0][brain].numpy(), t2[0][brain].numpy())[0, 1]
    assert after > 0.8 > before, (before, after)
    again = registration(moved, t1)  # fixed sampler seed: the same numbers
    assert again.meta[REGISTRATION_KEY]["parameters"] == found["parameters"]


def test_dictionary_twin_registers_every_present_sequence_affine_and_all_frames(subject):
    """Affine model; a 4D image moves frame by frame together; absent sequences and the reference are left alone."""
    t1 = subject["T1"]
    motion = _rigid((0.0, 0.0, -3.0), (-3.0, 2.0, 0.0), _centre(t1))
    two_frames = MetaTensor(torch.cat([subject["T2"], 2 * subject["T2"]]).as_tensor(), affine=t1.affine)
    data = {"subject": "s", "T1": t1, "T2": _move(two_frames, motion), "available": ["T1", "T2"]}
    out = RegisterToReferenced(["T1", "T1Gd", "T2"], transform="affine", allow_missing_keys=True)(data)
    assert out["T1"] is t1 and "T1Gd" not in out
    found = out["T2"].meta[REGISTRATION_KEY]
    assert found["transform"] == "affine" and len(found["parameters"]) == 12
    assert _worst_error_voxels(found, motion, t1) < 0.5
    torch.testing.assert_close(out["T2"][1], 2 * out["T2"][0], atol=1e-4, rtol=1e-4)
    with pytest.raises(KeyError, match="T1Gd"):
        RegisterToReferenced(["T1", "T1Gd"])(data)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"transform must be one of \['affine', 'rigid'\], got 'rigd'"):
        RegisterToReference("rigd")
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        RegisterToReference(iterations=0)
    with pytest.raises(TypeError, match="needs a MetaTensor with its affine"):
        RegisterToReference()(torch.zeros(1, 4, 4, 4), MetaTensor(torch.zeros(1, 4, 4, 4)), name="T2")


def test_bundle_register_option_co_registers_a_shifted_sequence(tmp_path):
    """`--register rigid`: the T2 whose header is 10 mm off (refused without it) is registered onto T1's grid."""
    datalist = write_cohort(BrainPhantomCohort(1, seed=0, spacing=4.0), tmp_path, progress=False, test_fraction=1.0)
    entry = json.loads(datalist.read_text())["testing"][0]
    t2 = tmp_path / entry["T2"]
    image = nib.load(t2)
    affine = image.affine.copy()
    affine[0, 3] += 10.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), t2)
    with bundle_workflow(BRAIN, "inference", datalist=str(datalist), load_weights=False, register="rigid") as workflow:
        names = [type(t).__name__ for t in workflow.parser.get_parsed_content("preprocessing").transforms]
        assert names.index("RegisterToReferenced") < names.index("MatchGridd")
        sample = workflow.parser.get_parsed_content("dataset")[0]
    found = sample["T2"].meta[REGISTRATION_KEY]
    assert found["reference"].startswith("T1 (") and found["transform"] == "rigid"
    # the voxels were never moved: the transform undoes the header's 10 mm, within half a voxel (2 mm)
    np.testing.assert_allclose(found["translation_mm"], [10.0, 0.0, 0.0], atol=2.0)
    assert found["rotation_deg"] < 2.0 and same_grid(sample["T2"], sample["T1"])


@pytest.mark.slow
@pytest.mark.parametrize("spacing", [2.0, 1.0])
def test_rigid_and_affine_at_fine_spacing(spacing):
    subject = BrainPhantomCohort(1, seed=3, spacing=spacing)[0]
    t1, t2 = subject["T1"], subject["T2"]
    motion = _rigid((-2.0, 3.0, 2.5), (3.0, 2.0, -4.0), _centre(t2))
    moved = _move(t2, motion)
    for model in ("rigid", "affine"):
        found = RegisterToReference(model)(moved, t1).meta[REGISTRATION_KEY]
        assert _worst_error_voxels(found, motion, t1) < 0.5, model


def test_benchmark_runs_and_reports(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_register.py"
    spec = importlib.util.spec_from_file_location("bench_register", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--spacing", "4", "--models", "rigid", "--sequences", "T2"])
    assert [(r["model"], list(r["residual_voxels"])) for r in results] == [("rigid", ["T2"])]
    assert results[0]["seconds"] > 0 and results[0]["residual_voxels"]["T2"] < 0.5
    out = capsys.readouterr().out
    assert "s per subject (T2 to T1); residual T2" in out and "machine: " in out
