"""Verify a bundle folder the way the MONAI model zoo does, offline: files, hashes, metadata, a forward pass."""

from __future__ import annotations

from pathlib import Path

import torch

from monai_seq2seq.core.integrity import load_weights

from .pack import check_bundle

__all__ = ["SCHEMA_PATH", "verify_metadata_offline", "load_bundle_network", "verify_forward", "verify_bundle"]

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "meta_schema_20240725.json"


def verify_metadata_offline(bundle_dir: str | Path) -> None:
    """``monai.bundle.verify_metadata`` against the schema kept in the package (no download).

    Raises:
        ValueError: the metadata fails the schema (MONAI's message).
    """
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(Path(bundle_dir) / "configs" / "metadata.json"), filepath=str(SCHEMA_PATH))


def load_bundle_network(bundle_dir: str | Path, device: str = "cpu"):
    """``(network, protocol)``: ``network_def`` of ``configs/inference.json``, verified weights loaded, eval mode."""
    from monai.bundle import ConfigParser

    from monai_seq2seq.core.protocols import get_protocol

    bundle_dir = Path(bundle_dir).resolve()
    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle_dir)
    network = parser.get_parsed_content("network_def", instantiate=True).to(device).eval()
    weights = bundle_dir / "models" / "model.pt"
    if weights.is_file():
        network.load_state_dict(load_weights(weights, bundle_dir=bundle_dir, map_location=device))
    return network, get_protocol(parser["protocol"])


def verify_forward(bundle_dir: str | Path, size: int = 32, device: str = "cpu") -> dict:
    """Build ``network_def`` from ``configs/inference.json``, load the verified weights, run every target once.

    Returns:
        ``{"input_shape", "output_shape", "targets", "range"}`` of the check.

    Raises:
        IntegrityError: the weights' sha256 differs from ``large_files.yml``.
        AssertionError: an output of the wrong shape, non-finite, or outside the tanh range [-1, 1].
    """
    import json

    network, _ = load_bundle_network(bundle_dir, device)
    meta = json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text())
    channels = int(meta["network_data_format"]["inputs"]["image"]["num_channels"])
    x = torch.rand(1, 1, channels, size, size, device=device) * 2 - 1  # one 3D source slice stack
    n_targets = int(network.num_sequences)
    low, high = float("inf"), float("-inf")
    shapes = []
    with torch.no_grad():
        for target in range(n_targets):
            y = network(x, target)
            assert torch.isfinite(y).all(), f"non-finite output for target {target}"
            assert y.shape[-3:] == (channels, size, size), f"target {target}: output {tuple(y.shape)}"
            low, high = min(low, float(y.min())), max(high, float(y.max()))
            shapes.append(tuple(y.shape))
    assert -1.0 - 1e-5 <= low and high <= 1.0 + 1e-5, f"output range [{low}, {high}] outside [-1, 1]"
    return {"input_shape": tuple(x.shape), "output_shape": shapes, "targets": n_targets, "range": [low, high]}


def verify_bundle(bundle_dir: str | Path, forward: bool = True) -> dict:
    """Every check a downloaded bundle must pass: required files, version in the changelog, the weights' sha256
    (before they are loaded, with ``weights_only=True``), metadata against the schema, and a forward pass.

    Returns:
        a report: ``{"name", "version", "forward": {...}}``.
    """
    meta = check_bundle(bundle_dir)
    verify_metadata_offline(bundle_dir)
    report = {"name": meta.get("name", Path(bundle_dir).name), "version": meta["version"]}
    if forward:
        report["forward"] = verify_forward(bundle_dir)
    return report
