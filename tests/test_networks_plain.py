"""PlainEncoderDecoder: the unconditioned per-pair baseline network."""

import pytest
import torch

from monai_seq2seq.networks import SEQ2SEQ_CONFIGS, PlainEncoderDecoder, ResBlock

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frames_are_translated_one_by_one():
    model = PlainEncoderDecoder.from_config("tiny", spatial_dims=2, in_channels=3).eval()
    x = torch.rand(2, 3, 3, 16, 24) * 2 - 1  # (B, T, C, H, W)
    with torch.no_grad():
        y = model(x)
        per_frame = torch.stack([model(x[:, t]) for t in range(x.shape[1])], dim=1)
    assert y.shape == x.shape
    assert torch.allclose(y, per_frame, atol=1e-6)
    assert float(y.abs().max()) < 1  # tanh output


def test_out_channels_and_3d():
    model = PlainEncoderDecoder(3, 2, 1, channels=(4, 8), num_res_blocks=1, num_dec_res_blocks=1).eval()
    assert model.downsample_factor == 2
    with torch.no_grad():
        assert model(torch.rand(1, 2, 8, 8, 6)).shape == (1, 1, 8, 8, 6)
        assert model(torch.rand(1, 3, 2, 8, 8, 6)).shape == (1, 3, 1, 8, 8, 6)


def test_from_config_takes_the_named_size():
    cfg = SEQ2SEQ_CONFIGS["tiny"]
    model = PlainEncoderDecoder.from_config("tiny", in_channels=1)
    decoder_blocks = [m for m in model.decoder if isinstance(m, ResBlock)]
    assert len(decoder_blocks) == cfg["num_hyper_res_blocks"]
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 1 and convs[0].out_channels == cfg["channels"][0]
    assert max(c.out_channels for c in convs) == cfg["channels"][-1]
    with pytest.raises(ValueError, match="unknown network size 'huge'"):
        PlainEncoderDecoder.from_config("huge")


def test_it_learns_a_fixed_translation():
    torch.manual_seed(0)
    model = PlainEncoderDecoder(2, 1, channels=(8, 16), num_res_blocks=1, num_dec_res_blocks=1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    source = ((xx**2 + yy**2) < 0.4).float()[None, None] * 1.6 - 0.8
    target = -0.5 * source  # inverted, weaker contrast
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = (model(source) - target).abs().mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float((model(source) - target).abs().mean()) < 0.5 * first
