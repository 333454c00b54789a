"""Grids compared by affine and shape (same / aligned / not aligned), resampling to a reference, clear refusals.

Issue 19: two sequences of one shape whose affines differed by a 10 mm shift were synthesised from without a word
(only shapes were compared, no bundle ran MatchGridd), and different shapes made ``diffmap`` die in ``torch.stack``.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_seq2seq.analysis import DifferentiationEvaluator
from monai_seq2seq.cli.bundle import bundle_workflow, diffmap, synthesize
from monai_seq2seq.inference import Seq2SeqSynthesizer, subject_collate
from monai_seq2seq.networks import build_seq2seq
from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort
from monai_seq2seq.transforms import (
    RESAMPLED_KEY,
    GridMismatchError,
    MatchGrid,
    MatchGridd,
    check_same_grid,
    compare_grids,
    same_grid,
)

BRAIN = str(Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain")
SHAPE = (20, 24, 16)
AFFINE = np.array([[4.0, 0, 0, -40.0], [0, 4.0, 0, -48.0], [0, 0, 4.0, -30.0], [0, 0, 0, 1]])
TINY = {"network_def#name": "tiny", "load_weights": False}


def _image(affine=AFFINE, shape=SHAPE, seed=0, frames=1) -> MetaTensor:
    data = torch.rand(frames, *shape, generator=torch.Generator().manual_seed(seed))
    return MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64))


def _moved(rotation_deg=0.0, shift=(0.0, 0.0, 0.0), affine=AFFINE, shape=SHAPE) -> np.ndarray:
    """``affine`` turned about z through the FOV centre and shifted (RAS mm)."""
    t = np.radians(rotation_deg)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + affine[:3, 3]
    to_centre, back = np.eye(4), np.eye(4)
    to_centre[:3, 3], back[:3, 3] = -centre, centre + np.asarray(shift)
    return back @ rot @ to_centre @ affine


def _chain(error: BaseException) -> str:
    """Every message of an exception chain (MONAI wraps a transform's error in 'applying transform ...')."""
    out = []
    while error is not None:
        out.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(out)


# --- the rule ---------------------------------------------------------------------------------------------------------


def test_same_grid_within_tolerance_only():
    ref = _image()
    jitter = AFFINE.copy()
    jitter[:3, 3] += 0.004  # float32 header rounding is far below this
    assert same_grid(_image(jitter), ref) and compare_grids(_image(jitter), ref).same
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    assert not same_grid(_image(shifted), ref) and same_grid(_image(shifted), ref, atol=0.6)
    assert not same_grid(_image(shape=(20, 24, 15)), ref)
    # plain tensors: shapes only
    assert same_grid(torch.zeros(1, *SHAPE), torch.ones(2, *SHAPE))


@pytest.mark.parametrize(
    "case, affine, shape, aligned",
    [
        ("shift 10 mm", _moved(shift=(10.0, 0, 0)), SHAPE, False),
        ("shift 3 mm", _moved(shift=(0, 3.0, 0)), SHAPE, True),
        ("rotation 5 degrees", _moved(rotation_deg=5.0), SHAPE, False),
        ("rotation 1 degree", _moved(rotation_deg=1.0), SHAPE, True),
        # half the voxels, twice the size, one FOV centre: another grid of one frame of reference
        (
            "2 mm grid",
            np.diag([2.0, 2.0, 2.0, 1.0]) + np.array([[0, 0, 0, -42.0], [0, 0, 0, -50], [0, 0, 0, -32]] + [[0] * 4]),
            (40, 48, 32),
            True,
        ),
        # a thin slab far from the centre, angulated by 15 degrees, inside the reference FOV: a planned sub-volume
        (
            "angulated slab",
            _moved(
                15.0,
                (0, 0, 20.0),
                np.diag([2.0, 2.0, 2.0, 1.0]) + np.array([[0, 0, 0, -20.0], [0, 0, 0, -20], [0, 0, 0, 0]] + [[0] * 4]),
                (20, 20, 4),
            ),
            (20, 20, 4),
            True,
        ),
    ],
)
def test_aligned_or_not(case, affine, shape, aligned):
    comparison = compare_grids(_image(affine, shape), _image())
    assert not comparison.same
    assert comparison.aligned is aligned, (case, comparison.describe())


def test_axis_order_and_flips_are_no_rotation():
    """The same FOV stored LPS and axial-first vs RAS: a reorientation, not a misalignment."""
    ref = _image()
    lps = AFFINE.copy()
    lps[:3, :3] = np.diag([-4.0, -4.0, 4.0])
    lps[:3, 3] = AFFINE[:3, :3] @ [SHAPE[0] - 1, SHAPE[1] - 1, 0] + AFFINE[:3, 3]
    comparison = compare_grids(_image(lps), ref)
    assert not comparison.same and comparison.aligned and comparison.rotation_deg < 1e-6
    assert comparison.centre_distance_mm < 1e-6
    out = MatchGrid(mode="resample")(_image(lps, seed=3), ref)
    torch.testing.assert_close(out[0].as_tensor(), _image(seed=3)[0].flip(0, 1).as_tensor(), atol=1e-5, rtol=0)


# --- MatchGridd: resample or refuse -----------------------------------------------------------------------------------


def test_ten_mm_shift_is_refused_naming_both_sequences_and_the_offset():
    ref = _image()
    ref.meta["filename_or_obj"] = "sub/sub_t1.nii.gz"
    moved = _image(_moved(shift=(10.0, 0, 0)), seed=1)
    moved.meta["filename_or_obj"] = "sub/sub_t2.nii.gz"
    data = {"subject": "sub", "T1": ref, "T2": moved, "available": ["T1", "T2"]}
    with pytest.raises(GridMismatchError) as caught:
        MatchGridd(["T1", "T2"], mode="resample")(data)
    message = str(caught.value)
    assert "subject 'sub'" in message and "T2 (sub/sub_t2.nii.gz) is not aligned with T1 (sub/sub_t1.nii.gz)" in message
    assert "FOV centres 10.0 mm apart" in message and "rotated 0.0 degrees" in message and "--register" in message
    rotated = {**data, "T2": _image(_moved(rotation_deg=6.0), seed=1)}
    with pytest.raises(GridMismatchError, match=r"rotated 6.0 degrees"):
        MatchGridd(["T1", "T2"], mode="resample")(rotated)
    # the user may accept it: a larger limit resamples by the headers
    out = MatchGridd(["T1", "T2"], mode="resample", max_offset_mm=12.0)(data)
    assert same_grid(out["T2"], ref)


def test_consistent_grid_is_resampled_to_the_reference_with_labels():
    """A coarser T2 of one frame of reference (and its label) lands on T1's grid; the label is not interpolated."""
    ref = _image()
    fine = np.diag([2.0, 2.0, 2.0, 1.0])
    fine[:3, 3] = AFFINE[:3, 3] - 1.0  # voxel edges of the 4 mm grid: the same FOV
    x = torch.arange(40, dtype=torch.float32)[:, None, None].expand(40, 48, 32)
    t2 = MetaTensor(x[None].clone(), affine=torch.as_tensor(fine))
    t2.meta["frame_values"] = [0.0]
    label = MetaTensor((x[None] > 20).float() * 2, affine=torch.as_tensor(fine))
    data = {"subject": "s", "T1": ref, "T2": t2, "label": label, "available": ["T1", "T2"]}
    out = MatchGridd(["T1", "T2", "label"], mode="resample", allow_missing_keys=True)(data)
    for key in ("T2", "label"):
        assert tuple(out[key].shape[1:]) == SHAPE and same_grid(out[key], ref), key
    # 4 mm voxel i covers 2 mm voxels 2i and 2i+1: its centre lies at 2i + 0.5
    expected = torch.arange(SHAPE[0], dtype=torch.float32) * 2 + 0.5
    torch.testing.assert_close(out["T2"][0, :, 5, 5].as_tensor(), expected, atol=1e-4, rtol=0)
    assert set(out["label"].unique().tolist()) == {0.0, 2.0}
    assert out["T2"].meta["frame_values"] == [0.0] and out["T2"].meta[RESAMPLED_KEY]["from_spacing_mm"] == [2.0] * 3
    with pytest.raises(GridMismatchError, match="is not on the grid of"):
        MatchGridd(["T1", "T2", "label"])(data)  # mode="raise" refuses any difference


def test_resampling_needs_affines():
    with pytest.raises(GridMismatchError, match="needs MetaTensors with affines"):
        MatchGrid(mode="resample")(torch.zeros(1, 4, 4, 4), _image())


# --- synthesiser and analysis -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth():
    torch.manual_seed(0)
    return Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="brain"), "brain", batch_size=8, progress=False)


