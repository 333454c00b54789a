"""Synthetic volumes as DICOM series in their source study: the ignite handler beside ``SyntheticImageWriter``.

:class:`SyntheticDicomWriter` writes each synthetic sequence of a subject as a derived MR series
(:func:`~monai_seq2seq.io.dicom_synthetic.write_synthetic_series`) into
``<out>/<subject>/dicom/synthetic_<Sequence>/``, in the study of the series the subject was read from. A subject
read from NIfTI (or the bundles' in-memory phantom) has no source study: its series go into a new study
(PatientID = the subject id, nothing else about the patient) and the log says so. The bundles choose the writers
with the config id ``output_format`` (``nifti``, ``dicom`` or ``both``; :func:`writes_format`):
``seq2seq synthesize --output_format dicom``.

The series' DerivationDescription names what made it: this toolkit and its version, the network, the bundle and
its version, the sha256 of the weights, the source sequences (with their series number and description, or
"not DICOM") and the intensity space; the same words the NIfTI sidecar holds.

A subject that carries the per-voxel uncertainty of a target (``subject["uncertainty"][target]``, a
:class:`~monai_seq2seq.inference.SynthesisUncertainty`: uncertainty on) also gets it as a DICOM Parametric Map
series (float values, :func:`~monai_seq2seq.io.dicom_maps.write_parametric_map`) in
``<out>/<subject>/dicom/uncertainty_<Sequence>/``: derived from the synthetic series it belongs to (same study and
frame of reference, its images as source images, its series in the Referenced Series Sequence, the acquired
source series as further sources), SeriesDescription ``UNCERTAINTY <Sequence> (monai-seq2seq)``, series number
``4001 + index``, one instance per frame, values in the synthetic image's [0, 1] intensity units, and how it was
computed (the NIfTI uncertainty sidecar's words) as each frame's Derivation Description.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

import monai_seq2seq
from monai_seq2seq.core.files import ensure_writable_dir
from monai_seq2seq.core.integrity import sha256_file
from monai_seq2seq.io.dicom_derived import TOOL, SourceSeries, find_source_series
from monai_seq2seq.io.dicom_maps import write_parametric_map
from monai_seq2seq.io.dicom_synthetic import SYNTHETIC_SERIES_BASE, write_synthetic_series
from monai_seq2seq.io.nifti_writer import affine_of

from .engine import _intensity_space, input_files

__all__ = [
    "OUTPUT_FORMATS",
    "UNCERTAINTY_SERIES_BASE",
    "uncertainty_series_description",
    "writes_format",
    "ModelProvenance",
    "subject_source_series",
    "refuse_input_overlap",
    "SyntheticDicomWriter",
]

OUTPUT_FORMATS = ("nifti", "dicom", "both")
"""The values of the bundles' ``output_format`` id."""

UNCERTAINTY_SERIES_BASE = 4000
"""An uncertainty series is numbered ``4000 + 1 + <its sequence's index in the protocol>`` (synthetic series
1001+, differentiation maps 2001+, their overlays 3001+)."""

_LOG = logging.getLogger(__name__)


def uncertainty_series_description(sequence: str) -> str:
    """``UNCERTAINTY <sequence> (monai-seq2seq)``: the SeriesDescription of a synthetic sequence's uncertainty."""
    return f"UNCERTAINTY {sequence} ({TOOL})"[:64]


def writes_format(output_format: str, kind: str) -> bool:
    """Whether ``output_format`` (``"nifti"``, ``"dicom"`` or ``"both"``) includes ``kind`` (``"nifti"`` or
    ``"dicom"``): the bundles' ``_disabled_`` switch of each writer.

    Raises:
        ValueError: ``output_format`` is none of :data:`OUTPUT_FORMATS` (named, with the flag).
    """
    fmt = str(output_format).strip().lower()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(
            f"output_format {output_format!r} is not one of {list(OUTPUT_FORMATS)}: pass --output_format nifti, "
            "dicom or both."
        )
    return fmt in (kind, "both")


