"""Clinical acquisition effects on phantom subjects (monai_seq2seq/phantoms/realism.py): physics, truth, plumbing."""

import json

import fire
import numpy as np
import pytest
from numpy.polynomial import legendre

from monai_seq2seq.cli.phantom import Phantom
from monai_seq2seq.core.protocols import BRAIN
from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, PhantomSubject, write_subject
from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
from monai_seq2seq.phantoms.realism import (
    EFFECTS,
    RealismConfig,
    apply_realism,
    bias_field_from_coefficients,
    resample_rigid,
    resolve_realism,
    slice_kernel,
)
from monai_seq2seq.phantoms.tissues import BIAS_GROUPS

SHAPE = (40, 40, 30)
SPACING = 2.0


def _affine(spacing=SPACING, shape=SHAPE):
    a = np.diag([spacing, spacing, spacing, 1.0])
    a[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * spacing
    return a


def _grid():
    return np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")


def _ellipsoid(scale=0.4):
    x, y, z = _grid()
    c = (np.asarray(SHAPE) - 1) / 2.0
    r = np.asarray(SHAPE) * scale
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def _subject(images) -> PhantomSubject:
    label = _ellipsoid(0.2).astype(np.uint8)
    return PhantomSubject(
        "S", {n: images[n].astype(np.float32) for n in BRAIN.names}, label, {"T1Gd": label}, _affine()
    )


def _flat(value=1000.0):
    return _subject({n: value * _ellipsoid() for n in BRAIN.names})


def _textured():
    x, y, z = _grid()
    vol = 600 + 200 * np.sin(x / 2.5) * np.cos(y / 3.0) + 150 * np.sin(z / 2.0 + 0.3)
    return _subject({n: vol * _ellipsoid() for n in BRAIN.names})


@pytest.fixture(scope="module")
def brain4():
    return generate_brain_subject(5, 1, BrainPhantomConfig(spacing=4.0))


# ------------------------------------------------------------------------------------------- determinism
def test_clean_cohort_is_unchanged_and_realism_is_deterministic(brain4):
    cfg = BrainPhantomConfig(spacing=4.0)
    clean = BrainPhantomCohort(2, seed=5, config=cfg).generate(1)
    for name in BRAIN.names:
        np.testing.assert_array_equal(clean.images[name], brain4.images[name])
    assert "realism" not in clean.info
    copies = {k: v.copy() for k, v in brain4.images.items()}
    a = apply_realism(brain4, BRAIN, "clinical", seed=5, index=1)
    b = BrainPhantomCohort(2, seed=5, config=cfg, realism="clinical").generate(1)
    c = apply_realism(brain4, BRAIN, "clinical", seed=5, index=0)
    for name in BRAIN.names:
        np.testing.assert_array_equal(brain4.images[name], copies[name])  # the input is not changed
        np.testing.assert_array_equal(a.images[name], b.images[name])
    assert a.info["realism"] == b.info["realism"]
    assert not np.array_equal(a.images["FLAIR"], c.images["FLAIR"])
    np.testing.assert_array_equal(a.label, brain4.label)
    # one stream per effect: adding effects does not change another effect's draws
    alone = apply_realism(brain4, BRAIN, "bias", seed=5, index=1).info["realism"]["sequences"]["T2"]["bias"]
    assert a.info["realism"]["sequences"]["T2"]["bias"]["coefficients_ijkc"] == alone["coefficients_ijkc"]
    json.dumps(a.info)


def test_unknown_effects_and_levels_are_named():
    with pytest.raises(ValueError, match=r"unknown realism effect 'blur'.*misalign, bias, thickness, noise, fov"):
        apply_realism(_flat(), BRAIN, "bias,blur")
    with pytest.raises(ValueError, match="unknown realism effect"):
        BrainPhantomCohort(1, realism=["noise", "ghosting"])
    with pytest.raises(ValueError, match=r"unknown realism level\(s\) \['sigma'\]"):
        apply_realism(_flat(), BRAIN, "noise", sigma=3.0)
    with pytest.raises(ValueError, match="not sequences of 'brain'"):
        apply_realism(_flat(), BRAIN, "thickness", thickness_mm={"DWI": 5.0})
    assert resolve_realism(None) is None and resolve_realism("none") is None
    assert resolve_realism(("noise", "bias")).effects == ("bias", "noise")
    assert RealismConfig().effects == EFFECTS == resolve_realism("clinical").effects


# ------------------------------------------------------------------------------------------------ physics
@pytest.mark.parametrize("snr", [40.0, 10.0, 5.0])
def test_noise_gives_the_requested_snr_in_a_flat_region(snr):
    subject = _flat()
    out = apply_realism(subject, BRAIN, "noise", seed=1, index=2, snr=snr)
    rec = out.info["realism"]["sequences"]["T2"]["noise"]
    assert rec["sigma"] == pytest.approx(1000.0 / snr)
    inner = _ellipsoid(0.3)
    values = out.images["T2"][inner]
    measured = 1000.0 / values.std()
    assert measured == pytest.approx(snr, rel=0.08)
    assert (values.astype(np.float64) ** 2).mean() == pytest.approx(1000.0**2 + 2 * rec["sigma"] ** 2, rel=0.01)
    assert np.all(out.images["T2"][~_ellipsoid()] == 0)  # skull-stripped background stays 0
    assert not np.array_equal(out.images["T1"], out.images["T2"])  # independent noise per sequence


def test_bias_field_is_smooth_recorded_and_shared_by_a_coil_group():
    subject = _flat()
    out = apply_realism(subject, BRAIN, "bias", seed=0, index=3)
    inside = _ellipsoid()
    seqs = out.info["realism"]["sequences"]
    for name in BRAIN.names:
        ratio = out.images[name][inside] / 1000.0
        rows = seqs[name]["bias"]["coefficients_ijkc"]
        np.testing.assert_allclose(ratio, bias_field_from_coefficients(SHAPE, rows)[inside], rtol=1e-5)
        # independently evaluated at one voxel from the recorded coefficients
        v = (15, 25, 12)
        uvw = [-1 + 2 * i / (n - 1) for i, n in zip(v, SHAPE, strict=True)]
        log_f = sum(
            c * np.prod([legendre.legval(u, np.eye(d + 1)[d]) for u, d in zip(uvw, (i, j, k), strict=True)])
            for i, j, k, c in rows
        )
        assert out.images[name][v] == pytest.approx(1000.0 * np.exp(log_f), rel=1e-5)
        log_ratio = np.log(np.where(inside, out.images[name], 1000.0) / 1000.0)
        assert 0.03 < log_ratio[inside].std() < 0.6  # stronger than nothing, not absurd
        line = log_ratio[:, 20, 15][inside[:, 20, 15]]  # contiguous run through the centre
        assert line.size > 20 and np.abs(np.diff(line, 2)).max() < 0.01  # smooth on the voxel scale
        assert np.ptp(line) > 0.02  # yet it varies
    for name, group in BIAS_GROUPS.items():
        if name in BRAIN.names and group in BRAIN.names:
            assert seqs[name]["bias"] == seqs[group]["bias"]
    assert seqs["T2"]["bias"] != seqs["FLAIR"]["bias"]
    assert np.all(out.images["T1"][~inside] == 0)


def test_slice_kernel_rows_sum_to_one_and_blur_only_through_plane():
    kernel, centres = slice_kernel(30, 2.5, "gaussian", offset=0.7)
    np.testing.assert_allclose(kernel.sum(1), 1.0, atol=1e-9)
    assert np.allclose(np.diff(centres), 2.5)
    box, _ = slice_kernel(30, 4.0, "box", offset=0.0)
    np.testing.assert_allclose(box.sum(1), 1.0, atol=1e-9)
    x, y, _ = _grid()
    inplane = 500 + 100 * np.sin(x / 2.0) * np.cos(y / 3.0)  # constant along z
    full = _subject({n: inplane for n in BRAIN.names})
    out = apply_realism(full, BRAIN, "thickness", thickness_mm={"FLAIR": 8.0}, skull_stripped=False)
    np.testing.assert_allclose(out.images["FLAIR"], inplane, rtol=1e-5)  # in-plane structure untouched


def test_thickness_blurs_the_z_profile_and_keeps_the_mean():
    subject = _textured()
    out = apply_realism(subject, BRAIN, "thickness", thickness_mm={"FLAIR": 8.0, "T2": 5.0}, seed=2, index=0)
    seqs = out.info["realism"]["sequences"]
    assert seqs["FLAIR"]["thickness"]["thickness_mm"] == 8.0 and not seqs["FLAIR"]["thickness"]["native"]
    assert seqs["T1"]["thickness"]["native"] and seqs["T1Gd"]["thickness"]["native"]
    np.testing.assert_array_equal(out.images["T1"], subject.images["T1"])  # 3D at the grid's resolution
    inner = _ellipsoid(0.3)
    for name, strength in (("T2", 0.9), ("FLAIR", 0.6)):
        before, after = subject.images[name], out.images[name]
        dz_before = np.abs(np.diff(before, axis=2))[inner[:, :, 1:]].mean()
        dz_after = np.abs(np.diff(after, axis=2))[inner[:, :, 1:]].mean()
        assert dz_after < strength * dz_before  # through-plane detail lost
        dx_before = np.abs(np.diff(before, axis=0))[inner[1:]].mean()
        dx_after = np.abs(np.diff(after, axis=0))[inner[1:]].mean()
        assert dx_after > 0.8 * dx_before  # in-plane detail kept
        assert after[inner].mean() == pytest.approx(before[inner].mean(), rel=0.02)
    assert np.all(out.images["FLAIR"][~_ellipsoid()] == 0)
    assert seqs["T2"]["thickness"]["thickness_mm"] < seqs["FLAIR"]["thickness"]["thickness_mm"]


def test_misalignment_truth_moves_a_landmark_and_inverts():
    x, y, z = _grid()
    affine = _affine()
    world = np.stack([x, y, z, np.ones_like(x)], -1) @ affine.T
    p = np.array([9.0, -7.0, 5.0])
    blob = 1000 * np.exp(-((world[..., :3] - p) ** 2).sum(-1) / (2 * 4.0**2))
    subject = _subject({n: blob + 1.0 for n in BRAIN.names})
    out = apply_realism(subject, BRAIN, "misalign", seed=4, index=9, max_rotation_deg=3.0, max_translation_mm=3.0)
    seqs = out.info["realism"]["sequences"]
    assert "misalign" not in seqs["T1"]
    np.testing.assert_array_equal(out.images["T1"], subject.images["T1"])
    for name in ("T1Gd", "T2", "FLAIR"):
        rec = seqs[name]["misalign"]
        m = np.asarray(rec["matrix_world"])
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-9)
        assert np.all(np.abs(rec["rotation_deg_xyz"]) <= 3.0) and np.all(np.abs(rec["translation_mm"]) <= 3.0)
        moved = out.images[name] - out.images[name].min()
        moved = np.where(moved > 100, moved, 0)
        centroid = (world[..., :3] * moved[..., None]).sum((0, 1, 2)) / moved.sum()
        np.testing.assert_allclose(centroid, (m @ np.append(p, 1.0))[:3], atol=0.3)  # the blob went to M p
    t2 = _textured()
    out = apply_realism(t2, BRAIN, "misalign", seed=4, index=9)
    inner = _ellipsoid(0.3)
    for name in ("T2", "FLAIR"):
        m = np.asarray(out.info["realism"]["sequences"][name]["misalign"]["matrix_world"])
        back = resample_rigid(out.images[name], np.linalg.inv(m), affine)
        r_moved = np.corrcoef(out.images[name][inner], t2.images[name][inner])[0, 1]
        r_back = np.corrcoef(back[inner], t2.images[name][inner])[0, 1]
        assert r_back > 0.98 and r_back > r_moved
    np.testing.assert_array_equal(out.label, t2.label)  # labels stay in the reference frame


