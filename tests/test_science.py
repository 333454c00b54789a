"""Checks of the science on the phantom with the shipped weights (issue 6): the planted regions are found.

Each runs the bundle's own differentiation config on held-out phantom subjects (seeds the weights never saw).
They skip, saying why, while a bundle has no shipped weights.
"""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from monai_seq2seq.demo import planted_region_auc

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _weights_or_skip(bundle: str) -> Path:
    root = BUNDLES / bundle
    if not (root / "models" / "model.pt").is_file():
        pytest.skip(f"{bundle} has no shipped weights (models/model.pt)")
    return root


def _differentiation(root: Path, out: Path, **overrides):
    workflow = ConfigWorkflow(
        config_file=str(root / "configs" / "differentiation.json"),
        meta_file=str(root / "configs" / "metadata.json"), logging_file=None, workflow_type="inference",
        bundle_root=str(root), output_dir=str(out), **overrides,
    )
    workflow.initialize()
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("evaluator")
    workflow.finalize()
    return evaluator, json.loads((out / "ranking.json").read_text())


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-11-24 with the shipped v0.1.0 brain weights (3000 CPU iterations): T2 ranks first by C_d "
    "and M_d(T1Gd) separates ET at AUC 0.52-0.59; the network predicts most of the enhancement from the tumour's "
    "geometry on T2/FLAIR and unpredictable noise dominates the maps. Open in issue 6.",
)
def test_brain_t1gd_map_finds_enhancement_and_ranks_first(tmp_path):
    root = _weights_or_skip("seq2seq_brain")
    evaluator, ranking = _differentiation(root, tmp_path, num_subjects=2, phantom_seed=2000)
    table = {row["sequence"]: row for row in ranking["table"]}
    assert table["T1Gd"]["rank_C_d"] == 1, ranking["table"]
    for analysis in evaluator.state.analyses:
        subject = analysis.reference
        foreground = evaluator._masks(subject)[0]
        auc = planted_region_auc(analysis.maps["T1Gd"], subject["label"], foreground)
        auc_flair = planted_region_auc(analysis.maps["FLAIR"], subject["label"], foreground)
        print(f"{analysis.subject}: AUC M_d(T1Gd) = {auc:.3f}, M_d(FLAIR) = {auc_flair:.3f}")
        assert auc > 0.8  # chance is 0.5
        assert auc > auc_flair  # the map of T1Gd, not just any map, singles out the enhancement


@pytest.mark.slow  # 8 sequences, 64 translations of 4D volumes per subject: minutes on 2 CPU cores
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-11-24 with the shipped v0.1.0 breast weights (1500 CPU iterations, 2 subjects of seed "
    "1000): WashIn and WashOut rank 1 and 2 by C_d; the phantom computes them as ratios of noisy DCE frames "
    "everywhere (air is pure noise), which no source predicts. Open in issue 6.",
)
def test_breast_wash_maps_rank_in_bottom_half(tmp_path):
    root = _weights_or_skip("seq2seq_breast")
    _, ranking = _differentiation(root, tmp_path, num_subjects=2, phantom_seed=2000)
    ranks = {row["sequence"]: row["rank_C_d"] for row in ranking["table"]}
    assert ranks["WashIn"] > 4 and ranks["WashOut"] > 4, ranks
