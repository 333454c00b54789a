"""``seq2seq zoo ...``: list, pack, download, install, verify and load bundles (fire)."""

from __future__ import annotations

import json
from pathlib import Path

from monai_seq2seq.zoo.index import download_bundle, list_index, read_index
from monai_seq2seq.zoo.install import install_archive
from monai_seq2seq.zoo.pack import ArchiveLimits, check_bundle, pack_bundle, update_index
from monai_seq2seq.zoo.verify import verify_bundle

__all__ = ["Zoo"]


def _limits(max_total_mb: float | None, max_ratio: float | None, max_members: int | None) -> ArchiveLimits:
    """The archive limits, the defaults where a flag is not given."""
    default = ArchiveLimits()
    return ArchiveLimits(
        max_total_bytes=default.max_total_bytes if max_total_mb is None else int(float(max_total_mb) * (1 << 20)),
        max_members=default.max_members if max_members is None else int(max_members),
        max_ratio=default.max_ratio if max_ratio is None else float(max_ratio),
    )


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
        trust_module: str | list[str] | None = None,
        max_total_mb: float | None = None,
        max_ratio: float | None = None,
        max_members: int | None = None,
    ) -> str:
        """Fetch ``name`` and install it atomically: sha256 checked before the archive is opened, archive limits,
        configs against the allow-list, files, hashes, metadata against the index entry, then (``--verify``) the
        schema and a forward pass, all in a staging folder; only a bundle that passed replaces ``bundle_dir/<name>``.

        From an index (``--index model_info.json``, file:// or https URL), an archive URL with ``--sha256``, a
        GitHub release (``--source github --repo owner/repo/tag``) or Hugging Face
        (``--source huggingface_hub --repo owner/name``; checked against ``--index`` per-file hashes when given).
        ``--trust_module mypkg`` lets the configs use ``mypkg`` too; ``--max_total_mb``, ``--max_ratio``,
        ``--max_members`` change the archive limits.
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
            verify=verify,
            trust_modules=trust_module,
            limits=_limits(max_total_mb, max_ratio, max_members),
        )
        return str(final)

    def verify(
        self,
        bundle: str,
        forward: bool = True,
        index: str | None = None,
        archive: str | None = None,
        trust_module: str | list[str] | None = None,
    ) -> str:
        """Configs against the allow-list (before anything is built), files, version in changelog, weights sha256
        and ``weights_only`` load, metadata schema (offline), with ``--index`` the index entry of the bundle's name
        and version (per-file hashes when listed; with ``--archive`` the archive's hash and files), a forward pass
        per target. Run it before ``monai.bundle.load/run`` on a bundle from elsewhere."""
        report = verify_bundle(bundle, forward=forward, index=index, archive=archive, trust_modules=trust_module)
        return json.dumps(report, indent=2, default=str)

    def onnx(self, bundle: str, target: str, out: str | None = None, check: bool = True) -> str:
        """Export the network folded to ``target`` as ONNX (``<bundle>/models/model_<target>.onnx`` by default),
        checked against the eager network in onnxruntime."""
        from monai_seq2seq.zoo.export import export_onnx

        path = out or str(Path(bundle) / "models" / f"model_{target}.onnx")
        return str(export_onnx(bundle, target, path, check=check))

    def load(
        self, name: str, bundle_dir: str = "bundles_installed", trust_module: str | list[str] | None = None
    ) -> str:
        """Load an installed bundle's network with MONAI (``monai.bundle.load``) after checking its configs against
        the allow-list and verifying its weights."""
        import monai

        verify_bundle(Path(bundle_dir) / name, forward=False, trust_modules=trust_module)
        network = monai.bundle.load(name=name, bundle_dir=bundle_dir, workflow_type="inference")
        n_params = sum(p.numel() for p in network.parameters())
        return f"{name}: {type(network).__name__} with {n_params / 1e6:.2f} M parameters from {bundle_dir}/{name}"

    def import_authors(
        self,
        ckpt: str,
        config: str | None = None,
        out: str | None = None,
        protocol: str = "brain",
        template: str | None = None,
        layout: str = "nifti",
        sha256: str | None = None,
        overwrite: bool = False,
        verify: bool = True,
    ) -> str:
        """A bundle around the Seq2Seq authors' ``ckpt_best.pth`` (github.com/fiy2W/mri_seq2seq), then verified.

        Example: ``seq2seq zoo import-authors ckpt_best.pth --config seq2seq_brats_2d_missing.yaml --out DIR``.
        Without ``--config`` the sizes are read from the tensors; ``--out`` an authors' bundle without weights
        (``bundles/seq2seq_brats2d_released``) only adds ``models/model.pt`` and ``large_files.yml``.
        """
        from monai_seq2seq.zoo.authors import import_authors

        bundle = import_authors(ckpt, config, out, protocol, template, layout, sha256, overwrite)
        report = verify_bundle(bundle) if verify else {}
        return json.dumps({"bundle": str(bundle), **report}, indent=2, default=str)

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
        self,
        archive: str,
        bundle_dir: str = "bundles_installed",
        index: str | None = None,
        overwrite: bool = False,
        name: str | None = None,
        sha256: str | None = None,
        verify: bool = True,
        trust_module: str | list[str] | None = None,
        max_total_mb: float | None = None,
        max_ratio: float | None = None,
        max_members: int | None = None,
    ) -> str:
        """Install a packed bundle ``<name>_v<version>.zip`` atomically, with the checks of ``download``; with
        ``--index`` its entry gives the sha256 (checked before the archive is opened), the version and the per-file
        hashes. ``--overwrite True`` replaces ``bundle_dir/<name>`` only by a bundle verified to be ``<name>``."""
        entry = None
        if index:
            key = Path(archive).name.removesuffix(".zip")
            entries = read_index(index)
            if key not in entries:
                raise ValueError(f"{key} is not listed in {index}: nothing was installed.")
            entry = entries[key]
            sha256 = sha256 or entry["sha256"]
            name = name or entry.get("name") or key.rpartition("_v")[0]
        installed = install_archive(
            archive,
            bundle_dir,
            name=name,
            sha256=sha256,
            entry=entry,
            overwrite=overwrite,
            verify=verify,
            trust_modules=trust_module,
            limits=_limits(max_total_mb, max_ratio, max_members),
        )
        return str(installed)


if __name__ == "__main__":
    import fire

    fire.Fire(Zoo)
