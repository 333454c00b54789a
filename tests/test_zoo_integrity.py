import hashlib

import pytest
import torch

from monai_seq2seq.core.integrity import (
    IntegrityError,
    expected_hash,
    load_weights,
    name_hash_prefix,
    record_hash,
    sha256_file,
    sha256_prefix_matches,
)


def _bundle(tmp_path):
    (tmp_path / "models").mkdir()
    weights = tmp_path / "models" / "model.pt"
    torch.save({"w": torch.arange(4.0)}, weights)
    (tmp_path / "large_files.yml").write_text(
        f"large_files:\n  - path: models/model.pt\n    url: file:///nowhere/model.pt\n"
        f"    hash_val: {sha256_file(weights)}\n    hash_type: sha256\n"
    )
    return weights


def test_load_checked_weights(tmp_path):
    weights = _bundle(tmp_path)
    state = load_weights(weights, bundle_dir=tmp_path)
    assert torch.equal(state["w"], torch.arange(4.0))
    assert expected_hash(tmp_path) == sha256_file(weights)


def test_tampered_truncated_and_unchecked(tmp_path):
    weights = _bundle(tmp_path)
    data = weights.read_bytes()
    weights.write_bytes(data[:-10])
    with pytest.raises(IntegrityError, match="corrupted or was replaced"):
        load_weights(weights, bundle_dir=tmp_path)
    with pytest.raises(IntegrityError, match="no sha256"):
        load_weights(weights)
    with pytest.raises(IntegrityError, match="not a sha256"):
        load_weights(weights, sha256="abc")
    (tmp_path / "large_files.yml").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        load_weights(weights, bundle_dir=tmp_path)


def test_pickled_code_is_refused_even_with_matching_hash(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, path)
    with pytest.raises(Exception, match="(?i)weights only|unsupported|global"):
        load_weights(path, sha256=sha256_file(path))


def test_record_hash_updates_large_files(tmp_path):
    weights = _bundle(tmp_path)
    torch.save({"w": torch.ones(3)}, weights)
    with pytest.raises(IntegrityError):
        load_weights(weights, bundle_dir=tmp_path)  # the old record no longer matches
    digest = record_hash(tmp_path)
    assert digest == sha256_file(weights) and expected_hash(tmp_path) == digest
    assert "file:///nowhere/model.pt" in (tmp_path / "large_files.yml").read_text()  # the url is kept
    assert torch.equal(load_weights(weights, bundle_dir=tmp_path)["w"], torch.ones(3))


def test_sha256_file_is_hashlib_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 5000)  # more than one 1 MiB chunk
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_torchvision_name_prefix(tmp_path):
    assert name_hash_prefix("vgg19-dcbb9e9d.pth") == "dcbb9e9d"
    assert name_hash_prefix("/cache/alexnet-owt-7be5be79.pth") == "7be5be79"
    # no "-<8 characters>" at the end of the name: nothing to check ("backbone" alone is 8 characters long)
    assert name_hash_prefix("backbone.pth") is None and name_hash_prefix("vgg19-abc.pth") is None
    path = tmp_path / "weights.pth"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert sha256_prefix_matches(path, digest[:8]) and sha256_prefix_matches(path, digest[:8].upper())
    assert not sha256_prefix_matches(path, "00000000" if not digest.startswith("00000000") else "11111111")
