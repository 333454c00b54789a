"""LPIPS with local backbone weights only: never a download, never a silently random backbone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from monai_seq2seq.core.integrity import name_hash_prefix, sha256_prefix_matches

__all__ = ["ALEXNET_FILE", "LPIPSStatus", "load_lpips", "default_alexnet_path"]

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
"""torchvision's ImageNet AlexNet weights; the 8 hex digits are the start of the file's sha256."""


@dataclass
class LPIPSStatus:
    """Whether LPIPS is usable, and why not."""

    available: bool
    backbone: str | None
    reason: str


def default_alexnet_path() -> Path:
    """Where torchvision caches the AlexNet weights (``torch.hub.get_dir()/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def load_lpips(backbone_path: str | Path | None = None, check_hash: bool = True):
    """LPIPS (AlexNet, v0.1 linear layers shipped in the ``lpips`` wheel) with a local ImageNet backbone.

    Args:
        backbone_path: torchvision AlexNet state dict; default :func:`default_alexnet_path`.
        check_hash: for a file named like torchvision's (``alexnet-owt-<hash8>.pth``), check that its sha256
            starts with those 8 hex digits.

    Returns:
        ``(model, status)``: the LPIPS module in eval mode (input (N, 3, H, W) in [-1, 1]) or ``None`` when the
        weights are absent or unusable, and an :class:`LPIPSStatus` saying which.
    """
    path = Path(backbone_path) if backbone_path is not None else default_alexnet_path()
    if not path.is_file():
        return None, LPIPSStatus(False, None, f"AlexNet ImageNet weights not found at {path}; LPIPS left out.")
    try:
        import lpips
        import torchvision
    except ImportError as err:
        return None, LPIPSStatus(False, None, f"LPIPS needs the 'perceptual' extra ({err.name} missing).")
    prefix = name_hash_prefix(path)
    if check_hash and prefix is not None and not sha256_prefix_matches(path, prefix):
        return None, LPIPSStatus(False, str(path), f"{path} does not match its sha256 prefix {prefix}; LPIPS left out.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = torchvision.models.alexnet().features
    feature_state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    features.load_state_dict(feature_state)
    model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    backbone = model.net
    for slice_name, block in backbone.named_children():
        if slice_name.startswith("slice"):
            for index, layer in block.named_children():
                layer.load_state_dict(features[int(index)].state_dict())
    model.eval().requires_grad_(False)
    return model, LPIPSStatus(True, str(path), "LPIPS (AlexNet, lpips v0.1) with local ImageNet backbone.")
