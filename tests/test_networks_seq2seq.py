import pytest
import torch

from monai_seq2seq.core import BREAST
from monai_seq2seq.networks import ConvLSTM, FoldedSeq2Seq, Seq2Seq, SequenceDiscriminators, build_seq2seq
from monai_seq2seq.networks.blocks import ConditionalConvNormAct

TINY = {
    "channels": (4, 8, 8),
    "num_res_blocks": 1,
    "num_hyper_res_blocks": 1,
    "lstm_layers": 1,
    "bank_dim": 2,
    "code_dim": 16,
}


def breast_net(**kw):
    return Seq2Seq(
        spatial_dims=2, in_channels=3, num_sequences=len(BREAST), target_frames=BREAST.frames, **{**TINY, **kw}
    ).eval()


@pytest.mark.parametrize("spatial_dims,in_channels,size", [(2, 1, 16), (2, 3, 16), (3, 1, 8)], ids=["2D", "2.5D", "3D"])
def test_shapes_2d_25d_3d(spatial_dims, in_channels, size):
    net = Seq2Seq(spatial_dims, in_channels, num_sequences=4, **TINY).eval()
    spatial = [size] * spatial_dims
    assert net(torch.randn(2, in_channels, *spatial), 1).shape == (2, in_channels, *spatial)
    assert net(torch.randn(2, 1, in_channels, *spatial), [0, 3]).shape == (2, 1, in_channels, *spatial)


def test_3d_to_4d_4d_to_3d_4d_to_4d():
    net = breast_net()
    t1 = torch.randn(2, 1, 3, 16, 16)
    dce = torch.randn(2, 6, 3, 16, 16)
    assert net(t1, BREAST.index("DCE")).shape == (2, 6, 3, 16, 16)  # 3D -> 4D
    assert net(dce, BREAST.index("T2")).shape == (2, 1, 3, 16, 16)  # 4D -> 3D
    assert net(dce, BREAST.index("DWI")).shape == (2, 4, 3, 16, 16)  # 4D -> 4D, 6 -> 4 frames
    assert net(torch.randn(2, 3, 16, 16), BREAST.index("DCE")).shape == (2, 6, 3, 16, 16)


def test_source_frames_matter():
    """The ConvLSTM + frame mean uses every frame: changing the last DCE frame changes the output."""
    net = breast_net()
    dce = torch.randn(1, 6, 3, 16, 16)
    other = dce.clone()
    other[:, -1] = torch.randn_like(other[:, -1])  # (a constant offset would be cancelled by instance norm)
    assert (net(dce, 0) - net(other, 0)).abs().max() > 1e-4


@pytest.mark.parametrize("conditioning", ["hyper", "dynamic", "adain"])
def test_per_sample_targets_equal_separate_calls(conditioning):
    net = breast_net(conditioning=conditioning)
    for p in net.parameters():  # AdaIN starts as identity; perturb so targets differ
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(3, 1, 3, 16, 16)
    targets = [0, 2, 6]
    batched = net(x, targets)
    for i, t in enumerate(targets):
        torch.testing.assert_close(batched[i : i + 1], net(x[i : i + 1], t), atol=1e-5, rtol=1e-4)
    assert (net(x[:1], 0) - net(x[:1], 2)).abs().max() > 1e-4


def test_one_source_many_targets_encodes_once():
    net = breast_net()
    x = torch.randn(1, 1, 3, 16, 16)
    calls = []
    handle = net.encoder.register_forward_hook(lambda *a: calls.append(1))
    out = net(x, [0, 1, 2])
    handle.remove()
    assert out.shape == (3, 1, 3, 16, 16) and len(calls) == 1
    for i, t in enumerate([0, 1, 2]):
        torch.testing.assert_close(out[i : i + 1], net(x, t), atol=1e-5, rtol=1e-4)


def test_condition_forms_agree():
    net = breast_net()
    x = torch.randn(2, 1, 3, 16, 16)
    ref = net(x, 2)
    torch.testing.assert_close(net(x, [2, 2]), ref)
    torch.testing.assert_close(net(x, torch.tensor([2, 2])), ref)
    torch.testing.assert_close(net(x, torch.eye(16)[2]), ref)


