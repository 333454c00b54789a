"""The MONAI model zoo's CI on every bundle in bundles/ that ships weights, offline.

Written from the zoo's documentation (CONTRIBUTING.md, "Verifying a bundle", and what ``ci/verify_bundle.py`` runs in
its ``min`` and ``full`` modes), not copied from it: large files fetched from ``large_files.yml`` with MONAI's
``download_url`` (a file already there is hash-checked and used without network), the necessary and preferred files,
version and changelog, ``verify_metadata`` (against the schema copy kept in the package: the official one cannot be
fetched offline), the bundle properties when ``supported_apps`` is declared, ``verify_net_in_out`` on ``network_def``
with no extra argument, ``ckpt_export`` to TorchScript, and the config keys CONTRIBUTING asks for.
"""

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch

from monai_seq2seq.core.trust import check_bundle_configs

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "monai_seq2seq" / "zoo" / "schemas" / "meta_schema_20240725.json"
BUNDLES = sorted(p for p in (ROOT / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())


@pytest.fixture(params=BUNDLES, ids=[p.name for p in BUNDLES])
def bundle(request) -> Path:
    folder = request.param
    if not (folder / "models" / "model.pt").is_file():
        pytest.skip(
            f"{folder.name} ships no models/model.pt: the model-zoo checks build and export it with its weights"
        )
    check_bundle_configs(folder)  # this project never parses a config that fails the allow-list
    return folder


def _large_files(bundle: Path) -> list[dict]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "large_files.yml"))
    return parser.get()["large_files"]


def test_necessary_and_preferred_files(bundle):
    for relative in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
        assert (bundle / relative).is_file(), f"{bundle.name} lacks {relative}"
    assert (bundle / "models" / "model.pt").stat().st_size < 25 << 20, "the zoo takes files of at most 25 MB"


def test_large_files_resolve_offline_and_a_hash_mismatch_is_refused(bundle, tmp_path, monkeypatch):
    """Every entry has an https URL of a release asset and a sha256; a file already in place is hash-checked and
    used without network; a bundle submitted without it downloads it, and a mismatching download is refused."""
    import monai.apps.utils as apps_utils

    entries = _large_files(bundle)
    assert any(e["path"] == "models/model.pt" for e in entries)

    def no_network(url, filepath, progress=True):
        raise AssertionError(f"network access to {url}")

    monkeypatch.setattr(apps_utils, "_download_with_progress", no_network)
    for entry in entries:
        url = urlparse(entry["url"])
        assert url.scheme == "https" and url.netloc and Path(url.path).suffix, entry["url"]
        assert entry["hash_type"] == "sha256" and len(entry["hash_val"]) == 64
        apps_utils.download_url(  # the zoo's download_large_files: the present file passes its hash, no download
            url=entry["url"], filepath=bundle / entry["path"], hash_val=entry["hash_val"], hash_type="sha256"
        )

    submission = tmp_path / bundle.name  # as a zoo pull request ships it: weights left out
    shutil.copytree(bundle / "configs", submission / "configs")
    shutil.copy(bundle / "large_files.yml", submission / "large_files.yml")
    entry = next(e for e in entries if e["path"] == "models/model.pt")
    served = {"bytes": (bundle / "models" / "model.pt").read_bytes()}

    def serve(url, filepath, progress=True):  # a stand-in for the release asset
        assert url == entry["url"]
        Path(filepath).write_bytes(served["bytes"])

    monkeypatch.setattr(apps_utils, "_download_with_progress", serve)
    target = submission / entry["path"]
    apps_utils.download_url(url=entry["url"], filepath=target, hash_val=entry["hash_val"], hash_type="sha256")
    assert target.read_bytes() == served["bytes"]
    target.unlink()
    served["bytes"] = served["bytes"][:-1] + b"x"  # a tampered asset
    with pytest.raises(Exception, match="(?i)hash check"):
        apps_utils.download_url(url=entry["url"], filepath=target, hash_val=entry["hash_val"], hash_type="sha256")
    assert not target.exists()


def test_version_changelog_and_metadata_schema(bundle):
    from monai.bundle import verify_metadata

    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "version" in meta and "changelog" in meta
    assert meta["version"] in meta["changelog"], f"{bundle.name}: version {meta['version']} not in the changelog"
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(SCHEMA))
    if "supported_apps" in meta:  # the full mode checks the inference properties of each supported app
        pytest.fail(f"{bundle.name} declares supported_apps: add the properties check of those apps here")


def test_data_shape_with_no_extra_arguments(bundle):
    """``verify_net_in_out`` as the zoo's CI calls it: ``network_def`` of ``configs/inference.json``, no extra
    forward argument (the network's default target, documented in the metadata)."""
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
    )
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "network_def#default_target" in meta["network_data_format"]["extra_forward_args"]["target"]


def test_torchscript_export_matches_the_eager_network(bundle, tmp_path):
    from monai.bundle import ckpt_export

    from monai_seq2seq.zoo.verify import load_bundle_network

    exported = tmp_path / "verify_model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(exported),
        ckpt_file=str(bundle / "models" / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
    )
    scripted = torch.jit.load(str(exported))
    eager, _ = load_bundle_network(bundle)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), atol=1e-5, rtol=1e-5)  # the default target
        torch.testing.assert_close(scripted(x, 0), eager(x, 0), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(eager(x), eager(x, 0))  # the default is a target, not ignored


def test_config_keys_contributing_asks_for(bundle):
    from monai.bundle import ConfigParser

    from monai_seq2seq.zoo.configs import config_files

    inference = ConfigParser(ConfigParser.load_config_files(config_files(bundle, "inference")))
    for key in ("bundle_root", "device", "network_def", "inferer", "output_dir"):
        assert key in inference, f"{bundle.name}/configs/inference.json lacks {key!r}"
    train = ConfigParser(ConfigParser.load_config_files(config_files(bundle, "train")))
    required = ["bundle_root", "device", "dataset_dir", "output_dir", "train#trainer", "train#trainer#max_epochs"]
    required += ["train#dataset", "train#dataset#data", "train#handlers", "validate#evaluator", "validate#handlers"]
    required += ["validate#dataset", "validate#dataset#data", "train#preprocessing", "train#inferer", "val_interval"]
    missing = [key for key in required if key not in train]
    assert not missing, f"{bundle.name}/configs/train.json lacks {missing}"
    handlers = json.dumps(train["train#handlers"])
    assert "ValidationHandler" not in handlers or '"interval": "@val_interval"' in handlers