def test_fov_is_zero_outside_the_recorded_box():
    subject = _textured()
    out = apply_realism(subject, BRAIN, "fov", seed=0, index=5, fov_fraction=(0.5, 0.6))
    seqs = out.info["realism"]["sequences"]
    assert "fov" not in seqs["T1"]
    np.testing.assert_array_equal(out.images["T1"], subject.images["T1"])
    lo_ext, hi_ext = seqs["T2"]["fov"]["reference_extent_voxels"]
    for name in ("T1Gd", "T2", "FLAIR"):
        rec = seqs[name]["fov"]
        (z0, z1) = rec["box_voxels"][2]
        assert rec["box_voxels"][:2] == [[0, SHAPE[0]], [0, SHAPE[1]]]
        assert 0.45 <= (z1 - z0) / (hi_ext - lo_ext) <= 0.65
        img = out.images[name]
        assert np.all(img[:, :, :z0] == 0) and np.all(img[:, :, z1:] == 0)
        np.testing.assert_array_equal(img[:, :, z0:z1], subject.images[name][:, :, z0:z1])
        assert rec["box_mm"][0][2] == pytest.approx(_affine()[2, 3] + z0 * SPACING)
        assert rec["box_mm"][1][2] == pytest.approx(_affine()[2, 3] + (z1 - 1) * SPACING)