@pytest.mark.parametrize("conditioning", ["hyper", "dynamic", "adain"])
def test_fold_equals_hyper_network(conditioning):
    net = breast_net(conditioning=conditioning)
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 6, 3, 16, 16)
    for target in (0, BREAST.index("DWI")):
        folded = net.fold(target)
        assert isinstance(folded, FoldedSeq2Seq)
        assert (
            not any(isinstance(m, type(net.decoder.res_blocks[0].conv1.conv.layer)) for m in folded.modules())
            or conditioning == "adain"
        )
        torch.testing.assert_close(folded(x), net(x, target), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    net = breast_net().train()
    x = torch.randn(2, 6, 3, 16, 16)
    loss = net(x, [0, BREAST.index("WashIn")]).square().mean() + net(x, BREAST.index("DCE")).square().mean()
    loss.backward()
    missing = {n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0}
    # the biases of convolutions followed by an instance norm cancel exactly and are left out of the computation
    cancelled = {
        f"{name}.conv.layer.{p}"
        for name, m in net.named_modules()
        if isinstance(m, ConditionalConvNormAct) and m.bias_cancels
        for p in ("bias_bank", "bias_mix.weight", "bias_mix.bias")
    }
    assert cancelled and cancelled <= {n for n, _ in net.named_parameters()}
    assert missing == cancelled, missing ^ cancelled


def test_multi_source_fusion():
    net = breast_net()
    a, b = torch.randn(1, 1, 3, 16, 16), torch.randn(1, 6, 3, 16, 16)
    torch.testing.assert_close(net.forward_multi([a], 2), net(a, 2))
    torch.testing.assert_close(net.forward_multi([a, a], 2), net(a, 2), atol=1e-5, rtol=1e-5)
    assert net.forward_multi([a, b], [2, 5, 6]).shape == (3, 1, 3, 16, 16)
    z = (net.encode(a) + net.encode(b)) / 2
    torch.testing.assert_close(net.forward_multi([a, b], 2), net.decode(z, torch.eye(16)[2:3], 1))
    with pytest.raises(ValueError, match="grid"):
        net.forward_multi([a, torch.randn(1, 1, 3, 32, 32)], 2)


def test_torchscript_export_of_seq2seq_and_folded(tmp_path):
    net = breast_net()
    x = torch.randn(2, 6, 3, 16, 16)
    scripted = torch.jit.script(net)
    path = tmp_path / "net.ts"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    torch.testing.assert_close(loaded(x, [0, 6]), net(x, [0, 6]))
    torch.testing.assert_close(loaded(x, 3), net(x, 3))
    folded = torch.jit.script(net.fold(3))
    torch.testing.assert_close(folded(x), net(x, 3), atol=1e-5, rtol=1e-5)


def test_onnx_export_of_folded(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = Seq2Seq(2, 3, num_sequences=4, **TINY).eval()
    folded = net.fold(1)
    x = torch.randn(1, 3, 16, 16)
    path = tmp_path / "folded.onnx"
    torch.onnx.export(folded, (x,), str(path), input_names=["image"], output_names=["pred"], dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), net(x, 1), atol=1e-4, rtol=1e-4)


def test_bad_arguments_raise_clear_errors():
    net = breast_net()
    x = torch.randn(2, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown target sequence index 8"):
        net(x, 8)
    with pytest.raises(ValueError, match="unknown target sequence index -1"):
        net(x, [0, -1])
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(3, 16, 16), 0)
    with pytest.raises(ValueError, match="channels per frame"):
        net(torch.randn(2, 1, 2, 16, 16), 0)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(2, 1, 3, 18, 16), 0)
    with pytest.raises(ValueError, match="contradicts"):
        net(x, BREAST.index("DCE"), out_frames=4)
    with pytest.raises(ValueError, match="different frame counts"):
        net(x, [BREAST.index("DCE"), BREAST.index("T1")])
    with pytest.raises(ValueError, match="float target code"):
        net(x, torch.randn(2, 5))
    with pytest.raises(ValueError, match="targets for a batch"):
        net(torch.randn(2, 1, 3, 16, 16), [0, 1, 2])
    with pytest.raises(ValueError, match="target_frames"):
        Seq2Seq(2, 3, num_sequences=4, target_frames=[1, 2])
    with pytest.raises(ValueError, match="conditioning"):
        Seq2Seq(2, 3, conditioning="film")
    with pytest.raises(ValueError, match="configuration"):
        build_seq2seq("huge")


def test_convlstm_is_causal_and_checks_rank():
    lstm = ConvLSTM(2, 2, 3, num_layers=2)
    x = torch.randn(1, 4, 2, 8, 8)
    y = lstm(x)
    assert y.shape == (1, 4, 3, 8, 8)
    x2 = x.clone()
    x2[:, 3] = torch.randn_like(x2[:, 3])
    torch.testing.assert_close(lstm(x2)[:, :3], y[:, :3])  # the future does not change the past
    assert (lstm(x2)[:, 3] - y[:, 3]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="expects"):
        lstm(torch.randn(1, 2, 8, 8))


def test_discriminators_per_sequence():
    disc = SequenceDiscriminators(
        2, 3, num_sequences=len(BREAST), target_frames=BREAST.frames, channels=8, num_layers_d=2
    )
    assert disc(torch.randn(2, 6, 3, 32, 32), BREAST.index("DCE")).shape[:2] == (2, 1)
    assert disc(torch.randn(2, 3, 32, 32), 0).shape[:2] == (2, 1)
    with pytest.raises(ValueError, match="no discriminator"):
        disc(torch.randn(2, 3, 32, 32), 8)
    assert disc.discriminators[0] is not disc.discriminators[1]


