"""Calibration metric, corruptions, and the uncertainty/quality/advice commands on tiny networks (figures: the
shipped weights, /tmp runs recorded in the model cards)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_seq2seq.analysis import uncertainty_calibration
from monai_seq2seq.inference import QualityModel
from monai_seq2seq.phantoms.corruptions import add_noise, bias_field, corrupt, misalign

ROOT = Path(__file__).resolve().parents[1]


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


def test_uncertainty_quality_experiment_fits_a_usable_model(tmp_path, capsys):
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