def test_synthesiser_compares_affines(synth):
    volumes = {"T1": _image(), "T2": _image(_moved(shift=(10.0, 0, 0)), seed=1)}
    with pytest.raises(GridMismatchError, match=r"T2 is not on the grid of T1: .*FOV centres 10.0 mm apart"):
        synth.synthesize(volumes, "FLAIR")
    check_same_grid({"T1": _image(), "T2": _image(seed=1)})  # one grid: no error


def test_analysis_of_different_shapes_says_so_instead_of_a_torch_stack_error(synth):
    subject = {"subject": "s0", "T1": _image(), "T2": _image(shape=(20, 24, 12), seed=1)}
    engine = DifferentiationEvaluator(
        "cpu", DataLoader([subject], batch_size=1, collate_fn=subject_collate), synth, use_lpips=False
    )
    with pytest.raises(GridMismatchError) as caught:
        engine.run()
    message = str(caught.value)
    assert "subject 's0': T2 is not on the grid of T1: spatial shape (20, 24, 12) vs (20, 24, 16)" in message
    assert "stack expects" not in _chain(caught.value)


# --- the bundles ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    return write_cohort(BrainPhantomCohort(1, seed=0, spacing=4.0), root, progress=False, test_fraction=1.0).parent


def _variant(phantom_folder: Path, tmp_path: Path, edit) -> str:
    """A copy of the phantom datalist whose T2 (or other files) ``edit(entry, folder)`` rewrote; returns its path."""
    datalist = json.loads((phantom_folder / "datalist.json").read_text())
    entry = datalist["testing"][0]
    entry = {
        k: (str(phantom_folder / v) if k in ("T1", "T1Gd", "T2", "FLAIR", "label") else v) for k, v in entry.items()
    }
    entry.pop("unique-T1Gd", None)
    edit(entry, tmp_path)
    datalist["testing"] = [entry]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(datalist))
    return str(path)