def test_named_sizes_match_the_released_profile():
    """The authors' released configuration counts 155.2 M parameters (decoder 119.4 M, ConvLSTMs 2 x 14.2 M)."""
    with torch.device("meta"):
        released = build_seq2seq("released")
        paper = build_seq2seq("paper")
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert count(released) == pytest.approx(155.2, abs=0.05)
    assert count(released.decoder) == pytest.approx(119.4, abs=0.05)
    assert count(released.temporal_encoder) == pytest.approx(14.2, abs=0.05)
    assert count(released.encoder) == pytest.approx(7.5, abs=0.05)
    assert count(paper) <= 35.8


def test_norms_compute_in_float32_under_autocast():
    from monai_seq2seq.networks.blocks import get_float32_norm_layer

    norm = get_float32_norm_layer("instance", 2, 4)
    x = torch.randn(2, 4, 8, 8) * 0.01 + 5.0  # nearly constant channels: where bf16 statistics go wrong
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.nn.functional.instance_norm(x.bfloat16().float()))
    assert norm(x).dtype == torch.float32 and type(norm) is torch.nn.InstanceNorm2d  # MONAI's class, same keys


def test_encoder_stem_runs_in_float32_under_autocast():
    net = Seq2Seq(2, 3, num_sequences=4, **TINY).eval()
    seen = {}
    net.encoder.stem.conv.register_forward_hook(lambda m, i, o: seen.update(stem=o.dtype))
    net.encoder.down1.conv.register_forward_hook(lambda m, i, o: seen.update(down=o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = net(torch.rand(1, 3, 16, 16) * 2 - 1, 1)
    assert seen == {"stem": torch.float32, "down": torch.bfloat16}  # the rest stays in bf16
    assert pred.shape == (1, 3, 16, 16)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_mode_is_used_by_the_network_and_its_folded_copy(spatial_dims, mode):
    """``upsample_mode`` sets the decoder's x2 upsampling (align_corners False when linear); fold keeps it."""
    torch.manual_seed(0)
    net = Seq2Seq(spatial_dims, 1, num_sequences=4, upsample_mode=mode, **TINY).eval()
    interp = {"nearest": "nearest", "linear": "bilinear" if spatial_dims == 2 else "trilinear"}[mode]
    z = torch.randn(2, 8, *[4] * spatial_dims)
    expected = torch.nn.functional.interpolate(
        z, scale_factor=2, mode=interp, align_corners=None if mode == "nearest" else False
    )
    assert net.upsample_mode == mode and torch.equal(net.decoder.upsample(z), expected)
    x = torch.randn(1, 1, 1, *[8] * spatial_dims)
    with torch.no_grad():
        flipped = "nearest" if mode == "linear" else "linear"
        other = Seq2Seq(spatial_dims, 1, num_sequences=4, upsample_mode=flipped, **TINY).eval()
        other.load_state_dict(net.state_dict())  # same parameters either way: only the outputs tell them apart
        assert torch.allclose(net.fold(2)(x), net(x, 2), atol=1e-5)
        assert not torch.allclose(other(x, 2), net(x, 2), atol=1e-3)


def test_upsample_mode_names_and_defaults():
    from monai_seq2seq.networks import SEQ2SEQ_CONFIGS, HyperDecoder, PlainEncoderDecoder

    assert {n: c["upsample_mode"] for n, c in SEQ2SEQ_CONFIGS.items()} == {
        "released": "linear",
        "paper": "linear",
        "small": "nearest",
        "tiny": "nearest",
    }
    assert build_seq2seq("tiny").upsample_mode == "nearest"
    assert build_seq2seq("tiny", upsample_mode="linear").upsample_mode == "linear"
    assert Seq2Seq(2, 3, num_sequences=4, upsample_mode="Bilinear", **TINY).upsample_mode == "linear"
    assert HyperDecoder(3, 8, 1, 16, 1, (4,), upsample_mode="trilinear").upsample_mode == "linear"
    assert PlainEncoderDecoder.from_config("tiny").upsample_mode == "nearest"
    assert PlainEncoderDecoder.from_config("paper", channels=(4, 8)).upsample_mode == "linear"
    with pytest.raises(ValueError, match="'bilinear' is for 2D networks.*use 'linear'"):
        Seq2Seq(3, 1, num_sequences=4, upsample_mode="bilinear", **TINY)
    with pytest.raises(ValueError, match="upsample_mode='bicubic' is not supported"):
        build_seq2seq("tiny", upsample_mode="bicubic")
