"""``seq2seq zoo ...``: check, pack and install bundles (fire)."""

from __future__ import annotations

import json
from pathlib import Path

from .pack import check_bundle, pack_bundle, safe_extract, update_index

__all__ = ["Zoo"]


class Zoo:
    """Bundle zoo commands: ``check``, ``pack``, ``install``."""

    def check(self, bundle: str) -> str:
        """Required files, version in changelog, weights matching ``large_files.yml``."""
        meta = check_bundle(bundle)
        return f"{bundle}: ok (version {meta['version']})"

    def pack(self, bundle: str, out: str = "dist", index: str | None = None, source: str | None = None) -> str:
        """Write ``<out>/<name>_v<version>.zip``; with ``index``, record its sha256 and ``source`` URL there."""
        archive = pack_bundle(bundle, out)
        if index:
            update_index(index, archive, source or archive.resolve().as_uri())
        return str(archive)

    def install(self, archive: str, bundle_dir: str = "bundles_installed", index: str | None = None,
                overwrite: bool = False) -> str:
        """Extract a packed bundle safely; with ``index`` its sha256 is checked first."""
        sha256 = None
        if index:
            key = Path(archive).name[: -len(".zip")]
            entries = json.loads(Path(index).read_text())
            if key not in entries:
                raise ValueError(f"{key} is not listed in {index}.")
            sha256 = entries[key]["sha256"]
        return str(safe_extract(archive, bundle_dir, sha256=sha256, overwrite=overwrite))


if __name__ == "__main__":
    import fire

    fire.Fire(Zoo)
