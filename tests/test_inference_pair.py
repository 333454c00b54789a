"""PairInferer: a per-pair model inside the Seq2Seq trainer's ``inferer(x, network, target)`` calls."""

import torch

from monai_seq2seq.inference import PairInferer, pair_volume


class _Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.scale


def test_own_target_runs_the_network_other_targets_pass_the_input_through():
    net, inferer = _Counting(), PairInferer(target=2)
    x = torch.rand(2, 1, 3, 4, 4, requires_grad=True)
    assert torch.equal(inferer(x, net, 2), 2 * x) and net.calls == 1
    assert torch.equal(inferer(x, net), 2 * x) and net.calls == 2  # no target: the model's own
    assert torch.equal(inferer(x, net, torch.tensor(2)), 2 * x) and net.calls == 3
    cycled = inferer(x, net, 0)  # the cycle pass: no reverse generator
    assert net.calls == 3 and torch.equal(cycled, x)
    assert not cycled.requires_grad  # no gradient flows through the missing reverse model
    assert inferer.target == 2


class _Negate(torch.nn.Module):
    downsample_factor = 4

    def __init__(self) -> None:
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return -x


def test_pair_volume_runs_every_slab_on_a_padded_plane_and_reassembles_the_middle():
    torch.manual_seed(0)
    volume = torch.rand(1, 10, 7, 5)  # (T, X, Y, Z) in [0, 1]
    model = _Negate()
    out = pair_volume(model, volume, batch_size=2)
    assert out.shape == volume.shape
    assert torch.allclose(out, 1 - volume, atol=1e-6)  # -(2v - 1) in [-1, 1] is 1 - v in [0, 1], slice by slice
    assert [s[0] for s in model.shapes] == [2, 2, 1]  # 5 slabs in batches of 2
    assert all(s[1:] == (1, 3, 12, 8) for s in model.shapes)  # 3-slice slabs, plane padded to multiples of 4
