import json

import numpy as np
import pytest
import torch

from monai_seq2seq.analysis import differentiation_map, rank_sequences


def _reference(psnr, ssim, lpips):
    """The authors' normalisation written out longhand, pair by pair."""
    n, s, _ = psnr.shape
    a = np.zeros((s, s))
    for values, sign in ((psnr, 1), (ssim, 1), (lpips, -1)):
        flat = values.reshape(-1)
        mu, sd = flat.mean(), flat.std()
        for i in range(s):
            for j in range(s):
                a[i, j] += sign * (values[:, i, j].mean() - mu) / (sd + 1e-9)
    ct = np.array([a[i].sum() / s for i in range(s)])
    cd = np.array([-a[:, i].sum() / s for i in range(s)])
    return a, ct, cd


def test_matches_longhand_reference():
    rng = np.random.default_rng(0)
    psnr, ssim, lpips = rng.normal(25, 3, (5, 4, 4)), rng.uniform(0.5, 1, (5, 4, 4)), rng.uniform(0, 0.3, (5, 4, 4))
    ranking = rank_sequences({"psnr": psnr, "ssim": ssim, "lpips": lpips}, ["T1", "T1Gd", "T2", "FLAIR"])
    a, ct, cd = _reference(psnr, ssim, lpips)
    np.testing.assert_allclose(ranking.adjacency, a, atol=1e-9)
    np.testing.assert_allclose(ranking.totipotency, ct, atol=1e-9)
    np.testing.assert_allclose(ranking.differentiation, cd, atol=1e-9)


def test_hard_to_generate_sequence_ranks_first_by_cd():
    # sequence 1 is poorly predicted from every source; sequence 3 predicts everything well
    names = ["A", "B", "C", "D"]
    psnr = np.full((3, 4, 4), 30.0)
    psnr[:, :, 1] = 18.0
    psnr[:, 3, :] += 3.0
    ranking = rank_sequences({"psnr": psnr}, names)
    assert names[int(np.argmax(ranking.differentiation))] == "B"
    assert ranking.rank_differentiation[1] == 1
    assert ranking.rank_totipotency[3] == 1
    assert ranking.choices["diagonal"] == "included"


def test_missing_pairs_and_diagonal_option():
    rng = np.random.default_rng(1)
    psnr = rng.normal(25, 2, (4, 3, 3))
    psnr[0, 0, 2] = np.nan  # subject 0 lacked sequence 2 as target from 0
    incl = rank_sequences({"psnr": psnr}, ["a", "b", "c"])
    excl = rank_sequences({"psnr": psnr}, ["a", "b", "c"], include_diagonal=False)
    assert np.isfinite(incl.adjacency).all()
    assert excl.choices["diagonal"] == "excluded" and excl.choices["centrality_denominator"] == 2
    off = psnr[:, ~np.eye(3, dtype=bool)]
    mu, sd = np.nanmean(off), np.nanstd(off)
    expected = (np.nanmean(psnr[:, 0, 1]) - mu) / (sd + 1e-9)
    assert excl.adjacency[0, 1] == pytest.approx(expected)
    assert not np.allclose(incl.totipotency, excl.totipotency)