def _shift_t2(entry: dict, folder: Path, shift_mm: float = 10.0) -> None:
    image = nib.load(entry["T2"])
    affine = image.affine.copy()
    affine[0, 3] += shift_mm
    entry["T2"] = str(folder / "t2_shifted.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), entry["T2"])


def test_every_bundle_config_matches_grids_before_normalising():
    for bundle in ("seq2seq_brain", "seq2seq_breast"):
        root = Path(BRAIN).parent / bundle
        with bundle_workflow(root, "inference", datalist="unused.json", load_weights=False) as workflow:
            names = [type(t).__name__ for t in workflow.parser.get_parsed_content("preprocessing").transforms]
            assert workflow.parser.get_parsed_content("register") is None and "RegisterToReferenced" not in names
        assert names.index("MatchGridd") == names.index("PercentileScaleIntensityd") - 1, names
        train = json.loads((root / "configs" / "train.json").read_text())
        for part in ("train", "validate"):
            assert "[@match_grid, @normalise" in train[part]["preprocessing"]["transforms"], (bundle, part)


def test_synthesize_refuses_a_ten_mm_shift(phantom_folder, tmp_path):
    datalist = _variant(phantom_folder, tmp_path, _shift_t2)
    with pytest.raises(Exception) as caught:
        synthesize(BRAIN, out=str(tmp_path / "out"), datalist=datalist, **TINY)
    message = _chain(caught.value)
    assert "GridMismatchError" in message and "BraTS2021_00000_t1.nii.gz" in message
    assert "t2_shifted.nii.gz) is not aligned with T1" in message and "FOV centres 10.0 mm apart" in message
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


def test_diffmap_resamples_a_thick_slice_sequence(phantom_folder, tmp_path):
    """FLAIR with 8 mm slices (one frame of reference): resampled onto T1's grid, the maps are written there."""

    def thick_flair(entry, folder):
        image = nib.load(entry["FLAIR"])
        affine = image.affine.copy()
        affine[:3, 2] *= 2
        entry["FLAIR"] = str(folder / "flair_8mm.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, ::2], affine), entry["FLAIR"])

    datalist = _variant(phantom_folder, tmp_path, thick_flair)
    options = {**TINY, "evaluator#use_lpips": False, "drop": ["T1Gd", "T2"]}  # two sequences: fast
    out = Path(diffmap(BRAIN, out=str(tmp_path / "maps"), datalist=datalist, **options))
    maps = sorted(out.rglob("*_diffmap.nii.gz"))
    assert sorted(p.name for p in maps) == ["BraTS2021_00000_FLAIR_diffmap.nii.gz", "BraTS2021_00000_T1_diffmap.nii.gz"]
    t1 = nib.load(phantom_folder / "BraTS2021_00000" / "BraTS2021_00000_t1.nii.gz")
    for path in maps:
        image = nib.load(path)
        assert image.shape == t1.shape and np.allclose(image.affine, t1.affine, atol=1e-4), path.name
