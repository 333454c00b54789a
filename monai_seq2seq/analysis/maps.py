"""Imaging-differentiation maps (paper eq. 5): where a sequence differs from every prediction of it."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["differentiation_map"]


def differentiation_map(
    target: torch.Tensor,
    predictions: Mapping[str, torch.Tensor],
    target_name: str | None = None,
    include_self: bool = True,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> tuple[torch.Tensor, dict]:
    """``M_d(X_i) = 1/S' sum_j |X'_{j->i} - X_i|`` over the available sources j.

    Args:
        target: the real sequence X_i in [0, 1], any shape (e.g. (T, X, Y, Z) with frames on the channel axis).
        predictions: source name -> synthetic X'_{j->i}, same shape and intensity space as ``target``.
        target_name: name of X_i; with ``include_self=False`` its self-reconstruction is left out.
        include_self: True (default, as the authors' script and eq. 5 with j = 0..S): the self-reconstruction
            i->i is averaged in; False: other sources only.
        mask: optional region (broadcastable to ``target``) outside which the map is set to 0.
        reduction: ``"mean"`` (eq. 5): high where the sources fail on average, so also where a single source
            predicts a region the others cannot; ``"min"``: the smallest error over the sources, high only where
            no source predicts the voxel (a variant, not the paper's map).

    Returns:
        The map (same shape as ``target``) and a dict recording the sources averaged and the choices.

    Raises:
        ValueError: no usable source, or a prediction whose shape differs from the target's.
    """
    if reduction not in ("mean", "min"):
        raise ValueError(f"reduction must be 'mean' (eq. 5) or 'min', got {reduction!r}.")
    sources = [s for s in predictions if include_self or s != target_name]
    if not sources:
        raise ValueError(
            f"no source to build the differentiation map of {target_name or 'the target'} from "
            f"(given: {list(predictions)}, include_self={include_self})."
        )
    result = None
    for name in sources:
        pred = predictions[name]
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction from {name!r} has shape {tuple(pred.shape)}, target has {tuple(target.shape)}."
            )
        error = (pred.float() - target.float()).abs()
        if result is None:
            result = error
        else:
            result = torch.minimum(result, error) if reduction == "min" else result + error
    if reduction == "mean":
        result = result / len(sources)
    if mask is not None:
        result = result * mask.to(result.dtype)
    info = {
        "sequence": target_name,
        "sources": sources,
        "include_self": include_self,
        "num_sources": len(sources),
        "intensity_space": "[0, 1] after per-sequence percentile normalisation",
        "formula": f"{reduction} over sources j of |X'_{{j->i}} - X_i|",
    }
    return result, info
