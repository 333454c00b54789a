import json
import zipfile
from pathlib import Path

import pytest
import torch

from monai_seq2seq.core.integrity import IntegrityError, record_hash, sha256_file
from monai_seq2seq.zoo.pack import check_bundle, pack_bundle, safe_extract, update_index

BRAIN = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain"


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tiny_bundle(root: Path) -> Path:
    bundle = root / "tiny_bundle"
    for f in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md"):
        (bundle / f).parent.mkdir(parents=True, exist_ok=True)
        (bundle / f).write_text("{}" if f.endswith(".json") else "text")
    (bundle / "configs/metadata.json").write_text(
        '{"name": "tiny_bundle", "version": "0.2.0", "changelog": {"0.2.0": "x"}}'
    )
    (bundle / "models").mkdir()
    torch.save({"w": torch.ones(2)}, bundle / "models" / "model.pt")
    torch.save({"big": torch.ones(2)}, bundle / "models" / "checkpoint_final.pt")
    (bundle / "eval").mkdir()
    (bundle / "eval" / "x.nii.gz").write_text("output")
    record_hash(bundle)
    return bundle


def test_pack_and_extract_round_trip(tmp_path):
    bundle = _tiny_bundle(tmp_path)
    archive = pack_bundle(bundle, tmp_path / "dist")
    assert archive.name == "tiny_bundle_v0.2.0.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert all(n.startswith("tiny_bundle/") for n in names)
    assert "tiny_bundle/models/checkpoint_final.pt" not in names and not any("/eval/" in n for n in names)
    index = update_index(tmp_path / "model_info.json", archive, "file://" + str(archive))
    out = safe_extract(archive, tmp_path / "installed", sha256=index["tiny_bundle_v0.2.0"]["sha256"])
    assert _tree(out)["models/model.pt"] == (bundle / "models" / "model.pt").read_bytes()
    check_bundle(out)


@pytest.mark.parametrize("name", ["seq2seq_brain", "seq2seq_breast"])
def test_real_bundles_pass_the_checks(name):
    bundle = BRAIN.parent / name
    if not (bundle / "models" / "model.pt").is_file():
        pytest.skip(f"{name} has no shipped weights")
    meta = check_bundle(bundle)
    assert meta["name"] == name and meta["version"] in meta["changelog"]


def test_a_config_macro_naming_a_file_is_refused(tmp_path):
    """``%file#key`` resolves against the working directory: a bundle using one is not self-contained."""
    bundle = _tiny_bundle(tmp_path)
    (bundle / "configs" / "evaluate.json").write_text(
        json.dumps({"handlers": [{"_target_": "X", "writer": "%../../transforms/brain_preprocessing.json#load"}]})
    )
    with pytest.raises(IntegrityError, match=r"evaluate.json: %../../transforms/brain_preprocessing.json#load"):
        pack_bundle(bundle, tmp_path / "dist")
    (bundle / "configs" / "evaluate.json").write_text(json.dumps({"net": "%network_def", "other": "%#net"}))
    check_bundle(bundle)  # macros within the config itself are fine


