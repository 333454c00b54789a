import numpy as np
import pytest
import torch

from monai_seq2seq.analysis import analyse_subject, cohort_ranking
from monai_seq2seq.core import BRAIN


class PlantedSynthesizer:
    """Predicts every sequence perfectly, except a planted spot of T1Gd that only T1Gd itself knows."""

    protocol = BRAIN

    def __init__(self, spot):
        self.spot = spot

    def all_pairs(self, volumes, targets, sources):
        out = {}
        for t in targets:
            out[t] = {}
            for s in sources:
                pred = volumes[t].clone()
                if t == "T1Gd" and s != "T1Gd":
                    pred[(slice(None), *self.spot)] = 0.2  # the enhancement is invisible to the other sequences
                out[t][s] = pred
        return out


def _subject(seed):
    g = torch.Generator().manual_seed(seed)
    vols = {n: torch.rand(1, 24, 24, 24, generator=g) * 0.5 for n in BRAIN.names}
    spot = (slice(8, 14), slice(8, 14), slice(8, 14))
    vols["T1Gd"][(slice(None), *spot)] = 0.95
    return vols, spot


def test_maps_find_the_planted_region_and_ranking_puts_t1gd_first():
    analyses = []
    for seed in range(3):
        vols, spot = _subject(seed)
        tumour = torch.zeros(24, 24, 24, dtype=torch.bool)
        tumour[spot] = True
        analysis = analyse_subject(PlantedSynthesizer(spot), vols, f"s{seed}", tumour=tumour)
        m = analysis.maps["T1Gd"][0]
        assert m[spot].min() > 0.5 and m[~tumour].max() == 0
        assert analysis.maps["T2"].abs().max() == 0
        assert analysis.map_info["T1Gd"]["sources"] == BRAIN.names
        assert analysis.metrics[("T1", "T1Gd")]["ssim_tumour"] < analysis.metrics[("T1", "T1Gd")]["ssim_outside"]
        analyses.append(analysis)
    ranking = cohort_ranking(analyses, BRAIN.names)
    assert ranking.names[int(np.argmax(ranking.differentiation))] == "T1Gd"
    assert ranking.rank_differentiation[BRAIN.index("T1Gd")] == 1
    assert ranking.choices["metrics_left_out"] == ["lpips"] and ranking.choices["subjects"] == 3


def test_missing_sequences_and_single_sequence():
    vols, spot = _subject(0)
    del vols["FLAIR"]
    analysis = analyse_subject(PlantedSynthesizer(spot), vols)
    assert analysis.available == ["T1", "T1Gd", "T2"] and analysis.map_info["T1Gd"]["available_sources_only"]
    ranking = cohort_ranking([analysis], BRAIN.names)
    # no subject has FLAIR: it is left out of the ranking (issue 19: it was ranked with zero sums), and said so
    assert ranking.names == ["T1", "T1Gd", "T2"] and ranking.choices["sequences_left_out"] == {
        "FLAIR": "no sample has this sequence"
    }
    with pytest.raises(ValueError, match="at least two sequences"):
        analyse_subject(PlantedSynthesizer(spot), {"T1": vols["T1"]}, "lonely")
