"""Per-voxel uncertainty of a synthesised sequence: how much the predictions of each available source disagree.

Every source a subject has gives its own prediction of a missing sequence; the fused (multi-source) prediction
averages their representations. Where the single-source predictions agree, the sources carry the same
information about the target; where they differ, at least one of them is wrong by that much. The uncertainty
written beside a synthetic image is the root-mean-square deviation of these members from the fused prediction::

    U(x) = sqrt( 1/M sum_m (X'_m(x) - X'_fused(x))^2 )

over the M members: each source alone (decoded from the representation the fused path computed anyway, so the
sources are still encoded once) and, with ``flips``, the fused prediction of the left-right mirrored inputs
mirrored back (a second encoding of every source). With a single source the only member besides the fused
prediction is the mirrored one, so ``flips="auto"`` (default) switches it on exactly then.

With an ``error_model`` (:class:`~monai_seq2seq.inference.error_model.ErrorModel`) the result also carries a
calibrated map, the expected absolute error per voxel, and that map is what :func:`save_uncertainty` writes; the raw
spread stays in ``uncertainty`` (the quality model's features are taken from it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monai_seq2seq.io.nifti_writer import affine_of, save_volume

from ..transforms.slabs import slabs_to_volume
from .error_model import ErrorModel
from .quality import QualityModel, quality_line
from .synthesis import Seq2SeqSynthesizer

__all__ = [
    "FLIP_MEMBER",
    "SynthesisUncertainty",
    "UncertaintyEstimator",
    "save_uncertainty",
    "synthesize_with_uncertainty",
    "uncertainty_path",
    "uncertainty_sidecar",
    "write_uncertainty",
]

FLIP_MEMBER = "flipLR(fused)"
"""Member name of the fused prediction of the left-right mirrored sources, mirrored back."""

_FLIP_AXIS = 1  # X of a frames-first (T, X, Y, Z) volume: left-right in RAS


@dataclass
class SynthesisUncertainty:
    """A synthetic volume and its per-voxel uncertainty (:func:`synthesize_with_uncertainty`).

    Attributes:
        image: (T, X, Y, Z) fused synthetic volume in [0, 1], the same as ``Seq2SeqSynthesizer.synthesize``'s.
        uncertainty: (T, X, Y, Z) RMS deviation of the members from ``image``, in the same [0, 1] units.
        target: the synthesised sequence.
        sources: the sources that were fused.
        members: what the spread was taken over (source names and :data:`FLIP_MEMBER`).
        info: the sidecar record (how the written map was computed).
        calibrated: (T, X, Y, Z) expected absolute error from an error model ([0, 1] units), or ``None``.
    """

    target: str
    sources: list[str]
    image: torch.Tensor
    uncertainty: torch.Tensor
    members: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    calibrated: torch.Tensor | None = None

    @property
    def output_map(self) -> torch.Tensor:
        """The map written beside the synthetic image: ``calibrated`` when there is one, else ``uncertainty``."""
        return self.uncertainty if self.calibrated is None else self.calibrated


def _use_flips(flips: bool | str, sources: Sequence[str]) -> bool:
    if flips == "auto":
        return len(sources) == 1
    if isinstance(flips, bool):
        return flips
    raise ValueError(f"flips must be True, False or 'auto', got {flips!r}.")


def _checked_sources(synthesizer: Seq2SeqSynthesizer, volumes, target: str, sources) -> list[str]:
    sources = (
        [s for s in volumes if s != target] if sources is None else [synthesizer.protocol.canonical(s) for s in sources]
    )
    if not sources:
        raise ValueError(f"no source to synthesise {target} from: only {list(volumes)} given.")
    unknown = [s for s in sources if s not in volumes]
    if unknown:
        raise ValueError(f"sources {unknown} are not among the given volumes {list(volumes)}.")
    if synthesizer.spatial_dims != 2:
        raise NotImplementedError(
            "per-voxel uncertainty is implemented for 2.5D networks (spatial_dims=2); switch it off for 3D networks."
        )
    return sources


@torch.no_grad()
def _fused_and_spread(
    synthesizer: Seq2SeqSynthesizer, volumes: Mapping[str, torch.Tensor], target: str, sources: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused volume, the sum over single-source members of the squared deviations from it, and the member count
    per slice (Z,), all from one encoding of each source (the synthesiser's fast path plus one decode per source)."""
    prepared = [synthesizer._padded_slabs(volumes[s]) for s in sources]  # noqa: SLF001 (the synthesiser's fast path)
    step = min(synthesizer.slab_batch_size(p[0]) for p in prepared)
    streams = [synthesizer._encode_batches(volumes[s], p, step) for s, p in zip(sources, prepared, strict=True)]  # noqa: SLF001
    fused_pieces, spread_pieces, counts, size = [], [], [], None
    for batches in zip(*streams, strict=True):
        size = batches[0][0]
        reps = torch.stack([b[1] for b in batches])  # (S, B, ...)
        empties = torch.stack([b[2] for b in batches]).to(reps.device)  # (S, B)
        weight = (~empties).to(reps.dtype).reshape(*empties.shape, *([1] * (reps.ndim - 2)))
        z = (reps * weight).sum(0) / weight.sum(0).clamp_min(1.0)
        fused = synthesizer._blank(synthesizer._decode(z, target).float(), empties.all(0))  # noqa: SLF001
        fused01 = ((fused + 1) / 2).clamp(0, 1)
        spread = torch.zeros_like(fused01)
        count = torch.zeros(fused.shape[0], device=fused.device)
        if len(sources) > 1:
            for k in range(len(sources)):
                keep = ~empties[k]  # a source with nothing in a slab says nothing there (its features are constant)
                if not bool(keep.any()):
                    continue
                member = ((synthesizer._decode(reps[k][keep], target).float() + 1) / 2).clamp(0, 1)  # noqa: SLF001
                spread[keep] += (member - fused01[keep]) ** 2
                count[keep] += 1
        fused_pieces.append(fused.cpu())
        spread_pieces.append(spread.cpu())
        counts.append(count.cpu())
    height, width = size
    fused_volume = (slabs_to_volume(torch.cat(fused_pieces)[..., :height, :width], synthesizer.reassembly) + 1) / 2
    spread_volume = slabs_to_volume(torch.cat(spread_pieces)[..., :height, :width], synthesizer.reassembly)
    return fused_volume.clamp(0, 1), spread_volume, torch.cat(counts)


