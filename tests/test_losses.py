"""Losses of the Seq2Seq objective: values that must hold, and a perceptual loss that never downloads."""

import logging

import pytest
import torch
from torchvision.models import vgg

from monai_seq2seq.losses import (
    CycleConsistencyLoss,
    LSGANLoss,
    ReconstructionL1Loss,
    Seq2SeqLoss,
    VGG19PerceptualLoss,
    build_perceptual_loss,
    default_vgg19_path,
)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random (not ImageNet) VGG19 state dict written locally: the loader must accept torchvision's layout."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save(vgg.make_layers(vgg.cfgs["E"])[:12].state_dict(), path)
    return path


def _perceptual(vgg_file, **kwargs):
    return VGG19PerceptualLoss(vgg_file, layers=("relu1_1", "relu2_1", "relu3_1"), layer_weights=(1, 1, 1), **kwargs)


def test_l1_and_cycle_values():
    a = torch.zeros(2, 1, 3, 8, 8)
    b = torch.full_like(a, 0.5)
    assert ReconstructionL1Loss()(a, b).item() == pytest.approx(0.5)
    assert CycleConsistencyLoss()(b, b).item() == 0.0
    with pytest.raises(ValueError, match="shape"):
        ReconstructionL1Loss()(a, b[:1])


def test_lsgan_targets():
    loss = LSGANLoss()
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert loss.generator_loss(ones).item() == 0.0
    assert loss.generator_loss(zeros).item() == pytest.approx(1.0)
    assert loss.discriminator_loss(ones, zeros).item() == 0.0
    assert loss.discriminator_loss(zeros, ones).item() == pytest.approx(1.0)
    assert loss.generator_loss(torch.full((1, 1, 2, 2), 3.0)).item() == pytest.approx(4.0)


def test_perceptual_zero_for_identical_and_positive_otherwise(vgg_file):
    loss = _perceptual(vgg_file)
    x = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, -x).item() > 0
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training


def test_perceptual_gradient_reaches_input(vgg_file):
    loss = _perceptual(vgg_file)
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    loss(x, torch.rand(1, 3, 32, 32)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_perceptual_grey_and_3d(vgg_file):
    grey = _perceptual(vgg_file)
    x = torch.rand(2, 1, 32, 32)
    assert grey(x, x).item() == 0.0 and grey(x, x.flip(-1)).item() > 0
    vol = _perceptual(vgg_file, spatial_dims=3, max_slices=2)
    v = torch.rand(1, 1, 1, 24, 24, 5)
    assert vol(v, v).item() == 0.0 and vol(v, 1 - v).item() > 0
    with pytest.raises(ValueError, match="3 channels"):
        _perceptual(vgg_file, channel_mode="rgb")(torch.rand(1, 2, 16, 16), torch.rand(1, 2, 16, 16))


def test_features_match_torchvision_vgg19():
    import torchvision

    from monai_seq2seq.losses.perceptual import _vgg19_features

    ours = _vgg19_features().state_dict()
    theirs = torchvision.models.vgg19(weights=None).features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_perceptual_loads_the_given_weights(vgg_file, tmp_path):
    loss = _perceptual(vgg_file)
    expected = torch.load(vgg_file, weights_only=True)["0.weight"]
    assert torch.equal(loss.features[0].weight, expected)
    full = tmp_path / "full.pth"  # a whole torchvision VGG19 state dict ("features." prefix) loads too
    torch.save({f"features.{k}": v for k, v in torch.load(vgg_file, weights_only=True).items()}, full)
    assert torch.equal(_perceptual(full).features[0].weight, expected)


def test_perceptual_hash_checked_for_torchvision_name(vgg_file, tmp_path):
    fake = tmp_path / "vgg19-dcbb9e9d.pth"
    fake.write_bytes(vgg_file.read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        _perceptual(fake)


def test_missing_weights_error_names_path(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        VGG19PerceptualLoss(missing)
    with pytest.raises(FileNotFoundError, match="perceptual_weights"):
        build_perceptual_loss(str(missing))


def test_hub_default_path(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert default_vgg19_path() == tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "checkpoints")):
        build_perceptual_loss("hub")


def test_switched_off_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="monai_seq2seq"):
        assert build_perceptual_loss(None) is None
        objective = Seq2SeqLoss(perceptual=None)
    assert "perceptual loss OFF" in caplog.text and "perceptual OFF" in caplog.text
    assert not objective.uses_perceptual


def test_objective_weights_and_terms(vgg_file):
    perceptual = build_perceptual_loss(vgg_file, layers=("relu1_1",), layer_weights=(1.0,))
    objective = Seq2SeqLoss(perceptual=perceptual)
    real = torch.rand(1, 1, 3, 16, 16) * 2 - 1
    fake = real + 0.1
    terms = objective.generator_terms(fake, real, fake_logits=torch.zeros(1, 1, 2, 2), cycled=real + 0.2, source=real)
    expected = 10 * terms["rec_l1"] + 0.01 * terms["perceptual"] + terms["adversarial"] + 10 * terms["cycle"]
    assert terms["rec_l1"].item() == pytest.approx(0.1, rel=1e-4)
    assert terms["cycle"].item() == pytest.approx(0.2, rel=1e-4)
    assert terms["adversarial"].item() == pytest.approx(1.0)
    assert terms["perceptual"].item() > 0
    assert terms["g_loss"].item() == pytest.approx(expected.item())
    self_terms = objective.generator_terms(real, real)
    assert self_terms["g_loss"].item() == 0.0 and self_terms["cycle"].item() == 0.0
    d = objective.discriminator_terms(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert d["d_loss"].item() == 0.0 and d["d_real"].item() == 1.0
