"""Physics and determinism of the brain phantom (downsampled grids keep this fast)."""

import numpy as np
import pytest

from monai_seq2seq.phantoms import anatomy
from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
from monai_seq2seq.phantoms.signal import gadolinium_t1, inversion_recovery, spin_echo
from monai_seq2seq.phantoms.tissues import BRAIN_SEQUENCES, BRAIN_TISSUES

FAST = BrainPhantomConfig(spacing=3.0)
CLEAN = BrainPhantomConfig(spacing=2.0, snr=None, bias_strength=0.0, intensity_jitter=0.0, keep_fractions=True)


@pytest.fixture(scope="module")
def clean_subject():
    return generate_brain_subject(seed=3, index=1, config=CLEAN)


@pytest.fixture(scope="module")
def noisy_subject():
    return generate_brain_subject(seed=3, index=1, config=BrainPhantomConfig(spacing=2.0, keep_fractions=True))


def test_same_seed_bit_identical_and_different_seeds_differ():
    a = generate_brain_subject(5, 2, FAST)
    b = generate_brain_subject(5, 2, FAST)
    for name in a.images:
        np.testing.assert_array_equal(a.images[name], b.images[name])
    np.testing.assert_array_equal(a.label, b.label)
    c = generate_brain_subject(6, 2, FAST)
    d = generate_brain_subject(5, 3, FAST)
    for other in (c, d):
        assert not np.array_equal(a.images["T1"], other.images["T1"])
        assert a.info["tumour_centre_voxel"] != other.info["tumour_centre_voxel"]


def _pure(subject, tissue, thr=0.9):
    return subject.fractions[tissue] > thr


@pytest.mark.parametrize("which", ["clean", "noisy"])
def test_tissue_contrasts(which, clean_subject, noisy_subject):
    s = clean_subject if which == "clean" else noisy_subject
    csf, gm, wm = _pure(s, "CSF"), _pure(s, "GM"), _pure(s, "WM")
    assert csf.sum() > 50 and gm.sum() > 500 and wm.sum() > 500
    mean = {n: {t: float(s.images[n][m].mean()) for t, m in (("CSF", csf), ("GM", gm), ("WM", wm))} for n in s.images}
    assert mean["FLAIR"]["CSF"] < 0.5 * mean["FLAIR"]["WM"]  # FLAIR suppresses CSF
    assert mean["T2"]["CSF"] > 1.5 * max(mean["T2"]["GM"], mean["T2"]["WM"])  # T2: CSF brightest
    assert mean["T1"]["WM"] > 1.1 * mean["T1"]["GM"] > 1.1 * mean["T1"]["CSF"]  # T1: WM > GM > CSF


def test_tumour_labels_and_planted_region(clean_subject):
    s = clean_subject
    labels = set(np.unique(s.label).tolist())
    assert labels == {0, 1, 2, 4, 5}  # 5: the blood-product mimics
    np.testing.assert_array_equal(s.unique["T1Gd"], (s.label == 4).astype(np.uint8))
    brain = s.images["T2"] > 0
    assert np.all(brain[s.label > 0])
    # oedema is bright on FLAIR and T2 compared with white matter
    wm = _pure(s, "WM")
    ed = s.fractions["oedema"] > 0.9
    assert s.images["FLAIR"][ed].mean() > 1.3 * s.images["FLAIR"][wm].mean()


def test_t1gd_equals_t1_outside_enhancing_tumour(clean_subject, noisy_subject):
    s = clean_subject
    et = s.fractions["enhancing"] > 0
    assert et.sum() > 20
    np.testing.assert_allclose(s.images["T1Gd"][~et], s.images["T1"][~et], rtol=1e-6, atol=1e-4)
    pure_et = s.fractions["enhancing"] > 0.9
    assert np.all(s.images["T1Gd"][pure_et] > 1.5 * s.images["T1"][pure_et])
    # with noise, a shared bias field and per-sequence global scales: equal up to noise and the scale ratio
    n = noisy_subject
    gain = n.info["gain_T1Gd"] / n.info["gain_T1"]
    outside = (n.fractions["enhancing"] == 0) & (n.images["T1"] > 0)
    residual = n.images["T1Gd"][outside] / gain - n.images["T1"][outside]
    sigma = n.images["T1"][outside].mean() / 30.0  # the SNR of the config
    assert abs(residual.mean()) < 0.05 * sigma
    assert residual.std() < 1.6 * sigma  # two independent noise draws: sqrt(2) sigma
    inside = n.fractions["enhancing"] > 0.9
    assert (n.images["T1Gd"][inside] / gain - n.images["T1"][inside]).mean() > 10 * sigma