@pytest.mark.parametrize("attack", ["tampered", "truncated", "wrong_hash", "escape", "link", "two_tops"])
def test_bad_archives_leave_the_target_as_it_was(tmp_path, attack):
    bundle = _tiny_bundle(tmp_path)
    archive = pack_bundle(bundle, tmp_path / "dist")
    target = tmp_path / "installed"
    (target / "tiny_bundle").mkdir(parents=True)
    (target / "tiny_bundle" / "keep.txt").write_text("previous install")
    before = _tree(target)
    digest = sha256_file(archive)
    if attack == "tampered":
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
    elif attack == "truncated":
        archive.write_bytes(archive.read_bytes()[:-200])
    elif attack == "wrong_hash":
        digest = "0" * 64
    else:
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("tiny_bundle/configs/metadata.json", "{}")
            if attack == "escape":
                zf.writestr("tiny_bundle/../../outside.txt", "x")
            elif attack == "link":
                info = zipfile.ZipInfo("tiny_bundle/link")
                info.external_attr = 0o120777 << 16
                zf.writestr(info, "/etc/passwd")
            else:
                zf.writestr("other/file.txt", "x")
        digest = sha256_file(archive)
    with pytest.raises(IntegrityError):
        safe_extract(archive, target, sha256=digest, overwrite=True)
    assert _tree(target) == before
    assert not (tmp_path / "outside.txt").exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def test_check_bundle_names_problems(tmp_path):
    bundle = _tiny_bundle(tmp_path)
    (bundle / "configs" / "metadata.json").write_text('{"version": "0.3.0", "changelog": {"0.2.0": "x"}}')
    with pytest.raises(IntegrityError, match="not listed in the changelog"):
        check_bundle(bundle)
    (bundle / "LICENSE").unlink()
    with pytest.raises(IntegrityError, match="LICENSE"):
        check_bundle(bundle)


@pytest.mark.parametrize(
    "name,geometry,dropped",
    [
        ("seq2seq_brain", ["--phantom_spacing", "4.0"], "T1Gd"),
        ("seq2seq_breast", ["--phantom_shape", "[80, 48, 32]"], "DCE"),
    ],
)
def test_monai_download_load_and_run_offline(tmp_path, name, geometry, dropped):
    import subprocess
    import sys

    import monai

    source = BRAIN.parent / name
    if not (source / "models" / "model.pt").is_file():
        pytest.skip(f"{name} has no shipped weights")
    version = json.loads((source / "configs" / "metadata.json").read_text())["version"]
    archive = pack_bundle(source, tmp_path / "dist")
    bundles = tmp_path / "bundles"
    monai.bundle.download(name=name, version=version, url=archive.as_uri(), bundle_dir=str(bundles))
    net = monai.bundle.load(name=name, bundle_dir=str(bundles), workflow_type="inference")
    assert isinstance(net, torch.nn.Module)
    with torch.no_grad():
        y = net.eval()(torch.rand(1, 3, 32, 32) * 2 - 1, 1)  # the target as a plain int
    assert y.shape == (1, 3, 32, 32) and torch.isfinite(y).all()
    root = bundles / name
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            str(root / "configs" / "inference.json"),
            "--bundle_root",
            str(root),
            "--output_dir",
            str(out),
            "--num_subjects",
            "1",
            *geometry,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(out.rglob(f"*_{dropped}_synthetic.nii.gz"))) == 1
    if name != "seq2seq_brain":
        return  # one composed config is enough (and the breast all-pairs analysis is slow on a CPU)
    composed = "['configs/inference.json','configs/evaluate.json']"  # as documented, from the bundle folder
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", composed, "--num_subjects", "1", *geometry],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| T1 -> T1Gd |" in (root / "eval" / "evaluation" / "metrics.md").read_text()


def test_zoo_cli_pack_install_check(tmp_path):
    from monai_seq2seq.cli.zoo import Zoo

    bundle = _tiny_bundle(tmp_path)
    zoo = Zoo()
    archive = zoo.pack(str(bundle), out=str(tmp_path / "dist"), index=str(tmp_path / "model_info.json"))
    # the tiny bundle has no network: the model-zoo checks (schema, forward pass) are left out, the rest runs
    installed = zoo.install(
        archive, bundle_dir=str(tmp_path / "inst"), index=str(tmp_path / "model_info.json"), verify=False
    )
    assert "ok (version 0.2.0)" in zoo.check(installed)
    (tmp_path / "model_info.json").write_text('{"tiny_bundle_v0.2.0": {"source": "x", "sha256": "' + "1" * 64 + '"}}')
    with pytest.raises(IntegrityError, match="corrupted or was replaced"):
        zoo.install(archive, bundle_dir=str(tmp_path / "inst2"), index=str(tmp_path / "model_info.json"), verify=False)
    assert not (tmp_path / "inst2").exists() or not any((tmp_path / "inst2").iterdir())
