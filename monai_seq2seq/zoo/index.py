"""Zoo indexes (``model_info.json``) and downloading bundles from them, hash checked before extraction.

An index maps ``<name>_v<version>`` to ``{"name", "version", "source", "sha256"}``, like the MONAI model zoo's
``models/model_info.json``. ``source`` is a URL or a path relative to the index (a release asset next to it).
An index may live on disk, at a ``file://`` URL or at an ``https://`` URL; archives are fetched the same ways,
or from a GitHub release (``owner/repo/tag``, the layout ``monai.bundle.download(source="github")`` reads).
Hugging Face bundles (one repository per bundle, a tag per version) are fetched by MONAI itself and then
verified file by file (:func:`~monai_seq2seq.zoo.pack.check_bundle`), since they are not archives.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

from packaging.version import InvalidVersion, Version

from monai_seq2seq.core.integrity import IntegrityError, verify_sha256

from .pack import check_bundle, safe_extract

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
    """``[{"name", "version", "sha256", "source"}]`` of an index, sorted by name then version."""
    rows = []
    for key, entry in read_index(index, **kwargs).items():
        name, version = _split_key(key)
        rows.append(
            {
                "name": entry.get("name", name),
                "version": entry.get("version", version),
                "sha256": entry["sha256"],
                "source": entry["source"],
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
) -> Path:
    """Download ``name`` into ``bundle_dir/<name>``: sha256 first, then a safe extraction, then the bundle checks.

    Args:
        name: bundle name.
        version: version; ``None``: the newest in the index.
        bundle_dir: where bundles live (MONAI's ``bundle_dir``).
        index: zoo index (path, file:// or https URL); gives the source and the sha256.
        url: the archive itself (path, file:// or https URL); its sha256 from ``sha256`` or the index.
        repo: ``owner/repo/tag`` for ``source="github"``, ``owner/name`` for ``source="huggingface_hub"``.
        source: ``"index"`` (default; ``url`` wins when given), ``"github"`` or ``"huggingface_hub"``.
        sha256: expected archive hash when no index says it.
        overwrite: replace an existing ``bundle_dir/<name>``.
        downloader: fetches an https URL to a file (injected in tests; the default uses MONAI's ``download_url``).

    Raises:
        IntegrityError: no hash to check against, a wrong hash, or an unsafe or corrupt archive; ``bundle_dir`` is
            left as it was.
        KeyError: the name/version is not in the index.
    """
    bundle_dir = Path(bundle_dir)
    if source == "huggingface_hub":
        return _download_huggingface(name, version, bundle_dir, repo, overwrite)
    if source not in ("index", "github"):
        raise ValueError(f"source must be 'index', 'github' or 'huggingface_hub', got {source!r}.")
    if index is not None:
        entry = resolve_entry(index, name, version, downloader=downloader)
        version, sha256 = entry["version"], sha256 or entry["sha256"]
        location = url or entry["source"]
    elif url is not None:
        location = url
    else:
        location = None
    if source == "github":
        if repo is None or version is None:
            raise ValueError("source='github' needs repo='owner/repo/tag' and a version (or an index).")
        location = github_release_url(repo, name, version)
    if location is None:
        raise ValueError("give an index, a url, or source='github' with a repo.")
    if sha256 is None:
        raise IntegrityError(
            f"no sha256 for {location}: give an index that lists it or sha256=...; an archive is "
            "never extracted unchecked."
        )
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=".download.") as tmp:
        archive = fetch(location, Path(tmp), sha256, downloader)
        verify_sha256(archive, sha256)
        final = safe_extract(archive, bundle_dir, sha256=None, overwrite=overwrite)
    if final.name != name:
        shutil.rmtree(final)
        raise IntegrityError(f"archive {location} holds bundle {final.name!r}, not {name!r}.")
    check_bundle(final)
    return final


def _download_huggingface(name: str, version: str | None, bundle_dir: Path, repo: str | None, overwrite: bool) -> Path:
    import monai

    if repo is None:
        raise ValueError("source='huggingface_hub' needs repo='owner/name'.")
    final = bundle_dir / name
    if final.exists() and not overwrite:
        raise IntegrityError(f"{final} exists; pass overwrite=True to replace it.")
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=".download.") as tmp:
        monai.bundle.download(name=name, version=version, bundle_dir=tmp, source="huggingface_hub", repo=repo)
        staged = Path(tmp) / name
        check_bundle(staged)  # weights against large_files.yml, version in changelog, required files
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(staged), str(final))
    return final