def test_enhancing_tumour_pre_contrast_equals_non_enhancing(clean_subject):
    s = clean_subject
    pure_et = s.fractions["enhancing"] > 0.99
    pure_net = s.fractions["tumour"] > 0.99
    assert pure_et.sum() > 0 and pure_net.sum() > 0
    for name in ("T1", "T2", "FLAIR"):
        np.testing.assert_allclose(s.images[name][pure_et].mean(), s.images[name][pure_net].mean(), rtol=1e-3)


def test_signal_equations_and_gadolinium():
    se = BRAIN_SEQUENCES["T1"]
    wm = BRAIN_TISSUES["WM"]
    expected = 0.70 * (1 - np.exp(-500 / 830)) * np.exp(-10 / 80)
    assert spin_echo(wm.pd, wm.t1, wm.t2, se.tr, se.te) == pytest.approx(expected)
    fl = BRAIN_SEQUENCES["FLAIR"]
    csf = BRAIN_TISSUES["CSF"]
    s_csf = inversion_recovery(csf.pd, csf.t1, csf.t2, fl.tr, fl.ti, fl.te)
    assert s_csf == pytest.approx(np.abs(1 - 2 * np.exp(-2500 / 4000) + np.exp(-9000 / 4000)) * np.exp(-120 / 2000))
    # 1/T1post = 1/T1 + r1 C with r1 = 4 /mM/s
    assert gadolinium_t1(1300.0, 0.5) == pytest.approx(1000.0 / (1000.0 / 1300.0 + 4.0 * 0.5))
    assert gadolinium_t1(1300.0, 0.0) == pytest.approx(1300.0)


def test_affines_and_grid_alignment():
    template = anatomy.load_mni_template()
    s1 = generate_brain_subject(
        0,
        0,
        BrainPhantomConfig(
            spacing=1.0, deformation_mm=0, scale_range=(1, 1), tumour=False, snr=None, bias_strength=0.0
        ),
    )
    np.testing.assert_allclose(s1.affine, template.affine)
    assert s1.images["T1"].shape == (197, 233, 189)
    s3 = generate_brain_subject(
        0,
        0,
        BrainPhantomConfig(
            spacing=3.0, deformation_mm=0, scale_range=(1, 1), tumour=False, snr=None, bias_strength=0.0
        ),
    )
    assert s3.images["T1"].shape == (65, 77, 63)
    np.testing.assert_allclose(np.diag(s3.affine)[:3], [3.0, 3.0, 3.0])
    # voxel centre of coarse voxel i = template voxel (3 i + 1): same world point
    np.testing.assert_allclose(s3.affine @ [0, 0, 0, 1], template.affine @ [1, 1, 1, 1])

    def world_centroid(subject):
        idx = np.argwhere(subject.images["T1"] > 0).mean(axis=0)
        return (subject.affine @ np.append(idx, 1.0))[:3]

    np.testing.assert_allclose(world_centroid(s1), world_centroid(s3), atol=1.5)
    sh = generate_brain_subject(0, 0, BrainPhantomConfig(shape=(64, 64, 48), snr=None))
    assert sh.images["FLAIR"].shape == (64, 64, 48)
    np.testing.assert_allclose(np.diag(sh.affine)[:3], [197 / 64, 233 / 64, 189 / 48])


def test_skull_stripped_background_is_zero(noisy_subject):
    s = noisy_subject
    outside = sum(s.fractions.values()) < 0.2
    for img in s.images.values():
        assert np.all(img[outside] == 0)
        assert np.all(np.isfinite(img)) and img.dtype == np.float32


def test_invalid_arguments():
    with pytest.raises(ValueError):
        generate_brain_subject(0, -1, FAST)
    with pytest.raises(ValueError):
        generate_brain_subject(0, 0, BrainPhantomConfig(spacing=0.0))


@pytest.mark.slow
def test_full_resolution_subject_in_seconds():
    import time

    anatomy.load_mni_template()
    t = time.perf_counter()
    s = generate_brain_subject(0, 0)
    assert time.perf_counter() - t < 30
    assert s.images["T1"].shape == (197, 233, 189)


