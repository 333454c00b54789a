"""Atomic installation of a bundle: fetch, extract and verify in a staging folder, rename into place at the end.

Everything happens in a hidden ``<bundle_dir>/.staging-*`` folder (so the final rename stays on one file system):
the archive's sha256 before it is opened, its central directory (:func:`~monai_seq2seq.zoo.pack.check_archive`:
size, ratio and member limits, duplicates, paths, links) and its top folder against the requested name before
anything is extracted, the bytes while extracting, then the bundle itself (:func:`verify_staged`: configs against
the allow-list before anything is parsed into objects, required files, the weights' sha256 and a ``weights_only``
load, metadata name and version against the request or the index entry, per-file hashes of the entry, metadata
schema, a forward pass per target). Only a bundle that passed everything replaces ``<bundle_dir>/<name>``; on any
failure the staging folder is removed and every file under ``bundle_dir`` is as before.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from monai_seq2seq.core.integrity import IntegrityError, verify_sha256
from monai_seq2seq.core.trust import check_bundle_configs

from .pack import ArchiveLimits, check_archive, check_bundle, extract_archive, open_archive, replace_folder
from .verify import load_plain_weights, verify_files, verify_forward, verify_metadata_offline

__all__ = ["install_archive", "install_staged", "staging_folder", "stage_archive", "target_folder", "verify_staged"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def target_folder(bundle_dir: str | Path, name: str, overwrite: bool) -> Path:
    """``bundle_dir/name``, refused early when it exists and ``overwrite`` is off, or when ``name`` is no plain name.

    Raises:
        IntegrityError: the folder exists (pass ``overwrite=True``), or the name could escape ``bundle_dir``.
    """
    if not _NAME.fullmatch(str(name)):
        raise IntegrityError(f"bundle name {name!r} is not a plain name (letters, digits, '_', '.', '-').")
    final = Path(bundle_dir) / name
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise IntegrityError(f"{final} exists; pass overwrite=True (--overwrite True) to replace it.")
    return final


@contextlib.contextmanager
def staging_folder(bundle_dir: str | Path) -> Iterator[Path]:
    """A hidden ``.staging-*`` folder in ``bundle_dir``, removed when the block ends (with ``bundle_dir`` itself if
    this created it and it is empty)."""
    bundle_dir = Path(bundle_dir)
    created = not bundle_dir.exists()
    bundle_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=bundle_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and bundle_dir.is_dir() and not any(bundle_dir.iterdir()):
            bundle_dir.rmdir()


def stage_archive(
    archive: str | Path, staging: Path, name: str, sha256: str | None = None, limits: ArchiveLimits | None = None
) -> Path:
    """Check and extract ``archive`` into ``staging``; returns the extracted bundle folder.

    Raises:
        IntegrityError: a wrong sha256, an archive over the limits or unsafe, or one holding another bundle than
            ``name`` (checked before anything is extracted).
    """
    if sha256 is not None:
        verify_sha256(archive, sha256)
    with open_archive(archive) as zf:
        top = check_archive(zf, limits)
        if top != name:
            raise IntegrityError(
                f"{archive} holds bundle {top!r}, not the requested {name!r}: nothing was extracted or replaced."
            )
        extract_archive(zf, staging / "extracted", limits)
    return staging / "extracted" / top


def verify_staged(
    staged: str | Path,
    name: str,
    version: str | None = None,
    entry: dict | None = None,
    verify: bool = True,
    trust_modules: str | Iterable[str] | None = None,
) -> dict:
    """Every check a bundle passes before it is installed; returns its metadata.

    Args:
        staged: the bundle folder in staging.
        name: the requested bundle: metadata ``name`` must be it.
        version: the requested version (default: the entry's): metadata ``version`` must be it.
        entry: the zoo index entry it was fetched for; its per-file hashes (``files``), when listed, are checked.
        verify: also the model-zoo checks: metadata schema and a forward pass per target.
        trust_modules: packages the configs may use beyond the default allow-list.

    Raises:
        UntrustedConfigError: a config names code outside the allow-list.
        IntegrityError: a missing file, a wrong hash, weights that are not a plain state dict, a name or version
            that contradicts the request or the index entry.
    """
    staged = Path(staged)
    check_bundle_configs(staged, trust_modules)  # configs are data until trusted: nothing is parsed before this
    meta = check_bundle(staged)  # required files, version in the changelog, weights sha256
    load_plain_weights(staged / "models" / "model.pt", staged)  # weights_only: a pickle with code is refused
    if str(meta.get("name", name)) != name:
        raise IntegrityError(f"{staged}: configs/metadata.json names bundle {meta.get('name')!r}, not {name!r}.")
    expected = version if version is not None else (entry or {}).get("version")
    if expected is not None and str(meta["version"]) != str(expected):
        source = "the index entry" if version is None else "the requested version"
        raise IntegrityError(
            f"{staged}: configs/metadata.json says version {meta['version']!r}, {source} says {str(expected)!r}."
        )
    if entry and entry.get("files"):
        verify_files(staged, entry["files"])
    if verify:
        verify_metadata_offline(staged)
        verify_forward(staged, trust_modules=trust_modules)
    return meta


def install_staged(staged: Path, final: Path, staging: Path) -> Path:
    """Rename a verified bundle into place (the previous folder, if any, goes into ``staging`` and is removed)."""
    replace_folder(staged, final, staging)
    return final


def install_archive(
    archive: str | Path,
    bundle_dir: str | Path,
    name: str | None = None,
    sha256: str | None = None,
    version: str | None = None,
    entry: dict | None = None,
    overwrite: bool = False,
    verify: bool = True,
    trust_modules: str | Iterable[str] | None = None,
    limits: ArchiveLimits | None = None,
    fetch: Callable[[Path], Path] | None = None,
) -> Path:
    """Install the bundle of a zip archive into ``bundle_dir/<name>`` atomically (see the module docstring).

    Args:
        archive: the archive (a local file; or what ``fetch`` downloads).
        bundle_dir: where bundles live.
        name: the bundle expected; default: ``<name>`` of an archive named ``<name>_v<version>.zip``.
        sha256: the archive's expected hash, checked before it is opened.
        version: the version expected in the metadata.
        entry: the zoo index entry (its ``version`` and per-file hashes are checked).
        overwrite: replace an installed ``bundle_dir/<name>``: only by a bundle verified to be ``name``.
        verify: also the metadata schema and a forward pass (the other checks always run).
        trust_modules: packages the configs may use beyond the default allow-list.
        limits: archive limits (default :class:`~monai_seq2seq.zoo.pack.ArchiveLimits`).
        fetch: ``staging -> local archive``: fetches the archive into the staging folder (downloads).

    Returns:
        The installed bundle folder.

    Raises:
        IntegrityError: any check failed; ``bundle_dir`` is left exactly as it was.
    """
    if name is None:
        stem = Path(archive).name.removesuffix(".zip")
        if "_v" not in stem:
            raise IntegrityError(f"cannot tell the bundle of {archive}: name it <name>_v<version>.zip or give name.")
        name = stem.rpartition("_v")[0]
    final = target_folder(bundle_dir, name, overwrite)
    with staging_folder(bundle_dir) as staging:
        local = fetch(staging) if fetch is not None else Path(archive)
        staged = stage_archive(local, staging, name, sha256, limits)
        verify_staged(staged, name, version, entry, verify, trust_modules)
        install_staged(staged, final, staging)
    return final
