"""Physics and determinism of the breast phantom (small grids keep this fast)."""

import numpy as np
import pytest

from monai_seq2seq.core.protocols import BREAST, DCE_TIMES_S, DWI_BVALUES
from monai_seq2seq.phantoms.breast import BreastPhantomConfig, generate_breast_subject
from monai_seq2seq.phantoms.signal import enhancement, ivim_attenuation, wash_in_out
from monai_seq2seq.phantoms.tissues import BREAST_TISSUES, FAT_SATURATION_FACTOR, KINETIC_TYPES
from monai_seq2seq.transforms.dwi import ivim_signal
from monai_seq2seq.transforms.intensity import PercentileScaleIntensity

SMALL = dict(shape=(80, 48, 32), spacing=4.0)
CLEAN = dict(snr=None, bias_strength=0.0, intensity_jitter=0.0, keep_fractions=True, **SMALL)


def _clean(kinetic_type=None, seed=1, index=0):
    return generate_breast_subject(seed, index, BreastPhantomConfig(kinetic_type=kinetic_type, **CLEAN))


def test_same_seed_bit_identical_and_different_seeds_differ():
    a = generate_breast_subject(2, 4, BreastPhantomConfig(**SMALL))
    b = generate_breast_subject(2, 4, BreastPhantomConfig(**SMALL))
    assert list(a.images) == BREAST.names
    for name in a.images:
        np.testing.assert_array_equal(a.images[name], b.images[name])
    np.testing.assert_array_equal(a.label, b.label)
    c = generate_breast_subject(3, 4, BreastPhantomConfig(**SMALL))
    assert not np.array_equal(a.images["T2"], c.images["T2"])