def test_outputs_and_bad_input(tmp_path):
    rng = np.random.default_rng(2)
    ranking = rank_sequences(
        {"psnr": rng.normal(25, 2, (2, 3, 3)), "ssim": rng.uniform(size=(2, 3, 3))}, ["x", "y", "z"]
    )
    paths = ranking.save(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["sequences"] == ["x", "y", "z"] and len(data["table"]) == 3
    assert data["choices"]["metrics"] == {"psnr": "+", "ssim": "+"}
    assert paths["csv"].read_text().startswith("sequence,C_t,rank_C_t,C_d,rank_C_d")
    with pytest.raises(ValueError, match="must be"):
        rank_sequences({"psnr": np.zeros((2, 3, 3))}, ["x", "y"])
    with pytest.raises(ValueError, match="unknown metric"):
        rank_sequences({"dice": np.zeros((2, 2, 2))}, ["x", "y"])
    with pytest.raises(ValueError, match="at least two sequences with samples"):
        rank_sequences({"psnr": np.full((2, 2, 2), np.nan)}, ["x", "y"])
    with pytest.raises(ValueError, match="'ssim' has no finite"):
        rank_sequences({"psnr": np.ones((2, 2, 2)), "ssim": np.full((2, 2, 2), np.nan)}, ["x", "y"])


def test_differentiation_map():
    target = torch.zeros(1, 4, 4)
    preds = {"T1": torch.zeros(1, 4, 4), "T2": torch.zeros(1, 4, 4), "T1Gd": torch.zeros(1, 4, 4)}
    preds["T1"][0, 1, 1] = 0.8  # T1 misses the spot
    preds["T2"][0, 1, 1] = 0.4
    m, info = differentiation_map(target, preds, "T1Gd")
    assert m[0, 1, 1] == pytest.approx((0.8 + 0.4) / 3) and m.sum() == pytest.approx(m[0, 1, 1])
    m2, info2 = differentiation_map(target, preds, "T1Gd", include_self=False)
    assert m2[0, 1, 1] == pytest.approx(0.6) and info2["sources"] == ["T1", "T2"]
    with pytest.raises(ValueError, match="no source"):
        differentiation_map(target, {"T1Gd": target}, "T1Gd", include_self=False)
    with pytest.raises(ValueError, match="shape"):
        differentiation_map(target, {"T1": torch.zeros(2, 4, 4)}, "T1Gd")
    # "min": high only where no source predicts the voxel; T2 predicts the spot better than T1 does
    m3, info3 = differentiation_map(target, preds, "T1Gd", include_self=False, reduction="min")
    assert m3[0, 1, 1] == pytest.approx(0.4) and info3["formula"].startswith("min")
    assert differentiation_map(target, preds, "T1Gd", reduction="min")[0].sum() == 0  # self predicts it
    with pytest.raises(ValueError, match="reduction"):
        differentiation_map(target, preds, "T1Gd", reduction="median")


def test_a_sequence_no_subject_has_is_left_out_of_every_output(tmp_path):
    """Issue 19: a cohort without T1Gd ranked the absent T1Gd 2nd by C_d (NaN pairs summed as 0)."""
    from monai_seq2seq.analysis import plot_adjacency, plot_ranks

    rng = np.random.default_rng(3)
    names = ["T1", "T1Gd", "T2", "FLAIR"]
    psnr, ssim = rng.normal(25, 3, (3, 4, 4)), rng.uniform(0.5, 1, (3, 4, 4))
    psnr[:, 2, :] -= 8.0  # T2 generates poorly: the absent T1Gd's zero sums would rank above it
    for values in (psnr, ssim):
        values[:, 1, :] = values[:, :, 1] = np.nan  # no subject has T1Gd
    ranking = rank_sequences({"psnr": psnr, "ssim": ssim}, names)
    assert ranking.names == ["T1", "T2", "FLAIR"] and ranking.adjacency.shape == (3, 3)
    assert np.isfinite(ranking.adjacency).all() and sorted(ranking.rank_differentiation) == [1, 2, 3]
    assert ranking.choices["sequences_left_out"] == {"T1Gd": "no sample has this sequence"}
    assert ranking.choices["samples_per_sequence"] == {"T1": 3, "T2": 3, "FLAIR": 3}
    assert ranking.choices["pairs_without_samples"] == [] and ranking.choices["samples_per_pair_min"] == 3
    # the same numbers as ranking the three present sequences alone
    alone = rank_sequences(
        {"psnr": psnr[:, [0, 2, 3]][:, :, [0, 2, 3]], "ssim": ssim[:, [0, 2, 3]][:, :, [0, 2, 3]]},
        ["T1", "T2", "FLAIR"],
    )
    np.testing.assert_allclose(ranking.differentiation, alone.differentiation)
    paths = ranking.save(tmp_path)
    csv_text, data = paths["csv"].read_text(), json.loads(paths["json"].read_text())
    assert "T1Gd" not in csv_text and [row["sequence"] for row in data["table"]] == ["T1", "T2", "FLAIR"]
    assert data["sequences"] == ["T1", "T2", "FLAIR"] and data["choices"]["sequences_left_out"] == {
        "T1Gd": "no sample has this sequence"
    }
    for plot, name in ((plot_adjacency, "adjacency.png"), (plot_ranks, "ranks.png")):
        assert plot(ranking, tmp_path / name).stat().st_size > 0


def test_a_sequence_only_some_subjects_have_uses_the_subjects_that_have_it():
    rng = np.random.default_rng(4)
    psnr = rng.normal(25, 3, (4, 3, 3))
    psnr[:2, 2, :] = psnr[:2, :, 2] = np.nan  # subjects 0 and 1 lack sequence c
    ranking = rank_sequences({"psnr": psnr}, ["a", "b", "c"])
    assert ranking.names == ["a", "b", "c"] and ranking.choices["sequences_left_out"] == {}
    assert ranking.choices["samples_per_sequence"] == {"a": 4, "b": 4, "c": 2}
    np.testing.assert_allclose(ranking.pair_means["psnr"][0, 2], psnr[2:, 0, 2].mean())
    np.testing.assert_allclose(ranking.pair_means["psnr"][0, 1], psnr[:, 0, 1].mean())
    with pytest.raises(ValueError, match=r"at least two sequences with samples; only \['a'\]"):
        lonely = np.full((2, 3, 3), np.nan)
        lonely[:, 0, 0] = 20.0
        rank_sequences({"psnr": lonely}, ["a", "b", "c"])
