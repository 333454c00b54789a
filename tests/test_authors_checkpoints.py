"""The Seq2Seq authors' checkpoints: converted networks reproduce the outputs of the authors' own code (fixtures in
``../shared/fixtures/authors_seq2seq``, made by their model code), bad checkpoints are refused with the key named,
and ``import_authors`` writes a bundle that verifies and runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from monai_seq2seq.core.protocols import Protocol
from monai_seq2seq.inference import Seq2SeqSynthesizer
from monai_seq2seq.zoo.authors import (
    RELEASED,
    AuthorsCheckpointError,
    authors_keys,
    convert_authors_state_dict,
    import_authors,
    infer_authors_config,
    load_authors_checkpoint,
    load_authors_state_dict,
    read_authors_config,
)
from monai_seq2seq.zoo.authors_bundle import FITTED_TO_TEMPLATE_WEIGHTS, compose_authors_configs, write_authors_bundle

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "authors_seq2seq"
RELEASED_BUNDLE = ROOT / "bundles" / "seq2seq_brats2d_released"
TOLERANCE = 1e-4
CASES = {"2d_io": "2d", "2d_4d_io": "2d", "3d_io": "3d"}

needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "2d_ckpt.pth").is_file(),
    reason=f"the authors' reference checkpoints are not at {FIXTURES} (shared fixtures of the project checkout)",
)


def _outputs(case: str) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
    """The stored input and ``{(target, frames): output}`` of one fixture file."""
    data = torch.load(FIXTURES / f"{case}.pt", weights_only=True)
    outputs = {}
    for key, value in data["outputs"].items():
        target, frames = key.split("_")
        outputs[(int(target[len("target") :]), int(frames[len("frames") :]))] = value
    return data["input"], outputs


def _protocol(source_frames: int, target_frames: int, code_dim: int) -> Protocol:
    """Four target sequences of ``target_frames`` frames (the authors' code positions 0-3) and a source S."""
    sequences = [
        {"name": f"Q{j}", "frames": target_frames, "frame_axis": "time" if target_frames > 1 else None}
        for j in range(4)
    ]
    sequences.append({"name": "S", "frames": source_frames, "frame_axis": "time" if source_frames > 1 else None})
    return Protocol.from_dict(
        {"name": f"authors_{source_frames}_{target_frames}", "code_dim": code_dim, "sequences": sequences}
    )


def _network(case: str, frames: int, **kwargs):
    dims = CASES[case]
    x, _ = _outputs(case)
    cfg = read_authors_config(FIXTURES / f"{dims}.yaml")
    protocol = _protocol(x.shape[1], frames, cfg.c_s)
    net, _ = load_authors_checkpoint(FIXTURES / f"{dims}_ckpt.pth", FIXTURES / f"{dims}.yaml", protocol, **kwargs)
    return net, protocol


@needs_fixtures
def test_yaml_and_inferred_sizes_agree():
    for dims in ("2d", "3d"):
        state = load_authors_state_dict(FIXTURES / f"{dims}_ckpt.pth")
        cfg = read_authors_config(FIXTURES / f"{dims}.yaml")
        assert infer_authors_config(state) == cfg
        assert cfg.ndims == int(dims[0]) and set(state) == set(authors_keys(cfg))


@needs_fixtures
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_folded_reproduce_the_authors_outputs(case):
    """Every target and frame count, through Seq2Seq.forward (integer targets) and the folded network."""
    x, outputs = _outputs(case)
    worst = 0.0
    for frames in sorted({n for _, n in outputs}):
        net, _ = _network(case, frames)
        with torch.no_grad():
            for (target, n), expected in outputs.items():
                if n != frames:
                    continue
                got = net(x, target)
                folded = net.fold(target)(x)
                assert got.shape == expected.shape == folded.shape
                worst = max(worst, float((got - expected).abs().max()), float((folded - expected).abs().max()))
    print(f"{case}: max |ours - authors'| = {worst:.2e}")
    assert worst <= TOLERANCE


@needs_fixtures
@pytest.mark.parametrize("case", sorted(CASES))
def test_all_pairs_reproduces_the_authors_outputs(case):
    """Through the whole-volume synthesiser: the fixture's slab (2D) or volume (3D) as a subject volume."""
    x, outputs = _outputs(case)
    for frames in sorted({n for _, n in outputs}):
        net, protocol = _network(case, frames)
        if net.spatial_dims == 2:  # (1, T, 3, X, Y): slices z = 0, 1, 2 of a 3-slice volume; the slab of z = 1 is x
            volume = (x[0].permute(0, 2, 3, 1) + 1) / 2
            synthesizer = Seq2SeqSynthesizer(net, protocol, batch_size=4, progress=False)
        else:  # (1, T, 1, X, Y, Z): one sliding window covers the volume
            volume = (x[0, :, 0] + 1) / 2
            synthesizer = Seq2SeqSynthesizer(net, protocol, roi_size=x.shape[-3:], progress=False)
        predictions = synthesizer.all_pairs({"S": volume}, targets=[f"Q{j}" for j in range(4)])
        for (target, n), expected in outputs.items():
            if n != frames:
                continue
            got = predictions[f"Q{target}"]["S"] * 2 - 1
            if net.spatial_dims == 2:  # the middle slice of the volume = the middle channel of the slab
                got, expected = got[..., 1], expected[0, :, 1]
            else:
                expected = expected[0, :, 0]
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= TOLERANCE, (case, target, n)


@needs_fixtures
def test_nearest_upsampling_would_not_reproduce_them():
    """The reason the mode is a parameter: with nearest upsampling the same weights give other images."""
    x, outputs = _outputs("2d_io")
    net, _ = _network("2d_io", 1, upsample_mode="nearest")
    with torch.no_grad():
        assert float((net(x, 0) - outputs[(0, 1)]).abs().max()) > 1e-2


@needs_fixtures
@pytest.mark.parametrize("case,perm", [("2d_4d_io", (0, 1, 2, 4, 3)), ("3d_io", (0, 1, 2, 5, 4, 3))])
def test_nifti_layout_gives_the_authors_images_on_nibabel_axes(case, perm):
    """``layout="nifti"``: our (X, Y[, Z]) arrays are the authors' SimpleITK arrays with the axes reversed."""
    x, outputs = _outputs(case)
    net, _ = _network(case, 1, layout="nifti")
    with torch.no_grad():
        got = net(x.permute(perm), 1).permute(perm)
    assert float((got - outputs[(1, 1)]).abs().max()) <= TOLERANCE


# ---- refusals -------------------------------------------------------------------------------------------------
@needs_fixtures
def test_unknown_missing_and_misshapen_keys_are_refused_by_name(tmp_path):
    state = load_authors_state_dict(FIXTURES / "2d_ckpt.pth")
    cfg = read_authors_config(FIXTURES / "2d.yaml")
    reference = load_authors_checkpoint(FIXTURES / "2d_ckpt.pth")[0].state_dict()
    extra = {**state, "decoder.extra.weight": torch.zeros(1)}
    with pytest.raises(AuthorsCheckpointError, match=r"unknown key 'decoder\.extra\.weight'"):
        convert_authors_state_dict(extra, cfg, reference)
    missing = {k: v for k, v in state.items() if k != "dec_convlstm.cell_list.2.conv.bias"}
    with pytest.raises(AuthorsCheckpointError, match=r"missing key 'dec_convlstm\.cell_list\.2\.conv\.bias'"):
        convert_authors_state_dict(missing, cfg, reference)
    misshapen = {**state, "decoder.convs.1.param": torch.zeros(8, 16, 3, 3, 3)}
    with pytest.raises(AuthorsCheckpointError, match=r"key 'decoder\.convs\.1\.param' has shape \[8, 16, 3, 3, 3\]"):
        convert_authors_state_dict(misshapen, cfg, reference)
    # through a file and the YAML of the other network: every tensor's shape disagrees, the first is named
    torch.save(state, tmp_path / "ckpt.pth")
    with pytest.raises(AuthorsCheckpointError, match=r"key 'encoder\.conv\.0\.0\.weight' has shape"):
        load_authors_checkpoint(tmp_path / "ckpt.pth", FIXTURES / "3d.yaml")


@needs_fixtures
def test_configs_this_network_cannot_express_are_refused_by_key(tmp_path):
    text = (FIXTURES / "2d.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  norm: InstanceNorm", "  norm: BatchNorm"))
    with pytest.raises(AuthorsCheckpointError, match="norm=BatchNorm"):
        read_authors_config(bad)
    bad.write_text(text.replace("  c_lstm: 32", "  c_lstm: 16"))
    with pytest.raises(AuthorsCheckpointError, match="c_lstm=16"):
        read_authors_config(bad)
    bad.write_text("train:\n  lr: 1\n")
    with pytest.raises(AuthorsCheckpointError, match="no 'seq2seq:' section"):
        read_authors_config(bad)


