"""``seq2seq advise [SUBJECT_OR_DATALIST]``: which missing sequence to acquire first, which acquired one is redundant.

Runs the bundle's ``configs/advise.json`` (an override on ``inference.json``): for each subject the missing
sequences are ranked by how much of them cannot be recovered from what was acquired (the subject's own
uncertainty and the cohort's adjacency matrix, :mod:`monai_seq2seq.analysis.advice`), per region when the subject
has a segmentation, and the acquired sequence most predictable from the others is named. Writes ``advice.json``
and ``advice.md`` into the output folder and prints a few lines per subject.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .bundle import _datalist_overrides, run_bundle_config

__all__ = ["advise"]


def _datalist_of_folder(folder: Path, workdir: Path) -> Path:
    """A datalist of a subject folder or data set (its layout recognised as ``seq2seq datalist`` does)."""
    from monai_seq2seq.data import scan_layout
    from monai_seq2seq.data.layouts import datalist_from_scan

    out = workdir / "datalist.json"
    datalist_from_scan(scan_layout(folder), out, derived_dir=workdir / "derived")
    return out


def advise(
    subject_or_datalist: str | None = None,
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    split: str = "auto",
    drop: list[str] | None = None,
    **overrides: Any,
) -> str:
    """Acquisition advice for a datalist, a data folder, or (without one) the bundle's embedded phantom.

    Example: ``seq2seq advise brats/datalist.json --out advice``; ``seq2seq advise`` alone advises phantom subjects
    with the config's sequences deleted (brain: T1Gd and FLAIR).

    Args:
        subject_or_datalist: a datalist JSON, or a folder (one subject's or a data set's, any layout
            ``seq2seq datalist`` recognises); ``None``: the embedded phantom.
        bundle: the bundle folder.
        out: output folder (default: the bundle's ``eval/advice``).
        split: the datalist's list to run on; ``auto``: ``testing`` if it has subjects, else the one non-empty list.
        drop: sequences to delete from every subject first (to see the advice for a shorter protocol).
        overrides: any other config id (``--advise_subject_weight 0``, ``--num_subjects 2``...).

    Returns:
        The output folder.
    """
    if subject_or_datalist is None:
        return run_bundle_config(bundle, "advise", output_dir=out, drop=drop, **overrides)
    path = Path(subject_or_datalist).expanduser()
    if not path.exists():
        raise ValueError(f"{subject_or_datalist!r} does not exist: give a datalist JSON or a data folder.")
    with tempfile.TemporaryDirectory(prefix="seq2seq-advise-") as workdir:
        datalist = _datalist_of_folder(path, Path(workdir)) if path.is_dir() else path
        return run_bundle_config(
            bundle, "advise", output_dir=out, drop=drop, **_datalist_overrides(str(datalist), split), **overrides
        )


def demo_section(bundle: str | Path, out_dir: Path, overrides: dict[str, Any]) -> str:
    """The demo report's section: advice for one phantom subject (``advise.json``'s deleted sequences), and a
    pointer to the uncertainty maps and quality records the demo's synthesis wrote."""
    import json

    run_bundle_config(bundle, "advise", output_dir=str(out_dir / "advice"), **{**overrides, "num_subjects": 1})
    table = (out_dir / "advice" / "advice.md").read_text()
    subjects = json.loads((out_dir / "advice" / "advice.json").read_text())["subjects"]
    quality = sorted(out_dir.glob("synthesis/*/*_synthetic.json"))
    records = [json.loads(p.read_text()).get("Quality") for p in quality]
    lines = [
        f"- {p.name}: {q['PredictedPSNR_dB']} dB {q['Interval_dB']}, flag {q['Flag']}"
        for p, q in zip(quality, records, strict=True)
        if q
    ]
    return f"""
## Acquisition advice (`seq2seq advise`)

`configs/advise.json` deleted {", ".join(sorted(set(s for a in subjects for s in a["acquire_next"])))} from one
held-out subject. Missing sequences ranked by how much of them cannot be recovered from what was acquired (the
cohort's adjacency matrix and the subject's own uncertainty), inside the tumour too, and the acquired sequence
most predictable from the others (`advice/advice.json` has every score):

{table}
The synthesis above also wrote each synthetic volume's per-voxel uncertainty (`*_uncertainty.nii.gz`, the spread
of the single-source predictions around the fused one) and, where the bundle has a quality model, its predicted
PSNR with a 90% interval and a flag in the sidecar:
{chr(10).join(lines) or "- (no quality model in this bundle)"}
"""