def _calibrate(result: SynthesisUncertainty, error_model: ErrorModel, sources: Mapping[str, torch.Tensor]) -> None:
    """Add the error model's expected absolute error to ``result`` and make the sidecar describe it."""
    if not error_model.covers(result.target):
        result.info["Map"] = f"raw spread (error model {error_model.source} has no regression for {result.target})"
        return
    result.calibrated = error_model.expected_error(result.image, result.uncertainty, result.target, sources)
    raw = {"RawUncertaintyMethod": result.info.pop("Method"), "RawUncertaintyFormula": result.info.pop("Formula")}
    result.info.update(
        Method=(
            "expected absolute error per voxel: exp of a linear model of log |synthetic - real| on per-voxel features "
            "(the raw uncertainty and its local means, the synthetic image's intensity, gradient and local standard "
            "deviation, the sources' local texture), fitted on held-out subjects"
        ),
        Formula="clamp(exp(intercept + coef . features + residual_std^2 / 2) - error_eps, 0, 1)",
        **error_model.sidecar(),
        **raw,
    )


def synthesize_with_uncertainty(
    synthesizer: Seq2SeqSynthesizer,
    volumes: Mapping[str, torch.Tensor],
    target: str,
    sources: Sequence[str] | None = None,
    flips: bool | str = "auto",
    error_model: ErrorModel | None = None,
) -> SynthesisUncertainty:
    """Synthesise ``target`` from the fused sources and its per-voxel uncertainty, each source encoded once.

    Args:
        synthesizer: a 2.5D :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        volumes: name -> (T, X, Y, Z) in [0, 1].
        target: the sequence to synthesise.
        sources: default: every given volume except the target itself.
        flips: add the fused prediction of the left-right mirrored sources as a member (one more encoding of
            every source and one decode); ``"auto"``: only with a single source, whose spread is otherwise 0.
        error_model: also compute the calibrated map (``calibrated``, the expected absolute error) when the model
            has a regression for ``target``; the sidecar record then describes that map.

    Returns:
        :class:`SynthesisUncertainty`. Shapes: ``image``, ``uncertainty`` and ``calibrated`` (T_target, X, Y, Z) on
        the CPU.

    Raises:
        ValueError: no source, an unknown source, or a bad ``flips``.
        NotImplementedError: a 3D network (sliding windows have no fused fast path).
    """
    checked = synthesizer._check(volumes)  # noqa: SLF001 (the synthesiser's own checks)
    target = synthesizer.protocol.canonical(target)
    sources = _checked_sources(synthesizer, checked, target, sources)
    use = {s: checked[s] for s in sources}
    image, spread, count = _fused_and_spread(synthesizer, use, target, sources)
    members = list(sources) if len(sources) > 1 else []
    if _use_flips(flips, sources):
        mirrored = synthesizer.synthesize({s: v.flip(_FLIP_AXIS) for s, v in use.items()}, target, sources)
        spread = spread + (mirrored.flip(_FLIP_AXIS) - image) ** 2
        count = count + 1
        members.append(FLIP_MEMBER)
    uncertainty = (spread / count.clamp_min(1.0)).sqrt()  # count (Z,) broadcasts over the last axis
    info = {
        "Uncertainty": True,
        "Sequence": target,
        "Sources": list(sources),
        "Members": members,
        "Method": (
            "root-mean-square deviation of the members (each source alone"
            + (
                ", and the fused prediction of the left-right mirrored sources mirrored back"
                if FLIP_MEMBER in members
                else ""
            )
            + ") from the fused multi-source prediction, per voxel; sources encoded once"
        ),
        "Formula": "sqrt(1/M sum_m (X'_m - X'_fused)^2)",
        "IntensitySpace": "the synthetic image's [0, 1] intensity units",
    }
    result = SynthesisUncertainty(target, list(sources), image, uncertainty, members, info)
    if error_model is not None:
        _calibrate(result, error_model, use)
    return result