# ------------------------------------------------------------------------------------------------ plumbing
def test_brain_and_breast_clinical_keep_shapes_and_record_the_truth(brain4):
    out = apply_realism(brain4, BRAIN, "clinical", seed=5, index=1)
    brain_mask = brain4.images["T1"] != 0
    assert np.all(out.images["T1"][~brain_mask] == 0)  # reference: no geometry, background stays 0
    rec = out.info["realism"]
    assert rec["effects"] == list(EFFECTS) and rec["reference"] == "T1"
    assert set(rec["sequences"]["FLAIR"]) == set(EFFECTS)
    breast = BreastPhantomCohort(1, seed=0, shape=(64, 40, 24), spacing=4.0, realism="clinical").generate(0)
    clean = BreastPhantomCohort(1, seed=0, shape=(64, 40, 24), spacing=4.0).generate(0)
    for name, img in breast.images.items():
        assert img.shape == clean.images[name].shape and img.dtype == np.float32
        assert np.isfinite(img).all()
    seqs = breast.info["realism"]["sequences"]
    assert seqs["WashIn"]["misalign"] == seqs["DCE"]["misalign"] and seqs["WashIn"]["recomputed_from"] == "DCE"
    assert seqs["DWI"]["thickness"]["thickness_mm"] > seqs["DCE"]["thickness"]["thickness_mm"]
    json.dumps(breast.info)


