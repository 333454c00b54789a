"""Pack a bundle folder into ``<name>_v<version>.zip`` and extract such archives safely."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from monai_seq2seq.core.files import atomic_write, atomic_write_text
from monai_seq2seq.core.integrity import IntegrityError, expected_hash, sha256_file, verify_sha256

from .configs import external_macros

__all__ = [
    "REQUIRED_FILES",
    "ArchiveLimits",
    "archive_file_hashes",
    "bundle_files",
    "check_archive",
    "check_bundle",
    "extract_archive",
    "open_archive",
    "pack_bundle",
    "replace_folder",
    "safe_extract",
    "update_index",
]

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


def bundle_files(bundle_dir: str | Path) -> list[Path]:
    """The files of a bundle folder that a release holds (relative paths): no ``eval/``, logs, caches, links or
    training checkpoints."""
    bundle_dir = Path(bundle_dir)
    files = []
    for path in sorted(bundle_dir.rglob("*")):
        relative = path.relative_to(bundle_dir)
        hidden = any(part.startswith(".") for part in relative.parts)  # .gitattributes, .cache of a download
        if set(relative.parts) & _EXCLUDED_PARTS or hidden or path.is_symlink() or not path.is_file():
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
            for relative in sorted(bundle_files(bundle_dir), key=lambda p: p.as_posix()):
                # fixed time stamp and mode: the same files give the same archive and the same sha256
                info = zipfile.ZipInfo(f"{name}/{relative.as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, (bundle_dir / relative).read_bytes(), compresslevel=6)

    return atomic_write(target, write)


def update_index(index_path: str | Path, archive: str | Path, source: str | None = None) -> dict:
    """Record ``<name>_v<version>`` -> {"name", "version", "source", "sha256", "files"} of an archive in a zoo index.

    ``files`` maps every file of the bundle (path inside the bundle folder) to its sha256, so a bundle that does not
    come as this archive (Hugging Face, a folder) can be checked file by file against the index.

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
        "files": archive_file_hashes(archive),
    }
    atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def archive_file_hashes(archive: str | Path, limits: ArchiveLimits | None = None) -> dict[str, str]:
    """``{path inside the bundle folder: sha256}`` of every file of a bundle archive (checked, read in chunks)."""
    hashes = {}
    with open_archive(archive) as zf:
        check_archive(zf, limits)
        for info in zf.infolist():
            if info.is_dir():
                continue
            digest = hashlib.sha256()
            with zf.open(info) as member:
                for chunk in iter(lambda: member.read(1 << 20), b""):
                    digest.update(chunk)
            hashes[PurePosixPath(*PurePosixPath(info.filename).parts[1:]).as_posix()] = digest.hexdigest()
    return hashes


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to, checked from its central directory before anything is extracted and again on
    the bytes written (declared sizes are not trusted). The defaults fit the shipped bundles (about 11 MB, 12
    members, compression ratio about 1.1) with a wide margin.

    Args:
        max_total_bytes: total uncompressed size.
        max_members: number of members (files and folders).
        max_ratio: uncompressed / compressed size, of any member and of the whole archive.
        ratio_floor_bytes: members (and archives) at most this large are not ratio-checked (a small, very
            compressible JSON file is no bomb).
    """

    max_total_bytes: int = 2 << 30
    max_members: int = 1000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 4 << 20


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_KINDS = (0, stat.S_IFREG, stat.S_IFDIR)  # no mode (DOS archives), a file, a folder


def open_archive(archive: str | Path) -> zipfile.ZipFile:
    """The zip file, or :class:`IntegrityError` naming why it is unreadable (truncated, not a zip)."""
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise IntegrityError(f"{archive} is not a readable zip archive: {err}.") from err


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    name = info.filename
    parts = PurePosixPath(name).parts
    if (
        not parts
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or (len(name) > 1 and name[1] == ":")
        or any(p in ("..", ".") for p in name.rstrip("/").split("/"))
        or "//" in name
    ):
        raise IntegrityError(f"archive member {name!r} would escape the target folder or is not a plain relative path.")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise IntegrityError(f"archive member {name!r} is a link; links are refused.")
    if kind not in _KINDS:
        raise IntegrityError(f"archive member {name!r} is a special file (mode {oct(kind)}); refused.")
    if info.flag_bits & 0x1:
        raise IntegrityError(f"archive member {name!r} is encrypted; refused.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise IntegrityError(
            f"archive member {name!r} uses compression method {info.compress_type}; only stored "
            "and deflated members are extracted."
        )
    return parts


def _ratio_exceeds(size: int, compressed: int, limits: ArchiveLimits) -> bool:
    return size > limits.ratio_floor_bytes and size > limits.max_ratio * max(compressed, 1)


def check_archive(archive: zipfile.ZipFile, limits: ArchiveLimits | None = None) -> str:
    """The checks made on an archive's central directory before anything is extracted; returns its one top folder.

    Refused: more than ``max_members`` members, a total size over ``max_total_bytes``, a member or archive
    compressed more than ``max_ratio``, duplicate members (also differing only in case), absolute paths, ``..``,
    backslashes, links, special files, encrypted members, other compressions than stored/deflated, more than one
    top-level folder, a top-level folder that is not a plain name.

    Raises:
        IntegrityError: the first problem, named.
    """
    limits = limits or ArchiveLimits()
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise IntegrityError(f"the archive has {len(infos)} members, more than the limit of {limits.max_members}.")
    tops, seen, total, compressed = set(), set(), 0, 0
    for info in infos:
        parts = _member_parts(info)
        key = info.filename.rstrip("/").casefold()
        if key in seen:
            raise IntegrityError(f"archive member {info.filename!r} is there twice; duplicate members are refused.")
        seen.add(key)
        tops.add(parts[0])
        total, compressed = total + info.file_size, compressed + info.compress_size
        if _ratio_exceeds(info.file_size, info.compress_size, limits):
            raise IntegrityError(
                f"archive member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} times "
                f"({info.file_size} bytes), more than the limit of {limits.max_ratio:g} (a zip bomb?)."
            )
    if total > limits.max_total_bytes:
        raise IntegrityError(f"the archive expands to {total} bytes, more than the limit of {limits.max_total_bytes}.")
    if _ratio_exceeds(total, compressed, limits):
        raise IntegrityError(
            f"the archive expands {total / max(compressed, 1):.0f} times, more than the limit of "
            f"{limits.max_ratio:g} (a zip bomb?)."
        )
    if len(tops) != 1:
        raise IntegrityError(f"a bundle archive must hold exactly one top-level folder, found {sorted(tops)}.")
    top = tops.pop()
    if not _NAME.fullmatch(top):
        raise IntegrityError(f"the archive's top-level folder {top!r} is not a plain bundle name.")
    return top


def extract_archive(archive: zipfile.ZipFile, target: str | Path, limits: ArchiveLimits | None = None) -> None:
    """Extract a checked archive (:func:`check_archive`) into the empty folder ``target``, counting the bytes
    written: a member that yields more or fewer bytes than declared, a CRC mismatch, or a total over the limit
    stops the extraction (the caller removes ``target``).

    Raises:
        IntegrityError: the member at fault.
    """
    limits = limits or ArchiveLimits()
    target = Path(target)
    total = 0
    for info in archive.infolist():
        dest = target.joinpath(*_member_parts(info))
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with archive.open(info) as source, open(dest, "xb") as sink:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    written, total = written + len(chunk), total + len(chunk)
                    if written > info.file_size or total > limits.max_total_bytes:
                        raise IntegrityError(
                            f"archive member {info.filename!r} expands past its declared size or the archive past "
                            f"{limits.max_total_bytes} bytes; extraction stopped."
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, FileExistsError) as err:
            raise IntegrityError(f"archive member {info.filename!r} is corrupted or repeated: {err}.") from err
        if written != info.file_size:
            raise IntegrityError(f"archive member {info.filename!r} holds {written} bytes, declared {info.file_size}.")


def replace_folder(staged: Path, final: Path, trash: Path) -> None:
    """Put ``staged`` at ``final``; an existing ``final`` is moved to ``trash`` first and moved back if the rename
    fails (both renames stay inside one folder, so each is atomic)."""
    backup = None
    if final.exists():
        backup = trash / f"previous-{final.name}"
        os.replace(final, backup)
    try:
        os.replace(staged, final)
    except OSError:
        if backup is not None:
            os.replace(backup, final)
        raise


def safe_extract(
    archive: str | Path,
    target_dir: str | Path,
    sha256: str | None = None,
    overwrite: bool = False,
    limits: ArchiveLimits | None = None,
) -> Path:
    """Extract a bundle archive into ``target_dir/<name>`` only if everything checks out.

    The sha256 (when given) is checked before the archive is opened, then its central directory
    (:func:`check_archive`: limits, duplicates, paths, links); extraction goes to a hidden ``.staging-*`` folder in
    ``target_dir`` (:func:`extract_archive`, bytes counted) and is renamed into place, so on any error ``target_dir``
    is left exactly as it was. Nothing is verified beyond the archive:
    :func:`~monai_seq2seq.zoo.install.install_archive` also verifies the bundle before the rename.

    Returns:
        The extracted bundle folder.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    if sha256 is not None:
        verify_sha256(archive, sha256)
    with open_archive(archive) as zf:
        top = check_archive(zf, limits)
        final = target_dir / top
        if final.exists() and not overwrite:
            raise IntegrityError(f"{final} exists; pass overwrite=True to replace it.")
        created = not target_dir.exists()
        target_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target_dir))
        try:
            extract_archive(zf, staging, limits)
            replace_folder(staging / top, final, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if created and not any(target_dir.iterdir()):
                target_dir.rmdir()
    return final