def test_enhancing_patches_do_not_follow_the_tumour_rim():
    """ET is random patches of the tumour shell: as likely in its inner as in its outer half (a rim next to the
    oedema would be given away by T2/FLAIR)."""
    ratios = []
    for index in range(4):
        s = generate_brain_subject(seed=7, index=index, config=CLEAN)
        et, net = s.fractions["enhancing"], s.fractions["tumour"]
        shell = (et + net) > 0.5
        zz = np.stack(np.meshgrid(*[np.arange(n) for n in shell.shape], indexing="ij"), -1)
        centre = np.asarray(s.info["tumour_centre_voxel"])
        dist = np.linalg.norm((zz - centre) * np.asarray(s.info["spacing"]), axis=-1)
        cut = np.median(dist[shell])
        outer, inner = shell & (dist > cut), shell & (dist <= cut)
        ratios.append((et[outer] > 0.5).mean() / max((et[inner] > 0.5).mean(), 1e-6))
    print("P(ET | outer half) / P(ET | inner half):", np.round(ratios, 2))
    assert 0.6 < np.mean(ratios) < 1.3, ratios  # the former rim-weighted choice: 1.64


def test_mimics_are_as_bright_as_et_on_t1gd_but_predictable_from_t1_t2_flair(clean_subject):
    """The mimic's physics: equal to ET on T1Gd (bias included), already bright on T1, dark on T2 and FLAIR."""
    s = clean_subject
    et, hem = s.label == 4, s.label == 5
    assert hem.sum() > 50 and 2 <= len(s.info["mimics"]) <= 4
    assert not np.any(s.unique["T1Gd"][hem])  # not a planted region
    mean = {n: (float(s.images[n][et].mean()), float(s.images[n][hem].mean())) for n in s.images}
    wm = s.fractions["WM"] > 0.9
    wm_mean = {n: float(s.images[n][wm].mean()) for n in s.images}
    et_t1gd, hem_t1gd = mean["T1Gd"]
    assert hem_t1gd == pytest.approx(et_t1gd, rel=0.05)  # as bright as ET after contrast
    assert et_t1gd > 1.5 * wm_mean["T1Gd"]  # and both clearly brighter than white matter
    assert mean["T1"][1] == pytest.approx(hem_t1gd, rel=1e-5)  # no enhancement: T1 equals T1Gd there
    assert mean["T1"][0] < 0.6 * et_t1gd  # while ET is not bright before contrast
    for name in ("T2", "FLAIR"):  # dark on T2 and FLAIR (short T2), unlike tumour: a signature of its own
        assert mean[name][1] < 0.6 * mean[name][0] and mean[name][1] < 0.9 * wm_mean[name], (name, mean, wm_mean)
    # blood products lie in the parenchyma, away from the tumour and its oedema
    assert not np.any(hem & (s.fractions["oedema"] > 0.01))
    # the recorded equivalent concentration reproduces the mimic's T1 shortening
    for record in s.info["mimics"]:
        assert 0.0 < record["equivalent_concentration_mM"] < 20.0


def test_raw_t1gd_intensity_cannot_tell_et_from_mimics():
    """Per subject, T1Gd intensity separates ET from the mimics at chance (the premise of the decisive check)."""
    from sklearn.metrics import roc_auc_score

    for index in range(3):
        s = generate_brain_subject(seed=11, index=index, config=BrainPhantomConfig(spacing=2.0))
        et, hem = s.label == 4, s.label == 5
        truth = np.r_[np.ones(et.sum()), np.zeros(hem.sum())]
        auc_t1gd = roc_auc_score(truth, np.r_[s.images["T1Gd"][et], s.images["T1Gd"][hem]])
        auc_t1 = roc_auc_score(truth, np.r_[s.images["T1"][et], s.images["T1"][hem]])
        assert 0.35 < auc_t1gd < 0.65, (index, auc_t1gd)
        assert auc_t1 < 0.1  # whereas T1 tells them apart


def test_no_mimics_when_disabled_or_without_tumour():
    s = generate_brain_subject(seed=3, index=1, config=BrainPhantomConfig(spacing=3.0, mimics=(0, 0)))
    assert 5 not in np.unique(s.label) and s.info["mimics"] == []
    s = generate_brain_subject(seed=3, index=1, config=BrainPhantomConfig(spacing=3.0, tumour=False))
    assert not np.any(s.label) and s.info["mimics"] == []
