import pytest
import torch

from monai_seq2seq.networks import (
    AdaptiveInstanceNorm,
    ConditionalConvNormAct,
    DynamicConv,
    HyperConv,
    HyperResBlock,
)


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_hyperconv_shapes_and_stride(spatial_dims):
    conv = HyperConv(spatial_dims, 3, 5, kernel_size=3, code_dim=8, bank_dim=4, stride=2)
    x = torch.randn(2, 3, *([8] * spatial_dims))
    y = conv(x, torch.randn(2, 8))
    assert y.shape == (2, 5, *([4] * spatial_dims))
    assert conv(x, torch.randn(1, 8)).shape == y.shape


@pytest.mark.parametrize("cls", [HyperConv, DynamicConv])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_per_sample_codes_equal_separate_calls(cls, spatial_dims):
    conv = cls(spatial_dims, 3, 4, kernel_size=3, code_dim=6)
    x = torch.randn(3, 3, *([6] * spatial_dims))
    codes = torch.eye(6)[[0, 2, 5]]
    batched = conv(x, codes)
    for i in range(3):
        single = conv(x[i : i + 1], codes[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=1e-5)
    # different codes must give different outputs, or the test above proves nothing
    assert (batched[0] - conv(x[:1], codes[1:2])[0]).abs().max() > 1e-3


def test_kernel_is_bank_times_mix():
    """Paper Alg. 1: kernel = bank @ Linear(code)."""
    conv = HyperConv(2, 2, 3, kernel_size=3, code_dim=5, bank_dim=4)
    code = torch.randn(1, 5)
    weight, bias = conv.kernels(code)
    mix = conv.weight_mix(code)[0]
    expected = (conv.weight_bank * mix).sum(-1)
    torch.testing.assert_close(weight[0], expected)
    torch.testing.assert_close(bias[0], (conv.bias_bank * conv.bias_mix(code)[0]).sum(-1))


def test_dynamic_conv_is_linear_map_of_code():
    conv = DynamicConv(2, 2, 2, kernel_size=3, code_dim=4)
    assert conv.weight_bank.shape[-1] == 5
    w0, _ = conv.kernels(torch.zeros(1, 4))
    torch.testing.assert_close(w0[0], conv.weight_bank[..., -1])  # the "bias" slice of Linear(code)


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
def test_fold_matches(spatial_dims, padding_mode):
    conv = HyperConv(spatial_dims, 3, 4, kernel_size=3, code_dim=6, padding_mode=padding_mode)
    code = torch.eye(6)[2]
    x = torch.randn(2, 3, *([7] * spatial_dims))
    folded = conv.fold(code)
    assert isinstance(folded, torch.nn.modules.conv._ConvNd)
    torch.testing.assert_close(folded(x), conv(x, code[None]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conditioning", ["hyper", "dynamic", "adain"])
def test_conditional_blocks_fold(conditioning):
    block = HyperResBlock(2, 6, code_dim=5, conditioning=conditioning)
    # give AdaIN a non-trivial style so the fold has something to carry
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    code = torch.eye(5)[1:2]
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(block.fold(code)(x), block(x, code), atol=1e-5, rtol=1e-5)
    unit = ConditionalConvNormAct(2, 6, 3, 3, 5, conditioning)
    torch.testing.assert_close(unit.fold(code)(x), unit(x, code), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conditioning", ["hyper", "dynamic", "adain"])
def test_bias_before_instance_norm_is_left_out_exactly(conditioning):
    """The conv bias cancels under instance norm: leaving it out changes nothing in float32, and in bf16 it
    no longer rounds a large trained bias (a drift measured on the shipped brain weights) with the output."""
    torch.manual_seed(0)
    unit = ConditionalConvNormAct(2, 6, 4, 3, 5, conditioning, act=None)
    assert unit.bias_cancels
    layer = unit.conv.layer
    with torch.no_grad():
        if conditioning == "adain":
            layer.conv.bias.fill_(30.0)
        else:
            layer.bias_bank.fill_(30.0 / layer.bias_mix(torch.eye(5)[1:2]).sum().item())
    code = torch.eye(5)[1:2]
    x = torch.randn(2, 6, 16, 16)
    with_bias = unit.norm(unit.conv(x, code, True), code)
    torch.testing.assert_close(unit(x, code), with_bias, atol=1e-4, rtol=1e-4)
    assert unit.conv(x, code, True).mean() > 20  # the bias really is large
    for module in (unit, unit.fold(code)):
        fp32 = module(x, code) if module is unit else module(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = (module(x, code) if module is unit else module(x)).float()
            bf16_with_bias = unit.norm(unit.conv(x, code, True), code).float()
        error, error_with_bias = (bf16 - fp32).abs().max().item(), (bf16_with_bias - fp32).abs().max().item()
        print(f"{conditioning}: bf16 max error {error:.3f} without the bias, {error_with_bias:.3f} with it")
        assert error < 0.05 and error_with_bias > 3 * error  # what leaving the bias in would cost
    unnormed = ConditionalConvNormAct(2, 6, 4, 3, 5, conditioning, norm=None)
    assert not unnormed.bias_cancels
    batch_norm = ConditionalConvNormAct(2, 6, 4, 3, 5, "hyper", norm="batch")
    assert not batch_norm.bias_cancels


def test_adain_uses_code():
    norm = AdaptiveInstanceNorm(2, 4, code_dim=3)
    torch.nn.init.normal_(norm.style.weight)
    x = torch.randn(1, 4, 5, 5)
    assert (norm(x, torch.eye(3)[:1]) - norm(x, torch.eye(3)[1:2])).abs().max() > 1e-2


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial_dims"):
        HyperConv(4, 1, 1)
    with pytest.raises(ValueError, match="padding_mode"):
        HyperConv(2, 1, 1, padding_mode="circular-ish")
    conv = HyperConv(2, 2, 2, code_dim=4)
    with pytest.raises(ValueError, match="code batch"):
        conv(torch.randn(3, 2, 6, 6), torch.randn(2, 4))
