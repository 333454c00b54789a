"""Calibrated per-voxel uncertainty: the expected absolute error of a synthetic volume, from a fitted error model.

The raw uncertainty (:func:`~monai_seq2seq.inference.synthesize_with_uncertainty`) is the spread of the single-source
predictions around the fused one; it cannot see an error every source makes (an intensity offset of a tissue, an
edge, a lesion no source shows). The error model maps per-voxel features of the synthesis to the expected absolute
error, log-linear per target sequence::

    log(|synthetic - real| + eps_error) ~ intercept + sum_k coef_k * feature_k

    expected_error = clamp(exp(prediction + residual_var / 2) - eps_error, 0, 1)   # [0, 1] intensity units

fitted by least squares on the foreground voxels of held-out subjects (``experiments/uncertainty_calibration.py``).
The features (:data:`ERROR_FEATURES`, :func:`error_features`) need only what inference has: the fused image, its raw
uncertainty and the source volumes. The model is JSON data (no pickle), validated on load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.files import atomic_write_text, read_json_model

__all__ = [
    "ERROR_FEATURES",
    "ERROR_MODEL_FORMAT",
    "ErrorModel",
    "ErrorModelError",
    "bundle_error_model",
    "error_features",
    "fit_error_model",
]

ERROR_MODEL_FORMAT = "monai_seq2seq.error_model/1"
_EPS = 1e-3  # inside the logs of uncertainties, gradients and local deviations ([0, 1] units)
_ERROR_EPS = 0.01  # inside the log of the absolute error being fitted
_FOREGROUND = 0.02
_KNOTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # hat functions of the synthetic intensity: a piecewise-linear intensity term

ERROR_FEATURES = (
    "log_uncertainty",
    "log_uncertainty_box3",
    "log_uncertainty_box7",
    "log_gradient",
    "log_gradient_box3",
    "log_local_std3",
    "foreground_fraction5",
    *(f"intensity_hat_{k:.1f}" for k in _KNOTS),
    "sources_log_gradient_mean",
    "sources_log_local_std3_mean",
    "sources_log_highpass_mean",
    "sources_log_gradient_max",
    "sources_log_local_std3_max",
)
"""Names of the per-voxel features, in the order of the fitted coefficients (:func:`error_features`)."""


class ErrorModelError(ValueError):
    """An error model file that cannot be used (missing, not JSON, wrong fields)."""


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size``^3 neighbourhood of each voxel of (C, X, Y, Z) (inside the volume; along an axis shorter
    than ``size``, the largest odd neighbourhood that fits)."""
    kernel = tuple(max(1, min(size, n - (1 - n % 2))) for n in x.shape[1:])
    return F.avg_pool3d(x[None], kernel, stride=1, padding=tuple(k // 2 for k in kernel), count_include_pad=False)[0]


def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x + _EPS)


def _gradient(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude (per voxel) of each frame of (C, X, Y, Z), central differences."""
    if min(x.shape[1:]) < 2:
        return torch.zeros_like(x)
    return torch.stack(torch.gradient(x, dim=(1, 2, 3))).pow(2).sum(0).sqrt()


def _local_std(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    return (_box(x * x, size) - _box(x, size) ** 2).clamp_min(0).sqrt()


def _source_maps(sources: Mapping[str, torch.Tensor], shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, X, Y, Z) frame means of the sources, and the (X, Y, Z) foreground: any source above 0.02."""
    if not sources:
        raise ValueError("the error model needs the source volumes the synthesis used; got none.")
    stack = []
    for name, volume in sources.items():
        volume = torch.as_tensor(volume).as_subclass(torch.Tensor).float()
        if tuple(volume.shape[-3:]) != tuple(shape[-3:]):
            raise ValueError(f"source {name} {tuple(volume.shape)} is not on the grid of the synthesis {tuple(shape)}.")
        stack.append(volume.cpu().reshape(-1, *volume.shape[-3:]).mean(0))
    stack = torch.stack(stack)
    return stack, stack.amax(0) > _FOREGROUND


def _feature_maps(
    image: torch.Tensor, uncertainty: torch.Tensor, sources: Mapping[str, torch.Tensor]
) -> Iterator[torch.Tensor]:
    """The features of :data:`ERROR_FEATURES`, one (T, X, Y, Z) map at a time (a whole volume each)."""
    image = torch.as_tensor(image).as_subclass(torch.Tensor).float().cpu()
    u = torch.as_tensor(uncertainty).as_subclass(torch.Tensor).float().cpu()
    src, foreground = _source_maps(sources, image.shape)
    frames = image.shape[0]
    yield _log(u)
    yield _log(_box(u, 3))
    yield _log(_box(u, 7))
    gradient = _gradient(image)
    yield _log(gradient)
    yield _log(_box(gradient, 3))
    yield _log(_local_std(image))
    yield _box((foreground | (image.amax(0) > _FOREGROUND)).float()[None], 5).expand(frames, -1, -1, -1)
    step = _KNOTS[1] - _KNOTS[0]
    for knot in _KNOTS:
        yield (1 - (image - knot).abs() / step).clamp_min(0)
    grads, stds = _gradient(src), _local_std(src)
    highpass = (src - _box(src, 3)).abs()
    for value in (grads.mean(0), stds.mean(0), highpass.mean(0), grads.amax(0), stds.amax(0)):
        yield _log(value)[None].expand(frames, -1, -1, -1)


def error_features(image: torch.Tensor, uncertainty: torch.Tensor, sources: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The per-voxel features of :data:`ERROR_FEATURES`, stacked.

    Args:
        image: (T, X, Y, Z) fused synthetic volume in [0, 1].
        uncertainty: (T, X, Y, Z) its raw uncertainty (spread of the members), [0, 1] units.
        sources: name -> (T_s, X, Y, Z) the sources the synthesis used, in [0, 1] (frames averaged).

    Returns:
        (F, T, X, Y, Z) float32 on the CPU, F = ``len(ERROR_FEATURES)``.

    Raises:
        ValueError: ``image`` and ``uncertainty`` differ in shape, no source, or a source on another grid.
    """
    if tuple(image.shape) != tuple(uncertainty.shape):
        raise ValueError(f"image {tuple(image.shape)} and uncertainty {tuple(uncertainty.shape)} differ in shape.")
    return torch.stack(list(_feature_maps(image, uncertainty, sources)))


class ErrorModel:
    """Expected absolute error per voxel of a synthetic volume (module docstring), one regression per target.

    Args:
        data: the parsed JSON: ``{"format": ERROR_MODEL_FORMAT, "features": [...], "error_eps": 0.01,
            "targets": {name: {"intercept", "coef", "residual_std", "n"}}, ...}``.
        source: where it came from (named in errors and in the uncertainty's sidecar).

    Raises:
        ErrorModelError: wrong format, features other than :data:`ERROR_FEATURES`, or a malformed target entry.
    """

    def __init__(self, data: Mapping[str, Any], source: str = "error model") -> None:
        self.source = str(source)
        fix = "refit it with `python -m experiments.uncertainty_calibration --write-model <file>`"
        if not isinstance(data, Mapping):
            raise ErrorModelError(f"{source}: an error model must be a JSON object, got {type(data).__name__}.")
        if data.get("format") != ERROR_MODEL_FORMAT:
            raise ErrorModelError(
                f"{source}: key 'format' is {data.get('format')!r}, expected {ERROR_MODEL_FORMAT!r}; {fix}."
            )
        if list(data.get("features") or []) != list(ERROR_FEATURES):
            raise ErrorModelError(
                f"{source}: key 'features' {data.get('features')} differs from this version's "
                f"{list(ERROR_FEATURES)}; {fix}."
            )
        error_eps = data.get("error_eps")
        if not isinstance(error_eps, (int, float)) or not error_eps > 0:
            raise ErrorModelError(f"{source}: key 'error_eps' must be a positive number, got {error_eps!r}; {fix}.")
        targets = data.get("targets")
        if not isinstance(targets, Mapping) or not targets:
            raise ErrorModelError(f"{source}: key 'targets' must map sequence names to fitted regressions; {fix}.")
        for name, entry in targets.items():
            self._check_target(name, entry, fix)
        self.data = dict(data)
        self.targets: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in targets.items()}
        self.error_eps = float(error_eps)

    def _check_target(self, name: str, entry: Any, fix: str) -> None:
        where = f"{self.source}: targets.{name}"
        if not isinstance(entry, Mapping):
            raise ErrorModelError(f"{where} must be an object with 'intercept', 'coef', 'residual_std'; {fix}.")
        lacking = [k for k in ("intercept", "coef", "residual_std") if k not in entry]
        if lacking:
            raise ErrorModelError(f"{where} lacks {lacking}; {fix}.")
        coef = entry["coef"]
        if not isinstance(coef, list) or len(coef) != len(ERROR_FEATURES):
            size = len(coef) if isinstance(coef, list) else type(coef).__name__
            raise ErrorModelError(f"{where}.coef must be a list of {len(ERROR_FEATURES)} numbers, got {size}; {fix}.")
        numbers = [entry["intercept"], entry["residual_std"], *coef]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ErrorModelError(f"{where}: intercept, residual_std and coef must be finite numbers; {fix}.")

    @classmethod
    def from_file(cls, path: str | Path) -> ErrorModel:
        """Read an error model JSON file.

        Raises:
            ErrorModelError: missing, not JSON, or malformed (naming the file and what to do).
        """
        missing = (
            "set error_model to a fitted file (`python -m experiments.uncertainty_calibration --write-model <file>`) "
            "or null."
        )
        data = read_json_model(path, ErrorModelError, "error model", missing)
        return cls(data, str(path))

    def covers(self, target: str) -> bool:
        """Whether the model has a regression for ``target``."""
        return target in self.targets

    def expected_error(
        self,
        image: torch.Tensor,
        uncertainty: torch.Tensor,
        target: str,
        sources: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """The expected absolute error per voxel (the calibrated uncertainty).

        Args:
            image, uncertainty, sources: as :func:`error_features`.
            target: the synthesised sequence.

        Returns:
            (T, X, Y, Z) float32 on the CPU, in the synthetic image's [0, 1] intensity units.

        Raises:
            ErrorModelError: no regression for ``target``.
            ValueError: as :func:`error_features`.
        """
        if not self.covers(target):
            raise ErrorModelError(
                f"error model {self.source} has no regression for {target!r} (fitted for {sorted(self.targets)}); "
                "refit it with that target, or leave the raw uncertainty."
            )
        if tuple(image.shape) != tuple(uncertainty.shape):
            raise ValueError(f"image {tuple(image.shape)} and uncertainty {tuple(uncertainty.shape)} differ in shape.")
        entry = self.targets[target]
        prediction = torch.full(tuple(image.shape), float(entry["intercept"]))
        for weight, feature in zip(entry["coef"], _feature_maps(image, uncertainty, sources), strict=True):
            prediction += float(weight) * feature
        scale = 0.5 * float(entry["residual_std"]) ** 2  # mean of a log-normal error around the fitted log
        return (torch.exp(prediction + scale) - self.error_eps).clamp(0.0, 1.0)

    def sidecar(self) -> dict[str, Any]:
        """What the uncertainty's sidecar says about a calibrated map."""
        return {
            "Map": "calibrated: expected absolute error",
            "Units": "expected |synthetic - real| per voxel, in the synthetic image's [0, 1] intensity units",
            "ErrorModel": Path(self.source).name,
            "ErrorModelDescription": self.data.get("description", ""),
            "ErrorModelFeatures": list(ERROR_FEATURES),
        }

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the model (and ``extra`` fields) as JSON, atomically."""
        payload = {**self.data, **extra}
        return atomic_write_text(Path(path), json.dumps(payload, indent=1, allow_nan=False))


def bundle_error_model(bundle_root: str | Path) -> str | None:
    """``<bundle_root>/configs/uncertainty_calibration.json`` when the bundle ships one, else ``None`` (raw spread)."""
    path = Path(bundle_root) / "configs" / "uncertainty_calibration.json"
    return str(path) if path.is_file() else None


def _target_design(cases: Sequence[Mapping[str, Any]], max_voxels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows, values = [], []
    for case in cases:
        mask = torch.as_tensor(case["foreground"]).bool()
        image = torch.as_tensor(case["image"]).float()
        features = error_features(image, torch.as_tensor(case["uncertainty"]), case["sources"])
        keep = mask.expand_as(image)
        rows.append(features[:, keep].T.numpy())
        values.append(np.log((image - torch.as_tensor(case["real"]).float()).abs()[keep].numpy() + _ERROR_EPS))
    x, y = np.concatenate(rows), np.concatenate(values)
    if len(y) > max_voxels:
        pick = np.random.default_rng(np.random.SeedSequence([seed, len(y), 0xE77])).choice(len(y), max_voxels, False)
        x, y = x[pick], y[pick]
    return x, y


def fit_error_model(
    cases: Sequence[Mapping[str, Any]], max_voxels: int = 400_000, ridge: float = 1e-3, seed: int = 0
) -> dict[str, Any]:
    """Least squares of ``log(|image - real| + eps_error)`` on :data:`ERROR_FEATURES` per target, over the foreground.

    Args:
        cases: each ``{"target", "image", "uncertainty", "real", "sources", "foreground"}``: image, uncertainty,
            real (T, X, Y, Z) in [0, 1], sources name -> (T_s, X, Y, Z), foreground (X, Y, Z) bool.
        max_voxels: per target, a random subsample of the foreground voxels beyond this.
        ridge: Tikhonov weight on the standardised slopes (the intensity hats sum to 1: collinear with the
            intercept).
        seed: of the subsample.

    Returns:
        The model's JSON data (:class:`ErrorModel`'s ``data``), without description or provenance.

    Raises:
        ValueError: no case, or a target with fewer foreground voxels than features.
    """
    if not cases:
        raise ValueError("fit_error_model needs at least one case.")
    targets = {}
    for target in sorted({str(c["target"]) for c in cases}):
        x, y = _target_design([c for c in cases if str(c["target"]) == target], max_voxels, seed)
        if len(y) <= x.shape[1] + 1:
            raise ValueError(f"{target}: {len(y)} foreground voxels for {x.shape[1]} features; give more cases.")
        mean, std = x.mean(0), x.std(0) + 1e-8
        z = (x - mean) / std
        gram = z.T @ z + ridge * len(y) * np.eye(z.shape[1])
        slopes = np.linalg.solve(gram, z.T @ (y - y.mean()))
        coef = slopes / std
        intercept = float(y.mean() - mean @ coef)
        residual = y - intercept - x @ coef
        targets[target] = {
            "intercept": intercept,
            "coef": [float(c) for c in coef],
            "residual_std": float(residual.std()),
            "r2": float(1.0 - residual.var() / max(y.var(), 1e-12)),
            "n": int(len(y)),
        }
    return {"format": ERROR_MODEL_FORMAT, "features": list(ERROR_FEATURES), "error_eps": _ERROR_EPS, "targets": targets}