def save_uncertainty(
    result: SynthesisUncertainty,
    reference: Any,
    path: str | Path,
    extra: Mapping[str, Any] | None = None,
    spec: Any = None,
) -> Path:
    """Write ``result.output_map`` (the calibrated map if any, else the raw uncertainty) as NIfTI with its sidecar
    (atomic), on the grid of ``reference``.

    Args:
        result: from :func:`synthesize_with_uncertainty`.
        reference: a source volume (MetaTensor or tensor) whose affine the map takes.
        path: ``<out>/<subject>/<subject>_<Target>_uncertainty.nii.gz``.
        extra: more sidecar fields (model, quality prediction...).
        spec: the target's :class:`~monai_seq2seq.core.protocols.SequenceSpec` (frame axis and values of a 4D map).
    """
    save_volume(
        result.output_map,
        affine_of(reference),
        Path(path),
        description=f"UNCERTAINTY of synthetic {result.target}",
        sidecar={**result.info, **dict(extra or {})},
        frame_axis=getattr(spec, "frame_axis", None),
        frame_values=list(getattr(spec, "frame_values", None) or []) or None,
    )
    return Path(path)


class UncertaintyEstimator:
    """What :class:`~monai_seq2seq.inference.SynthesisEvaluator` runs per target when uncertainty is on.

    Args:
        flips: as in :func:`synthesize_with_uncertainty`.
        quality_model: a ``quality.json`` (:class:`~monai_seq2seq.inference.quality.QualityModel`) or ``None``: then
            each volume also gets a predicted PSNR with an interval and a flag, printed as one line per volume.
        verbose: print the quality lines (the run's summary).
        error_model: an error model JSON file (:class:`~monai_seq2seq.inference.error_model.ErrorModel`) or ``None``:
            then the written uncertainty is the calibrated map (expected absolute error); the quality model still
            reads the raw spread.

    Raises:
        QualityModelError: the quality model file is missing or malformed.
        ErrorModelError: the error model file is missing or malformed.
    """

    def __init__(
        self,
        flips: bool | str = "auto",
        quality_model: str | Path | QualityModel | None = None,
        verbose: bool = True,
        error_model: str | Path | ErrorModel | None = None,
    ) -> None:
        _use_flips(flips, ["a"])  # validates
        self.flips = flips
        if quality_model is not None and not isinstance(quality_model, QualityModel):
            quality_model = QualityModel.from_file(quality_model)
        self.quality_model = quality_model
        if error_model is not None and not isinstance(error_model, ErrorModel):
            error_model = ErrorModel.from_file(error_model)
        self.error_model = error_model
        self.verbose = verbose
        self.summary: list[dict[str, Any]] = []

    def __call__(
        self,
        synthesizer: Seq2SeqSynthesizer,
        volumes: Mapping[str, torch.Tensor],
        target: str,
        subject: str = "subject",
        warnings: Sequence[str] = (),
    ) -> SynthesisUncertainty:
        """Synthesise ``target`` from ``volumes`` (all used as sources) with its uncertainty and quality record."""
        result = synthesize_with_uncertainty(
            synthesizer, volumes, target, flips=self.flips, error_model=self.error_model
        )
        if self.quality_model is not None:
            quality = self.quality_model.predict(result.uncertainty, result.target, volumes, warnings)
            if quality is not None:
                result.info["Quality"] = quality
                self.summary.append({"subject": subject, "sequence": result.target, **quality})
                if self.verbose:
                    print(quality_line(subject, result.target, quality), flush=True)
        return result


