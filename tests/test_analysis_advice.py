"""Acquisition advice: missing sequences ranked by what cannot be recovered, derived maps after their parent,
the most predictable acquired sequence; the bundle's advise.json and ``seq2seq advise``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_seq2seq.analysis import CohortAdjacency, advise_subject
from monai_seq2seq.inference import Seq2SeqSynthesizer
from monai_seq2seq.networks import build_seq2seq

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
BRAIN = ["T1", "T1Gd", "T2", "FLAIR"]


def _cohort(names, hard: str, easy: str | None = None, reference=None) -> CohortAdjacency:
    """Every pair 0, except: the column of ``hard`` -2 (badly predicted), of ``easy`` +2."""
    adjacency = np.zeros((len(names), len(names)))
    adjacency[:, names.index(hard)] = -2.0
    if easy:
        adjacency[:, names.index(easy)] = 2.0
    return CohortAdjacency.from_dict(
        {"sequences": names, "adjacency": adjacency.tolist(), "reference_uncertainty": reference or {}}
    )


@pytest.fixture(scope="module")
def brain_synth():
    torch.manual_seed(0)
    return Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="brain"), "brain", batch_size=8, progress=False)


def _volumes(names, frames=None, shape=(16, 16, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand((frames or {}).get(n, 1), *shape, generator=g) for n in names}


def test_cohort_term_orders_the_missing_sequences(brain_synth):
    vols = _volumes(["T1"])
    advice = advise_subject(brain_synth, vols, _cohort(BRAIN, hard="T1Gd", easy="FLAIR"), "s0", subject_weight=0.0)
    assert [m["sequence"] for m in advice.missing] == ["T1Gd", "T2", "FLAIR"]
    assert advice.first == "T1Gd" and advice.missing[0]["cohort_term"] == pytest.approx(2.0)
    assert advice.droppable is None  # one acquired sequence: nothing to drop
    flipped = advise_subject(brain_synth, vols, _cohort(BRAIN, hard="FLAIR", easy="T1Gd"), "s0", subject_weight=0.0)
    assert flipped.first == "FLAIR"  # the ranking follows the cohort, not a fixed order


def test_subject_term_can_overrule_a_tie(brain_synth):
    vols = _volumes(["T1", "T2"])
    flat = CohortAdjacency.from_dict({"sequences": BRAIN, "adjacency": np.zeros((4, 4)).tolist()})
    plain = advise_subject(brain_synth, vols, flat, droppable=False)
    means = {m["sequence"]: m["mean_uncertainty"] for m in plain.missing}
    assert all(m["subject_term"] == 0.0 for m in plain.missing)  # no reference: the term is left out
    # a reference ten times below one target's own uncertainty makes it the subject's outlier: advised first
    low = min(means, key=means.get)
    reference = {n: means[n] for n in means} | {low: means[low] / 10}
    cohort = CohortAdjacency.from_dict(
        {"sequences": BRAIN, "adjacency": np.zeros((4, 4)).tolist(), "reference_uncertainty": reference}
    )
    assert advise_subject(brain_synth, vols, cohort, droppable=False).first == low


def test_droppable_is_the_best_predicted_acquired_sequence(brain_synth):
    vols = _volumes(["T1", "T2", "FLAIR"])
    vols["FLAIR"] = brain_synth.synthesize({"T1": vols["T1"], "T2": vols["T2"]}, "FLAIR")  # perfectly predictable
    advice = advise_subject(brain_synth, vols, _cohort(BRAIN, hard="T1Gd"))
    assert advice.droppable["sequence"] == "FLAIR" and advice.droppable["from"] == ["T1", "T2"]
    assert advice.droppable["psnr"] > 60 and len(advice.candidates) == 3
    assert "most predictable from the others: FLAIR" in "\n".join(advice.lines())


def test_regions_rank_inside_the_mask(brain_synth):
    vols = _volumes(["T1", "T2"])
    mask = torch.zeros(16, 16, 6, dtype=torch.bool)
    mask[4:10, 4:10, 2:4] = True
    advice = advise_subject(
        brain_synth, vols, _cohort(BRAIN, hard="T1Gd"), regions={"tumour": mask, "none": ~mask & False}
    )
    assert list(advice.regions) == ["tumour"]  # an empty region is left out
    assert {m["sequence"] for m in advice.regions["tumour"]} == {"T1Gd", "FLAIR"}


def test_breast_wash_maps_never_before_dce():
    torch.manual_seed(0)
    synth = Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="breast"), "breast", batch_size=8, progress=False)
    names = synth.protocol.names
    # an adversarial cohort: the wash maps the hardest of all to predict
    adjacency = np.zeros((len(names), len(names)))
    for wash in ("WashIn", "WashOut"):
        adjacency[:, names.index(wash)] = -5.0
    cohort = CohortAdjacency.from_dict({"sequences": names, "adjacency": adjacency.tolist()})
    vols = _volumes(["T1", "T2"], shape=(16, 16, 4))
    advice = advise_subject(synth, vols, cohort, droppable=False)
    order = [m["sequence"] for m in advice.missing]
    assert order.index("DCE") < order.index("WashIn") and order.index("DCE") < order.index("WashOut")
    assert advice.missing[order.index("WashIn")]["computed_from"] == "DCE"
    # with DCE acquired the wash maps are computed, not acquired: last, marked so
    with_dce = advise_subject(synth, {**vols, **_volumes(["DCE"], {"DCE": 6}, (16, 16, 4))}, cohort, droppable=False)
    tail = with_dce.missing[-2:]
    assert {m["sequence"] for m in tail} == {"WashIn", "WashOut"} and all(m["computed_from"] == "DCE" for m in tail)


def test_cohort_errors():
    with pytest.raises(ValueError, match="adjacency"):
        CohortAdjacency.from_dict({"sequences": BRAIN})
    with pytest.raises(ValueError, match="expected 4x4"):
        CohortAdjacency.from_dict({"sequences": BRAIN, "adjacency": [[0.0]]})


def test_shipped_advise_configs_carry_a_cohort_of_the_protocol():
    from monai_seq2seq.core import get_protocol

    for bundle, protocol in (("seq2seq_brain", "brain"), ("seq2seq_breast", "breast")):
        config = json.loads((BUNDLES / bundle / "configs" / "advise.json").read_text())
        cohort = CohortAdjacency.from_dict(config["advise_cohort"], bundle)
        assert cohort.names == get_protocol(protocol).names and np.isfinite(cohort.adjacency).all()
        assert "table2_ranking" in cohort.source


def test_seq2seq_advise_on_the_phantom(tmp_path, capsys):
    from monai_seq2seq.cli import main

    main(
        [
            "advise",
            "--bundle",
            str(BUNDLES / "seq2seq_brain"),
            "--out",
            str(tmp_path),
            "--num_subjects",
            "1",
            "--phantom_spacing",
            "4.0",
            "--load_weights",
            "False",
            "--network_def#name",
            "tiny",
        ]
    )
    printed = capsys.readouterr().out
    assert "[advice]" in printed and "acquire next: " in printed
    advice = json.loads((tmp_path / "advice.json").read_text())["subjects"][0]
    assert set(advice["acquire_next"]) == {"T1Gd", "FLAIR"}  # advise.json deletes both from the phantom
    assert advice["regions"].get("tumour") and advice["droppable"]["sequence"] in ("T1", "T2")
    assert "| subject |" in (tmp_path / "advice.md").read_text()


def test_demo_section_shows_the_advice(tmp_path):
    from monai_seq2seq.cli.advise import demo_section

    tiny = {"phantom_spacing": 4.0, "load_weights": False, "network_def#name": "tiny", "num_subjects": 3}
    section = demo_section(BUNDLES / "seq2seq_brain", tmp_path, tiny)
    assert "## Acquisition advice" in section and "| subject | acquired |" in section
    assert "FLAIR, T1Gd" in section  # the sequences advise.json deleted
    assert len(json.loads((tmp_path / "advice" / "advice.json").read_text())["subjects"]) == 1
