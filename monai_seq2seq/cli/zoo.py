"""``seq2seq zoo ...``: list, pack, download, install, verify and load bundles (fire)."""

from __future__ import annotations

import json
from pathlib import Path

from monai_seq2seq.zoo.index import download_bundle, list_index
from monai_seq2seq.zoo.pack import check_bundle, pack_bundle, safe_extract, update_index
from monai_seq2seq.zoo.verify import verify_bundle

__all__ = ["Zoo"]


class Zoo:
    """Bundle zoo commands: ``list``, ``pack``, ``download``, ``install``, ``verify``, ``onnx``, ``load``, ``check``."""

    def list(self, index: str = "bundles/model_info.json") -> str:
        """The bundles and versions of a zoo index (a path, file:// or https URL), with their sha256."""
        rows = list_index(index)
        return "\n".join(f"{r['name']:<24} {r['version']:<10} {r['sha256'][:16]}  {r['source']}" for r in rows)

    def download(
        self,
        name: str,
        version: str | None = None,
        bundle_dir: str = "bundles_installed",
        index: str | None = None,
        url: str | None = None,
        repo: str | None = None,
        source: str = "index",
        sha256: str | None = None,
        overwrite: bool = False,
        verify: bool = True,
    ) -> str:
        """Fetch ``name`` (sha256 checked before extraction), extract it safely, then verify it.

        From an index (``--index model_info.json``, file:// or https URL), an archive URL with ``--sha256``, a
        GitHub release (``--source github --repo owner/repo/tag``) or Hugging Face
        (``--source huggingface_hub --repo owner/name``).
        """
        final = download_bundle(
            name,
            version,
            bundle_dir,
            index=index,
            url=url,
            repo=repo,
            source=source,
            sha256=sha256,
            overwrite=overwrite,
        )
        if verify:
            verify_bundle(final)
        return str(final)

    def verify(self, bundle: str, forward: bool = True) -> str:
        """Files, version in changelog, weights sha256, metadata schema (offline), a forward pass per target."""
        report = verify_bundle(bundle, forward=forward)
        return json.dumps(report, indent=2, default=str)

    def onnx(self, bundle: str, target: str, out: str | None = None, check: bool = True) -> str:
        """Export the network folded to ``target`` as ONNX (``<bundle>/models/model_<target>.onnx`` by default),
        checked against the eager network in onnxruntime."""
        from monai_seq2seq.zoo.export import export_onnx

        path = out or str(Path(bundle) / "models" / f"model_{target}.onnx")
        return str(export_onnx(bundle, target, path, check=check))

    def load(self, name: str, bundle_dir: str = "bundles_installed") -> str:
        """Load an installed bundle's network with MONAI (``monai.bundle.load``) after verifying its weights."""
        import monai

        verify_bundle(Path(bundle_dir) / name, forward=False)
        network = monai.bundle.load(name=name, bundle_dir=bundle_dir, workflow_type="inference")
        n_params = sum(p.numel() for p in network.parameters())
        return f"{name}: {type(network).__name__} with {n_params / 1e6:.2f} M parameters from {bundle_dir}/{name}"

    def check(self, bundle: str) -> str:
        """Required files, version in changelog, weights matching ``large_files.yml``."""
        meta = check_bundle(bundle)
        return f"{bundle}: ok (version {meta['version']})"

    def pack(self, bundle: str, out: str = "dist", index: str | None = None, source: str | None = None) -> str:
        """Write ``<out>/<name>_v<version>.zip`` (reproducible); with ``index``, record its sha256 there.

        ``source`` is where users will fetch it (default: the archive's name, a release asset next to the index).
        """
        archive = pack_bundle(bundle, out)
        if index:
            update_index(index, archive, source)
        return str(archive)

    def install(
        self, archive: str, bundle_dir: str = "bundles_installed", index: str | None = None, overwrite: bool = False
    ) -> str:
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