def test_sidecar_written_with_the_truth(tmp_path, brain4):
    out = apply_realism(brain4, BRAIN, "misalign,noise", seed=5, index=1, snr=10.0)
    write_subject(out, BRAIN, tmp_path)
    sidecar = tmp_path / out.subject / f"{out.subject}_phantom.json"
    data = json.loads(sidecar.read_text())
    assert data["realism"]["effects"] == ["misalign", "noise"]
    assert np.asarray(data["realism"]["sequences"]["T2"]["misalign"]["matrix_world"]).shape == (4, 4)
    assert data["realism"]["sequences"]["T2"]["noise"]["snr"] == 10.0
    write_subject(brain4, BRAIN, tmp_path / "clean")
    assert not (tmp_path / "clean" / out.subject / f"{out.subject}_phantom.json").exists()


def test_cli_realism_flag(tmp_path, monkeypatch):
    out = tmp_path / "b"
    args = ["brain", "--subjects", "1", "--out", str(out), "--spacing", "6.0", "--progress", "False"]
    monkeypatch.setattr("sys.argv", ["seq2seq-phantom"])
    fire.Fire(Phantom, command=[*args, "--realism", "bias,noise", "--realism_snr", "10"])
    data = json.loads((out / "BraTS2021_00000" / "BraTS2021_00000_phantom.json").read_text())
    assert data["realism"]["effects"] == ["bias", "noise"]
    assert data["realism"]["settings"]["snr"] == 10.0
    path = Phantom().breast(subjects=1, out=str(tmp_path / "r"), shape=(32, 20, 12), spacing=8.0, progress=False)
    assert not list((tmp_path / "r").glob("*/*_phantom.json")) and path.endswith("datalist.json")
    with pytest.raises(ValueError, match="unknown realism effect 'sharp'"):
        Phantom().brain(subjects=1, out=str(tmp_path / "x"), spacing=6.0, realism="sharp", progress=False)
