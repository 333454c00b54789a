"""Integrity of weight files: sha256 first, then ``torch.load(weights_only=True)``; nothing else is trusted."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = [
    "IntegrityError",
    "sha256_file",
    "verify_sha256",
    "name_hash_prefix",
    "sha256_prefix_matches",
    "expected_hash",
    "load_weights",
    "record_hash",
]


class IntegrityError(ValueError):
    """A file does not match its recorded hash, or the record is missing or malformed."""


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks: the one digest function of the package.

    MONAI's ``monai.apps.utils.check_hash`` computes the same digest but returns only a bool, prints an INFO line
    to stdout on every success (it would change what ``make demo`` prints) and turns a read error into ``False``;
    our callers need the digest itself (error messages, ``large_files.yml``, zoo indexes), so it is computed here.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> str:
    """Raise :class:`IntegrityError` unless ``path``'s sha256 equals ``expected``; return the hash."""
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"{path} does not exist.")
    expected = str(expected).lower().strip()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise IntegrityError(f"the recorded sha256 for {path.name} is not a sha256 hex digest: {expected!r}.")
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path} has sha256 {actual}, expected {expected}: the file is corrupted or was replaced; refusing it."
        )
    return actual


def name_hash_prefix(path: str | Path) -> str | None:
    """The hash prefix in a torchvision-style weight file name (``vgg19-dcbb9e9d.pth`` -> ``"dcbb9e9d"``), or None.

    torchvision names its weight files ``<name>-<first 8 hex digits of the sha256>.pth``; a name whose last
    ``-``-separated part is not 8 characters long carries no prefix.
    """
    stem = Path(path).stem
    if "-" not in stem:
        return None
    prefix = stem.rsplit("-", 1)[-1]
    return prefix if len(prefix) == 8 else None


def sha256_prefix_matches(path: str | Path, prefix: str) -> bool:
    """Whether ``path``'s sha256 starts with ``prefix`` (e.g. from :func:`name_hash_prefix`)."""
    return sha256_file(path).startswith(str(prefix).lower())


def expected_hash(bundle_dir: str | Path, relative_path: str = "models/model.pt") -> str:
    """The sha256 of a bundle file as recorded in the bundle's ``large_files.yml``."""
    bundle_dir = Path(bundle_dir)
    record = bundle_dir / "large_files.yml"
    if not record.is_file():
        raise IntegrityError(f"{record} is missing: no recorded hash for {relative_path}.")
    data = yaml.safe_load(record.read_text()) or {}
    for entry in data.get("large_files", []):
        if Path(entry.get("path", "")) == Path(relative_path):
            if str(entry.get("hash_type", "")).lower() != "sha256":
                raise IntegrityError(f"{record}: {relative_path} must be recorded with hash_type sha256.")
            return str(entry["hash_val"])
    raise IntegrityError(f"{record} has no entry for {relative_path}.")


def load_weights(
    path: str | Path, sha256: str | None = None, bundle_dir: str | Path | None = None, map_location: Any = "cpu"
) -> dict[str, torch.Tensor]:
    """Load a state dict after checking its sha256.

    Args:
        path: the weights file.
        sha256: expected hash; or give ``bundle_dir`` to read it from the bundle's ``large_files.yml``.
        bundle_dir: a bundle folder whose ``large_files.yml`` records ``path`` (relative to the bundle).
        map_location: as in ``torch.load``.

    Raises:
        IntegrityError: no hash to check against, or a mismatch.
    """
    path = Path(path)
    if sha256 is None:
        if bundle_dir is None:
            raise IntegrityError(f"no sha256 given for {path}: refusing to load unchecked weights.")
        try:
            relative = path.resolve().relative_to(Path(bundle_dir).resolve())
        except ValueError:
            raise IntegrityError(
                f"{path} is not inside the bundle {bundle_dir}, so the bundle records no hash for it: give its "
                f"sha256 (`sha256sum {path}`; bundle configs: --weights_sha256, or --init_weights_sha256 in "
                f"train.json) to load it."
            ) from None
        sha256 = expected_hash(bundle_dir, str(relative))
    verify_sha256(path, sha256)
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise IntegrityError(f"{path} does not hold a state dict.")
    return state


def record_hash(bundle_dir: str | Path, relative_path: str = "models/model.pt", url: str | None = None) -> str:
    """Write (or update) the ``large_files.yml`` entry of a bundle file with its sha256; returns the hash.

    Args:
        bundle_dir: the bundle folder.
        relative_path: the file, relative to the bundle.
        url: where the file can be downloaded (kept if already recorded; default: a path inside the bundle).
    """
    from .files import atomic_write_text

    bundle_dir = Path(bundle_dir)
    target = bundle_dir / relative_path
    if not target.is_file():
        raise IntegrityError(f"{target} does not exist.")
    record = bundle_dir / "large_files.yml"
    data = (yaml.safe_load(record.read_text()) or {}) if record.is_file() else {}
    entries = [e for e in data.get("large_files", []) if Path(e.get("path", "")) != Path(relative_path)]
    previous = next((e for e in data.get("large_files", []) if Path(e.get("path", "")) == Path(relative_path)), {})
    digest = sha256_file(target)
    entries.append(
        {
            "path": relative_path,
            "url": url or previous.get("url", relative_path),
            "hash_val": digest,
            "hash_type": "sha256",
        }
    )
    atomic_write_text(record, yaml.safe_dump({"large_files": entries}, sort_keys=False))
    return digest
