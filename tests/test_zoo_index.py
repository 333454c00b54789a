"""Zoo indexes and downloads: reproducible archives, the committed index, path/file:///https/GitHub sources, hash
checks before extraction, verification and loading with MONAI. No test touches the network: https fetches go
through an injected downloader that serves local files."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from monai_seq2seq.cli.zoo import Zoo
from monai_seq2seq.zoo import (
    IntegrityError,
    archive_file_hashes,
    download_bundle,
    github_release_url,
    list_index,
    pack_bundle,
    resolve_entry,
    sha256_file,
    update_index,
    verify_bundle,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
VERSION = json.loads((BUNDLES / "seq2seq_brain" / "configs" / "metadata.json").read_text())["version"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release folder like a GitHub release: the brain bundle's archive next to a model_info.json."""
    if not (BUNDLES / "seq2seq_brain" / "models" / "model.pt").is_file():
        pytest.skip("seq2seq_brain has no shipped weights")
    folder = tmp_path_factory.mktemp("release")
    archive = pack_bundle(BUNDLES / "seq2seq_brain", folder)
    update_index(folder / "model_info.json", archive)
    return folder, archive


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_committed_index_matches_the_bundles_in_the_repo(tmp_path):
    index = json.loads((BUNDLES / "model_info.json").read_text())
    for key, entry in index.items():
        archive = pack_bundle(BUNDLES / entry["name"], tmp_path)
        assert archive.name == f"{key}.zip" == entry["source"], (
            f"bundles/model_info.json lists {key} but bundles/{entry['name']} packs to {archive.name}: the committed "
            "index lists the versions in the repository; after `seq2seq zoo pack` remove the previous version's entry."
        )
        assert sha256_file(archive) == entry["sha256"], (
            f"bundles/{entry['name']} changed since bundles/model_info.json was written: bump the version and run "
            f"`seq2seq zoo pack bundles/{entry['name']} --out dist --index bundles/model_info.json`."
        )
        assert entry.get("files") == archive_file_hashes(archive), (
            f"bundles/model_info.json lists no or other per-file hashes for {key} (Hugging Face downloads and "
            f"`seq2seq zoo verify --index` check them): run `seq2seq zoo pack bundles/{entry['name']} --out dist "
            "--index bundles/model_info.json`."
        )
    assert {r["name"] for r in list_index(str(BUNDLES / "model_info.json"))} == {"seq2seq_brain", "seq2seq_breast"}


