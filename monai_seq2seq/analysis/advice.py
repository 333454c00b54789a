"""Acquisition advice for one subject: which missing sequence to acquire first, which acquired one a protocol could
drop.

A missing sequence t is scored by how much of it cannot be recovered from what was acquired (A)::

    score(t) = -1/|A| sum_{j in A} Adj[j, t]  +  w * log(U_t / U_ref(t))

- the cohort term: the adjacency matrix of the bundle's cohort ranking (paper eq. 4: z-scored PSNR + SSIM of
  j -> t over a held-out cohort) averaged over the acquired sources and negated: how badly, in a typical subject,
  the acquired sequences predict t;
- the subject term: this subject's mean per-voxel uncertainty of t synthesised from A
  (:func:`~monai_seq2seq.inference.synthesize_with_uncertainty`) over the foreground (or a region), against the
  cohort's typical value ``U_ref(t)``; ``w`` (default 1) weighs it. Without a reference the term is left out.

A sequence derived from another (the breast protocol's wash-in and wash-out maps, computed from DCE) is never
advised before the sequence it is computed from: when its parent is missing it follows the parent, marked
``"computed_from": "DCE"``; when its parent was acquired it comes last, marked the same way (it is computed, not
acquired).

The acquired sequence most predictable from the others (the one a protocol could drop) is the one whose synthesis
from the other acquired sequences matches it best (this subject's PSNR; derived sequences are not candidates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Advice", "CohortAdjacency", "advise_subject"]

FOREGROUND_THRESHOLD = 0.02


@dataclass
class CohortAdjacency:
    """The cohort's adjacency matrix (rows: source, columns: target) and typical uncertainties per target.

    Attributes:
        names: sequence names, in matrix order.
        adjacency: (S, S) ``A[j, t]`` of source j -> target t (z-scored, higher: easier to generate).
        reference_uncertainty: target -> typical mean foreground uncertainty (optional).
        source: where the numbers come from (command, date).
    """

    names: list[str]
    adjacency: np.ndarray
    reference_uncertainty: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "advise config") -> CohortAdjacency:
        """From ``{"sequences": [...], "adjacency": [[...]], "reference_uncertainty": {...}, "source": "..."}``
        (a ``ranking.json`` of ``seq2seq diffmap`` has the first two).

        Raises:
            ValueError: missing keys or a matrix whose shape disagrees with the names (naming ``where``).
        """
        if "sequences" not in data or "adjacency" not in data:
            raise ValueError(
                f"{where}: the cohort needs 'sequences' and 'adjacency' (a ranking.json of `seq2seq diffmap`)."
            )
        names = [str(n) for n in data["sequences"]]
        matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in data["adjacency"]])
        if matrix.shape != (len(names), len(names)):
            raise ValueError(f"{where}: adjacency is {matrix.shape}, expected {len(names)}x{len(names)} for {names}.")
        reference = {str(k): float(v) for k, v in (data.get("reference_uncertainty") or {}).items()}
        return cls(names, matrix, reference, str(data.get("source", "")))

    def unrecoverable(self, target: str, acquired: Sequence[str]) -> float:
        """``-mean_j A[j, target]`` over the acquired j the cohort knows (NaN when none)."""
        if target not in self.names:
            return float("nan")
        t = self.names.index(target)
        values = [self.adjacency[self.names.index(j), t] for j in acquired if j in self.names]
        values = [v for v in values if np.isfinite(v)]
        return -float(np.mean(values)) if values else float("nan")


@dataclass
class Advice:
    """Result of :func:`advise_subject`.

    Attributes:
        subject: subject id.
        acquired: the sequences the subject has (derived ones included).
        missing: ranked records ``{"sequence", "score", "cohort_term", "subject_term", "mean_uncertainty",
            "computed_from"}``, first = acquire first.
        regions: region name -> the missing sequences ranked inside it (``score`` with the region's uncertainty).
        droppable: ``{"sequence", "psnr", "from"}`` of the acquired sequence most predictable from the others, or
            ``None`` (fewer than two acquired sequences).
        candidates: every acquired candidate's ``{"sequence", "psnr"}`` (best first).
        choices: how the scores were made.
    """

    subject: str
    acquired: list[str]
    missing: list[dict[str, Any]]
    regions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    droppable: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> str | None:
        """The sequence to acquire first (``None`` when nothing is missing)."""
        return self.missing[0]["sequence"] if self.missing else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "acquired": self.acquired,
            "acquire_next": [m["sequence"] for m in self.missing],
            "missing": self.missing,
            "regions": self.regions,
            "droppable": self.droppable,
            "candidates": self.candidates,
            "choices": self.choices,
        }

    def lines(self) -> list[str]:
        """A few lines for a terminal or a report."""
        order = ", ".join(
            m["sequence"] + (f" (computed from {m['computed_from']})" if m.get("computed_from") else "")
            for m in self.missing
        )
        out = [f"{self.subject}: acquired {', '.join(self.acquired)}; acquire next: {order or 'nothing missing'}"]
        for region, ranked in self.regions.items():
            out.append(f"  inside {region}: " + ", ".join(m["sequence"] for m in ranked))
        if self.droppable:
            out.append(
                f"  most predictable from the others: {self.droppable['sequence']} "
                f"(PSNR {self.droppable['psnr']:.1f} dB from {'+'.join(self.droppable['from'])})"
            )
        return out


def _mean_in(values: torch.Tensor, mask: torch.Tensor | None) -> float:
    if mask is None or not bool(mask.any()):
        return float(values.float().mean())
    return float(values.float()[:, mask].mean())


def _psnr(pred: torch.Tensor, real: torch.Tensor) -> float:
    mse = float(((pred.float() - real.float()) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _score_missing(targets, uncertainty, cohort, acquired, weight, mask) -> list[dict[str, Any]]:
    ranked = []
    for target in targets:
        mean_u = _mean_in(uncertainty[target], mask)
        reference = cohort.reference_uncertainty.get(target)
        subject_term = math.log((mean_u + 1e-6) / (reference + 1e-6)) if reference else 0.0
        cohort_term = cohort.unrecoverable(target, acquired)
        score = (0.0 if math.isnan(cohort_term) else cohort_term) + weight * subject_term
        ranked.append(
            {
                "sequence": target,
                "score": round(score, 4),
                "cohort_term": None if math.isnan(cohort_term) else round(cohort_term, 4),
                "subject_term": round(subject_term, 4),
                "mean_uncertainty": round(mean_u, 6),
            }
        )
    return sorted(ranked, key=lambda r: -r["score"])


def _with_derived(ranked: list[dict[str, Any]], derived: dict[str, str]) -> list[dict[str, Any]]:
    """Derived sequences right after the sequence they are computed from (never before it)."""
    out = []
    for record in ranked:
        out.append(record)
        out += [
            {"sequence": d, "computed_from": parent} for d, parent in derived.items() if parent == record["sequence"]
        ]
    orphans = [d for d, parent in derived.items() if not any(r["sequence"] == parent for r in ranked)]
    return out + [{"sequence": d, "computed_from": derived[d]} for d in orphans]


def _droppable(synthesizer, volumes, candidates) -> list[dict[str, Any]]:
    rows = []
    for name in candidates:
        others = {k: v for k, v in volumes.items() if k != name}
        if not others:
            continue
        rows.append({"sequence": name, "psnr": round(_psnr(synthesizer.synthesize(others, name), volumes[name]), 3)})
        rows[-1]["from"] = list(others)
    return sorted(rows, key=lambda r: -r["psnr"])


def advise_subject(
    synthesizer,
    volumes: Mapping[str, torch.Tensor],
    cohort: CohortAdjacency,
    subject: str = "subject",
    regions: Mapping[str, torch.Tensor] | None = None,
    subject_weight: float = 1.0,
    droppable: bool = True,
    flips: bool | str = "auto",
) -> Advice:
    """Rank a subject's missing sequences and name its most predictable acquired one.

    Args:
        synthesizer: a 2.5D :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        volumes: the acquired sequences, name -> (T, X, Y, Z) in [0, 1].
        cohort: the bundle's :class:`CohortAdjacency`.
        subject: subject id.
        regions: optional region name -> (X, Y, Z) mask (e.g. the tumour): the missing sequences are also ranked
            by their uncertainty inside each region.
        subject_weight: weight ``w`` of the subject term.
        droppable: also find the acquired sequence most predictable from the others (one synthesis per acquired
            sequence).
        flips: as in :func:`~monai_seq2seq.inference.synthesize_with_uncertainty` (a single acquired source needs
            the mirrored member for any spread).

    Raises:
        ValueError: no acquired sequence.
    """
    from ..inference.uncertainty import synthesize_with_uncertainty

    protocol = synthesizer.protocol
    volumes = {protocol.canonical(k): v for k, v in volumes.items()}
    if not volumes:
        raise ValueError(f"subject {subject!r} has none of the protocol's sequences: nothing to advise from.")
    acquired = [n for n in protocol.names if n in volumes]
    sources = [n for n in acquired if protocol[n].derived_from is None] or acquired
    absent = [n for n in protocol.names if n not in volumes]
    derived = {n: protocol[n].derived_from for n in absent if protocol[n].derived_from is not None}
    targets = [n for n in absent if n not in derived]
    uncertainty = {}
    for target in targets:
        result = synthesize_with_uncertainty(synthesizer, {s: volumes[s] for s in sources}, target, flips=flips)
        uncertainty[target] = result.uncertainty
    foreground = torch.stack([v.float().amax(0) for v in volumes.values()]).amax(0) > FOREGROUND_THRESHOLD
    ranked = _score_missing(targets, uncertainty, cohort, sources, subject_weight, foreground)
    by_region = {
        name: _score_missing(targets, uncertainty, cohort, sources, subject_weight, torch.as_tensor(mask).bool())
        for name, mask in (regions or {}).items()
        if bool(torch.as_tensor(mask).any())
    }
    candidates = _droppable(synthesizer, {s: volumes[s] for s in sources}, sources) if droppable else []
    return Advice(
        subject=subject,
        acquired=acquired,
        missing=_with_derived(ranked, derived),
        regions=by_region,
        droppable=candidates[0] if candidates else None,
        candidates=candidates,
        choices={
            "score": "-mean_{j acquired} A[j, t] + w * log(U_t / U_ref(t))",
            "subject_weight": subject_weight,
            "cohort": cohort.source,
            "sources_used": sources,
            "derived_rule": "a sequence computed from another follows it and is never advised before it",
            "droppable": "highest PSNR of the sequence synthesised from the other acquired ones (this subject)",
        },
    )
