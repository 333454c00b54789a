"""Parameter and MAC counts (monai_seq2seq.networks.profiling) against hand counts and the paper's Table 1."""

import pytest
import torch
import torch.nn as nn

from monai_seq2seq.networks import build_seq2seq, count_macs, profile_seq2seq


def test_count_macs_by_hand_on_the_meta_device():
    with torch.device("meta"):
        conv = nn.Conv2d(3, 8, 3, padding=1)
        linear = nn.Linear(10, 4).eval()
        # every output voxel of every output channel: 3 input channels x 3 x 3 kernel (biases are not MACs)
        assert count_macs(conv, torch.zeros(1, 3, 16, 16)) == 8 * 16 * 16 * 3 * 9
        assert count_macs(linear, torch.zeros(2, 10)) == 2 * 10 * 4
        assert count_macs(torch.matmul, torch.zeros(2, 3), torch.zeros(3, 5)) == 2 * 3 * 5  # any callable
    assert conv.training and not linear.training  # the module's mode is restored


def test_released_c_profile_matches_the_paper_table1():
    p = profile_seq2seq("released", "C")
    assert round(p["params_M"] * 1e6) == 155_159_760
    assert (round(p["encoder_M"] * 1e6), round(p["decoder_M"] * 1e6), round(p["lstm_M"] * 1e6)) == (
        7_459_456,
        119_382_608,
        14_158_848,
    )
    # what a module-hook profiler sees is the paper's Table 1 row of Seq2Seq-C: 35.8 M parameters, 83.4 GMACs
    assert p["params_wo_bank_M"] == pytest.approx(35.8, abs=0.05)
    assert p["gmacs_wo_hyperconv"] == pytest.approx(83.4, abs=0.05)
    assert p["gmacs"] == pytest.approx(105.45, abs=0.01)


def test_profile_counts_every_parameter_and_has_no_bank_without_hyperconv():
    a = profile_seq2seq("tiny", "A", size=64)
    assert a["params_wo_bank_M"] == a["params_M"] and a["gmacs_wo_hyperconv"] == a["gmacs"]
    c = profile_seq2seq("tiny", "C", size=64)
    net = build_seq2seq("tiny", "C", num_sequences=4)
    assert round(c["params_M"] * 1e6) == sum(p.numel() for p in net.parameters())
    assert c["params_wo_bank_M"] < c["params_M"] and c["gmacs_wo_hyperconv"] < c["gmacs"]
    assert profile_seq2seq("tiny", "C", size=128)["gmacs"] == pytest.approx(4 * c["gmacs"], rel=0.05)
    # a protocol sets the code size (brain: 64, tiny alone: 16), so the HyperConv banks grow
    brain = profile_seq2seq("tiny", "C", size=64, protocol="brain")
    assert round(brain["params_M"] * 1e6) == sum(p.numel() for p in build_seq2seq("tiny", "C", "brain").parameters())
    assert brain["params_M"] > c["params_M"]


def test_profile_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown Seq2Seq configuration"):
        profile_seq2seq("huge")
    with pytest.raises(ValueError, match="variant"):
        profile_seq2seq("tiny", "D")