def test_download_from_index_path_and_file_url_then_load_with_monai(release, tmp_path):
    import monai

    folder, _ = release
    index_path = folder / "model_info.json"
    installed = download_bundle("seq2seq_brain", VERSION, tmp_path / "a", index=str(index_path))
    assert _tree(installed)["models/model.pt"] == (BUNDLES / "seq2seq_brain" / "models" / "model.pt").read_bytes()
    report = verify_bundle(installed)
    assert report["forward"]["targets"] == 4 and -1.0 <= report["forward"]["range"][0]

    again = download_bundle("seq2seq_brain", None, tmp_path / "b", index=index_path.as_uri())  # newest version
    assert _tree(again) == _tree(installed)
    network = monai.bundle.load(name="seq2seq_brain", bundle_dir=str(tmp_path / "b"), workflow_type="inference")
    x = torch.rand(1, 1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y = network(x, 1)
    assert y.shape == (1, 1, 3, 32, 32) and bool(torch.isfinite(y).all())


def test_https_index_and_github_release_fetch_through_the_downloader(release, tmp_path):
    folder, archive = release
    calls = []

    def serve(url, target, sha256):  # a stand-in for https: serves the release folder's files
        calls.append((url, sha256))
        shutil.copy(folder / Path(url).name, target)
        return target

    index_url = f"https://zoo.example.org/monai-seq2seq/v{VERSION}/model_info.json"
    entry = resolve_entry(index_url, "seq2seq_brain", downloader=serve)
    assert entry["source"] == f"https://zoo.example.org/monai-seq2seq/v{VERSION}/seq2seq_brain_v{VERSION}.zip"
    out = download_bundle("seq2seq_brain", bundle_dir=tmp_path / "https", index=index_url, downloader=serve)
    assert (out / "configs" / "metadata.json").is_file()
    assert calls[-1] == (entry["source"], sha256_file(archive))  # the hash travels with the request

    url = github_release_url(f"example-org/monai-seq2seq/v{VERSION}", "seq2seq_brain", VERSION)
    assert (
        url == f"https://github.com/example-org/monai-seq2seq/releases/download/v{VERSION}/seq2seq_brain_v{VERSION}.zip"
    )
    out = download_bundle(
        "seq2seq_brain",
        VERSION,
        tmp_path / "gh",
        source="github",
        repo=f"example-org/monai-seq2seq/v{VERSION}",
        sha256=sha256_file(archive),
        downloader=serve,
    )
    assert calls[-1][0] == url and (out / "models" / "model.pt").is_file()
    with pytest.raises(IntegrityError, match="never extracted unchecked"):
        download_bundle(
            "seq2seq_brain",
            VERSION,
            tmp_path / "gh2",
            source="github",
            repo=f"example-org/monai-seq2seq/v{VERSION}",
            downloader=serve,
        )


def test_bad_hash_or_unknown_version_leave_the_bundle_dir_as_it_was(release, tmp_path):
    folder, archive = release
    target = tmp_path / "bundles"
    (target / "seq2seq_brain").mkdir(parents=True)
    (target / "seq2seq_brain" / "keep.txt").write_text("previous install")
    before = _tree(target)
    bad_index = tmp_path / "model_info.json"
    bad_index.write_text(json.dumps({f"seq2seq_brain_v{VERSION}": {"source": archive.as_uri(), "sha256": "0" * 64}}))
    with pytest.raises(IntegrityError, match="sha256"):
        download_bundle("seq2seq_brain", bundle_dir=target, index=str(bad_index), overwrite=True)
    with pytest.raises(KeyError, match=rf"version 9.9.9 .* has \['{VERSION}'\]"):
        download_bundle("seq2seq_brain", "9.9.9", target, index=str(folder / "model_info.json"))
    with pytest.raises(KeyError, match="not in the zoo index"):
        download_bundle("seq2seq_other", None, target, index=str(folder / "model_info.json"))
    with pytest.raises(IntegrityError, match="exists"):
        download_bundle("seq2seq_brain", None, target, index=str(folder / "model_info.json"))
    with pytest.raises(ValueError, match="only https"):
        download_bundle("seq2seq_brain", None, target, url="http://example.org/x.zip", sha256="0" * 64, overwrite=True)
    assert _tree(target) == before
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def test_cli_list_download_verify_load(release, tmp_path):
    folder, _ = release
    zoo = Zoo()
    listing = zoo.list(str(folder / "model_info.json"))
    assert "seq2seq_brain" in listing and VERSION in listing
    path = zoo.download("seq2seq_brain", bundle_dir=str(tmp_path), index=str(folder / "model_info.json"))
    report = json.loads(zoo.verify(path, forward=False))
    assert report == {"name": "seq2seq_brain", "version": VERSION, "index": None}
    assert "Seq2Seq" in zoo.load("seq2seq_brain", bundle_dir=str(tmp_path))
    (Path(path) / "models" / "model.pt").write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        zoo.load("seq2seq_brain", bundle_dir=str(tmp_path))


@pytest.mark.parametrize("name,target,frames", [("seq2seq_brain", "T1Gd", 1), ("seq2seq_breast", "DCE", 6)])
def test_onnx_export_of_each_bundle_matches_eager(tmp_path, name, target, frames):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from monai_seq2seq.zoo.export import export_onnx
    from monai_seq2seq.zoo.verify import load_bundle_network

    bundle = BUNDLES / name
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip(f"{name} has no shipped weights")
    path = export_onnx(bundle, target, tmp_path / "model.onnx")  # checks itself on a second input size
    network, protocol = load_bundle_network(bundle)
    x = torch.rand(1, 1, 3, 48, 32) * 2 - 1
    (pred,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    assert pred.shape == (1, frames, 3, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(pred), network(x, protocol.index(target)), atol=1e-4, rtol=1e-4)
