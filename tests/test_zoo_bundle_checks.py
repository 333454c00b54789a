"""The model-zoo CI checks on every bundle: verify_metadata, verify_net_in_out, ckpt_export (TorchScript)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monai_seq2seq.core.integrity import load_weights
from monai_seq2seq.networks import build_seq2seq

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "monai_seq2seq" / "zoo" / "schemas" / "meta_schema_20240725.json"


def _cli(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=bundle, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("name,protocol", [("seq2seq_brain", "brain"), ("seq2seq_breast", "breast")])
def test_bundle_passes_model_zoo_checks(tmp_path, name, protocol):
    bundle = ROOT / "bundles" / name
    done = _cli(bundle, "verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(SCHEMA))
    assert done.returncode == 0 and "verified with no error" in done.stdout + done.stderr, done.stderr[-1500:]
    done = _cli(
        bundle,
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        "configs/inference.json",
        "--extra_forward_args",
        "{'target': 2}",
        "--n",
        "2",
    )
    assert done.returncode == 0 and "verified with no error" in done.stdout + done.stderr, done.stderr[-1500:]
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip(f"{name} has no shipped weights to export")
    exported = tmp_path / "model.ts"
    done = _cli(
        bundle,
        "ckpt_export",
        "network_def",
        "--filepath",
        str(exported),
        "--ckpt_file",
        "models/model.pt",
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        "configs/inference.json",
    )
    assert done.returncode == 0 and exported.is_file(), done.stderr[-1500:]
    scripted = torch.jit.load(str(exported))
    eager = build_seq2seq("small", protocol=protocol).eval()
    eager.load_state_dict(load_weights(bundle / "models" / "model.pt", bundle_dir=bundle))
    x = torch.rand(1, 1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, 2), eager(x, 2), atol=1e-5, rtol=1e-5)
