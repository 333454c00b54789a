"""The decisive check's AUCs (analysis/mimics.py) and its experiment (experiments/mimics.py, tiny run)."""

import json
import math

import numpy as np
import pytest
import torch

from monai_seq2seq.analysis.mimics import BASELINE_LIMIT, MAP_GOAL, MIMIC_CHECKS, mimic_aucs, region_auc


def _label():
    lab = np.zeros((1, 6, 6, 4), dtype=np.uint8)
    lab[0, :2] = 4  # planted region
    lab[0, 4:] = 5  # mimic
    return lab


def test_region_auc_orders_region_against_mimic_only():
    lab = _label()
    score = np.zeros((1, 6, 6, 4), dtype=np.float32)
    score[0, :2] = 1.0  # region above mimic: perfect
    score[0, 2:4] = 5.0  # unlabelled voxels do not count, however high
    assert region_auc(score, lab, 4, 5) == 1.0
    assert region_auc(-score, lab, 4, 5) == 0.0
    assert region_auc(np.ones_like(score), lab, 4, 5) == 0.5
    # frames are averaged: (T, X, Y, Z) scores
    frames = np.stack([score[0], -score[0] * 0.5])
    assert region_auc(frames, lab, 4, 5) == 1.0
    assert math.isnan(region_auc(score, np.zeros_like(lab), 4, 5))


def test_mimic_aucs_goal_needs_trained_high_and_both_baselines_near_chance():
    lab = torch.as_tensor(_label())
    good = torch.zeros(1, 6, 6, 4)
    good[0, :2] = 1.0
    flat = torch.ones(1, 6, 6, 4)
    rows = mimic_aucs("brain", "s", lab, {"T1Gd": flat}, {"T1Gd": good}, {"T1Gd": flat})
    assert len(rows) == 1 and rows[0]["trained"] == 1.0 and rows[0]["intensity"] == 0.5
    assert rows[0]["goal_met"] and rows[0]["pair"].startswith("ET vs")
    rows = mimic_aucs("brain", "s", lab, {"T1Gd": good}, {"T1Gd": good}, {"T1Gd": flat})
    assert not rows[0]["goal_met"]  # intensity alone separates: the check would prove nothing
    rows = mimic_aucs("brain", "s", lab, {"T1Gd": flat}, {"T1Gd": flat})
    assert not rows[0]["goal_met"] and math.isnan(rows[0]["untrained"])
    assert MAP_GOAL > BASELINE_LIMIT
    with pytest.raises(KeyError, match="known"):
        mimic_aucs("knee", "s", lab, {}, {})


def test_checks_name_the_phantoms_labels():
    from monai_seq2seq.phantoms.tissues import BRAIN_LABELS, BREAST_LABELS

    (brain,) = MIMIC_CHECKS["brain"]
    assert (brain.sequence, brain.region, brain.mimic) == ("T1Gd", BRAIN_LABELS["ET"], BRAIN_LABELS["HEM"])
    breast = {c.sequence: c for c in MIMIC_CHECKS["breast"]}
    assert set(breast) == {"DCE", "DWI"}
    assert breast["DCE"].mimic == BREAST_LABELS["haematoma"] and breast["DWI"].mimic == BREAST_LABELS["shine_cyst"]


def test_tiny_experiment_writes_table_json_and_figure(tmp_path, one_thread):
    from experiments.mimics import main

    payload = main(["--tiny", "--out", str(tmp_path)])
    (row,) = payload["aucs"]
    assert 0.0 <= row["trained"] <= 1.0 and 0.0 <= row["intensity"] <= 1.0
    for variant in ("mean_others", "min_others", "fused_others"):  # the map variants, same subject
        assert 0.0 <= row[variant] <= 1.0 and 0.0 <= row[f"untrained_{variant}"] <= 1.0
    assert {d["source"] for d in payload["diagnosis"]} == {"T1", "T1Gd", "T2", "FLAIR"}
    for d in payload["diagnosis"]:  # the phantom makes ET and mimic equally bright on T1Gd
        assert d["real_region"] == pytest.approx(d["real_mimic"], abs=0.1)
    on_disk = json.loads((tmp_path / "mimics_seq2seq_brain.json").read_text())
    assert on_disk["aucs"][0]["subject"] == row["subject"]
    text = (tmp_path / "mimics_seq2seq_brain.md").read_text()
    assert "python -m experiments.mimics --tiny" in text and "| T1Gd | ET vs haemorrhage |" in text
    assert "| subject | sequence | pair | mean_others | min_others | fused_others |" in text
    assert (tmp_path / "mimics_seq2seq_brain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
