"""Differentiation maps as DICOM in their source study: Parametric Maps and colour overlays (ignite handler).

:class:`DifferentiationDicomWriter` writes, per subject and map, a Parametric Map series (float, one instance per
frame; :func:`~monai_seq2seq.io.dicom_maps.write_parametric_map`) into ``<out>/<subject>/dicom/diffmap_<Seq>/``
and, with ``overlay``, an RGB Secondary Capture series (the sequence in grey, the map in colour above 5% of its
99.5th percentile, as the PNG overlays) into ``<out>/<subject>/dicom/diffmap_<Seq>_overlay/``. Both reference the
source series the maps were computed from. A subject without any source DICOM series gets no DICOM map (highdicom
derives Parametric Maps from source images only): the log says so. The bundles switch it on with
``output_format`` ``dicom`` or ``both`` (``seq2seq diffmap --output_format dicom``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import monai_seq2seq
from monai_seq2seq.core.files import ensure_writable_dir
from monai_seq2seq.io.dicom_maps import MAP_SERIES_BASE, OVERLAY_SERIES_BASE, write_overlay_series, write_parametric_map
from monai_seq2seq.io.nifti_writer import affine_of

from ..inference.dicom_output import ModelProvenance, refuse_input_overlap, subject_source_series
from ..inference.engine import input_files, subject_volumes

__all__ = ["overlay_rgb", "DifferentiationDicomWriter"]

_LOG = logging.getLogger(__name__)


def overlay_rgb(image: np.ndarray, heat: np.ndarray, vmax: float | None = None, alpha: float = 0.8) -> np.ndarray:
    """The image in grey with the map in colour (matplotlib ``hot``) where it exceeds 5% of ``vmax``.

    Shapes:
        image, heat: ``(X, Y, Z)``; image in [0, 1].
        returns: ``(X, Y, Z, 3)`` uint8.
    """
    from matplotlib import colormaps

    image = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    heat = np.asarray(heat, dtype=np.float64)
    vmax = float(vmax if vmax is not None else np.percentile(heat, 99.5)) or 1.0
    colours = colormaps["hot"](np.clip(heat / vmax, 0.0, 1.0))[..., :3]
    weight = np.where(heat >= 0.05 * vmax, alpha, 0.0)[..., None]
    rgb = (1.0 - weight) * image[..., None] + weight * colours
    return np.round(rgb * 255.0).clip(0, 255).astype(np.uint8)


def _mean_frame(volume) -> np.ndarray:
    return torch.as_tensor(volume).detach().float().mean(0).cpu().numpy()


class DifferentiationDicomWriter:
    """Per subject: each differentiation map as a DICOM Parametric Map series (and a Secondary Capture overlay).

    Args:
        output_dir: the output folder (checked writable at start).
        protocol: the protocol (series numbers ``2001 + index``, overlays ``3001 + index``).
        overlay: also write the colour overlay as Secondary Capture.
        model_name, network, metadata, weights, weights_sha256: what made the maps (as
            :class:`~monai_seq2seq.inference.SyntheticDicomWriter`).
        overwrite: replace earlier map series (never an input).
        uid_seed: deterministic UIDs.

    Raises (when writing):
        ValueError: an output folder overlaps an input.
        FileExistsError: a series folder exists and ``overwrite`` is False.
    """

    def __init__(
        self,
        output_dir: str | Path,
        protocol,
        overlay: bool = True,
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
        self.overlay = overlay
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
        for analysis in engine.state.output:
            self.write_subject(analysis.subject, analysis.reference, analysis.maps, analysis.map_info)

    def write_subject(
        self, sid: str, subject: Mapping, maps: Mapping[str, torch.Tensor], info: Mapping[str, Mapping]
    ) -> list[Path]:
        """Write the maps of one subject (``subject``: its sequences as MetaTensors; ``maps``: name -> (T, X, Y, Z));
        returns the files written."""
        cache: dict = {}
        inputs = input_files(subject, self.protocol)
        written: list[Path] = []
        for name, volume in maps.items():
            used = [str(s) for s in (info.get(name, {}) or {}).get("sources", [])]
            series = subject_source_series(subject, [name, *[s for s in used if s != name]], cache)
            if not series:
                self.logger.warning(
                    f"subject {sid!r}: the differentiation map of {name} has no source DICOM series (read from "
                    "NIfTI or memory); a Parametric Map needs one: not written as DICOM (the NIfTI map is unchanged)."
                )
                continue
            written += self._write_map(sid, subject, name, volume, series, inputs)
        self.written += written
        return written

    def _write_map(self, sid, subject, name, volume, series, inputs) -> list[Path]:
        folder = self.output_dir / sid / "dicom" / f"diffmap_{name}"
        refuse_input_overlap(folder, inputs)
        spec = self.protocol[name]
        affine = affine_of(subject[name])
        array = torch.as_tensor(volume).detach().float().cpu().numpy()
        common = {
            "sequence": name,
            "sources": series,
            "uid_seed": self.uid_seed,
            "model_name": f"{self.provenance.network} ({self.provenance.bundle} {self.provenance.version})",
            "software_version": f"monai-seq2seq {monai_seq2seq.__version__}",
            "overwrite": self.overwrite,
        }
        written = write_parametric_map(
            array,
            affine,
            folder,
            description=f"differentiation map of {name}",
            frame_axis=spec.frame_axis if spec.is_4d else None,
            frame_values=list(spec.frame_values) if spec.is_4d and len(spec.frame_values) == len(array) else None,
            series_number=MAP_SERIES_BASE + 1 + self.protocol.index(name),
            **common,
        )
        if self.overlay:
            overlay_folder = folder.with_name(f"diffmap_{name}_overlay")
            refuse_input_overlap(overlay_folder, inputs)
            image = _mean_frame(subject_volumes(subject, self.protocol)[name])
            rgb = overlay_rgb(image, array.mean(0))
            written += write_overlay_series(
                rgb, affine, overlay_folder, series_number=OVERLAY_SERIES_BASE + 1 + self.protocol.index(name), **common
            )
        return written
