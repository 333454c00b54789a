"""Synthesis of missing sequences as a MONAI (ignite) evaluator, and the handler that saves the volumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines import Evaluator

from monai_seq2seq.core.files import ensure_writable_dir, refuse_overwrite_inputs
from monai_seq2seq.data.brasyn import brasyn_filename, check_brasyn_protocol
from monai_seq2seq.io.nifti_writer import affine_of, save_nifti, save_volume
from monai_seq2seq.transforms.registration import REGISTRATION_KEY
from monai_seq2seq.transforms.trained_on import TRAINED_ON_KEY
from monai_seq2seq.transforms.validation import check_same_grid

from .synthesis import Seq2SeqSynthesizer
from .uncertainty import uncertainty_sidecar, write_uncertainty

__all__ = [
    "trained_on_sidecar",
    "provenance_sidecar",
    "input_files",
    "subject_collate",
    "subject_volumes",
    "SynthesisEvaluator",
    "SyntheticImageWriter",
]


def subject_collate(batch: list[dict]) -> list[dict]:
    """Keep subjects as a list: their sequences differ in frames and presence, so they are not stacked."""
    return list(batch)


def subject_volumes(subject: dict, protocol) -> dict[str, torch.Tensor]:
    """The available sequences of a subject dict (CONTRACTS.md), as plain (T, X, Y, Z) tensors.

    Raises:
        GridMismatchError: two sequences are not on one grid (shapes, and affines where they are MetaTensors,
            compared by :func:`~monai_seq2seq.transforms.validation.check_same_grid`): naming both and the fix.
    """
    present = {n: subject[n] for n in protocol.names if subject.get(n) is not None}
    check_same_grid(present, subject.get("subject"))
    return {n: v.as_tensor() if hasattr(v, "as_tensor") else torch.as_tensor(v) for n, v in present.items()}


def input_files(subject: dict, protocol) -> list[str]:
    """File names the subject's sequences were loaded from (MetaTensor ``filename_or_obj``)."""
    files = []
    for name in protocol.names:
        meta = getattr(subject.get(name), "meta", None)
        if isinstance(meta, dict) and meta.get("filename_or_obj"):
            files.append(str(meta["filename_or_obj"]))
    return files


class SynthesisEvaluator(Evaluator):
    """Synthesise the missing sequences of every subject of a data loader.

    Each iteration takes a list of subject dicts (use :func:`subject_collate`), finds the available sequences,
    and synthesises each requested target from all available sources (multi-source fusion) or from one named
    source. ``engine.state.output`` is the list of subjects with ``"synthetic"``: target -> (T, X, Y, Z) in [0, 1].

    Args:
        device: torch device.
        val_data_loader: yields lists of subject dicts with normalised [0, 1] sequences.
        synthesizer: a :class:`Seq2SeqSynthesizer`.
        targets: ``"missing"`` (default: every protocol sequence a subject lacks) or a list of sequence names;
            asking for a sequence the subject already has is an error unless ``allow_present``.
        sources: ``None`` (all available) or a list of names to use.
        allow_present: synthesise present targets too (evaluation).
        val_handlers: MONAI/ignite handlers (e.g. :class:`SyntheticImageWriter`, a progress bar).
        uncertainty: an :class:`~monai_seq2seq.inference.UncertaintyEstimator` to also compute each target's
            per-voxel uncertainty (and quality record): ``subject["uncertainty"][target]``; ``None``: off.
            2.5D networks only (a 3D network synthesises without it).
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader,
        synthesizer: Seq2SeqSynthesizer,
        targets: str | Sequence[str] = "missing",
        sources: Sequence[str] | None = None,
        allow_present: bool = False,
        val_handlers: Sequence | None = None,
        epoch_length: int | None = None,
        uncertainty=None,
    ) -> None:
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            epoch_length=epoch_length,
            val_handlers=val_handlers,
            decollate=False,
        )
        self.synthesizer = synthesizer
        self.uncertainty = uncertainty
        self.protocol = synthesizer.protocol
        self.targets = targets
        self.sources = None if sources is None else [self.protocol.canonical(s) for s in sources]
        self.allow_present = allow_present

    def _targets_for(self, subject_id: str, available: list[str]) -> list[str]:
        if self.targets == "missing":
            return [n for n in self.protocol.names if n not in available]
        targets = [self.protocol.canonical(t) for t in self.targets]
        present = [t for t in targets if t in available]
        if present and not self.allow_present:
            raise ValueError(
                f"subject {subject_id!r} already has {present}; remove them from `targets` or set allow_present."
            )
        return targets

    def _iteration(self, engine: Any, batchdata: list[dict]) -> list[dict]:
        outputs = []
        for subject in batchdata:
            subject_id = str(subject.get("subject", f"subject_{engine.state.iteration}"))
            volumes = subject_volumes(subject, self.protocol)
            sources = self.sources or list(volumes)
            lacking = [s for s in sources if s not in volumes]
            if lacking:
                raise ValueError(f"subject {subject_id!r} lacks the requested source(s) {lacking}.")
            if not sources:
                raise ValueError(f"subject {subject_id!r} has none of the protocol's sequences.")
            synthetic, uncertain = {}, {}
            targets = self._targets_for(subject_id, list(volumes))
            if not targets:  # a real subject with every sequence: nothing is deleted, so nothing is made
                self.logger.info(f"subject {subject_id!r} has all of {list(volumes)}: nothing to synthesise.")
            for target in targets:
                use = [s for s in sources if s != target]
                if not use:
                    raise ValueError(f"subject {subject_id!r}: no source left to synthesise {target} from.")
                given = {s: volumes[s] for s in use}
                if self.uncertainty is not None and self.synthesizer.spatial_dims == 2:  # 3D: no fused fast path
                    warnings = trained_on_sidecar(subject).get("TrainedOnWarnings", [])
                    uncertain[target] = self.uncertainty(self.synthesizer, given, target, subject_id, warnings)
                    synthetic[target] = (uncertain[target].image, use)
                    continue
                synthetic[target] = (self.synthesizer.synthesize(given, target), use)
            outputs.append({**subject, "subject": subject_id, "synthetic": synthetic, "uncertainty": uncertain})
        return outputs


def trained_on_sidecar(subject: dict) -> dict[str, list[str]]:
    """``{"TrainedOnWarnings": [...]}`` when the preprocessing compared the subject with the bundle's training data
    (:class:`~monai_seq2seq.transforms.CheckTrainedOnd`; an empty list: it matched), else ``{}``."""
    if TRAINED_ON_KEY not in subject:
        return {}
    return {"TrainedOnWarnings": [str(line) for line in subject[TRAINED_ON_KEY]]}


REGISTRATION_FIELDS = ("transform", "reference", "metric", "translation_norm_mm", "rotation_deg", "matrix_ras")


def provenance_sidecar(subject: dict, sources: list[str]) -> dict[str, dict]:
    """What was done to the sources before synthesis, for the synthetic image's sidecar: ``"Registration"`` (per
    source moved by :class:`~monai_seq2seq.transforms.RegisterToReferenced`: transform, reference, metric, size of
    the motion and the matrix) and ``"DerivedSources"`` (per source computed by a formula from another sequence,
    e.g. WashIn from DCE: what it was derived from and the formula). Empty when neither applies."""
    registration, derived = {}, {}
    for name in sources:
        meta = getattr(subject.get(name), "meta", None) or {}
        if isinstance(meta.get(REGISTRATION_KEY), dict):
            moved = meta[REGISTRATION_KEY]
            registration[name] = {k: moved[k] for k in REGISTRATION_FIELDS if k in moved}
        if meta.get("derived_from") is not None:
            derived[name] = {"DerivedFrom": str(meta["derived_from"]), "Formula": str(meta.get("formula", ""))}
    return {
        **({"Registration": _plain(registration)} if registration else {}),
        **({"DerivedSources": derived} if derived else {}),
    }


def _plain(value):
    """JSON-ready copy (tensors and arrays as lists, numpy scalars as floats)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _intensity_space(spec) -> str:
    """What [0, 1] means for a synthetic image of ``spec``: percentiles, or the protocol's fixed window."""
    if spec.intensity_window is not None:
        low, high = spec.intensity_window
        return f"[0, 1] = the fixed window [{low:g}, {high:g}] of {spec.name} (clipped)"
    return "[0, 1] after per-sequence percentile normalisation"


