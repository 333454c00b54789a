"""Per-case quality flag: a predicted PSNR with an interval for each synthetic volume, from its uncertainty.

The prediction is a small linear regression per target sequence, stored as JSON data in the bundle
(``configs/quality.json``; no pickle), fitted on held-out phantom subjects, clean and with corrupted inputs
(``python -m experiments.uncertainty_quality``). Features of a synthetic volume (:func:`quality_features`), over
the foreground (voxels where any source exceeds 0.02 in [0, 1]):

- ``log_mean_uncertainty``: log of the mean per-voxel uncertainty;
- ``log_p99_uncertainty``: log of its 99th percentile;
- ``foreground_disagreement`` (an input check): how much the sources disagree on where the subject is, the
  largest minus the smallest share of voxels above 0.02 among the sources (0 for co-registered, skull-stripped
  or equally masked sources; noise in one source's background raises it towards 1).

A volume is flagged when the lower end of its interval is below the target's ``flag_below_db``, when a feature
lies beyond the range seen in fitting (inputs unlike anything the regression saw), or when the input checks
(:class:`~monai_seq2seq.transforms.CheckTrainedOnd`) reported a difference from the training data.

A model file may name the ``bundle`` and ``protocol`` it was fitted for, its ``fitted_targets``, the sources the
features ignore (``ignore_sources``: maps computed from another source, such as the breast protocol's wash maps,
whose fixed window lifts their background above the foreground threshold) and, under ``not_modelled``, why a
sequence has no regression (:meth:`QualityModel.unmodelled_reason`). Files without these fields (the brain
bundle's first model) ignore no source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.files import read_json_model

__all__ = [
    "FEATURES",
    "FOREGROUND_THRESHOLD",
    "QualityModel",
    "QualityModelError",
    "bundle_quality_model",
    "feature_sources",
    "input_features",
    "quality_features",
    "quality_line",
]

FEATURES = ("log_mean_uncertainty", "log_p99_uncertainty", "foreground_disagreement")
FOREGROUND_THRESHOLD = 0.02
_EPS = 1e-6


class QualityModelError(ValueError):
    """A quality model file that cannot be used (missing, not JSON, wrong fields)."""


def _foreground(sources: Mapping[str, torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    if not sources:
        return torch.ones(tuple(shape[-3:]), dtype=torch.bool)
    return torch.stack([torch.as_tensor(v).float().amax(0) for v in sources.values()]).amax(0) > FOREGROUND_THRESHOLD


def quality_features(uncertainty: torch.Tensor, sources: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The regression's features of one synthetic volume.

    Shapes:
        uncertainty: (T, X, Y, Z); sources: name -> (T_s, X, Y, Z), in [0, 1].
    """
    mask = _foreground(sources, uncertainty.shape)
    values = uncertainty.float()[:, mask].flatten()
    if values.numel() == 0:
        values = uncertainty.float().flatten()
    p99 = torch.quantile(values[:: max(1, values.numel() // 200_000)], 0.99)
    return {
        "log_mean_uncertainty": math.log(float(values.mean()) + _EPS),
        "log_p99_uncertainty": math.log(float(p99) + _EPS),
        **input_features(sources),
    }


def feature_sources(sources: Mapping[str, torch.Tensor], ignore: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """The sources the features look at: ``sources`` without the names in ``ignore`` (all of them when nothing
    would be left)."""
    kept = {name: volume for name, volume in sources.items() if name not in set(ignore)}
    return kept or dict(sources)


def input_features(sources: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The input-check feature of the sources alone (no synthesis): ``foreground_disagreement``.

    Shapes:
        sources: name -> (T_s, X, Y, Z) in [0, 1].
    """
    shares = [
        float((torch.as_tensor(v).float().amax(0) > FOREGROUND_THRESHOLD).float().mean()) for v in sources.values()
    ]
    return {"foreground_disagreement": (max(shares) - min(shares)) if shares else 0.0}


class QualityModel:
    """Predicted PSNR (dB) with an interval per target sequence, from :func:`quality_features`.

    Args:
        data: the parsed ``quality.json``: ``{"features": [...], "interval": 0.9, "targets": {name: {"intercept",
            "coef", "residual_std", "z", "feature_min", "feature_max", "flag_below_db", "n"}}, ...}``.
        source: where it came from (named in errors and outputs).

    Raises:
        QualityModelError: a field is missing or the features differ from :data:`FEATURES`.
    """

    def __init__(self, data: Mapping[str, Any], source: str = "quality model") -> None:
        self.source = source
        if list(data.get("features", [])) != list(FEATURES):
            raise QualityModelError(
                f"{source}: features {data.get('features')} differ from this version's {list(FEATURES)}; "
                "refit it with `python -m experiments.uncertainty_quality --records <run.json> --write-model <file>`."
            )
        targets = data.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise QualityModelError(f"{source}: key 'targets' must map sequence names to fitted regressions.")
        needed = ("intercept", "coef", "residual_std", "z", "feature_min", "feature_max", "flag_below_db")
        for name, entry in targets.items():
            lacking = [k for k in needed if k not in entry]
            if lacking:
                raise QualityModelError(f"{source}: targets.{name} lacks {lacking}; refit the model.")
        self.data = dict(data)
        self.targets = targets
        self.bundle = data.get("bundle")
        self.ignore_sources = tuple(data.get("ignore_sources", ()))

    def unmodelled_reason(self, target: str) -> str | None:
        """Why ``target`` gets no quality record (``None`` when the model has a regression for it)."""
        if target in self.targets:
            return None
        fitted_for = f" ({self.bundle})" if self.bundle else ""
        why = dict(self.data.get("not_modelled") or {}).get(target, "it was not among the targets of the fit")
        return (
            f"quality model {self.source}{fitted_for} has no regression for {target!r} ({why}); fitted for "
            f"{sorted(self.targets)}. {target} gets no quality record: refit with --targets including it."
        )

    @classmethod
    def from_file(cls, path: str | Path) -> QualityModel:
        """Read a ``quality.json``.

        Raises:
            QualityModelError: missing or not JSON (naming the file and the config id that points at it).
        """
        missing = "set --quality_model to a fitted file or null."
        data = read_json_model(path, QualityModelError, "quality model", missing)
        return cls(data, str(path))

    def predict(
        self,
        uncertainty: torch.Tensor,
        target: str,
        sources: Mapping[str, torch.Tensor],
        warnings: Sequence[str] = (),
        strict: bool = False,
    ) -> dict[str, Any] | None:
        """The quality record of one synthetic volume, or ``None`` when the model has no regression for ``target``
        (:meth:`unmodelled_reason` says why).

        Raises:
            QualityModelError: ``strict`` and no regression for ``target`` (the message names the fitted targets).

        Returns:
            ``{"PredictedPSNR_dB", "Interval_dB": [low, high], "IntervalLevel", "Flag", "Reasons", "Features",
            "Model"}``.
        """
        entry = self.targets.get(target)
        if entry is None:
            if strict:
                raise QualityModelError(self.unmodelled_reason(target))
            return None
        features = quality_features(uncertainty, feature_sources(sources, self.ignore_sources))
        values = [features[f] for f in FEATURES]
        predicted = float(entry["intercept"]) + sum(float(c) * v for c, v in zip(entry["coef"], values, strict=True))
        half = float(entry["z"]) * float(entry["residual_std"])
        reasons = []
        if predicted - half < float(entry["flag_below_db"]):
            reasons.append(f"interval reaches below {entry['flag_below_db']:.1f} dB")
        beyond = [
            f
            for f, v, high in zip(FEATURES, values, entry["feature_max"], strict=True)
            if v > float(high) + 0.1  # log units: 10% above the largest uncertainty seen in fitting
        ]
        if beyond:
            reasons.append(f"uncertainty beyond the fitted range ({', '.join(beyond)})")
        if warnings:
            reasons.append(f"input checks: {len(warnings)} difference(s) from the training data")
        return {
            "PredictedPSNR_dB": round(predicted, 2),
            "Interval_dB": [round(predicted - half, 2), round(predicted + half, 2)],
            "IntervalLevel": float(self.data.get("interval", 0.9)),
            "Flag": bool(reasons),
            "Reasons": reasons,
            "Features": {k: round(v, 4) for k, v in features.items()},
            "Model": Path(self.source).name,
        }


def bundle_quality_model(bundle_root: str | Path) -> str | None:
    """``<bundle_root>/configs/quality.json`` when the bundle ships one, else ``None`` (no quality record)."""
    path = Path(bundle_root) / "configs" / "quality.json"
    return str(path) if path.is_file() else None


def quality_line(subject: str, target: str, quality: Mapping[str, Any]) -> str:
    """One line of the run's summary: ``subject target: predicted PSNR 27.1 dB [24.3, 29.9] ok|FLAGGED (why)``."""
    low, high = quality["Interval_dB"]
    state = "FLAGGED (" + "; ".join(quality["Reasons"]) + ")" if quality["Flag"] else "ok"
    predicted = quality["PredictedPSNR_dB"]
    return f"[quality] {subject} {target}: predicted PSNR {predicted:.1f} dB [{low:.1f}, {high:.1f}] {state}"
