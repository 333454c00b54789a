"""Calibration metric, corruptions, and the uncertainty/quality/advice commands on tiny networks (figures: the
shipped weights, /tmp runs recorded in the model cards)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_seq2seq.analysis import uncertainty_calibration
from monai_seq2seq.core import get_protocol
from monai_seq2seq.inference import QualityModel
from monai_seq2seq.inference.quality import QualityModelError, quality_features
from monai_seq2seq.phantoms.corruptions import add_noise, bias_field, corrupt, misalign

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = {
    "target",
    "sources",
    "psnr",
    "spearman",
    "auroc_top_error",
    "voxels",
    "top_fraction",
    "features",
    "subject",
    "corruption",
    "corrupted_source",
}


def test_calibration_perfect_random_and_inverted():
    g = torch.Generator().manual_seed(0)
    error = torch.rand(1, 20, 20, 10, generator=g)
    perfect = uncertainty_calibration(error * 3 + 1, error)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["auroc_top_error"] == pytest.approx(1.0)
    noise = uncertainty_calibration(torch.rand(1, 20, 20, 10, generator=g), error)
    assert abs(noise["spearman"]) < 0.1 and abs(noise["auroc_top_error"] - 0.5) < 0.05
    inverted = uncertainty_calibration(-error, error)
    assert inverted["spearman"] == pytest.approx(-1.0) and inverted["auroc_top_error"] == pytest.approx(0.0)
    mask = torch.zeros(20, 20, 10, dtype=torch.bool)
    mask[:5] = True
    assert uncertainty_calibration(error, error, mask)["voxels"] == 5 * 20 * 10
    assert np.isnan(uncertainty_calibration(torch.zeros_like(error), error)["spearman"])  # constant: undefined
    with pytest.raises(ValueError, match="differ in shape"):
        uncertainty_calibration(error[..., :2], error)


def test_corruptions_change_the_volume_and_stay_in_range():
    vol = torch.rand(1, 16, 12, 8, generator=torch.Generator().manual_seed(0))
    for out in (add_noise(vol), bias_field(vol), misalign(vol), corrupt(vol, "noise")):
        assert out.shape == vol.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        assert float((out - vol).abs().mean()) > 0.01
    shifted = misalign(vol, (2, 0, 0))
    assert torch.equal(shifted[:, 2:], vol[:, :-2]) and float(shifted[:, :2].abs().max()) == 0
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(vol, "blur")


def test_uncertainty_quality_experiment_fits_a_usable_model(tmp_path, capsys, one_thread):
    from experiments import uncertainty_quality

    model_path = tmp_path / "quality.json"
    payload = uncertainty_quality.main(
        ["--subjects", "2", "--slices", "4", "--spacing", "4", "--config", "tiny", "--device", "cpu"]
        + ["--out", str(tmp_path / "uq.json"), "--write-model", str(model_path)]
    )
    printed = capsys.readouterr().out
    assert "| T1Gd |" in printed and "leave-one-subject-out on 16 cases" in printed
    assert len(payload["records"]) == 2 * 4 * 2 and {r["corruption"] for r in payload["records"]} >= {None, "noise"}
    model = QualityModel.from_file(model_path)  # the fitted JSON is what inference reads
    assert set(model.targets) == {"T1", "T1Gd", "T2", "FLAIR"}
    assert json.loads(model_path.read_text())["validation"]["cases"] == 16
    assert model.bundle == "seq2seq_brain" and model.ignore_sources == ()
    assert all(set(r) == RECORD_KEYS for r in payload["records"])  # the brain records format is unchanged
    # records of a run made before --bundle existed (no bundle/targets/shape in its args) still refit as brain
    old = json.loads((tmp_path / "uq.json").read_text())
    old["args"] = {k: v for k, v in old["args"].items() if k not in ("bundle", "targets", "shape")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    refit = uncertainty_quality.main(["--records", str(tmp_path / "old.json"), "--out", ""])
    assert refit["args"]["bundle"] == "seq2seq_brain" and refit["model"]["fitted_targets"] == sorted(model.targets)
    for name, entry in refit["model"]["targets"].items():
        assert entry["intercept"] == pytest.approx(model.targets[name]["intercept"])


def test_breast_uncertainty_quality_experiment_fits_a_breast_model(tmp_path, capsys, one_thread):
    from experiments import uncertainty_quality

    model_path = tmp_path / "quality_breast.json"
    payload = uncertainty_quality.main(
        ["--bundle", "seq2seq_breast", "--targets", "DCE,T2", "--subjects", "2", "--shape", "40", "24", "16"]
        + ["--spacing", "8", "--slices", "6", "--config", "tiny", "--device", "cpu", "--out", str(tmp_path / "b.json")]
        + ["--write-model", str(model_path)]
    )
    records = payload["records"]
    assert "leave-one-subject-out on 8 cases" in capsys.readouterr().out
    assert len(records) == 2 * 2 * 2 and all(set(r) == RECORD_KEYS for r in records)
    corrupted = [r for r in records if r["corruption"] is not None]
    assert len(corrupted) == 4 and {r["corruption"] for r in corrupted} <= {"noise", "bias", "misalign"}
    assert all(
        r["corrupted_source"] in r["sources"] and r["corrupted_source"] not in ("WashIn", "WashOut") for r in corrupted
    )
    dce = [r for r in records if r["target"] == "DCE"]
    assert all(not {"DCE", "WashIn", "WashOut"} & set(r["sources"]) for r in dce)  # no map computed from DCE
    assert all({"DCE", "WashIn", "WashOut"} <= set(r["sources"]) for r in records if r["target"] == "T2")
    assert all(np.isfinite(r["psnr"]) and r["voxels"] > 0 for r in records)
    model = QualityModel.from_file(model_path)
    data = json.loads(model_path.read_text())
    assert data["bundle"] == "seq2seq_breast" and data["protocol"] == "breast"
    assert data["fitted_targets"] == ["DCE", "T2"] and set(model.targets) == {"DCE", "T2"}
    assert model.ignore_sources == ("WashIn", "WashOut") and data["validation"]["cases"] == 8
    assert all(len(e["coef"]) == 3 and len(e["feature_max"]) == 3 for e in model.targets.values())
    assert "2 held-out breast phantom subjects" in data["description"]
    four_d = {"T1": torch.rand(1, 8, 8, 4), "DWI": torch.rand(4, 8, 8, 4), "WashOut": torch.full((1, 8, 8, 4), 0.3)}
    record = model.predict(torch.rand(6, 8, 8, 4) * 0.05, "DCE", four_d)  # a 4D DCE from 4D and 3D sources
    assert np.isfinite(record["PredictedPSNR_dB"]) and isinstance(record["Flag"], bool)
    assert model.predict(torch.rand(1, 8, 8, 4), "WashIn", four_d) is None and "WashIn" in model.unmodelled_reason(
        "WashIn"
    )
    # refit from the records alone: the bundle comes from the records, a different --bundle is refused
    refit = uncertainty_quality.main(["--records", str(tmp_path / "b.json"), "--out", ""])
    assert refit["model"]["targets"]["DCE"]["intercept"] == pytest.approx(model.targets["DCE"]["intercept"])
    with pytest.raises(SystemExit, match="seq2seq_breast"):
        uncertainty_quality.main(["--records", str(tmp_path / "b.json"), "--bundle", "seq2seq_brain", "--out", ""])
    with pytest.raises(SystemExit, match="not sequences of seq2seq_breast"):
        uncertainty_quality.main(["--bundle", "seq2seq_breast", "--targets", "T1Gd", "--out", ""])


def test_breast_sources_and_rederived_wash_maps():
    from experiments.uncertainty_quality import _rederived, source_names

    breast = get_protocol("breast")
    assert source_names(get_protocol("brain"), "T1") == ["T1Gd", "T2", "FLAIR"]
    assert source_names(breast, "DCE") == ["T1", "FatSatT1", "T2", "FatSatDCE", "DWI"]
    assert source_names(breast, "WashIn") == ["T1", "FatSatT1", "T2", "FatSatDCE", "DWI"]
    assert "WashOut" in source_names(breast, "DWI") and "DCE" in source_names(breast, "DWI")
    dce = torch.full((6, 4, 4, 2), 0.5)
    dce[1:] = 1.0  # wash-in (1 - 0.5) / 0.5 = 1 -> window (0, 2) -> 0.5; wash-out 0 -> window (-0.5, 1) -> 1/3
    maps = _rederived(
        breast, {"DCE": dce, "WashIn": torch.zeros(1, 4, 4, 2), "WashOut": torch.zeros(1, 4, 4, 2)}, "DCE"
    )
    assert set(maps) == {"WashIn", "WashOut"} and maps["WashIn"].shape == (1, 4, 4, 2)
    assert torch.allclose(maps["WashIn"], torch.tensor(0.5)) and torch.allclose(maps["WashOut"], torch.tensor(1 / 3))
    assert _rederived(breast, {"T1": dce[:1], "T2": dce[:1]}, "T1") == {}  # nothing computed from T1


def test_quality_model_names_what_it_was_not_fitted_for():
    brain = QualityModel.from_file(ROOT / "bundles" / "seq2seq_brain" / "configs" / "quality.json")
    assert brain.ignore_sources == ()  # a file without the new fields ignores no source
    reason = brain.unmodelled_reason("DCE")
    assert "'DCE'" in reason and "T1Gd" in reason and "--targets" in reason
    assert brain.unmodelled_reason("T1Gd") is None
    sources = {"T1": torch.rand(1, 8, 8, 4), "T2": torch.rand(1, 8, 8, 4)}
    assert brain.predict(torch.full((1, 8, 8, 4), 0.05), "DCE", sources) is None
    with pytest.raises(QualityModelError, match="no regression for 'DCE'"):
        brain.predict(torch.full((1, 8, 8, 4), 0.05), "DCE", sources, strict=True)
    entry = dict(brain.targets["T1Gd"])
    data = {
        "features": brain.data["features"],
        "targets": {"T2": entry},
        "bundle": "seq2seq_breast",
        "ignore_sources": ["WashOut"],
        "not_modelled": {"WashIn": "computed from DCE"},
    }
    breast = QualityModel(data, "quality_breast.json")
    assert "computed from DCE" in breast.unmodelled_reason("WashIn") and "seq2seq_breast" in breast.unmodelled_reason(
        "WashIn"
    )
    for volume in sources.values():
        volume[:, :4] = 0  # background: half the grid
    uncertainty = torch.full((1, 8, 8, 4), 0.01)
    uncertainty[:, :4] = 0.2  # large in the background, which the features must not see
    mixed = {**sources, "WashOut": torch.full((1, 8, 8, 4), 1 / 3)}  # windowed background above the threshold
    record = breast.predict(uncertainty, "T2", mixed)
    expected = quality_features(uncertainty, sources)
    assert record["Features"]["foreground_disagreement"] == pytest.approx(expected["foreground_disagreement"], abs=1e-4)
    assert record["Features"]["log_mean_uncertainty"] == pytest.approx(expected["log_mean_uncertainty"], abs=1e-4)
    assert record["Features"]["foreground_disagreement"] < 0.05 and record["Features"]["log_mean_uncertainty"] < -4
    unfiltered = quality_features(uncertainty, mixed)  # what the features would be with the wash map counted
    assert unfiltered["foreground_disagreement"] > 0.4 and unfiltered["log_mean_uncertainty"] > -3


def test_advice_validation_experiment_counts_t1gd_first(tmp_path):
    from experiments import advice_validation

    result = advice_validation.main(
        ["--subjects", "1", "--slices", "4", "--spacing", "4", "--config", "tiny", "--device", "cpu"]
        + ["--out", str(tmp_path / "adv.json")]
    )
    assert result["brain"]["cases"] == 6 and 0.0 <= result["brain"]["t1gd_first_cases"] <= 1.0
    assert all("T1Gd" in row["order"] for row in result["rows"]["brain"])


def test_bench_uncertainty_prints_the_ratio(capsys):
    spec = importlib.util.spec_from_file_location("bench_uncertainty", ROOT / "benchmarks" / "bench_uncertainty.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--no-weights", "--config", "tiny", "--spacing", "4", "--slices", "4", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "ratio" in out and "machine:" in out and set(result["ratio"]) == {"without", "with"}
    assert result["ratio"]["without"] == pytest.approx(1.0) and result["seconds"]["with"] > 0
