"""The toy alphabet set: deterministic pairs with one shared and one differing letter."""

import numpy as np
import pytest
import torch

from monai_seq2seq.phantoms.toy import AlphabetToyDataset, generate_toy_sample, render_letter


def test_split_sizes_and_item_layout():
    assert [len(AlphabetToyDataset(split)) for split in ("train", "val", "test")] == [9000, 1000, 10000]  # paper
    ds = AlphabetToyDataset("val")
    item = ds[3]
    assert item["X1"].shape == (1, 128, 128) and item["X2"].shape == (1, 128, 128)
    assert item["label"].dtype == torch.long and item["label"].shape == (2,)
    assert 0 <= int(item["label"].min()) and int(item["label"].max()) < 26
    assert item["available"] == ["X1", "X2"] and item["subject"] == "toy-val-00003"
    with pytest.raises(IndexError):
        ds[1000]


def test_deterministic_and_splits_differ():
    a = generate_toy_sample(0, "train", 5)
    b = generate_toy_sample(0, "train", 5)
    np.testing.assert_array_equal(a["X1"], b["X1"])
    c = generate_toy_sample(0, "test", 5)
    assert not np.array_equal(a["X1"], c["X1"])


@pytest.mark.parametrize("index", range(8))
def test_one_shared_and_one_differing_letter(index):
    s = generate_toy_sample(1, "train", index, noise=0.0)
    assert s["label_X1"] != s["label_X2"]
    u1, u2 = s["unique-X1"], s["unique-X2"]
    # the differing letters sit at the same place (overlapping supports) but have different shapes
    assert (u1 > 0.5).sum() > 50 and (u2 > 0.5).sum() > 50
    assert ((u1 > 0.5) & (u2 > 0.5)).sum() > 0
    assert not np.array_equal(u1, u2)
    # outside the differing letters, X2 is an intensity remapping of X1 (same objects, other contrast):
    # each pure region (background, disc, shared letter) has one value in X1 and one value in X2
    outside = (u1 == 0) & (u2 == 0)
    x1, x2 = s["X1"][outside], s["X2"][outside]
    levels, counts = np.unique(x1, return_counts=True)
    dominant = levels[np.argsort(counts)[::-1][:3]]
    assert counts.max() > 1000 and np.sort(counts)[-3] > 50
    for level in dominant:
        assert np.ptp(x2[x1 == level]) < 1e-6
    assert not np.allclose(x1, x2)


def test_letters_render_with_holes():
    b = render_letter("B", (64, 64), (32, 32), 40)
    o = render_letter("O", (64, 64), (32, 32), 40)
    assert b[32, 32] < 0.5 or b[24, 32] < 0.5  # a counter of B is empty
    assert o[32, 32] == 0.0 and o.max() == 1.0  # O's hole
    assert not np.array_equal(render_letter("A", (64, 64), (32, 32), 40), render_letter("V", (64, 64), (32, 32), 40))
