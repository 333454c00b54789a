"""Pack a bundle folder into ``<name>_v<version>.zip`` and extract such archives safely."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from monai_seq2seq.core.files import atomic_write, atomic_write_text
from monai_seq2seq.core.integrity import IntegrityError, expected_hash, sha256_file, verify_sha256

from .configs import external_macros

__all__ = ["REQUIRED_FILES", "check_bundle", "pack_bundle", "safe_extract", "update_index"]

REQUIRED_FILES = ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md")
_EXCLUDED_PARTS = {"eval", "logs", "__pycache__", ".ipynb_checkpoints"}


def check_bundle(bundle_dir: str | Path) -> dict:
    """Required files, self-contained configs, version listed in the changelog, weights matching
    ``large_files.yml``; returns metadata.

    Raises:
        IntegrityError: what is missing or inconsistent, named; a config macro that names a file (``%file#key``
            resolves against the working directory, so the bundle would not run from anywhere else and could need
            a file the archive does not hold).
    """
    bundle_dir = Path(bundle_dir)
    missing = [f for f in REQUIRED_FILES if not (bundle_dir / f).is_file()]
    if missing:
        raise IntegrityError(f"bundle {bundle_dir} lacks required file(s): {missing}.")
    macros = external_macros(bundle_dir)
    if macros:
        raise IntegrityError(
            f"bundle {bundle_dir}: config macros name files {macros}; a bundle must be self-contained: write the "
            "piece into the config, or compose configs as a list (configs/inference.json + an override file)."
        )
    meta = json.loads((bundle_dir / "configs" / "metadata.json").read_text())
    version = str(meta.get("version", ""))
    if version not in meta.get("changelog", {}):
        raise IntegrityError(f"bundle {bundle_dir}: version {version!r} is not listed in the changelog.")
    if not (bundle_dir / "models" / "model.pt").is_file():
        raise IntegrityError(f"bundle {bundle_dir} has no models/model.pt.")
    verify_sha256(bundle_dir / "models" / "model.pt", expected_hash(bundle_dir))
    return meta


def _members(bundle_dir: Path) -> list[Path]:
    files = []
    for path in sorted(bundle_dir.rglob("*")):
        relative = path.relative_to(bundle_dir)
        if set(relative.parts) & _EXCLUDED_PARTS or path.is_symlink() or not path.is_file():
            continue
        if relative.parts[0] == "models" and path.name != "model.pt":
            continue  # training checkpoints are not part of a release
        files.append(relative)
    return files


def pack_bundle(bundle_dir: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` holding one top-level ``<name>/`` folder.

    Evaluation outputs, logs and training checkpoints are left out; the bundle is checked first
    (:func:`check_bundle`). The archive is reproducible (sorted members, fixed time stamps and modes), so its
    sha256 in a committed index can be re-derived from a clean clone. Written atomically.
    """
    bundle_dir = Path(bundle_dir)
    meta = check_bundle(bundle_dir)
    name = name or meta.get("name") or bundle_dir.name
    target = Path(out_dir) / f"{name}_v{meta['version']}.zip"

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in sorted(_members(bundle_dir), key=lambda p: p.as_posix()):
                # fixed time stamp and mode: the same files give the same archive and the same sha256
                info = zipfile.ZipInfo(f"{name}/{relative.as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, (bundle_dir / relative).read_bytes(), compresslevel=6)

    return atomic_write(target, write)


def update_index(index_path: str | Path, archive: str | Path, source: str | None = None) -> dict:
    """Record ``<name>_v<version>`` -> {"name", "version", "source", "sha256"} of an archive in a zoo index.

    Args:
        index_path: the index (``model_info.json``), created if missing.
        archive: a packed bundle ``<name>_v<version>.zip``.
        source: where users fetch it (a URL, or a path relative to the index); ``None``: the archive's file name,
            i.e. a release asset published next to the index.
    """
    index_path = Path(index_path)
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    key = Path(archive).name[: -len(".zip")]
    name, _, version = key.rpartition("_v")
    index[key] = {
        "name": name,
        "version": version,
        "source": source or Path(archive).name,
        "sha256": sha256_file(archive),
    }
    atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def _check_members(archive: zipfile.ZipFile) -> str:
    tops = set()
    for info in archive.infolist():
        name = info.filename
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise IntegrityError(f"archive member {name!r} would escape the target folder.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise IntegrityError(f"archive member {name!r} is a link; links are refused.")
        if parts:
            tops.add(parts[0])
    if len(tops) != 1:
        raise IntegrityError(f"a bundle archive must hold exactly one top-level folder, found {sorted(tops)}.")
    return tops.pop()


def safe_extract(
    archive: str | Path, target_dir: str | Path, sha256: str | None = None, overwrite: bool = False
) -> Path:
    """Extract a bundle archive into ``target_dir/<name>`` only if everything checks out.

    The sha256 (when given) is checked before the archive is opened; members with absolute paths, ``..`` or links,
    or more than one top-level folder, are refused; extraction goes to a temporary folder beside the target and is
    renamed into place, so on any error ``target_dir`` is left exactly as it was.

    Returns:
        The extracted bundle folder.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    if sha256 is not None:
        verify_sha256(archive, sha256)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise IntegrityError(f"{archive} is not a readable zip archive: {err}.") from err
    with zf:
        top = _check_members(zf)
        broken = zf.testzip()
        if broken is not None:
            raise IntegrityError(f"{archive}: member {broken!r} is corrupted (CRC mismatch).")
        final = target_dir / top
        if final.exists() and not overwrite:
            raise IntegrityError(f"{final} exists; pass overwrite=True to replace it.")
        target_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=target_dir))
        try:
            zf.extractall(staging)
            backup = None
            if final.exists():
                backup = target_dir / f".{top}.old"
                os.replace(final, backup)
            os.replace(staging / top, final)
            if backup is not None:
                shutil.rmtree(backup)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final
