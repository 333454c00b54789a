"""Calibrated uncertainty: the error model's fit, its JSON checks, and the calibrated map beside the raw spread."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_seq2seq.inference import (
    ErrorModel,
    Seq2SeqSynthesizer,
    SynthesisEvaluator,
    SyntheticImageWriter,
    UncertaintyEstimator,
    subject_collate,
    synthesize_with_uncertainty,
)
from monai_seq2seq.inference.error_model import (
    ERROR_FEATURES,
    ERROR_MODEL_FORMAT,
    ErrorModelError,
    bundle_error_model,
    error_features,
    fit_error_model,
)
from monai_seq2seq.inference.quality import FEATURES, QualityModel
from monai_seq2seq.networks import build_seq2seq

AFFINE = torch.tensor([[1.5, 0, 0, -10.0], [0, 1.5, 0, 20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)
N = len(ERROR_FEATURES)
SLOPES = {"log_uncertainty": 0.6, "log_gradient": 0.3, "sources_log_local_std3_mean": -0.2}


@pytest.fixture(scope="module")
def synth():
    torch.manual_seed(0)
    return Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="brain"), "brain", batch_size=4, progress=False)


def _volumes(names=("T1", "T2", "FLAIR"), seed=0, shape=(1, 16, 16, 8)):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(*shape, generator=g) for n in names}


def _synthetic_case(seed: int, target: str = "T1Gd", shape=(1, 20, 18, 10)) -> dict:
    """Random image, uncertainty and sources; the real image placed so that log(|error| + eps) is exactly
    -1 + SLOPES . features (+ a little noise)."""
    g = torch.Generator().manual_seed(seed)
    sources = {n: torch.rand(*shape, generator=g) for n in ("T1", "T2", "FLAIR")}
    sources["T1"][..., :2] = 0.0  # some background: the foreground fraction varies
    image = torch.rand(*shape, generator=g)
    uncertainty = 0.01 + torch.rand(*shape, generator=g) * 0.09  # errors above error_eps: |error| = exp(log) - eps
    features = error_features(image, uncertainty, sources)
    log_error = torch.full(shape, -1.0)
    for name, slope in SLOPES.items():
        log_error += slope * features[ERROR_FEATURES.index(name)]
    log_error += 0.01 * torch.randn(*shape, generator=g)
    sign = torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0)
    real = image + sign * (torch.exp(log_error) - 0.01)
    foreground = torch.ones(shape[1:], dtype=torch.bool)
    case = {"target": target, "image": image, "uncertainty": uncertainty, "real": real}
    return {**case, "sources": sources, "foreground": foreground}


@pytest.fixture(scope="module")
def fitted() -> dict:
    cases = [_synthetic_case(seed) for seed in range(3)] + [_synthetic_case(9, target="T2")]
    return fit_error_model(cases, ridge=1e-6)


def test_fit_recovers_known_slopes(fitted):
    entry = fitted["targets"]["T1Gd"]
    for name, coef in zip(ERROR_FEATURES, entry["coef"], strict=True):
        if name.startswith("intensity_hat"):
            continue  # the hat functions sum to 1: only their sum with the intercept is identified
        assert coef == pytest.approx(SLOPES.get(name, 0.0), abs=0.02), name
    assert entry["residual_std"] == pytest.approx(0.01, abs=0.003)
    assert entry["r2"] > 0.99 and fitted["format"] == ERROR_MODEL_FORMAT and set(fitted["targets"]) == {"T1Gd", "T2"}


def test_expected_error_matches_the_truth_on_new_data(fitted):
    case = _synthetic_case(7)
    model = ErrorModel(fitted, "test")
    expected = model.expected_error(case["image"], case["uncertainty"], "T1Gd", case["sources"])
    truth = (case["image"] - case["real"]).abs()
    assert expected.shape == truth.shape and expected.dtype == torch.float32
    assert float(((expected - truth).abs() / truth.clamp_min(1e-3)).median()) < 0.05  # relative, per voxel
    assert float(expected.min()) >= 0.0 and float(expected.max()) <= 1.0


def test_error_features_shape_and_errors():
    vols = _volumes(shape=(2, 8, 9, 5))
    features = error_features(vols["T1"], vols["T2"] * 0.1, {"FLAIR": vols["FLAIR"][:1]})
    assert features.shape == (N, 2, 8, 9, 5) and torch.isfinite(features).all()
    with pytest.raises(ValueError, match="differ in shape"):
        error_features(vols["T1"], vols["T2"][..., :4], {"FLAIR": vols["FLAIR"]})
    with pytest.raises(ValueError, match="source volumes"):
        error_features(vols["T1"], vols["T2"], {})
    with pytest.raises(ValueError, match="not on the grid"):
        error_features(vols["T1"], vols["T2"], {"FLAIR": vols["FLAIR"][..., :4]})


def _valid(fitted) -> dict:
    return json.loads(json.dumps(fitted))


def test_bad_model_json_is_refused_with_a_clear_message(tmp_path, fitted):
    with pytest.raises(ErrorModelError, match="does not exist.*--write-model"):
        ErrorModel.from_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ErrorModelError, match=r"bad\.json is not JSON"):
        ErrorModel.from_file(tmp_path / "bad.json")
    broken = [
        ({"format": "other"}, "'format'"),
        ({"features": ["log_uncertainty"]}, "'features'.*refit"),
        ({"error_eps": -1}, "'error_eps'"),
        ({"targets": {}}, "'targets'"),
    ]
    for change, message in broken:
        with pytest.raises(ErrorModelError, match=message):
            ErrorModel({**_valid(fitted), **change}, "m.json")
    data = _valid(fitted)
    data["targets"]["T1Gd"]["coef"] = [0.0] * (N - 1)
    with pytest.raises(ErrorModelError, match=rf"m\.json: targets\.T1Gd\.coef must be a list of {N} numbers"):
        ErrorModel(data, "m.json")
    data = _valid(fitted)
    del data["targets"]["T2"]["residual_std"]
    with pytest.raises(ErrorModelError, match=r"targets\.T2 lacks \['residual_std'\]"):
        ErrorModel(data, "m.json")
    data = _valid(fitted)
    data["targets"]["T2"]["intercept"] = "high"
    with pytest.raises(ErrorModelError, match="finite numbers"):
        ErrorModel(data, "m.json")
    with pytest.raises(ErrorModelError, match="no regression for 'FLAIR'"):
        ErrorModel(data | {"targets": fitted["targets"]}).expected_error(
            torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4), "FLAIR", {"T1": torch.zeros(1, 4, 4, 4)}
        )


def test_save_and_load_round_trip(tmp_path, fitted):
    path = ErrorModel(fitted, "fit").save(tmp_path / "calibration.json", validation={"rho": 0.3})
    model = ErrorModel.from_file(path)
    assert model.targets == fitted["targets"] and model.data["validation"] == {"rho": 0.3}
    assert model.sidecar()["ErrorModel"] == "calibration.json"
    assert bundle_error_model(tmp_path) is None
    (tmp_path / "configs").mkdir()
    ErrorModel(fitted, "fit").save(tmp_path / "configs" / "uncertainty_calibration.json")
    assert ErrorModel.from_file(bundle_error_model(tmp_path)).targets == fitted["targets"]


def test_calibrated_map_beside_an_unchanged_raw_spread(synth, fitted):
    vols = _volumes()
    plain = synthesize_with_uncertainty(synth, vols, "T1Gd")
    model = ErrorModel(fitted, "/some/where/calibration.json")
    result = synthesize_with_uncertainty(synth, vols, "T1Gd", error_model=model)
    assert torch.equal(result.image, plain.image) and torch.equal(result.uncertainty, plain.uncertainty)
    assert plain.calibrated is None and plain.output_map is plain.uncertainty and "sqrt" in plain.info["Formula"]
    assert result.calibrated.shape == result.uncertainty.shape and result.output_map is result.calibrated
    torch.testing.assert_close(result.calibrated, model.expected_error(result.image, result.uncertainty, "T1Gd", vols))
    assert result.info["ErrorModel"] == "calibration.json" and "expected" in result.info["Units"]
    assert "each source alone" in result.info["RawUncertaintyMethod"] and "sqrt" in result.info["RawUncertaintyFormula"]
    uncovered = synthesize_with_uncertainty(synth, _volumes(("T1", "T1Gd", "T2")), "FLAIR", error_model=model)
    assert uncovered.calibrated is None and "no regression for FLAIR" in uncovered.info["Map"]


def _quality(tmp_path):
    entry = {"intercept": 10.0, "coef": [-3.0, 0.0, -10.0], "residual_std": 1.0, "z": 1.645, "n": 10}
    entry.update(feature_min=[-9.0, -9.0, 0.0], feature_max=[0.0, 0.0, 1.0], flag_below_db=0.0)
    return QualityModel({"features": list(FEATURES), "interval": 0.9, "targets": {"T1Gd": entry}})


def test_written_map_is_the_calibrated_one_and_quality_reads_the_raw_spread(tmp_path, synth, fitted):
    model_path = ErrorModel(fitted, "fit").save(tmp_path / "calibration.json")
    subject = {n: MetaTensor(v, affine=AFFINE) for n, v in _volumes(shape=(1, 16, 16, 12)).items()}
    subject["subject"] = "sub0"
    runs = {}
    for name, error_model in (("raw", None), ("calibrated", model_path)):
        writer = SyntheticImageWriter(tmp_path / name, synth.protocol)
        estimator = UncertaintyEstimator(quality_model=_quality(tmp_path), verbose=False, error_model=error_model)
        loader = DataLoader([subject], batch_size=1, collate_fn=subject_collate)
        SynthesisEvaluator("cpu", loader, synth, val_handlers=[writer], uncertainty=estimator).run()
        folder = tmp_path / name / "sub0"
        runs[name] = (
            np.asarray(nib.load(folder / "sub0_T1Gd_uncertainty.nii.gz").dataobj),
            json.loads((folder / "sub0_T1Gd_uncertainty.json").read_text()),
            estimator.summary[0]["PredictedPSNR_dB"],
        )
    raw_map, raw_sidecar, raw_psnr = runs["raw"]
    cal_map, cal_sidecar, cal_psnr = runs["calibrated"]
    assert cal_map.shape == raw_map.shape == (16, 16, 12) and not np.allclose(cal_map, raw_map)
    assert cal_psnr == raw_psnr  # the quality model's features come from the raw spread either way
    assert "ErrorModel" not in raw_sidecar and "sqrt" in raw_sidecar["Formula"]
    assert cal_sidecar["ErrorModel"] == "calibration.json" and cal_sidecar["Map"].startswith("calibrated")
    assert "[0, 1] intensity units" in cal_sidecar["Units"] and "exp(" in cal_sidecar["Formula"]
    with pytest.raises(ErrorModelError, match="does not exist"):
        UncertaintyEstimator(error_model=tmp_path / "missing.json")


def test_experiment_compares_raw_and_calibrated_with_the_same_metric(fitted):
    from experiments.uncertainty_calibration import calibration_rows, summary_table

    case = _synthetic_case(11)
    sources = case.pop("sources")
    case.update(subject="s0", sources=list(sources), inputs=np.stack([v[0].numpy() for v in sources.values()]))
    case.update({k: case[k].numpy() for k in ("image", "uncertainty", "real", "foreground")})
    rows = calibration_rows([case], ErrorModel(fitted, "fit"))
    # the synthetic error follows the model: calibrated rho near 1, above the raw uncertainty's (~0.9: log U is
    # only part of the model)
    assert rows[0]["calibrated"]["spearman"] > max(0.95, rows[0]["raw"]["spearman"] + 0.03)
    assert rows[0]["mean_expected_error"] == pytest.approx(rows[0]["mean_abs_error"], rel=0.05)
    table = summary_table(rows)
    assert "| T1Gd |" in table and "| all |" in table and "T1+T2+FLAIR -> T1Gd" in table