def uncertainty_path(synthetic_path: str | Path) -> Path:
    """``<subject>_<Target>_uncertainty.nii.gz`` beside ``<subject>_<Target>_synthetic.nii.gz``."""
    path = Path(synthetic_path)
    name = path.name.replace("_synthetic", "_uncertainty")
    return path.with_name(name if name != path.name else f"uncertainty_{path.name}")


def uncertainty_sidecar(subject: Mapping[str, Any], target: str, synthetic_path: str | Path) -> dict[str, Any]:
    """Fields for the synthetic image's sidecar: the uncertainty file's name and the quality record, if any."""
    result = (subject.get("uncertainty") or {}).get(target)
    if result is None:
        return {}
    out: dict[str, Any] = {"UncertaintyFile": uncertainty_path(synthetic_path).name}
    if "Quality" in result.info:
        out["Quality"] = result.info["Quality"]
    return out


def write_uncertainty(
    subject: Mapping[str, Any],
    target: str,
    synthetic_path: str | Path,
    overwrite: bool = False,
    spec: Any = None,
    model_name: str | None = None,
) -> Path | None:
    """Write the subject's uncertainty of ``target`` beside its synthetic image; ``None`` when it has none.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is not set.
    """
    result = (subject.get("uncertainty") or {}).get(target)
    if result is None:
        return None
    path = uncertainty_path(synthetic_path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    reference = subject.get(result.sources[0], result.image)
    extra = {"SyntheticImage": Path(synthetic_path).name, **({"Model": model_name} if model_name else {})}
    return save_uncertainty(result, reference, path, extra, spec)
