"""Verify a bundle folder the way the MONAI model zoo does, offline: configs against the allow-list, files, hashes,
metadata, a forward pass; and against a zoo index entry (name, version, per-file hashes, the archive's hash)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable
from pathlib import Path

import torch

from monai_seq2seq.core.integrity import IntegrityError, load_weights, sha256_file, verify_sha256
from monai_seq2seq.core.trust import check_bundle_configs

from .pack import archive_file_hashes, bundle_files, check_bundle

__all__ = [
    "SCHEMA_PATH",
    "verify_metadata_offline",
    "load_plain_weights",
    "load_bundle_network",
    "verify_forward",
    "verify_files",
    "verify_against_index",
    "verify_bundle",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "meta_schema_20240725.json"


def verify_metadata_offline(bundle_dir: str | Path) -> None:
    """``monai.bundle.verify_metadata`` against the schema kept in the package (no download).

    Raises:
        ValueError: the metadata fails the schema (MONAI's message).
    """
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(Path(bundle_dir) / "configs" / "metadata.json"), filepath=str(SCHEMA_PATH))


def load_plain_weights(path: Path, bundle_dir: Path) -> None:
    """The weights load with ``weights_only=True`` as a state dict (a pickle that would run code is refused).

    Raises:
        IntegrityError: a wrong sha256 (against ``large_files.yml``), or no plain state dict.
    """
    try:
        load_weights(path, bundle_dir=bundle_dir)
    except IntegrityError:
        raise
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise IntegrityError(
            f"{path} is no plain state dict loadable with torch.load(weights_only=True) ({first}); refusing it."
        ) from None


def load_bundle_network(bundle_dir: str | Path, device: str = "cpu", trust_modules: str | Iterable[str] | None = None):
    """``(network, protocol)``: ``network_def`` of ``configs/inference.json``, verified weights loaded, eval mode.

    The bundle's configs pass the allow-list (:func:`~monai_seq2seq.core.trust.check_bundle_configs`) before the
    config is parsed into objects.
    """
    from monai.bundle import ConfigParser

    from monai_seq2seq.core.protocols import get_protocol

    bundle_dir = Path(bundle_dir).resolve()
    check_bundle_configs(bundle_dir, trust_modules)
    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle_dir)
    network = parser.get_parsed_content("network_def", instantiate=True).to(device).eval()
    weights = bundle_dir / "models" / "model.pt"
    if weights.is_file():
        network.load_state_dict(load_weights(weights, bundle_dir=bundle_dir, map_location=device))
    return network, get_protocol(parser["protocol"])


def verify_forward(
    bundle_dir: str | Path, size: int = 32, device: str = "cpu", trust_modules: str | Iterable[str] | None = None
) -> dict:
    """Build ``network_def`` from ``configs/inference.json``, load the verified weights, run every target once.

    Returns:
        ``{"input_shape", "output_shape", "targets", "range"}`` of the check.

    Raises:
        IntegrityError: the weights' sha256 differs from ``large_files.yml``.
        AssertionError: an output of the wrong shape, non-finite, or outside the tanh range [-1, 1].
    """
    network, _ = load_bundle_network(bundle_dir, device, trust_modules)
    meta = json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text())
    channels = int(meta["network_data_format"]["inputs"]["image"]["num_channels"])
    grid = [size] * int(getattr(network, "spatial_dims", 2))  # 2.5D slab or 3D volume
    x = torch.rand(1, 1, channels, *grid, device=device) * 2 - 1  # one 3D source slice stack
    n_targets = int(network.num_sequences)
    low, high = float("inf"), float("-inf")
    shapes = []
    with torch.no_grad():
        for target in range(n_targets):
            y = network(x, target)
            assert torch.isfinite(y).all(), f"non-finite output for target {target}"
            assert y.shape[-1 - len(grid) :] == (channels, *grid), f"target {target}: output {tuple(y.shape)}"
            low, high = min(low, float(y.min())), max(high, float(y.max()))
            shapes.append(tuple(y.shape))
    assert -1.0 - 1e-5 <= low and high <= 1.0 + 1e-5, f"output range [{low}, {high}] outside [-1, 1]"
    return {"input_shape": tuple(x.shape), "output_shape": shapes, "targets": n_targets, "range": [low, high]}


def verify_files(bundle_dir: str | Path, files: dict[str, str], source: str = "the index entry") -> int:
    """Every file of the bundle (as packed: no ``eval/``, logs, training checkpoints) against ``{path: sha256}``
    of a zoo index entry: none missing, none changed, none added. Returns the number of files checked.

    Raises:
        IntegrityError: the files that differ, are missing or are not listed.
    """
    bundle_dir = Path(bundle_dir)
    present = {p.as_posix() for p in bundle_files(bundle_dir)}
    missing = sorted(set(files) - present)
    extra = sorted(present - set(files))
    changed = sorted(f for f in set(files) & present if sha256_file(bundle_dir / f) != str(files[f]).lower())
    if missing or extra or changed:
        raise IntegrityError(
            f"bundle {bundle_dir} differs from {source}: changed {changed}, missing {missing}, not listed "
            f"{extra}; refusing it."
        )
    return len(files)


def verify_against_index(bundle_dir: str | Path, index: str, archive: str | Path | None = None, **kwargs) -> dict:
    """Check a bundle against the entry of its metadata name and version in a zoo index.

    Args:
        bundle_dir: the bundle folder.
        index: the zoo index (path, file:// or https URL).
        archive: the bundle's archive: its sha256 must be the entry's, and its files the folder's.
        kwargs: passed to :func:`~monai_seq2seq.zoo.index.resolve_entry` (e.g. ``downloader``).

    Returns:
        ``{"entry": "<name>_v<version>", "files": <files checked against the entry, or None>, "archive": sha256}``.

    Raises:
        IntegrityError: the name/version is not in the index, the archive's hash differs, or files differ.
    """
    from .index import resolve_entry

    meta = json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text())
    name, version = str(meta.get("name", Path(bundle_dir).name)), str(meta.get("version"))
    try:
        entry = resolve_entry(index, name, version, **kwargs)
    except KeyError as err:
        raise IntegrityError(
            f"bundle {bundle_dir} ({name} version {version}) is not vouched for by {index}: {err.args[0]}"
        ) from None
    report = {"entry": f"{name}_v{version}", "files": None, "archive": None}
    if entry.get("files"):
        report["files"] = verify_files(bundle_dir, entry["files"])
    if archive is not None:
        report["archive"] = verify_sha256(archive, entry["sha256"])
        packed = archive_file_hashes(archive)
        verify_files(bundle_dir, packed, f"the archive {Path(archive).name}")
        report["files"] = report["files"] or len(packed)
    return report


def verify_bundle(
    bundle_dir: str | Path,
    forward: bool = True,
    index: str | None = None,
    archive: str | Path | None = None,
    trust_modules: str | Iterable[str] | None = None,
) -> dict:
    """Every check a downloaded bundle must pass: configs against the allow-list (before anything is parsed into
    objects), required files, version in the changelog, the weights' sha256 then a ``weights_only`` load, metadata
    against the schema, the index entry (with ``index``; and the archive's hash with ``archive``), a forward pass.

    Returns:
        a report: ``{"name", "version", "index": {...} or None, "forward": {...}}``.

    Raises:
        UntrustedConfigError: a config names code outside the allow-list.
        IntegrityError: a file, hash, version or index entry does not match.
    """
    if archive is not None and index is None:
        raise ValueError("--archive is checked against an index entry: give --index too.")
    check_bundle_configs(bundle_dir, trust_modules)
    meta = check_bundle(bundle_dir)
    load_plain_weights(Path(bundle_dir) / "models" / "model.pt", Path(bundle_dir))
    verify_metadata_offline(bundle_dir)
    report = {"name": meta.get("name", Path(bundle_dir).name), "version": meta["version"]}
    report["index"] = verify_against_index(bundle_dir, index, archive) if index is not None else None
    if forward:
        report["forward"] = verify_forward(bundle_dir, trust_modules=trust_modules)
    return report
