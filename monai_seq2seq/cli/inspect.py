"""``seq2seq inspect ROOT``: what a folder or datalist holds and what a bundle would do with each subject.

:func:`inspect_cohort` (the Python function) returns the report as a dict: the header-only inspection of
:func:`monai_seq2seq.data.inspect.inspect_root`, plus per subject what the bundle would **synthesise** (the
protocol's sequences the subject lacks), **analyse** (the ones it has) or **refuse** (and why), and every way the
subject differs from what the bundle's weights were trained on (the ``trained_on`` block of its
``metadata.json``: spacing, orientation, field of view, frame values; with ``deep=True`` the voxels are read too,
for the skull-strip and intensity checks). :func:`inspect` prints it as a table and can write the JSON.

``python -m monai_seq2seq.cli.inspect trained-on <bundle> [--write True]`` measures the ``trained_on`` block from
the training phantom of the bundle's ``train.json`` (see :func:`measure_trained_on`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from monai_seq2seq.cli.bundle import resolve_bundle
from monai_seq2seq.core.files import atomic_write_text
from monai_seq2seq.core.protocols import get_protocol
from monai_seq2seq.data.inspect import InspectionReport, SubjectReport, inspect_root
from monai_seq2seq.transforms.trained_on import (
    CheckTrainedOn,
    format_spacing,
    geometry_findings,
    intensity_profile,
    load_trained_on,
    outside_brain_fraction,
)

__all__ = ["inspect_cohort", "inspect", "format_report", "measure_trained_on", "trained_on"]


def _bundle_config(bundle: str | Path, name: str = "inference"):
    from monai.bundle import ConfigParser

    bundle = resolve_bundle(bundle)
    path = bundle / "configs" / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist: is {str(bundle)!r} a monai-seq2seq bundle folder?")
    parser = ConfigParser()
    parser.read_config(str(path))
    parser["bundle_root"] = str(bundle)
    return parser


def _plan(subject: SubjectReport, protocol, trained: dict, deep: bool) -> dict[str, Any]:
    """What the bundle would do with one subject, and its trained-on findings."""
    findings: list[str] = []
    for info in subject.sequences.values():
        if info.affine is None:
            continue
        if deep:
            from monai_seq2seq.io import load_sequence

            try:
                img = load_sequence(info.file)
            except Exception as err:  # noqa: BLE001 - one line of the report
                findings.append(f"{info.name}: cannot read the voxels: {err}")
                continue
            findings += CheckTrainedOn(trained, info.name, log=False).findings(img, info.name)
        else:
            values = info.frame_values if info.frames > 1 else None
            findings += geometry_findings(info.name, info.spacing, info.axcodes, info.shape, trained, values)
    refuse = list(subject.errors)
    if not subject.sequences:
        refuse.append("no sequence of the protocol")
    available = [n for n in protocol.names if n in subject.sequences]
    return {
        "synthesise": [] if refuse else list(subject.missing),
        "analyse": [] if refuse or len(available) < 2 else available,
        "refuse": refuse,
        "trained_on": findings,
    }


def inspect_cohort(
    root: str | Path,
    bundle: str | Path | None = "bundles/seq2seq_brain",
    protocol: str | None = None,
    deep: bool = False,
    atol_mm: float = 0.1,
) -> dict[str, Any]:
    """Inspect a folder (layout detected) or datalist JSON against a bundle.

    Args:
        root: the data set's folder or a datalist JSON.
        bundle: the bundle folder (its protocol and ``trained_on`` block); ``None``: headers only.
        protocol: override the protocol (default: the bundle's, or detected).
        deep: also read the voxels (skull-strip and intensity checks; slower).
        atol_mm: tolerance of the grid comparison between a subject's sequences.

    Returns:
        ``{"root", "protocol", "bundle", "subjects": [{..., "plan": {"synthesise", "analyse", "refuse",
        "trained_on"}}], "unrecognised", "problems"}``.
    """
    trained: dict[str, Any] = {}
    if bundle is not None:
        parser = _bundle_config(bundle)
        protocol = protocol or parser["protocol"]
        meta = json.loads((resolve_bundle(bundle) / "configs" / "metadata.json").read_text())
        trained = load_trained_on(meta) if "trained_on" in meta else {}
    report: InspectionReport = inspect_root(root, protocol, atol_mm)
    proto = get_protocol(report.protocol)
    out = report.to_dict()
    out["bundle"] = None if bundle is None else str(bundle)
    for subject, entry in zip(report.subjects, out["subjects"], strict=True):
        entry["plan"] = _plan(subject, proto, trained, deep)
    return out


def _cell(values: Any) -> str:
    return ", ".join(values) if values else "-"


def format_report(report: dict[str, Any]) -> str:
    """The report of :func:`inspect_cohort` as a readable table, one block per subject."""
    lines = [f"{report['root']}: {len(report['subjects'])} subject(s), protocol {report['protocol']}"]
    if report.get("bundle"):
        lines[0] += f", bundle {report['bundle']}"
    header = f"  {'sequence':<10} {'grid':<14} {'spacing':<18} {'orient':<6} {'frames':<6} file (frame values)"
    for subject in report["subjects"]:
        lines += ["", f"subject {subject['subject']}", header]
        for info in subject["sequences"].values():
            grid = "x".join(map(str, info["shape"])) or "?"
            spacing = format_spacing(info["spacing"]) if info["spacing"] else "?"
            values = "" if not info["frame_values"] else f" ({', '.join(f'{v:g}' for v in info['frame_values'])})"
            lines.append(
                f"  {info['name']:<10} {grid:<14} {spacing:<18} {info['axcodes'] or '?':<6} {info['frames']:<6} "
                f"{Path(info['file']).name}{values}"
            )
        plan = subject.get("plan", {})
        if plan:
            lines.append(
                f"  missing: {_cell(subject['missing'])} | synthesise: {_cell(plan['synthesise'])} | "
                f"analyse: {_cell(plan['analyse'])} | "
                f"refuse: {'yes' if plan['refuse'] else 'no'}"
            )
        else:
            lines.append(f"  missing: {_cell(subject['missing'])}")
        for line in subject["errors"]:
            lines.append(f"  ERROR {line}")
        for line in subject["warnings"] + plan.get("trained_on", []):
            lines.append(f"  ! {line}")
    if report["unrecognised"]:
        lines += ["", "files that look like images but are not used:"] + [f"  {f}" for f in report["unrecognised"]]
    for line in report["problems"]:
        lines.append(f"! {line}")
    return "\n".join(lines)


def inspect(
    root: str,
    bundle: str | None = "bundles/seq2seq_brain",
    out: str | None = None,
    protocol: str | None = None,
    deep: bool = False,
) -> None:
    """Print what ROOT (a folder or datalist JSON) holds and what the bundle would do with each subject.

    Example: ``seq2seq inspect /data/BraTS2021 --bundle bundles/seq2seq_brain --out inspect.json``.

    Args:
        root: the data set's folder or a datalist JSON.
        bundle: the bundle folder (``None``: headers only, no plan).
        out: also write the report as JSON here.
        protocol: override the protocol.
        deep: also read the voxels (skull-strip and intensity checks).
    """
    report = inspect_cohort(root, bundle, protocol, deep)
    print(format_report(report))
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
        print(f"\nreport written to {out}")


def _spatial(img) -> tuple[list[float], str, list[int]]:
    import nibabel as nib
    from monai.data.utils import affine_to_spacing

    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = [round(float(v), 4) for v in affine_to_spacing(affine, r=3)]
    return spacing, "".join(nib.aff2axcodes(affine)), [int(s) for s in img.shape[1:]]


def _unique(values: list, what: str) -> Any:
    distinct = {json.dumps(v) for v in values}
    if len(distinct) != 1:
        raise ValueError(f"the training phantom's {what} varies between subjects: {sorted(distinct)}.")
    return values[0]


def measure_trained_on(bundle: str | Path, num_subjects: int | None = None) -> dict[str, Any]:
    """The ``trained_on`` block of a bundle, measured on the training phantom its ``train.json`` builds.

    The cohort is ``train.json``'s ``phantom`` (its seed, spacing, shape); the normalisation is
    ``inference.json``'s ``normalise`` (percentiles, non-zero voxels or all). Spacing, orientation and grid are
    read from the generated subjects; skull stripping (brain protocol) is measured with
    :func:`~monai_seq2seq.transforms.trained_on.outside_brain_fraction`; percentiles per sequence are the mean
    over subjects, the normalised median its range.

    Args:
        bundle: the bundle folder.
        num_subjects: measure on the first subjects only (``None``: the whole training cohort).
    """
    train = _bundle_config(bundle, "train")
    if num_subjects is not None:
        train["num_subjects"] = int(num_subjects)
    cohort = train.get_parsed_content("phantom")
    proto = get_protocol(train["protocol"])
    norm_cfg = _bundle_config(bundle)["normalise"]
    norm = {
        "lower": float(norm_cfg.get("lower", 0.5)),
        "upper": float(norm_cfg.get("upper", 99.5)),
        "nonzero": bool(norm_cfg.get("nonzero", False)),
    }
    windows = proto.intensity_windows()
    spacings, axcodes, shapes, outside = [], [], [], []
    profiles: dict[str, list[dict]] = {n: [] for n in proto.names}
    frames: dict[str, list] = {}
    for i in range(len(cohort)):
        sample = cohort[i]
        for name in sample["available"]:
            img = sample[name]
            sp, codes, shape = _spatial(img)
            spacings.append(sp)
            axcodes.append(codes)
            shapes.append(shape)
            data = img.detach().cpu().numpy()
            profiles[name].append(intensity_profile(data, norm["lower"], norm["upper"], norm["nonzero"]))
            if proto[name].is_4d:
                frames.setdefault(name, []).append([float(v) for v in img.meta.get("frame_values", [])])
            if proto.name == "brain":
                outside.append(outside_brain_fraction(data.mean(0), sp))
    spacing = _unique(spacings, "spacing")
    shape = _unique(shapes, "grid shape")
    intensity: dict[str, Any] = {"normalisation": norm}
    for name, items in profiles.items():
        if not items:
            continue
        keys = list(items[0]["percentiles"])
        entry: dict[str, Any] = {
            "percentiles": {k: round(float(np.mean([p["percentiles"][k] for p in items])), 3) for k in keys}
        }
        medians = [p["normalised_median"] for p in items if p["normalised_median"] is not None]
        if name not in windows and medians:  # fixed-window maps are not normalised by percentiles
            entry["normalised_median"] = [round(float(min(medians)), 3), round(float(max(medians)), 3)]
        intensity[name] = entry
    return {
        "command": f"python -m monai_seq2seq.cli.inspect trained-on {bundle} --write True",
        "data": f"configs/train.json 'phantom': {train.get('phantom')}",
        "subjects": len(cohort),
        "seed": train.get("phantom_seed"),
        "protocol": proto.name,
        "spacing_mm": spacing,
        "orientation": _unique(axcodes, "orientation"),
        "shape": shape,
        "field_of_view_mm": [round(s * n, 2) for s, n in zip(spacing, shape, strict=True)],
        "skull_stripped": (max(outside) < 0.1) if outside else None,
        "outside_brain_mask_fraction_max": round(float(max(outside)), 4) if outside else None,
        "frame_values": {name: _unique(values, f"{name} frame values") for name, values in frames.items()},
        "intensity": intensity,
    }


def trained_on(bundle: str, write: bool = False, num_subjects: int | None = None) -> dict[str, Any] | None:
    """Measure a bundle's ``trained_on`` block (:func:`measure_trained_on`); ``write=True`` puts it into its
    ``configs/metadata.json`` (other fields kept), else prints it."""
    block = measure_trained_on(bundle, num_subjects)
    if not write:
        return block
    path = resolve_bundle(bundle) / "configs" / "metadata.json"
    meta = json.loads(path.read_text())
    meta["trained_on"] = block
    atomic_write_text(path, json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    print(f"trained_on written to {path}")
    return None


if __name__ == "__main__":
    import fire

    fire.Fire({"inspect": inspect, "trained-on": trained_on})