class ModelProvenance:
    """What made a derived image, as one line: toolkit version, network, bundle name and version, weights sha256.

    Args:
        model_name: the bundle's (or model's) name, used when ``metadata`` gives none.
        network: the network, e.g. ``"Seq2Seq-C small"``.
        metadata: the bundle's ``configs/metadata.json`` (its ``name`` and ``version``); ``None``: unknown.
        weights: the weights file (its sha256 is computed once, when first needed); ``None``: no weights loaded.
        weights_sha256: the weights' sha256 when known (skips hashing).
    """

    def __init__(
        self,
        model_name: str = "monai-seq2seq",
        network: str = "Seq2Seq",
        metadata: str | Path | None = None,
        weights: str | Path | None = None,
        weights_sha256: str | None = None,
    ) -> None:
        meta = {}
        if metadata is not None and Path(metadata).is_file():
            meta = json.loads(Path(metadata).read_text())
        self.bundle = str(meta.get("name") or model_name)
        self.version = str(meta.get("version", "")) or "unknown"
        self.network = str(network)
        self.weights = None if weights is None else Path(weights)
        self._sha256 = weights_sha256

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            if self.weights is None:
                self._sha256 = "none (no weights loaded)"
            elif self.weights.is_file():
                self._sha256 = sha256_file(self.weights)
            else:
                self._sha256 = f"unknown ({self.weights.name} not found)"
        return self._sha256

    def line(self) -> str:
        return (
            f"monai-seq2seq {monai_seq2seq.__version__}, network {self.network} of bundle {self.bundle} "
            f"{self.version}, weights sha256 {self.sha256}"
        )


def subject_source_series(subject: Mapping, names: Sequence[str], cache: dict | None = None) -> list[SourceSeries]:
    """The DICOM series the sequences ``names`` of a subject were read from, in that order, each once, all of the
    study of the first one found (series of another study are left out: a derived object belongs to one study)."""
    found: list[SourceSeries] = []
    cache = {} if cache is None else cache
    for name in names:
        meta = getattr(subject.get(name), "meta", None)
        if not isinstance(meta, Mapping):
            continue
        series = find_source_series(meta, name, cache)
        if series is None or any(s.uid == series.uid for s in found):
            continue
        if found and series.study_uid != found[0].study_uid:
            _LOG.warning(f"{series.label} belongs to another study than {found[0].label}: not referenced.")
            continue
        found.append(series)
    return found


