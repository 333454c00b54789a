"""VGG19 perceptual loss (paper eq. 1, ``L_p``) with local ImageNet weights only: never a download.

Weights: torchvision's ``vgg19`` ImageNet state dict, read from a path given by the user or from the torch hub
cache (``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``, where torchvision would have put it). A missing
file raises ``FileNotFoundError`` naming the expected path; the term can be switched off instead
(:func:`build_perceptual_loss` with ``weights=None``), and the log then says so.

Layers and weights follow the usual pix2pixHD-style feature-matching choice: L1 between the features after
relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 with weights 1/32, 1/16, 1/8, 1/4, 1.

Channels: images arrive in the network's [-1, 1] space and are mapped to [0, 1] then ImageNet-normalised.
A 3-channel 2D image (the 3 adjacent slices of 2.5D mode) is fed as the 3 colour channels (``channel_mode=
"auto"`` or ``"rgb"``); any other channel count has each channel repeated to 3 and fed as its own grey image
(``"repeat"``). 3D volumes (N, C, X, Y, Z) are handled slice-wise along ``slice_axis`` (default: the last axis,
the axial slices of our layouts), every slice a 2D image, optionally a random subset of ``max_slices`` of them.
Frame axes (B, T, C, ...) are folded into the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from monai_seq2seq.core.integrity import name_hash_prefix, sha256_prefix_matches

__all__ = ["VGG19_FILE", "default_vgg19_path", "VGG19PerceptualLoss", "build_perceptual_loss"]

logger = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"
"""torchvision's ImageNet VGG19 weights; the 8 hex digits are the start of the file's sha256."""

# index in torchvision's vgg19().features of the ReLU after conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
_LAYER_INDEX = {
    "relu1_1": 1,
    "relu1_2": 3,
    "relu2_1": 6,
    "relu2_2": 8,
    "relu3_1": 11,
    "relu3_4": 17,
    "relu4_1": 20,
    "relu4_4": 26,
    "relu5_1": 29,
    "relu5_4": 35,
}
_DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_DEFAULT_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def default_vgg19_path() -> Path:
    """Where torchvision caches the VGG19 ImageNet weights (``torch.hub.get_dir()/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19(weights=None).features`` without building (and initialising) the classifier."""
    from torchvision.models import vgg

    return vgg.make_layers(vgg.cfgs["E"], batch_norm=False)


def _check_sha256_prefix(path: Path) -> None:
    """Raise ``ValueError`` when a ``vgg19-<hash8>.pth`` file's sha256 does not start with ``<hash8>``."""
    prefix = name_hash_prefix(path)
    if not path.stem.startswith("vgg19-") or prefix is None:
        return
    if not sha256_prefix_matches(path, prefix):
        raise ValueError(f"{path} does not match the sha256 prefix {prefix} in its name; corrupt download?")


class VGG19PerceptualLoss(nn.Module):
    """Weighted L1 distance of frozen VGG19 features.

    Args:
        weights_path: torchvision ``vgg19`` state dict (full model or ``features.*`` only); default
            :func:`default_vgg19_path`. Must exist: a missing file raises ``FileNotFoundError``.
        layers: feature layers (names like ``"relu3_1"``).
        layer_weights: one weight per layer.
        spatial_dims: 2 (images / 2.5D slices) or 3 (volumes, slice-wise).
        channel_mode: ``"auto"`` (3 channels as RGB, else repeat), ``"rgb"`` or ``"repeat"``.
        slice_axis: spatial axis along which 3D volumes are sliced (-1: last).
        max_slices: with 3D input, use at most this many random slices per call (``None``: all).
        check_hash: for a file named like torchvision's (``vgg19-<hash8>.pth``), check its sha256 prefix.

    Shapes:
        ``pred``, ``target``: (B, C, *spatial) or (B, T, C, *spatial) in [-1, 1]. Output: scalar.
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        layers: Sequence[str] = _DEFAULT_LAYERS,
        layer_weights: Sequence[float] = _DEFAULT_WEIGHTS,
        spatial_dims: int = 2,
        channel_mode: str = "auto",
        slice_axis: int = -1,
        max_slices: int | None = None,
        check_hash: bool = True,
    ) -> None:
        super().__init__()
        path = Path(weights_path).expanduser() if weights_path is not None else default_vgg19_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG19 ImageNet weights for the perceptual loss not found at {path}. Put torchvision's "
                f"{VGG19_FILE} there (or pass its path), or switch the perceptual term off "
                '(bundle config: "perceptual_weights": null). Nothing is downloaded.'
            )
        if len(layers) != len(layer_weights):
            raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer weights.")
        unknown = [name for name in layers if name not in _LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; choose from {sorted(_LAYER_INDEX)}.")
        if channel_mode not in ("auto", "rgb", "repeat"):
            raise ValueError(f"channel_mode must be 'auto', 'rgb' or 'repeat', got {channel_mode!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if check_hash:
            _check_sha256_prefix(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in state):
            state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        order = sorted(range(len(layers)), key=lambda k: _LAYER_INDEX[layers[k]])
        self.layer_ids = [_LAYER_INDEX[layers[k]] for k in order]
        self.layer_weights = [float(layer_weights[k]) for k in order]
        # only the layers up to the deepest one used are built and loaded (strictly)
        features = _vgg19_features()[: self.layer_ids[-1] + 1]
        state = {k: v for k, v in state.items() if int(k.split(".", 1)[0]) <= self.layer_ids[-1]}
        features.load_state_dict(state)
        self.features = features.eval().requires_grad_(False)
        self.weights_path = str(path)
        self.spatial_dims = spatial_dims
        self.channel_mode = channel_mode
        self.slice_axis = slice_axis
        self.max_slices = max_slices
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGG19PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen backbone: always eval
        return self

    def _to_images(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """(B[, T], C, *spatial) -> (N, 3, H, W) ImageNet-normalised."""
        if x.dim() == self.spatial_dims + 3:
            x = x.flatten(0, 1)
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"expected (B, C, *spatial) or (B, T, C, *spatial) with spatial_dims="
                f"{self.spatial_dims}, got {tuple(x.shape)}."
            )
        if self.spatial_dims == 3:
            axis = 2 + (self.slice_axis % 3)
            x = x.movedim(axis, 1)  # (B, S, C, H, W)
            if index is not None:
                x = x.index_select(1, index)
            x = x.flatten(0, 1)
        channels = x.shape[1]
        if self.channel_mode == "rgb" or (self.channel_mode == "auto" and channels == 3):
            if channels != 3:
                raise ValueError(f"channel_mode 'rgb' needs 3 channels, got {channels}.")
        else:
            x = x.reshape(-1, 1, *x.shape[2:]).expand(-1, 3, *x.shape[2:])
        x = (x.float() + 1.0) * 0.5
        return (x - self.mean) / self.std

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
        index = None
        if self.spatial_dims == 3 and self.max_slices is not None:
            n = pred.shape[-3 + (self.slice_axis % 3)]
            if n > self.max_slices:
                index = torch.randperm(n, device=pred.device)[: self.max_slices]
        x = torch.cat([self._to_images(pred, index), self._to_images(target.detach(), index)], 0)
        half = x.shape[0] // 2
        loss = x.new_zeros(())
        layer = 0
        for i, module in enumerate(self.features):
            x = module(x)
            if i == self.layer_ids[layer]:
                loss = loss + self.layer_weights[layer] * (x[:half] - x[half:].detach()).abs().mean()
                layer += 1
                if layer == len(self.layer_ids):
                    break
        return loss


def build_perceptual_loss(
    weights: str | Path | None = None, device: str | torch.device | None = None, **kwargs
) -> VGG19PerceptualLoss | None:
    """The perceptual term of a config, or ``None`` (off) with a log line saying which.

    Args:
        weights: ``None`` / ``""`` / ``False``: the term is off. ``"hub"`` / ``True``: torchvision's file in the
            torch hub cache (:func:`default_vgg19_path`). Anything else: a path to the VGG19 state dict.
            When on, a missing file raises ``FileNotFoundError`` naming the path.
        device: move the loss module there.
        kwargs: :class:`VGG19PerceptualLoss` arguments.
    """
    if weights is None or weights is False or (isinstance(weights, str) and not weights.strip()):
        logger.warning(
            "perceptual loss OFF (perceptual_weights is null); to switch it on, set perceptual_weights "
            "to a local VGG19 file or to 'hub' for %s.",
            default_vgg19_path(),
        )
        return None
    path = None if weights is True or (isinstance(weights, str) and weights.lower() == "hub") else weights
    loss = VGG19PerceptualLoss(weights_path=path, **kwargs)
    logger.info("perceptual loss ON: VGG19 weights from %s.", loss.weights_path)
    return loss if device is None else loss.to(device)
