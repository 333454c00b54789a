"""``seq2seq phantom ...``: generate phantom cohorts and figures from the command line.

Runnable on its own::

    python -m monai_seq2seq.cli.phantom brain --subjects 20 --out DIR [--seed 0 --spacing 2.0 --snr 30]
    python -m monai_seq2seq.cli.phantom breast --subjects 20 --out DIR [--seed 0 --dicom]
    python -m monai_seq2seq.cli.phantom brain --subjects 4 --out DIR --realism clinical [--realism_snr 10]
    python -m monai_seq2seq.cli.phantom toy --out DIR [--split train --samples 9000]
    python -m monai_seq2seq.cli.phantom figure --out docs/figures
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["Phantom", "phantom", "main"]


class Phantom:
    """Generate physics-based phantom cohorts (known ground truth) and figures."""

    def brain(
        self,
        subjects: int = 20,
        out: str = "phantom_brain",
        seed: int = 0,
        spacing: float = 1.0,
        snr: float | None = 30.0,
        tumour: bool = True,
        overwrite: bool = False,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        progress: bool = True,
        realism: str | tuple[str, ...] | None = None,
        realism_snr: float | None = None,
    ) -> str:
        """Write a brain cohort (T1, T1Gd, T2, FLAIR, seg, unique-T1Gd) in the BraTS 2021 layout.

        Args:
            subjects: number of subjects.
            out: output folder.
            seed: cohort seed (subject i is fixed by (seed, i)).
            spacing: voxel size in mm (1.0 = the 197x233x189 template grid; 2.0 for fast CPU work).
            snr: Rician noise SNR (None or 0: no noise).
            tumour: add a glioma-like tumour.
            overwrite: replace existing files.
            val_fraction, test_fraction: datalist split fractions.
            progress: show a progress bar.
            realism: clinical acquisition effects: ``clinical`` (all) or a comma list of ``misalign, bias,
                thickness, noise, fov``; each subject then also gets ``<sid>_phantom.json`` with their truth.
            realism_snr: SNR of the ``noise`` effect (default 20).

        Returns:
            Path of the written datalist.json.
        """
        from monai_seq2seq.phantoms.cohort import BrainPhantomCohort
        from monai_seq2seq.phantoms.writer import write_cohort

        cohort = BrainPhantomCohort(
            int(subjects),
            seed=int(seed),
            spacing=float(spacing),
            snr=snr or None,
            tumour=bool(tumour),
            realism=_realism(realism, realism_snr),
        )
        return str(
            write_cohort(
                cohort,
                out,
                overwrite=overwrite,
                progress=progress,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
            )
        )

    def breast(
        self,
        subjects: int = 20,
        out: str = "phantom_breast",
        seed: int = 0,
        spacing: float = 2.0,
        shape: tuple[int, int, int] | None = None,
        snr: float | None = 40.0,
        dicom: bool = False,
        overwrite: bool = False,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        progress: bool = True,
        realism: str | tuple[str, ...] | None = None,
        realism_snr: float | None = None,
    ) -> str:
        """Write a breast cohort (8 sequences, DCE/FatSatDCE/DWI as 4D NIfTI with sidecars) in the breast layout.

        Args:
            subjects: number of subjects.
            out: output folder.
            seed: cohort seed.
            spacing: voxel size in mm; the default grid is 160x96x64 at 2 mm (shape scales with 2/spacing).
            shape: explicit grid shape (overrides the scaling from ``spacing``).
            snr: Rician noise SNR (None or 0: no noise).
            dicom: also write DCE, FatSatDCE and DWI as DICOM series.
            overwrite: replace existing files.
            val_fraction, test_fraction: datalist split fractions.
            progress: show a progress bar.
            realism: clinical acquisition effects, as for ``brain``.
            realism_snr: SNR of the ``noise`` effect (default 20).

        Returns:
            Path of the written datalist.json.
        """
        from monai_seq2seq.phantoms.cohort import BreastPhantomCohort
        from monai_seq2seq.phantoms.writer import write_cohort

        if shape is None:
            shape = tuple(max(4, int(round(n * 2.0 / float(spacing)))) for n in (160, 96, 64))
        cohort = BreastPhantomCohort(
            int(subjects),
            seed=int(seed),
            spacing=float(spacing),
            shape=tuple(int(s) for s in shape),
            snr=snr or None,
            realism=_realism(realism, realism_snr),
        )
        return str(
            write_cohort(
                cohort,
                out,
                overwrite=overwrite,
                dicom=dicom,
                progress=progress,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
            )
        )

    def toy(
        self,
        out: str = "phantom_toy",
        split: str = "train",
        samples: int | None = None,
        seed: int = 0,
        overwrite: bool = False,
        progress: bool = True,
    ) -> str:
        """Write the toy alphabet set of one split as ``<out>/toy_<split>.npz``.

        The archive holds ``X1``, ``X2`` (float32 ``(N, 128, 128)``), ``labels`` (int64 ``(N, 2)``: the differing
        letters of X1 and X2), ``shared`` (int64 ``(N,)``) and ``unique_X1``/``unique_X2`` masks.

        Returns:
            Path of the written archive.
        """
        from tqdm.auto import tqdm

        from monai_seq2seq.phantoms.toy import AlphabetToyDataset

        ds = AlphabetToyDataset(split, num_samples=samples, seed=int(seed))
        path = Path(out) / f"toy_{split}.npz"
        if path.exists() and not overwrite:
            raise FileExistsError(f"{str(path)!r} exists; pass --overwrite to replace it.")
        path.parent.mkdir(parents=True, exist_ok=True)
        n = len(ds)
        arrays = {k: np.zeros((n, ds.size, ds.size), np.float32) for k in ("X1", "X2", "unique_X1", "unique_X2")}
        labels = np.zeros((n, 2), np.int64)
        shared = np.zeros(n, np.int64)
        for i in tqdm(range(n), desc=f"toy {split}", disable=not progress):
            item = ds[i]
            for k in ("X1", "X2"):
                arrays[k][i] = item[k][0].numpy()
                arrays[f"unique_{k}"][i] = item[f"unique-{k}"][0].numpy()
            labels[i] = item["label"].numpy()
            shared[i] = item["label_shared"]
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, labels=labels, shared=shared, **arrays)
        tmp.replace(path)
        return str(path)

    def figure(self, out: str = "docs/figures", seed: int = 0, index: int = 0, brain_spacing: float = 1.0) -> list:
        """Write ``brain_phantom.png``, ``breast_phantom.png`` and ``toy_phantom.png`` (one subject each).

        Returns:
            Paths of the written PNG files.
        """
        from monai_seq2seq.core.protocols import BRAIN, BREAST
        from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
        from monai_seq2seq.phantoms.breast import generate_breast_subject
        from monai_seq2seq.phantoms.figures import save_subject_figure

        out_dir = Path(out)
        paths = [
            save_subject_figure(
                generate_brain_subject(seed, index, BrainPhantomConfig(spacing=brain_spacing)),
                BRAIN,
                out_dir / "brain_phantom.png",
            ),
            save_subject_figure(generate_breast_subject(seed, index), BREAST, out_dir / "breast_phantom.png"),
            _toy_figure(out_dir / "toy_phantom.png", seed),
        ]
        return [str(p) for p in paths]

    def info(self) -> str:
        """The tissue table and sequence timings used by the simulators, as JSON."""
        from dataclasses import asdict

        from monai_seq2seq.phantoms import tissues

        data = {
            "brain_tissues": {k: asdict(v) for k, v in tissues.BRAIN_TISSUES.items()},
            "brain_sequences": {k: asdict(v) for k, v in tissues.BRAIN_SEQUENCES.items()},
            "breast_tissues": {k: asdict(v) for k, v in tissues.BREAST_TISSUES.items()},
            "breast_sequences": {k: asdict(v) for k, v in tissues.BREAST_SEQUENCES.items()},
        }
        return json.dumps(data, indent=2)


def _realism(realism, snr: float | None):
    """``--realism`` (fire gives ``bias,noise`` as a tuple) and ``--realism_snr`` as a ``RealismConfig`` or None."""
    from monai_seq2seq.phantoms.realism import resolve_realism

    return resolve_realism(realism, **({} if snr is None else {"snr": float(snr)}))


def _toy_figure(path: Path, seed: int, n: int = 6) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from monai_seq2seq.phantoms.toy import LETTERS, AlphabetToyDataset

    ds = AlphabetToyDataset("train", num_samples=n, seed=seed)
    fig, axes = plt.subplots(2, n, figsize=(2.0 * n, 4.3))
    for i in range(n):
        item = ds[i]
        for r, k in enumerate(("X1", "X2")):
            axes[r, i].imshow(item[k][0].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r, i].set_title(f"{k}: label {LETTERS[int(item['label'][r])]}", fontsize=8)
            axes[r, i].axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


phantom = Phantom
"""Alias for hooking into the ``seq2seq`` console command (``fire.Fire({"phantom": phantom, ...})``)."""


def main() -> None:
    import fire

    fire.Fire(Phantom)


if __name__ == "__main__":
    main()
