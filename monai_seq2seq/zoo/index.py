"""Zoo indexes (``model_info.json``) and downloading bundles from them, hash checked before extraction.

An index maps ``<name>_v<version>`` to ``{"name", "version", "source", "sha256"}``, like the MONAI model zoo's
``models/model_info.json``. ``source`` is a URL or a path relative to the index (a release asset next to it).
An index may live on disk, at a ``file://`` URL or at an ``https://`` URL; archives are fetched the same ways,
or from a GitHub release (``owner/repo/tag``, the layout ``monai.bundle.download(source="github")`` reads).
Hugging Face bundles (one repository per bundle, a tag per version) are fetched by MONAI itself into the staging
folder and then verified file by file, against the index entry's per-file hashes when it lists them (a warning says
so when nothing external vouches for them), since they are not archives. Every route installs atomically
(:mod:`monai_seq2seq.zoo.install`).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

from packaging.version import InvalidVersion, Version

from monai_seq2seq.core.integrity import IntegrityError

from .install import install_archive, install_staged, staging_folder, target_folder, verify_staged
from .pack import ArchiveLimits

__all__ = [
    "read_index",
    "list_index",
    "resolve_entry",
    "github_release_url",
    "fetch",
    "download_bundle",
]

INDEX_NAME = "model_info.json"


def _is_url(location: str) -> bool:
    return urlparse(str(location)).scheme in ("file", "http", "https")


def _local_path(location: str) -> Path | None:
    """The local path of a plain path or ``file://`` URL; ``None`` for http(s)."""
    parsed = urlparse(str(location))
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"unsupported location {location!r}: use a path, file:// or https:// URL.")
    return Path(location)


def _download(url: str, target: Path, sha256: str | None) -> Path:
    from monai.apps.utils import download_url

    if urlparse(url).scheme != "https":
        raise ValueError(f"refusing to download over {urlparse(url).scheme!r}: only https URLs are fetched ({url}).")
    download_url(url, str(target), hash_val=sha256, hash_type="sha256", progress=True)
    return target


def fetch(
    location: str,
    target_dir: Path,
    sha256: str | None = None,
    downloader: Callable[[str, Path, str | None], Path] = _download,
) -> Path:
    """A local copy of ``location`` (path, file:// or https URL); local files are used in place."""
    local = _local_path(location)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{location} does not exist.")
        return local
    return downloader(location, Path(target_dir) / Path(urlparse(location).path).name, sha256)


