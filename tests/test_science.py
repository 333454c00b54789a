"""Checks of the science on the phantom with the shipped weights (issue 6): the planted regions are found.

Each runs the bundle's own differentiation config on held-out phantom subjects (seeds the weights never saw).
They skip, saying why, while a bundle has no shipped weights.
"""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from monai_seq2seq.cli.demo import planted_region_auc
from monai_seq2seq.zoo.configs import config_files

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _weights_or_skip(bundle: str) -> Path:
    root = BUNDLES / bundle
    if not (root / "models" / "model.pt").is_file():
        pytest.skip(f"{bundle} has no shipped weights (models/model.pt)")
    return root


def _differentiation(root: Path, out: Path, **overrides):
    workflow = ConfigWorkflow(
        config_file=config_files(root, "differentiation"),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=None,
        workflow_type="inference",
        bundle_root=str(root),
        output_dir=str(out),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("evaluator")
    workflow.finalize()
    return evaluator, json.loads((out / "ranking.json").read_text())


@pytest.fixture(scope="module")
def brain_run(tmp_path_factory):
    """The brain bundle's differentiation config on 2 held-out subjects (seed 2000), run once for both checks."""
    root = _weights_or_skip("seq2seq_brain")
    return _differentiation(root, tmp_path_factory.mktemp("brain"), num_subjects=2, phantom_seed=2000)


def test_brain_t1gd_map_finds_the_enhancing_tumour(brain_run):
    evaluator, _ = brain_run
    for analysis in evaluator.state.analyses:
        subject = analysis.reference
        foreground = evaluator._masks(subject)[0]
        auc = planted_region_auc(analysis.maps["T1Gd"], subject["label"], foreground)
        auc_flair = planted_region_auc(analysis.maps["FLAIR"], subject["label"], foreground)
        print(f"{analysis.subject}: AUC M_d(T1Gd) = {auc:.3f}, M_d(FLAIR) = {auc_flair:.3f}")
        assert auc > 0.8  # chance is 0.5
        assert auc > auc_flair  # the map of T1Gd, not just any map, singles out the enhancement


def test_brain_t1gd_ranks_first_by_differentiation(brain_run):
    # measured 2026-12-02 with the shipped v0.3.0 weights (v0.2.0 + 6000 CPU iterations, EMA): C_d T1Gd 2.04 (1),
    # T2 0.16, FLAIR -0.54, T1 -1.66 (v0.2.0: T2 first, 1.99, T1Gd 0.31). Part of what T1Gd alone carries here is
    # global: its normalisation scale moves with the enhancement's volume (experiments.normalisation_scale), which
    # no other sequence shows, on top of the ~1% of the brain that enhances.
    _, ranking = brain_run
    table = {row["sequence"]: row for row in ranking["table"]}
    print({name: (round(row["C_d"], 3), row["rank_C_d"]) for name, row in table.items()})
    assert table["T1Gd"]["rank_C_d"] == 1, ranking["table"]


@pytest.mark.slow  # 8 sequences, 64 translations of 4D volumes per subject: minutes on 2 CPU cores
def test_breast_wash_maps_rank_in_bottom_half(tmp_path):
    # measured 2026-12-02 with the shipped v0.3.0 weights: C_d FatSatDCE 1.43 (1), T1 1.15, FatSatT1 1.12, T2 1.11,
    # DWI 1.02, DCE 0.59, WashIn -3.03 (7), WashOut -3.38 (8); v0.2.0, before the wash maps' dark-voxel threshold and
    # fixed window, ranked WashOut 2nd and WashIn 3rd here
    root = _weights_or_skip("seq2seq_breast")
    _, ranking = _differentiation(root, tmp_path, num_subjects=2, phantom_seed=2000)
    ranks = {row["sequence"]: row["rank_C_d"] for row in ranking["table"]}
    print({row["sequence"]: (round(row["C_d"], 3), row["rank_C_d"]) for row in ranking["table"]})
    assert ranks["WashIn"] > 4 and ranks["WashOut"] > 4, ranks