def test_released_sizes_are_the_released_network():
    """The released configuration maps onto ``build_seq2seq("released")``: 155.2 M parameters, bilinear."""
    from monai_seq2seq.networks import SEQ2SEQ_CONFIGS

    kwargs = RELEASED.check().network_kwargs()
    released = SEQ2SEQ_CONFIGS["released"]
    assert tuple(kwargs["channels"]) == released["channels"] and kwargs["bank_dim"] == released["bank_dim"]
    assert kwargs["upsample_mode"] == released["upsample_mode"] == "linear"
    assert len(authors_keys(RELEASED)) == 134


# ---- bundles --------------------------------------------------------------------------------------------------
@needs_fixtures
def test_import_authors_writes_a_bundle_that_verifies(tmp_path):
    from monai_seq2seq.zoo.verify import verify_bundle

    out = import_authors(FIXTURES / "2d_ckpt.pth", FIXTURES / "2d.yaml", tmp_path / "authors2d")
    report = verify_bundle(out)
    assert report["forward"]["targets"] == 4
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["authors_weights"]["repository"].endswith("fiy2W/mri_seq2seq")
    assert meta["network"]["authors_config"]["c_enc"] == [8, 16, 32]
    card = (out / "docs" / "README.md").read_text()
    assert "fiy2W/mri_seq2seq" in card and "authors' terms" in card
    inference = json.loads((out / "configs" / "inference.json").read_text())
    assert inference["network_def"]["upsample_mode"] == "linear" and inference["network_def"]["code_dim"] == 8
    with pytest.raises(AuthorsCheckpointError, match="exists"):
        import_authors(FIXTURES / "2d_ckpt.pth", FIXTURES / "2d.yaml", out)
    with pytest.raises(AuthorsCheckpointError, match=r"key 'encoder\.conv\.0\.0\.weight' has shape \[8, 1, 7, 7, 7\]"):
        import_authors(FIXTURES / "3d_ckpt.pth", FIXTURES / "2d.yaml", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # checked before anything is written
    if importlib.util.find_spec("onnxruntime") is not None:  # the export extra: folded network checked in onnxruntime
        from monai_seq2seq.zoo.export import export_onnx

        assert export_onnx(out, "T1Gd", tmp_path / "t1gd.onnx").is_file()


@needs_fixtures
def test_import_authors_3d_verifies_with_inferred_sizes(tmp_path):
    from monai_seq2seq.zoo.verify import verify_bundle

    out = import_authors(FIXTURES / "3d_ckpt.pth", None, tmp_path / "authors3d")
    assert verify_bundle(out)["forward"]["input_shape"] == (1, 1, 1, 32, 32, 32)
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["network"]["build_seq2seq"]["spatial_dims"] == 3


@needs_fixtures
def test_import_authors_fills_a_bundle_without_weights(tmp_path):
    """The way ``bundles/seq2seq_brats2d_released`` is filled: only weights and their sha256 are added."""
    from monai_seq2seq.zoo.authors_bundle import default_template

    cfg = read_authors_config(FIXTURES / "2d.yaml")
    folder = write_authors_bundle(tmp_path / "waiting", cfg, default_template("brain"), 1)
    configs = {p.name: p.read_bytes() for p in (folder / "configs").iterdir()}
    with pytest.raises(AuthorsCheckpointError, match="encoder.conv.0.0.weight"):  # the 3D weights do not fit
        import_authors(FIXTURES / "3d_ckpt.pth", None, folder)
    import_authors(FIXTURES / "2d_ckpt.pth", None, folder)
    assert (folder / "models" / "model.pt").is_file() and (folder / "large_files.yml").is_file()
    assert {p.name: p.read_bytes() for p in (folder / "configs").iterdir()} == configs


@needs_fixtures
def test_imported_bundle_runs_differentiation_on_the_phantom(tmp_path):
    from monai_seq2seq.cli.bundle import run_bundle_config

    out = import_authors(FIXTURES / "2d_ckpt.pth", FIXTURES / "2d.yaml", tmp_path / "authors2d")
    result = run_bundle_config(
        out, "differentiation", num_subjects=1, phantom_spacing=4.0, output_dir=str(tmp_path / "d")
    )
    ranking = json.loads((Path(result) / "ranking.json").read_text())
    assert len(ranking["table"]) == 4


def test_released_bundle_is_composed_from_the_brain_bundle():
    """``bundles/seq2seq_brats2d_released`` holds what :func:`write_authors_bundle` writes for the released sizes
    (configs composed from the current brain bundle), and no weights (they are the authors')."""
    configs = RELEASED_BUNDLE / "configs"
    expected = compose_authors_configs(ROOT / "bundles" / "seq2seq_brain", RELEASED, RELEASED_BUNDLE.name)
    for name, content in expected.items():
        assert json.loads((configs / name).read_text()) == content, (
            f'{configs / name} is out of date with bundles/seq2seq_brain; regenerate it: python -c "from '
            'monai_seq2seq.zoo.authors import write_released_bundle; write_released_bundle()"'
        )
    # models fitted to the brain bundle's own weights would describe the authors' network wrongly
    assert (ROOT / "bundles" / "seq2seq_brain" / "configs" / "quality.json").is_file()
    assert not any((configs / name).exists() for name in FITTED_TO_TEMPLATE_WEIGHTS)
    meta = json.loads((configs / "metadata.json").read_text())
    assert round(meta["network"]["parameters"] / 1e6, 1) == 155.2
    assert meta["network"]["upsample_mode"] == "linear" and meta["authors_weights"]["sha256"] is None