def read_index(index: str, downloader: Callable[[str, Path, str | None], Path] = _download) -> dict:
    """Read a zoo index from a path, a file:// or an https URL.

    Raises:
        ValueError: not a JSON object of ``<name>_v<version>`` entries with a ``sha256`` and a ``source``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = fetch(index, Path(tmp), downloader=downloader)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"zoo index {index} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"zoo index {index} must be a JSON object, got {type(data).__name__}.")
    for key, entry in data.items():
        if not isinstance(entry, dict) or "sha256" not in entry or "source" not in entry or "_v" not in key:
            raise ValueError(f"zoo index {index}: entry {key!r} needs '<name>_v<version>' with source and sha256.")
    return data


def _split_key(key: str) -> tuple[str, str]:
    name, _, version = key.rpartition("_v")
    return name, version


def _version_key(version: str):
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def list_index(index: str, **kwargs) -> list[dict]:
    """``[{"name", "version", "sha256", "source"}]`` (and ``"files"`` where listed) of an index, sorted by name then
    version."""
    rows = []
    for key, entry in read_index(index, **kwargs).items():
        name, version = _split_key(key)
        rows.append(
            {
                "name": entry.get("name", name),
                "version": entry.get("version", version),
                "sha256": entry["sha256"],
                "source": entry["source"],
                **({"files": entry["files"]} if isinstance(entry.get("files"), dict) else {}),
            }
        )
    return sorted(rows, key=lambda r: (r["name"], _version_key(r["version"])))


def resolve_entry(index: str, name: str, version: str | None = None, **kwargs) -> dict:
    """The entry of ``name`` (``version``, or the newest) with ``source`` made absolute against the index.

    Raises:
        KeyError: the name or version is not in the index (the message lists what is).
    """
    rows = [r for r in list_index(index, **kwargs) if r["name"] == name]
    if not rows:
        raise KeyError(f"bundle {name!r} is not in the zoo index {index}.")
    if version is None:
        entry = rows[-1]
    else:
        matches = [r for r in rows if r["version"] == str(version)]
        if not matches:
            raise KeyError(f"{name} version {version} is not in {index}; it has {[r['version'] for r in rows]}.")
        entry = matches[0]
    source = entry["source"]
    if not _is_url(source) and not Path(source).is_absolute():
        base = index if _is_url(index) else Path(index).resolve().as_uri()
        source = urljoin(base, source)
    return {**entry, "source": source}


def github_release_url(repo: str, name: str, version: str) -> str:
    """``owner/repo/tag`` -> the release asset URL ``monai.bundle.download(source="github")`` uses."""
    parts = repo.strip("/").split("/")
    if len(parts) != 3:
        raise ValueError(f"repo must be 'owner/repo/tag' for a GitHub release, got {repo!r}.")
    owner, repo_name, tag = parts
    return f"https://github.com/{owner}/{repo_name}/releases/download/{tag}/{name}_v{version}.zip"


def download_bundle(
    name: str,
    version: str | None = None,
    bundle_dir: str | Path = "bundles",
    index: str | None = None,
    url: str | None = None,
    repo: str | None = None,
    source: str = "index",
    sha256: str | None = None,
    overwrite: bool = False,
    downloader: Callable[[str, Path, str | None], Path] = _download,
    verify: bool = True,
    trust_modules: str | Iterable[str] | None = None,
    limits: ArchiveLimits | None = None,
) -> Path:
    """Download ``name`` into ``bundle_dir/<name>`` atomically: fetched, sha256-checked, extracted within limits and
    verified in a staging folder, renamed into place only when everything passed
    (:func:`~monai_seq2seq.zoo.install.install_archive`).

    Args:
        name: bundle name.
        version: version; ``None``: the newest in the index. The bundle's metadata must say the same.
        bundle_dir: where bundles live (MONAI's ``bundle_dir``).
        index: zoo index (path, file:// or https URL); gives the source, the sha256 and the version.
        url: the archive itself (path, file:// or https URL); its sha256 from ``sha256`` or the index.
        repo: ``owner/repo/tag`` for ``source="github"``, ``owner/name`` for ``source="huggingface_hub"``.
        source: ``"index"`` (default; ``url`` wins when given), ``"github"`` or ``"huggingface_hub"``.
        sha256: expected archive hash when no index says it.
        overwrite: replace an existing ``bundle_dir/<name>`` (only by a bundle verified to be ``name``).
        downloader: fetches an https URL to a file (injected in tests; the default uses MONAI's ``download_url``).
        verify: also the metadata schema and a forward pass (configs, files and hashes are always checked).
        trust_modules: packages the bundle's configs may use beyond the default allow-list.
        limits: archive limits (default :class:`~monai_seq2seq.zoo.pack.ArchiveLimits`).

    Raises:
        IntegrityError: no hash to check against, a wrong hash, an unsafe or oversized archive, another bundle than
            ``name``, a version that contradicts the index, a failed check; ``bundle_dir`` is left as it was.
        UntrustedConfigError: a config names code outside the allow-list (nothing of it ran).
        KeyError: the name/version is not in the index.
    """
    bundle_dir = Path(bundle_dir)
    entry = resolve_entry(index, name, version, downloader=downloader) if index is not None else None
    if source == "huggingface_hub":
        return _download_huggingface(name, version, bundle_dir, repo, overwrite, entry, verify, trust_modules, limits)
    if source not in ("index", "github"):
        raise ValueError(f"source must be 'index', 'github' or 'huggingface_hub', got {source!r}.")
    location, release = url, version
    if entry is not None:
        release, sha256 = entry["version"], sha256 or entry["sha256"]
        location = url or entry["source"]
    if source == "github":
        if repo is None or release is None:
            raise ValueError("source='github' needs repo='owner/repo/tag' and a version (or an index).")
        location = github_release_url(repo, name, release)
    if location is None:
        raise ValueError("give an index, a url, or source='github' with a repo.")
    if sha256 is None:
        raise IntegrityError(
            f"no sha256 for {location}: give an index that lists it or sha256=...; an archive is "
            "never extracted unchecked."
        )

    def fetch_into(staging: Path) -> Path:
        (staging / "download").mkdir()
        return fetch(location, staging / "download", sha256, downloader)

    return install_archive(
        location,
        bundle_dir,
        name=name,
        sha256=sha256,
        version=version,
        entry=entry,
        overwrite=overwrite,
        verify=verify,
        trust_modules=trust_modules,
        limits=limits,
        fetch=fetch_into,
    )


def _download_huggingface(
    name: str,
    version: str | None,
    bundle_dir: Path,
    repo: str | None,
    overwrite: bool,
    entry: dict | None,
    verify: bool,
    trust_modules: str | Iterable[str] | None,
    limits: ArchiveLimits | None,
) -> Path:
    """MONAI fetches the repository's files into the staging folder; they are checked like an extracted archive, and
    against the index entry's per-file hashes when it lists them (otherwise a warning says nothing external vouches
    for them)."""
    import monai

    if repo is None:
        raise ValueError("source='huggingface_hub' needs repo='owner/name'.")
    final = target_folder(bundle_dir, name, overwrite)
    if not (entry or {}).get("files"):
        warnings.warn(
            f"{repo}: nothing external vouches for this Hugging Face download ("
            + ("the index entry lists no per-file hashes" if entry else "no --index given")
            + "); its files are checked only against the bundle's own large_files.yml, written by whoever controls "
            "the repository. Give --index with an entry that lists files to check them.",
            UserWarning,
            stacklevel=3,
        )
    with staging_folder(bundle_dir) as staging:
        monai.bundle.download(name=name, version=version, bundle_dir=str(staging), source="huggingface_hub", repo=repo)
        staged = staging / name
        size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file() and not p.is_symlink())
        cap = (limits or ArchiveLimits()).max_total_bytes
        if size > cap:
            raise IntegrityError(f"{repo}: the download holds {size} bytes, more than the limit of {cap}.")
        verify_staged(staged, name, version, entry, verify, trust_modules)
        install_staged(staged, final, staging)
    return final