def refuse_input_overlap(folder: str | Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an output series folder that is an input, lies inside an input folder (a DICOM series folder, or the
    folder of a DICOM file) or holds an input.

    Raises:
        ValueError: naming the folder, the input and the fix.
    """
    out = Path(folder).resolve()
    for item in inputs:
        path = Path(item).resolve()
        if path.is_file() and not path.name.lower().endswith((".nii", ".nii.gz")):
            path = path.parent  # a DICOM series given by its files (the first one): its folder is the input
        if out == path or path in out.parents or out in path.parents:
            raise ValueError(
                f"refusing to write {str(folder)!r}: it overlaps the input {str(item)!r} (inputs are never modified); "
                "choose another output folder (--out)."
            )


def _source_words(names: Sequence[str], series: Sequence[SourceSeries]) -> str:
    by_name = {s.name: s for s in series}
    words = []
    for name in names:
        s = by_name.get(name)
        words.append(
            f"{name} (series {s.tag('SeriesNumber') or '?'} {s.tag('SeriesDescription')!r})"
            if s
            else f"{name} (not DICOM)"
        )
    return ", ".join(words)


class SyntheticDicomWriter:
    """Save each subject's synthetic volumes as derived DICOM MR series in ``<out>/<subject>/dicom/synthetic_<Seq>/``
    and, where the subject carries their uncertainty, each one's uncertainty as a Parametric Map series in
    ``<out>/<subject>/dicom/uncertainty_<Seq>/`` (series number ``4001 + index``).

    Args:
        output_dir: the output folder (checked writable at start).
        protocol: the protocol (names, frames of 4D sequences, series numbers ``1001 + index``).
        model_name: the bundle's name (when ``metadata`` gives none).
        network: the network's name, e.g. ``"Seq2Seq-C small"``.
        metadata: the bundle's ``configs/metadata.json`` (name and version).
        weights: the weights file (sha256 in the description); ``None``: no weights loaded.
        weights_sha256: the weights' sha256 when known.
        overwrite: replace earlier synthetic series (never an input).
        uid_seed: deterministic UIDs (the same inputs and seed give the same UIDs).

    Raises (when writing):
        ValueError: the output folder overlaps an input, a volume DICOM cannot store, or an uncertainty whose
            shape is not its synthetic volume's.
        FileExistsError: a series folder (synthetic or uncertainty) exists and ``overwrite`` is False; checked for
            both before either is written.
        UnreadableFileError: a source series is gone from where it was read.
    """

    def __init__(
        self,
        output_dir: str | Path,
        protocol,
        model_name: str = "monai-seq2seq",
        network: str = "Seq2Seq",
        metadata: str | Path | None = None,
        weights: str | Path | None = None,
        weights_sha256: str | None = None,
        overwrite: bool = False,
        uid_seed: str | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.protocol = protocol
        self.provenance = ModelProvenance(model_name, network, metadata, weights, weights_sha256)
        self.overwrite = overwrite
        self.uid_seed = uid_seed
        self.written: list[Path] = []
        self.logger = _LOG

    def attach(self, engine) -> None:
        from ignite.engine import Events

        self.logger = getattr(engine, "logger", _LOG)
        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.output_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        for subject in engine.state.output:
            self.write_subject(subject)

    def derivation(self, target: str, sources: Sequence[str], series: Sequence[SourceSeries]) -> str:
        """The DerivationDescription of a synthetic series."""
        return (
            f"SYNTHETIC image, not acquired: {target} synthesised by {self.provenance.line()}; from "
            f"{_source_words(sources, series)}; intensities {_intensity_space(self.protocol[target])}"
        )

    def uncertainty_derivation(self, target: str, result, sources: Sequence[str], series) -> str:
        """The Derivation Description of an uncertainty series: the NIfTI uncertainty sidecar's words."""
        info = dict(getattr(result, "info", None) or {})
        members = ", ".join(getattr(result, "members", None) or info.get("Members") or []) or "none"
        method = info.get("Method", "root-mean-square deviation of the members from the fused prediction, per voxel")
        return (
            f"UNCERTAINTY of SYNTHETIC {target} (not acquired): {method}; U = "
            f"{info.get('Formula', 'sqrt(1/M sum_m (X_m - X_fused)^2)')}; members: {members}; fused from "
            f"{_source_words(sources, series)}; units: "
            f"{info.get('IntensitySpace', 'the [0, 1] intensity units of the synthetic image')} "
            f"({_intensity_space(self.protocol[target])}); by {self.provenance.line()}"
        )

    def write_subject(self, subject: Mapping[str, Any]) -> list[Path]:
        """Write the synthetic series of one subject dict (``"subject"``, ``"synthetic"``: target -> (volume,
        sources), the sequences as MetaTensors, ``"uncertainty"``: target -> SynthesisUncertainty, optional) and
        their uncertainty series; returns the files written."""
        sid = str(subject["subject"])
        inputs = input_files(subject, self.protocol)
        cache: dict = {}
        written: list[Path] = []
        for target, (volume, sources) in subject["synthetic"].items():
            written += self._write_target(subject, sid, target, volume, sources, inputs, cache)
        self.written += written
        return written

    def _write_target(self, subject, sid: str, target: str, volume, sources, inputs, cache: dict) -> list[Path]:
        series = subject_source_series(subject, sources, cache)
        if not series:
            self.logger.warning(
                f"subject {sid!r}: {target} has no source DICOM series (read from NIfTI or memory): written "
                "as a new study, PatientID = the subject id."
            )
        folder = self.output_dir / sid / "dicom" / f"synthetic_{target}"
        refuse_input_overlap(folder, inputs)
        result = (subject.get("uncertainty") or {}).get(target)
        uncertainty_folder = folder.with_name(f"uncertainty_{target}")
        if result is not None:
            refuse_input_overlap(uncertainty_folder, inputs)
            _refuse_existing(uncertainty_folder, self.overwrite)
        spec = self.protocol[target]
        array = volume.detach().float().cpu().numpy() if hasattr(volume, "detach") else volume
        values = None if result is None else _frames_first_values(result.output_map, np.shape(array), target)
        affine = affine_of(subject[sources[0]])
        written = write_synthetic_series(
            array,
            affine,
            folder,
            sequence=target,
            sources=series,
            derivation_description=self.derivation(target, sources, series),
            frame_axis=spec.frame_axis if spec.is_4d else None,
            frame_values=list(spec.frame_values) if spec.is_4d else None,
            series_number=SYNTHETIC_SERIES_BASE + 1 + self.protocol.index(target),
            subject_id=sid,
            uid_seed=self.uid_seed,
            model_name=self.provenance.network,
            software_version=f"monai-seq2seq {monai_seq2seq.__version__}",
            overwrite=self.overwrite,
        )
        if result is None:
            return written
        synthetic = SourceSeries(target, [pydicom.dcmread(p, stop_before_pixels=True) for p in written], str(folder))
        return written + self._write_uncertainty(values, result, target, (sources, series), synthetic, affine)

    def _write_uncertainty(self, values, result, target: str, origin, synthetic, affine) -> list[Path]:
        """The uncertainty of ``target`` (``values``: ``(T, X, Y, Z)``) as a Parametric Map series derived from its
        synthetic series ``synthetic`` (and ``origin``: the source names and their DICOM series), into
        ``uncertainty_<target>`` beside it."""
        sources, series = origin
        spec = self.protocol[target]
        folder = Path(synthetic.location).with_name(f"uncertainty_{target}")
        return write_parametric_map(
            values,
            affine,
            folder,
            sequence=target,
            sources=[synthetic, *series],
            description=f"UNCERTAINTY of synthetic {target}, [0,1] units",
            frame_axis=spec.frame_axis if spec.is_4d else None,
            frame_values=list(spec.frame_values) if spec.is_4d and len(spec.frame_values) == len(values) else None,
            series_number=UNCERTAINTY_SERIES_BASE + 1 + self.protocol.index(target),
            uid_seed=self.uid_seed,
            model_name=self.provenance.network,
            software_version=f"monai-seq2seq {monai_seq2seq.__version__}",
            overwrite=self.overwrite,
            series_description=uncertainty_series_description(target),
            label="UNCERTAINTY",
            derivation_description=self.uncertainty_derivation(target, result, sources, series),
            split_first_source=True,
        )


def _frames_first_values(uncertainty, shape: Sequence[int], target: str) -> np.ndarray:
    """The uncertainty as float32 ``(T, X, Y, Z)``, checked against the synthetic volume's ``shape`` (``(T, X, Y,
    Z)`` or ``(X, Y, Z)``).

    Raises:
        ValueError: the shapes differ (named, with the fix).
    """
    if hasattr(uncertainty, "detach"):
        uncertainty = uncertainty.detach().float().cpu().numpy()
    values = np.asarray(uncertainty, dtype=np.float32)
    expected = tuple(int(v) for v in shape)
    expected = expected if len(expected) == 4 else (1, *expected)
    values = values[None] if values.ndim == 3 else values
    if tuple(values.shape) != expected:
        raise ValueError(
            f"the uncertainty of {target} has shape {tuple(np.shape(uncertainty))}, its synthetic volume "
            f"{tuple(shape)}: pass the SynthesisUncertainty computed with this synthetic volume, or switch the "
            "uncertainty off (--uncertainty False)."
        )
    return values


def _refuse_existing(folder: Path, overwrite: bool) -> None:
    """Refuse an existing, non-empty series folder unless ``overwrite`` (before anything of the subject's target
    is written; :func:`~monai_seq2seq.io.dicom_derived.write_series_folder` checks again when writing)."""
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(
            f"{str(folder)!r} exists and is not empty; pass overwrite=True (on the command line: --overwrite True) to "
            "replace it, or choose another output folder."
        )
