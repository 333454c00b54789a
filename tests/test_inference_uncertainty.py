"""Per-voxel uncertainty (spread of the single-source predictions around the fused one) and the quality record."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_seq2seq.inference import (
    QualityModel,
    Seq2SeqSynthesizer,
    SynthesisEvaluator,
    SyntheticImageWriter,
    UncertaintyEstimator,
    subject_collate,
    synthesize_with_uncertainty,
)
from monai_seq2seq.inference.quality import FEATURES, QualityModelError, quality_features, quality_line
from monai_seq2seq.inference.uncertainty import FLIP_MEMBER
from monai_seq2seq.networks import build_seq2seq

AFFINE = torch.tensor([[1.5, 0, 0, -10.0], [0, 1.5, 0, 20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)


@pytest.fixture(scope="module")
def synth():
    torch.manual_seed(0)
    return Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="brain"), "brain", batch_size=4, progress=False)


def _volumes(names=("T1", "T2", "FLAIR"), seed=0, shape=(1, 20, 18, 7)):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(*shape, generator=g) for n in names}


def test_fused_image_unchanged_and_spread_is_rms_of_single_source_predictions(synth):
    vols = _volumes()
    result = synthesize_with_uncertainty(synth, vols, "T1Gd")
    fused = synth.synthesize(vols, "T1Gd")
    assert torch.equal(result.image, fused)  # the uncertainty changes nothing in the synthetic image
    singles = torch.stack([synth.synthesize({s: vols[s]}, "T1Gd") for s in vols])
    expected = ((singles - fused) ** 2).mean(0).sqrt()
    torch.testing.assert_close(result.uncertainty, expected, atol=1e-5, rtol=1e-4)
    assert result.uncertainty.shape == (1, 20, 18, 7) and float(result.uncertainty.max()) > 1e-3
    assert result.members == ["T1", "T2", "FLAIR"] and FLIP_MEMBER not in result.members
    assert "each source alone" in result.info["Method"] and result.info["Sources"] == ["T1", "T2", "FLAIR"]


def test_sources_are_encoded_once(synth):
    calls = []
    handle = synth.network.encoder.register_forward_hook(lambda *a: calls.append(1))
    synthesize_with_uncertainty(synth, _volumes(shape=(1, 16, 16, 8)), "T1Gd", flips=False)
    handle.remove()
    assert len(calls) == 3 * 2  # 3 sources x 2 batches of 4 slabs: the per-source members reuse the encodings


def test_single_source_uses_the_mirrored_member(synth):
    vols = _volumes(("T2",))
    result = synthesize_with_uncertainty(synth, vols, "T1Gd")  # flips="auto": on with one source
    mirrored = synth.synthesize({"T2": vols["T2"].flip(1)}, "T1Gd").flip(1)
    torch.testing.assert_close(result.uncertainty, (mirrored - result.image).abs(), atol=1e-5, rtol=1e-4)
    assert result.members == [FLIP_MEMBER] and "mirrored" in result.info["Method"]
    off = synthesize_with_uncertainty(synth, vols, "T1Gd", flips=False)
    assert off.members == [] and float(off.uncertainty.abs().max()) == 0.0


def test_empty_source_slabs_are_no_member(synth):
    vols = _volumes(("T1", "T2"))
    vols["T2"][..., :4] = 0.0  # T2 has nothing in the first 4 slices (2 + context: the first 3 slabs are empty)
    result = synthesize_with_uncertainty(synth, vols, "T1Gd", flips=False)
    # with only T1 left there, the fused prediction is T1's own: no spread
    assert float(result.uncertainty[..., :3].abs().max()) == 0.0
    assert float(result.uncertainty[..., 5:].max()) > 0.0


def test_bad_arguments(synth):
    with pytest.raises(ValueError, match="flips"):
        synthesize_with_uncertainty(synth, _volumes(), "T1Gd", flips="sometimes")
    with pytest.raises(ValueError, match="no source"):
        synthesize_with_uncertainty(synth, _volumes(("T1Gd",)), "T1Gd")
    with pytest.raises(ValueError, match="not among"):
        synthesize_with_uncertainty(synth, _volumes(), "T1Gd", sources=["FLAIR", "T1Gd"])


def _model(tmp_path=None, flag_below=20.0):
    data = {
        "features": list(FEATURES),
        "interval": 0.9,
        "targets": {
            "T1Gd": {
                "intercept": 10.0,
                "coef": [-3.0, 0.0, -10.0],
                "residual_std": 1.0,
                "z": 1.645,
                "feature_min": [-6.0, -4.0, 0.0],
                "feature_max": [-3.0, -1.0, 0.1],
                "flag_below_db": flag_below,
                "n": 10,
            }
        },
    }
    if tmp_path is None:
        return QualityModel(data)
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(data))
    return path


def test_quality_model_prediction_interval_and_flags():
    model = _model()
    sources = {"T1": torch.full((1, 8, 8, 4), 0.5)}
    low = model.predict(torch.full((1, 8, 8, 4), 0.01), "T1Gd", sources)
    high = model.predict(torch.full((1, 8, 8, 4), 0.2), "T1Gd", sources)
    assert low["PredictedPSNR_dB"] == pytest.approx(10 - 3 * np.log(0.01 + 1e-6), abs=0.01)
    assert low["Interval_dB"][1] - low["Interval_dB"][0] == pytest.approx(2 * 1.645, abs=0.02)
    assert not low["Flag"] and low["Reasons"] == []
    assert high["PredictedPSNR_dB"] < low["PredictedPSNR_dB"]  # more spread, lower predicted PSNR
    assert high["Flag"] and any("beyond the fitted range" in r for r in high["Reasons"])
    warned = model.predict(torch.full((1, 8, 8, 4), 0.01), "T1Gd", sources, warnings=["spacing differs"])
    assert warned["Flag"] and "input checks" in warned["Reasons"][0]
    assert model.predict(torch.zeros(1, 8, 8, 4), "T2", sources) is None  # no regression for T2
    assert "FLAGGED" in quality_line("s", "T1Gd", high) and quality_line("s", "T1Gd", low).endswith("ok")


def test_quality_features_use_the_foreground():
    uncertainty = torch.zeros(1, 8, 8, 4)
    uncertainty[..., :2] = 0.1
    sources = {"T1": torch.zeros(1, 8, 8, 4)}
    sources["T1"][..., :2] = 1.0  # foreground: the first two slices only
    features = quality_features(uncertainty, sources)
    assert features["log_mean_uncertainty"] == pytest.approx(np.log(0.1 + 1e-6), abs=1e-4)


def test_quality_model_file_errors(tmp_path):
    with pytest.raises(QualityModelError, match="does not exist"):
        QualityModel.from_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(QualityModelError, match="not JSON"):
        QualityModel.from_file(tmp_path / "bad.json")
    with pytest.raises(QualityModelError, match="features"):
        QualityModel({"features": ["other"], "targets": {}})
    with pytest.raises(QualityModelError, match="lacks"):
        QualityModel({"features": list(FEATURES), "targets": {"T1Gd": {"intercept": 1.0}}})


def test_evaluator_and_writer_write_uncertainty_beside_the_image(tmp_path, synth, capsys):
    subject = {n: MetaTensor(v, affine=AFFINE) for n, v in _volumes(shape=(1, 16, 16, 12)).items()}
    subject["subject"] = "sub0"
    writer = SyntheticImageWriter(tmp_path / "out", synth.protocol)
    estimator = UncertaintyEstimator(quality_model=_model(tmp_path))
    loader = DataLoader([subject], batch_size=1, collate_fn=subject_collate)
    SynthesisEvaluator("cpu", loader, synth, val_handlers=[writer], uncertainty=estimator).run()
    folder = tmp_path / "out" / "sub0"
    assert sorted(p.name for p in writer.written) == ["sub0_T1Gd_synthetic.nii.gz", "sub0_T1Gd_uncertainty.nii.gz"]
    image = nib.load(folder / "sub0_T1Gd_uncertainty.nii.gz")
    np.testing.assert_allclose(image.affine, AFFINE.numpy())
    assert image.shape == (16, 16, 12) and b"UNCERTAINTY" in image.header["descrip"].tobytes()
    assert float(np.asarray(image.dataobj).max()) > 0
    sidecar = json.loads((folder / "sub0_T1Gd_uncertainty.json").read_text())
    assert sidecar["Members"] == ["T1", "T2", "FLAIR"] and "sqrt" in sidecar["Formula"]
    assert sidecar["SyntheticImage"] == "sub0_T1Gd_synthetic.nii.gz"
    synthetic = json.loads((folder / "sub0_T1Gd_synthetic.json").read_text())
    assert synthetic["UncertaintyFile"] == "sub0_T1Gd_uncertainty.nii.gz"
    assert set(synthetic["Quality"]) >= {"PredictedPSNR_dB", "Interval_dB", "Flag"}
    assert "[quality] sub0 T1Gd: predicted PSNR" in capsys.readouterr().out
    assert estimator.summary[0]["subject"] == "sub0"


def test_writer_without_uncertainty_writes_no_map(tmp_path, synth):
    subject = {n: MetaTensor(v, affine=AFFINE) for n, v in _volumes(shape=(1, 16, 16, 12)).items()}
    subject["subject"] = "sub0"
    writer = SyntheticImageWriter(tmp_path / "out", synth.protocol)
    loader = DataLoader([subject], batch_size=1, collate_fn=subject_collate)
    SynthesisEvaluator("cpu", loader, synth, val_handlers=[writer]).run()
    assert [p.name for p in writer.written] == ["sub0_T1Gd_synthetic.nii.gz"]
    assert "UncertaintyFile" not in json.loads((tmp_path / "out" / "sub0" / "sub0_T1Gd_synthetic.json").read_text())


@pytest.mark.parametrize("uncertainty", [True, False])
def test_bundle_inference_config_switch(tmp_path, uncertainty):
    """``uncertainty`` in inference.json (``seq2seq synthesize --uncertainty False`` switches it off)."""
    from pathlib import Path

    from monai_seq2seq.cli.bundle import run_bundle_config

    root = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain"
    tiny = {"num_subjects": 1, "phantom_spacing": 4.0, "load_weights": False, "network_def#name": "tiny"}
    run_bundle_config(root, "inference", output_dir=str(tmp_path), uncertainty=uncertainty, **tiny)
    assert len(list(tmp_path.rglob("*_T1Gd_synthetic.nii.gz"))) == 1
    assert len(list(tmp_path.rglob("*_T1Gd_uncertainty.nii.gz"))) == (1 if uncertainty else 0)


def test_shipped_quality_model_flags_corrupted_inputs():
    """The brain bundle's quality.json with its weights: a noisy or misaligned source lowers the predicted PSNR of
    FLAIR and flags it; for T1Gd, whose held-out PSNR is bimodal with the v0.6.0 weights (15 or 20-28 dB, the
    normalisation offset of docs/UNCERTAINTY.md), noise lowers the prediction but the interval is too wide to flag."""
    from pathlib import Path

    from monai_seq2seq.core.integrity import load_weights
    from monai_seq2seq.phantoms import BrainPhantomCohort
    from monai_seq2seq.phantoms.corruptions import add_noise, misalign
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    root = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain"
    if not (root / "configs" / "quality.json").is_file() or not (root / "models" / "model.pt").is_file():
        pytest.skip("the brain bundle has no quality model or weights")
    net = build_seq2seq("small", variant="C", protocol="brain")
    net.load_state_dict(load_weights(root / "models" / "model.pt", bundle_dir=root))
    synth = Seq2SeqSynthesizer(net, "brain", batch_size=8, progress=False)
    names = ["T1", "T1Gd", "T2", "FLAIR"]
    sample = PercentileScaleIntensityd(names, nonzero=True)(BrainPhantomCohort(1, seed=5000, spacing=2.0)[0])
    volumes = {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float()[..., 43:51] for n in names}
    model = QualityModel.from_file(root / "configs" / "quality.json")
    predicted = {}
    for target, noisy, moved in (("FLAIR", "T2", "T1"), ("T1Gd", "T2", "FLAIR")):
        clean = {n: v for n, v in volumes.items() if n != target}
        for case, vols in {
            "clean": clean,
            "noise": {**clean, noisy: add_noise(clean[noisy])},
            "misalign": {**clean, moved: misalign(clean[moved])},
        }.items():
            result = synthesize_with_uncertainty(synth, vols, target)
            predicted[target, case] = model.predict(result.uncertainty, target, vols)
    print({k: (v["PredictedPSNR_dB"], v["Flag"]) for k, v in predicted.items()})
    for target in ("FLAIR", "T1Gd"):
        assert predicted[target, "noise"]["PredictedPSNR_dB"] < predicted[target, "clean"]["PredictedPSNR_dB"] - 3
        assert predicted[target, "noise"]["Features"]["foreground_disagreement"] > 0.3
        assert not predicted[target, "clean"]["Flag"]
    assert predicted["FLAIR", "noise"]["Flag"] and predicted["FLAIR", "misalign"]["Flag"]
    assert not predicted["T1Gd", "noise"]["Flag"] and model.data["targets"]["T1Gd"]["residual_std"] > 3.0
