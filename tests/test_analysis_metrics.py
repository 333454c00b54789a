import hashlib

import pytest
import torch

from monai_seq2seq.analysis.metrics import masked_ssim, synthesis_scores
from monai_seq2seq.analysis.perceptual import load_lpips


def test_synthesis_scores_order_and_shapes():
    torch.manual_seed(0)
    real = torch.rand(2, 16, 16, 12)
    close = (real + 0.02 * torch.randn_like(real)).clamp(0, 1)
    far = (real + 0.2 * torch.randn_like(real)).clamp(0, 1)
    good, bad = synthesis_scores(close, real), synthesis_scores(far, real)
    assert good["psnr"] > bad["psnr"] + 10 and good["ssim"] > bad["ssim"]
    assert synthesis_scores(real, real)["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert "lpips" not in good
    with pytest.raises(ValueError, match="differ in shape"):
        synthesis_scores(real[:1], real)


def test_masked_ssim_localises_errors():
    torch.manual_seed(0)
    real = torch.rand(32, 32, 32)
    pred = real.clone()
    pred[:14] = (pred[:14] + 0.3 * torch.randn_like(pred[:14])).clamp(0, 1)
    inside = torch.zeros(32, 32, 32, dtype=torch.bool)
    inside[:14] = True
    assert masked_ssim(pred, real, inside) < 0.8 < masked_ssim(pred, real, ~inside)
    both = synthesis_scores(pred, real, tumour=inside)
    assert both["ssim_tumour"] == pytest.approx(masked_ssim(pred, real, inside))
    assert torch.isnan(torch.tensor(masked_ssim(pred, real, torch.zeros_like(inside))))


def test_lpips_missing_weights_is_reported_not_random(tmp_path):
    model, status = load_lpips(tmp_path / "alexnet-owt-7be5be79.pth")
    assert model is None and not status.available and "not found" in status.reason


def test_lpips_with_local_backbone(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("lpips")
    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    path = tmp_path / "alexnet-local.pth"
    torch.save(state, path)
    model, status = load_lpips(path)
    assert status.available and model is not None
    loaded = dict(model.net.named_parameters())
    torch.testing.assert_close(loaded["slice1.0.weight"], state["features.0.weight"])
    torch.testing.assert_close(loaded["slice5.10.weight"], state["features.10.weight"])
    real = torch.rand(1, 32, 32, 12)
    scores = synthesis_scores((real + 0.2 * torch.randn_like(real)).clamp(0, 1), real, model)
    assert scores["lpips"] > synthesis_scores(real, real, model)["lpips"] - 1e-6
    # a file named like torchvision's but with the wrong content is refused
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    wrong = tmp_path / f"alexnet-owt-{'0' * 8 if not digest.startswith('0' * 8) else '1' * 8}.pth"
    wrong.write_bytes(path.read_bytes())
    model, status = load_lpips(wrong)
    assert model is None and "sha256" in status.reason


def test_separable_ssim_equals_monai():
    from monai.metrics import SSIMMetric

    from monai_seq2seq.analysis.metrics import ssim_map

    torch.manual_seed(1)
    a = torch.rand(2, 20, 18, 16)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    reference = SSIMMetric(spatial_dims=3, data_range=1.0)(b[:, None], a[:, None]).mean()
    torch.testing.assert_close(ssim_map(b, a).mean(), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="needs every size"):
        ssim_map(a[..., :8], a[..., :8])
