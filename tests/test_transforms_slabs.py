"""``pad_to_multiple`` on MONAI's ``DivisiblePad`` amounts and ``pad_nd``: the padding the synthesiser relies on."""

from __future__ import annotations

import pytest
import torch

from monai_seq2seq.transforms.slabs import pad_to_multiple


def _reflect_reference(x: torch.Tensor, pad_x: int, pad_y: int) -> torch.Tensor:
    """Reflection at the far ends of the last two dims, index by index (no padding library)."""
    size_x, size_y = x.shape[-2:]
    rows = [i if i < size_x else 2 * (size_x - 1) - i for i in range(size_x + pad_x)]
    cols = [j if j < size_y else 2 * (size_y - 1) - j for j in range(size_y + pad_y)]
    return x[..., rows, :][..., cols]


@pytest.mark.parametrize("shape, multiple", [((2, 1, 3, 13, 16), 8), ((3, 2, 1, 16, 9), 4), ((1, 1, 1, 16, 16), 8)])
def test_pads_at_the_end_by_reflection_and_returns_the_original_plane(shape, multiple):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    padded, size = pad_to_multiple(x, multiple)
    assert size == shape[-2:] and type(padded) is torch.Tensor
    assert padded.shape[:-2] == x.shape[:-2] and all(s % multiple == 0 for s in padded.shape[-2:])
    assert torch.equal(padded[..., : size[0], : size[1]], x)  # cropping back gives the input exactly
    expected = _reflect_reference(x, padded.shape[-2] - size[0], padded.shape[-1] - size[1])
    assert torch.equal(padded, expected)
    if padded.shape == x.shape:
        assert padded is x  # nothing to pad: the same tensor


def test_pads_not_smaller_than_the_plane_replicate():
    x = torch.arange(6.0).reshape(1, 1, 1, 2, 3)  # padding 3 x 5 cannot be reflected in a 2 x 3 plane
    padded, size = pad_to_multiple(x, 8)
    assert size == (2, 3) and padded.shape == (1, 1, 1, 8, 8)
    assert torch.equal(padded[0, 0, 0, 7], torch.tensor([3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]))
    assert torch.equal(padded[0, 0, 0, :, 7], torch.tensor([2.0] + [5.0] * 7))