def test_shapes_frames_and_affine():
    s = generate_breast_subject(0, 0, BreastPhantomConfig(**SMALL))
    assert s.images["DCE"].shape == (6, 80, 48, 32)
    assert s.images["FatSatDCE"].shape == (6, 80, 48, 32)
    assert s.images["DWI"].shape == (4, 80, 48, 32)
    for name in ("T1", "FatSatT1", "T2", "WashIn", "WashOut"):
        assert s.images[name].shape == (80, 48, 32)
    assert s.frame_values["DCE"] == list(DCE_TIMES_S) and s.frame_values["DWI"] == list(DWI_BVALUES)
    np.testing.assert_allclose(np.diag(s.affine)[:3], [4.0, 4.0, 4.0])
    # the field of view is centred on the origin
    centre = s.affine @ np.array([79 / 2, 47 / 2, 31 / 2, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert set(np.unique(s.label).tolist()) <= {0, 1, 2, 3, 4, 5} and (s.label == 3).any() and (s.label == 1).any()


def test_dce_first_frame_equals_pre_contrast_image():
    s = _clean()
    np.testing.assert_array_equal(s.images["DCE"][0], s.images["T1"])
    np.testing.assert_array_equal(s.images["FatSatDCE"][0], s.images["FatSatT1"])
    # with noise and the default shared bias field: equal up to noise and the global scale ratio
    noisy = generate_breast_subject(1, 0, BreastPhantomConfig(**SMALL))
    body = s.fractions["air"] < 0.01
    gain = noisy.info["gain_DCE"] / noisy.info["gain_T1"]
    diff = noisy.images["DCE"][0][body] / gain - noisy.images["T1"][body]
    sigma = noisy.images["T1"][body].mean() / 40.0
    assert abs(diff.mean()) < 0.1 * sigma and diff.std() < 1.6 * sigma


def test_fat_saturation():
    s = _clean()
    fat = s.fractions["fat"] > 0.99999
    assert fat.sum() > 100
    np.testing.assert_allclose(s.images["FatSatT1"][fat] / s.images["T1"][fat], FAT_SATURATION_FACTOR, rtol=1e-3)
    fgt = s.fractions["FGT"] > 0.99999
    np.testing.assert_allclose(s.images["FatSatT1"][fgt], s.images["T1"][fgt], rtol=1e-5)


def _late_change(curve):
    return (curve[-1] - curve[1]) / curve[1]


@pytest.mark.parametrize("kinetic_type", KINETIC_TYPES)
def test_lesion_curve_matches_kinetic_type(kinetic_type):
    s = _clean(kinetic_type)
    assert s.info["kinetic_type"] == kinetic_type
    lesion = s.fractions["lesion"] > 0.99
    assert lesion.sum() > 0
    curve = s.images["DCE"][:, lesion].mean(axis=1)
    assert curve[1] > 1.2 * curve[0] and curve.max() > 1.5 * curve[0]  # the lesion enhances strongly
    change = _late_change(curve)
    if kinetic_type == "persistent":
        assert change > 0.10 and np.all(np.diff(curve) > 0)
    elif kinetic_type == "plateau":
        assert abs(change) <= 0.10
    else:
        assert change < -0.10
    # cysts and fat do not enhance; FGT enhances weakly
    for tissue, lo, hi in (("fat", -1e-5, 1e-5), ("cyst", -1e-5, 1e-5), ("FGT", 0.01, 0.3)):
        m = s.fractions[tissue] > 0.99999
        if not m.any():
            continue
        rel = s.images["DCE"][-1][m].mean() / s.images["DCE"][0][m].mean() - 1
        assert lo <= rel <= hi, (tissue, rel)


@pytest.mark.parametrize("kinetic_type", KINETIC_TYPES)
def test_kinetic_ranges_keep_curve_type(kinetic_type):
    """Every corner of the parameter box keeps its type (the draw can never be ambiguous)."""
    from monai_seq2seq.phantoms.tissues import LESION_KINETIC_RANGES, Kinetics

    (a0, a1), (u0, u1), (w0, w1) = LESION_KINETIC_RANGES[kinetic_type]
    for a in (a0, a1):
        for u in (u0, u1):
            for w in (w0, w1):
                curve = 1 + enhancement(Kinetics(a, u, w), DCE_TIMES_S)
                change = _late_change(curve)
                ok = {"persistent": change > 0.1, "plateau": abs(change) <= 0.1, "washout": change < -0.1}
                assert ok[kinetic_type], (a, u, w, change)


def test_dwi_log_linear_with_slope_minus_adc():
    s = _clean()
    b = np.asarray(DWI_BVALUES)
    high = b >= 150
    for tissue in ("lesion", "FGT", "cyst"):
        m = s.fractions[tissue] > 0.99999
        if not m.any():
            continue
        curve = s.images["DWI"][:, m].mean(axis=1)
        slope, _ = np.polyfit(b[high], np.log(curve[high]), 1)
        assert -slope == pytest.approx(BREAST_TISSUES[tissue].adc, rel=0.06), tissue
        # IVIM: the b=150 signal is below the mono-exponential extrapolated from b=0
        assert curve[1] < curve[0] * np.exp(-150 * BREAST_TISSUES[tissue].adc) + 1e-6
    lesion, fgt = s.fractions["lesion"] > 0.99, s.fractions["FGT"] > 0.99
    b1500 = s.images["DWI"][-1]
    assert b1500[lesion].mean() > b1500[fgt].mean()  # restricted diffusion stays bright at high b
    np.testing.assert_array_equal(s.unique["DWI"], (s.fractions["lesion"] >= 0.5).astype(np.uint8))
    np.testing.assert_array_equal(s.unique["DCE"], s.unique["DWI"])


def test_ivim_attenuation_formula():
    att = ivim_attenuation([0.0, 150.0, 800.0], 1e-3, 0.1)
    expected = 0.1 * np.exp(-np.array([0, 150, 800]) * 1e-2) + 0.9 * np.exp(-np.array([0, 150, 800]) * 1e-3)
    np.testing.assert_allclose(att, expected)


def test_ivim_attenuation_is_the_transforms_model_in_float64():
    rng = np.random.default_rng(0)
    adc, f = rng.uniform(2e-4, 3e-3, (5, 7)), rng.uniform(0.0, 0.3, (5, 7))
    b = np.array([0.0, 150.0, 800.0, 1500.0]).reshape(-1, 1, 1)
    att = ivim_attenuation(b.ravel(), adc, f, dstar_factor=10.0)
    assert isinstance(att, np.ndarray) and att.dtype == np.float64 and att.shape == (4, 5, 7)
    np.testing.assert_allclose(att, f * np.exp(-b * 10.0 * adc) + (1 - f) * np.exp(-b * adc), rtol=1e-14, atol=0)
    model = ivim_signal(np.float64(1.0), adc, f, 10.0 * adc, b.ravel()).numpy()
    np.testing.assert_array_equal(att, model)  # one owner: the phantom evaluates the transforms' model


def _p99(frame):
    flat = np.sort(frame.ravel())
    return flat[int(np.ceil(0.99 * flat.size)) - 1]


def test_wash_in_out_are_the_transform_formula_of_dce():
    s = generate_breast_subject(0, 0, BreastPhantomConfig(**SMALL, keep_fractions=True))
    dce = s.images["DCE"]
    eps = 1e-6
    body = (1.0 - s.fractions["air"]) > 0.5
    assert 0 < body.sum() < body.size
    wash_in = (dce[1] - dce[0]) / np.maximum(dce[0], eps)
    wash_out = (dce[-1] - dce[1]) / np.maximum(dce[1], eps)
    bright_in, bright_out = dce[0] >= 0.1 * _p99(dce[0]), dce[1] >= 0.1 * _p99(dce[1])
    np.testing.assert_allclose(s.images["WashIn"][body & bright_in], wash_in[body & bright_in], rtol=1e-6)
    np.testing.assert_allclose(s.images["WashOut"][body & bright_out], wash_out[body & bright_out], rtol=1e-6)
    # air and tissue too dark before contrast are left out: there the ratios are of noise
    assert not s.images["WashIn"][~(body & bright_in)].any() and not s.images["WashOut"][~(body & bright_out)].any()
    assert np.abs(wash_in[~body]).max() > 0
    dark = body & ~bright_in
    assert 0.1 < dark.sum() / body.sum() < 0.6, dark.sum() / body.sum()
    assert np.std(wash_in[dark]) > 3 * np.std(wash_in[body & bright_in & (s.fractions["lesion"] < 0.5)])
    lesion = s.fractions["lesion"] >= 0.5
    assert lesion.any() and bright_in[lesion].all()  # the lesion (and its enhancement) is never thresholded
    assert s.images["WashIn"][lesion].mean() > 0.5
    unmasked = generate_breast_subject(0, 0, BreastPhantomConfig(**SMALL, wash_min_signal_fraction=0.0))
    np.testing.assert_allclose(unmasked.images["WashIn"][body], wash_in[body], rtol=1e-6)
    wi, wo = wash_in_out(np.array([[2.0], [3.0], [1.5]]))
    assert wi[0] == pytest.approx(0.5) and wo[0] == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        wash_in_out(np.ones((1, 3)))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        generate_breast_subject(0, 0, BreastPhantomConfig(kinetic_type="fast", **SMALL))
    with pytest.raises(ValueError):
        generate_breast_subject(0, 0, BreastPhantomConfig(shape=(2, 2)))


@pytest.fixture(scope="module")
def mimic_subjects():
    return [generate_breast_subject(seed=1000, index=i) for i in range(3)]


def _auc(image, positive, negative):
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(positive.sum()), np.zeros(negative.sum())]
    return roc_auc_score(truth, np.r_[image[positive], image[negative]])


def test_mimics_match_the_lesion_where_planted_and_differ_where_predictable(mimic_subjects):
    """Haematoma (4): lesion-bright on DCE (normalised mean over frames), bright before contrast, flat curve.
    Shine-through cyst (5): lesion-bright on DWI (normalised mean over b-values), T2-bright, unrestricted."""
    for s in mimic_subjects:
        lesion, haematoma, cyst = s.label == 3, s.label == 4, s.label == 5
        assert lesion.sum() > 50 and haematoma.sum() > 30 and cyst.sum() > 30
        assert not np.any(s.unique["DCE"][haematoma | cyst]) and not np.any(s.unique["DWI"][haematoma | cyst])
        # raw intensity of the planted sequence, normalised as the bundles normalise it (one scale for all
        # frames, clipped at the 99.5th percentile), cannot tell them apart ...
        dce_n, dwi_n = (np.asarray(PercentileScaleIntensity(0.5, 99.5)(s.images[k])) for k in ("DCE", "DWI"))
        assert 0.3 < _auc(dce_n.mean(0), lesion, haematoma) < 0.65
        assert 0.35 < _auc(dwi_n.mean(0), lesion, cyst) < 0.65
        # ... while a source sequence can: the haematoma is bright on T1, the cyst on T2
        assert _auc(s.images["T1"], lesion, haematoma) < 0.1
        assert _auc(s.images["T2"], lesion, cyst) < 0.3
        # physics: the haematoma does not enhance (last frame = first, up to noise), the lesion does
        dce = s.images["DCE"]
        assert abs(float(dce[-1][haematoma].mean() / dce[0][haematoma].mean()) - 1.0) < 0.05
        assert float(dce[1:].mean(0)[lesion].mean() / dce[0][lesion].mean()) > 1.3
        # the cyst's diffusion is free: it decays faster with b than the restricted lesion
        dwi = s.images["DWI"]
        decay = {n: float(dwi[-1][m].mean() / dwi[0][m].mean()) for n, m in (("lesion", lesion), ("cyst", cyst))}
        assert decay["cyst"] < 0.5 * decay["lesion"], decay
        # the cyst lies beside the lesion
        gap = np.linalg.norm(np.subtract(s.info["mimics"]["shine_cyst"]["centre_mm"], s.info["lesion"]["centre_mm"]))
        assert gap < 1.35 * s.info["lesion"]["radius_mm"] + max(s.info["mimics"]["shine_cyst"]["radii_mm"]) + 1.5
        # the solved parameters are recorded and physical
        t = s.info["mimic_tissues"]
        assert 200.0 < t["haematoma"]["t1"] < 1400.0 and 40.0 < t["shine_cyst"]["t2"] < 1000.0


def test_no_mimics_when_disabled():
    s = generate_breast_subject(seed=1000, index=0, config=BreastPhantomConfig(mimics=False))
    assert not np.isin(s.label, (4, 5)).any() and s.info["mimics"] == {}