class SyntheticImageWriter:
    """Save each subject's synthetic volumes as ``<out>/<subject>/<subject>_<Target>_synthetic.nii.gz``.

    The source grid's affine is kept; the header description and a JSON sidecar say the image is synthetic,
    from which sources, with which model, in which intensity space. The output folder is checked at start;
    existing files are only replaced when ``overwrite`` is set, and never when they are one of the inputs.

    With ``brasyn=True`` (the BraSyn challenge's submission naming) a volume is written as
    ``<out>/<case>/<case>-<suffix>.nii.gz`` (e.g. ``BraTS-GLI-00001-000-t1c.nii.gz``,
    :func:`monai_seq2seq.data.brasyn_filename`), without sidecar: the challenge takes the file as it would have
    been in the data set. The header description still says it is synthetic.

    Raises:
        ValueError: ``brasyn`` with a protocol whose sequences have no BraTS 2023 names (at construction), or a
            subject id that is no BraTS 2023-2025 case id (when writing).
    """

    def __init__(
        self,
        output_dir: str | Path,
        protocol,
        model_name: str = "monai-seq2seq",
        overwrite: bool = False,
        brasyn: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.protocol = check_brasyn_protocol(protocol) if brasyn else protocol
        self.brasyn = bool(brasyn)
        self.model_name = model_name
        self.overwrite = overwrite
        self.written: list[Path] = []

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.output_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        for subject in engine.state.output:
            inputs = input_files(subject, self.protocol)
            for target, (volume, sources) in subject["synthetic"].items():
                reference = subject[sources[0]]
                name = f"{subject['subject']}_{target}_synthetic.nii.gz"
                if self.brasyn:
                    name = brasyn_filename(subject["subject"], target, self.protocol)
                path = self.output_dir / subject["subject"] / name
                refuse_overwrite_inputs([path], inputs)
                if path.exists() and not self.overwrite:
                    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
                spec = self.protocol[target]
                if self.brasyn:  # the challenge's file alone, as it would lie in the data set (3D, no sidecar)
                    array = torch.as_tensor(volume).detach().float().cpu().numpy()[0]
                    description = f"SYNTHETIC {target} from {'+'.join(sources)}"
                    save_nifti(array, affine_of(reference), path, overwrite=True, description=description)
                    self.written.append(path)
                    continue
                save_volume(
                    volume,
                    affine_of(reference),
                    path,
                    description=f"SYNTHETIC {target} from {'+'.join(sources)}",
                    sidecar={
                        "Synthetic": True,
                        "Sequence": target,
                        "Sources": sources,
                        "Model": self.model_name,
                        "IntensitySpace": _intensity_space(spec),
                        **trained_on_sidecar(subject),
                        **provenance_sidecar(subject, sources),
                        **uncertainty_sidecar(subject, target, path),
                    },
                    frame_axis=spec.frame_axis,
                    frame_values=list(spec.frame_values),
                )
                self.written.append(path)
                uncertainty = write_uncertainty(subject, target, path, self.overwrite, spec, self.model_name)
                self.written += [uncertainty] if uncertainty is not None else []
