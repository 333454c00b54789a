"""Checks of the science on the phantom with the shipped weights (issue 6): the planted regions are found.

Each runs the bundle's own differentiation config on held-out phantom subjects (seeds the weights never saw).
They skip, saying why, while a bundle has no shipped weights.
"""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from monai_seq2seq.analysis.mimics import BASELINE_LIMIT, MAP_GOAL, evaluator_mimic_aucs
from monai_seq2seq.cli.bundle import untrained_synthesizer
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
    untrained = untrained_synthesizer(workflow, seed=0)  # before run(): the network as initialised
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("evaluator")
    workflow.finalize()
    evaluator.mimic_rows = evaluator_mimic_aucs(evaluator, untrained)
    return evaluator, json.loads((out / "ranking.json").read_text())


def _check_mimics(rows: list[dict]) -> None:
    """Issue 24's decisive check: the baselines at chance, the trained map above the goal, on every subject."""
    assert rows, "no subject had both the planted region and a mimic"
    for row in rows:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    for row in rows:  # the premise: brightness alone does not separate them (else the check proves nothing)
        assert row["intensity"] <= BASELINE_LIMIT and row["untrained"] <= BASELINE_LIMIT, row
    for row in rows:
        assert row["trained"] >= MAP_GOAL, row


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


@pytest.mark.xfail(
    strict=True,
    reason="issue 24, measured 2026-12-03 with v0.6.0: M_d(T1Gd) does not separate ET from the blood-product mimics "
    "(goal AUC >= 0.85). Every source predicts well under the brightness of both (T1 -> T1Gd 0.40-0.51 in the "
    "mimic, self-reconstruction 0.41-0.76, where the truth is 0.93-1.0): the T1Gd decoder hedges on bright values, "
    "as the L1-optimal answer for ET, which no source predicts; the few mimic voxels have not taught it that a "
    "T1-bright voxel stays bright; part is the map itself: the minimum over the other sources instead of eq. 5's "
    "mean reaches 0.742 and 0.875 on 2 of the 3 subjects (python -m experiments.mimics, "
    "docs/results/mimics_seq2seq_brain.md)",
)
def test_brain_t1gd_map_separates_et_from_bright_mimics(brain_run):
    evaluator, _ = brain_run
    _check_mimics(evaluator.mimic_rows)


@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-03 with v0.6.0 on these 2 subjects (seed 2000, enhancing tumour 0.29% and 0.42% of the "
    "brain): C_d T2 1.47 (1), FLAIR 0.22, T1Gd -0.52 (3), T1 -1.17; v0.3.0 had T1Gd first here (2.04). make demo's 3 "
    "subjects of seed 1000 still rank T1Gd first (0.99). The ranking is not stable on two subjects (docs/RESULTS.md)",
)
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


@pytest.mark.slow  # as above: minutes on 2 CPU cores
@pytest.mark.xfail(
    strict=True,
    reason="issue 24, measured 2026-12-03 with v0.7.0 on seed 1000: raw normalised intensity is at chance on both "
    "(0.43-0.55), but DCE lesion vs haematoma scores 0.17/0.72 (the untrained network 0.81-0.83) and DWI lesion vs "
    "shine-through cyst 0.16/0.59: T2, which shows the cyst, predicts its DWI darkest (0.17-0.23 of 0.77-0.80), "
    "having learnt 'T2-bright -> DWI-dark' from the simple cysts (docs/results/mimics_seq2seq_breast.md)",
)
def test_breast_maps_separate_the_lesion_from_bright_mimics(tmp_path):
    root = _weights_or_skip("seq2seq_breast")
    evaluator, _ = _differentiation(root, tmp_path, num_subjects=2, phantom_seed=2000)
    _check_mimics(evaluator.mimic_rows)
