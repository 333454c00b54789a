"""Seq2Seq generator: any 3D/4D source sequence -> any 3D/4D target sequence, one network for all pairs.

This module avoids ``from __future__ import annotations`` so that TorchScript sees real type objects.
"""

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks.conditional import Conditioning
from ..blocks.convlstm import ConvLSTM
from .encoder import Encoder
from .hyper_decoder import HyperDecoder

__all__ = ["Seq2Seq", "FoldedSeq2Seq"]

_LEAKY = ("leakyrelu", {"negative_slope": 0.2})


def _temporal(spatial_dims: int, channels: int, layers: int, kernel_size: int) -> nn.Module:
    if layers <= 0:
        return nn.Identity()
    return ConvLSTM(spatial_dims, channels, channels, layers, kernel_size)


class Seq2Seq(nn.Module):
    """The paper's sequence-to-sequence generator (Seq2Seq-A/B/C by ``conditioning``).

    Encoding path: a shared :class:`Encoder` per frame, a ConvLSTM over the frames, the mean over frames
    ("4D-wise average"): one representation per source. Decoding path: the representation is copied to the
    target's frame count ("4D-wise copy"), a second ConvLSTM separates the frames, and a shared
    :class:`HyperDecoder` decodes each frame under the target code.

    Beyond the paper: every sample of a batch may have its own target (all targets of one subject decode in
    one call); a batch of one source with N targets is encoded once and decoded N times; several sources can
    be fused (mean of their representations, :meth:`forward_multi`); :meth:`fold` turns the network into plain
    convolutions for a fixed target.

    Args:
        spatial_dims: 2 (2D / 2.5D slices) or 3 (volumes).
        in_channels: channels per frame (3 adjacent slices in 2.5D, 1 in 3D).
        out_channels: channels per output frame; defaults to ``in_channels``.
        num_sequences: number of sequences of the protocol (valid target indices are ``0..num_sequences-1``).
        code_dim: one-hot code length (paper: 64).
        target_frames: frames of each sequence in code order (e.g. breast ``[1, 1, 1, 6, 6, 1, 1, 4]``);
            defaults to 1 for every sequence. Sets the output frame count for an integer target.
        channels: encoder widths (stem, then each stride-2 level); the decoder mirrors them.
        num_res_blocks: encoder residual blocks.
        num_hyper_res_blocks: decoder hyper-residual blocks.
        lstm_layers: layers of each of the two ConvLSTMs (0: no ConvLSTM, frames are only averaged/copied).
        lstm_kernel_size: ConvLSTM kernel size.
        bank_dim: HyperConv weight-bank size ``c_w``.
        conditioning: ``"hyper"`` (C, default), ``"dynamic"`` (B) or ``"adain"`` (A).
        norm: norm type and args. Defaults to instance norm.
        act: activation type and args. Defaults to LeakyReLU(0.2).
        group_targets: decode integer targets group by group with shared kernels (faster on CPU); ``False``
            uses one grouped convolution with per-sample kernels. Same outputs either way.
        upsample_mode: the decoder's x2 upsampling, ``"linear"`` (bilinear in 2D, trilinear in 3D, align_corners
            False: the authors' released network) or ``"nearest"``. A config must pin the mode its weights were
            trained with: the parameters are the same either way, so wrong weights load silently.

    Shapes:
        ``x``: (B, T, C, *spatial) with T the source's frames, or (B, C, *spatial) for a 3D source.
        ``target``: an int, a list of B ints, a LongTensor (B,) of code indices, or a float code (B, code_dim)
        / (code_dim,). A single target is shared by the batch; with B = 1 and N targets the source is encoded
        once and the output has batch N.
        Output: (B, T_out, out_channels, *spatial), or (B, out_channels, *spatial) when ``x`` had no frame axis
        and T_out = 1. Values in (-1, 1).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int | None = None,
        num_sequences: int = 4,
        code_dim: int = 64,
        target_frames: Sequence[int] | None = None,
        channels: Sequence[int] = (64, 128, 256),
        num_res_blocks: int = 6,
        num_hyper_res_blocks: int = 6,
        lstm_layers: int = 3,
        lstm_kernel_size: int = 3,
        bank_dim: int = 16,
        conditioning: str = Conditioning.HYPER,
        norm: tuple | str = "instance",
        act: tuple | str = _LEAKY,
        group_targets: bool = True,
        upsample_mode: str = "linear",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not 1 <= num_sequences <= code_dim:
            raise ValueError(f"need 1 <= num_sequences <= code_dim, got {num_sequences} and {code_dim}.")
        frames = [1] * num_sequences if target_frames is None else [int(f) for f in target_frames]
        if len(frames) != num_sequences or min(frames) < 1:
            raise ValueError(f"target_frames needs {num_sequences} positive entries, got {list(frames)}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.num_sequences = num_sequences
        self.code_dim = code_dim
        self.conditioning = Conditioning.check(conditioning)
        self.group_targets = group_targets
        self.target_frames: list[int] = frames
        self.register_buffer("frames_table", torch.tensor(frames, dtype=torch.long), persistent=False)
        self.encoder = Encoder(spatial_dims, in_channels, channels, num_res_blocks, norm, act)
        self.downsample_factor = self.encoder.downsample_factor
        width = int(channels[-1])
        self.temporal_encoder = _temporal(spatial_dims, width, lstm_layers, lstm_kernel_size)
        self.temporal_decoder = _temporal(spatial_dims, width, lstm_layers, lstm_kernel_size)
        self.decoder = HyperDecoder(
            spatial_dims,
            width,
            self.out_channels,
            code_dim,
            num_hyper_res_blocks,
            tuple(reversed(channels[:-1])),
            self.conditioning,
            bank_dim,
            norm,
            act,
            upsample_mode,
        )
        self.upsample_mode: str = self.decoder.upsample_mode

    # ---- conditions -------------------------------------------------------------------------------------
    def condition_code(self, target: torch.Tensor | int | list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The one-hot code(s) of ``target`` and its code indices (``None`` for a float code given directly).

        Returns:
            code (N, code_dim) in the network's dtype and device; indices (N,) or ``None``.

        Raises:
            ValueError: an index outside ``0..num_sequences-1``, an empty list or a code of the wrong length.
        """
        weight = self.decoder.code_embed[0].weight
        if isinstance(target, int):
            idx = torch.tensor([target], dtype=torch.long, device=weight.device)
        elif isinstance(target, list):
            if len(target) == 0:
                raise ValueError("Seq2Seq: the target list is empty.")
            idx = torch.tensor(target, dtype=torch.long, device=weight.device)
        else:
            if target.is_floating_point():
                code = target.reshape(1, -1) if target.dim() == 1 else target
                if code.dim() != 2 or code.shape[1] != self.code_dim:
                    raise ValueError(
                        "Seq2Seq: a float target code must be (N, "
                        + str(self.code_dim)
                        + "), got shape "
                        + str(list(target.shape))
                        + "."
                    )
                return code.to(device=weight.device, dtype=weight.dtype), None
            idx = target.reshape(-1).to(device=weight.device, dtype=torch.long)
            if idx.numel() == 0:
                raise ValueError("Seq2Seq: the target tensor is empty.")
        low = int(idx.min())
        high = int(idx.max())
        if low < 0 or high >= self.num_sequences:
            bad = low if low < 0 else high
            raise ValueError(
                "Seq2Seq: unknown target sequence index "
                + str(bad)
                + "; valid indices are 0.."
                + str(self.num_sequences - 1)
                + "."
            )
        return F.one_hot(idx, self.code_dim).to(weight.dtype), idx

    def frames_of(self, indices: torch.Tensor | None, out_frames: int | None = None) -> int:
        """Output frame count for these target indices (all must agree), checked against ``out_frames``."""
        if indices is None:
            return 1 if out_frames is None else int(out_frames)
        frames = self.frames_table.to(indices.device)[indices]
        first = int(frames[0])
        if bool((frames != first).any()):
            raise ValueError(
                "Seq2Seq: targets with different frame counts cannot share one batch (frames per target: "
                + str(self.target_frames)
                + ")."
            )
        if out_frames is not None and int(out_frames) != first:
            raise ValueError(
                "Seq2Seq: out_frames=" + str(out_frames) + " contradicts the target's " + str(first) + " frame(s)."
            )
        return first

    # ---- shape checks -----------------------------------------------------------------------------------
    def _as_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(B, C, *S) -> (B, 1, C, *S); (B, T, C, *S) unchanged; validates rank, channels and sizes."""
        sd = self.spatial_dims
        if x.dim() != sd + 2 and x.dim() != sd + 3:
            raise ValueError(
                "Seq2Seq: expected input (B, T, C, *spatial) or (B, C, *spatial) with "
                + str(sd)
                + " spatial dims, got shape "
                + str(list(x.shape))
                + "."
            )
        no_frames = x.dim() == sd + 2
        if no_frames:
            x = x.unsqueeze(1)
        if x.shape[2] != self.in_channels:
            raise ValueError(
                "Seq2Seq: expected "
                + str(self.in_channels)
                + " channels per frame, got shape "
                + str(list(x.shape))
                + " (read as (B, T, C, *spatial))."
            )
        for size in x.shape[3:]:
            if size % self.downsample_factor != 0:
                raise ValueError(
                    "Seq2Seq: spatial size "
                    + str(list(x.shape[3:]))
                    + " must be divisible by "
                    + str(self.downsample_factor)
                    + " (the encoder's downsampling)."
                )
        return x, no_frames

    # ---- paths ------------------------------------------------------------------------------------------
    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoding path E: (B, T, C, *spatial) -> one representation (B, F, *spatial / 4) per source."""
        x, _ = self._as_frames(x)
        batch, frames = x.shape[0], x.shape[1]
        features = self.encoder(x.reshape([batch * frames] + list(x.shape[2:])))
        features = features.reshape([batch, frames] + list(features.shape[1:]))
        return self.temporal_encoder(features).mean(dim=1)

    @torch.jit.export
    def decode(
        self, z: torch.Tensor, code: torch.Tensor, out_frames: int = 1, indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Conditional decoding path G: representations and target codes -> images.

        Args:
            z: (N, F, *s), or (1, F, *s) shared by N codes: the target-independent ConvLSTM then runs once.
            code: (N, code_dim), or (1, code_dim) shared by the batch.
            out_frames: target frame count T_out.
            indices: optional code indices (N,); the samples are then grouped by target and each group is
                decoded with one shared kernel set (on CPU a few plain convolutions beat one grouped one).

        Returns:
            (N, T_out, C_out, *S).
        """
        batch = z.shape[0] if code.shape[0] == 1 else code.shape[0]
        if z.shape[0] != batch and z.shape[0] != 1:
            raise ValueError(
                "Seq2Seq: "
                + str(code.shape[0])
                + " targets for a batch of "
                + str(z.shape[0])
                + "; give one target, one per sample, or a batch of one source."
            )
        h = self.expand_frames(z, out_frames)
        h = h.expand([batch] + list(h.shape[1:])).reshape([batch * out_frames] + list(h.shape[2:]))
        if code.shape[0] == 1:
            y = self.decoder(h, code)
        elif indices is not None and self.group_targets:
            y = self._decode_by_target(h, code, indices.repeat_interleave(out_frames))
        else:
            y = self.decoder(h, code.repeat_interleave(out_frames, dim=0))
        return y.reshape([batch, out_frames] + list(y.shape[1:]))

    @torch.jit.export
    def expand_frames(self, z: torch.Tensor, out_frames: int = 1) -> torch.Tensor:
        """The target-independent part of G: copy to T_out frames ("4D-wise copy") and the second ConvLSTM.

        (N, F, *s) -> (N, T_out, F, *s). Shared by every target with the same frame count.
        """
        h = z.unsqueeze(1).expand([z.shape[0], out_frames] + list(z.shape[1:]))
        return self.temporal_decoder(h)

    def _decode_by_target(self, h: torch.Tensor, code: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """HyperDecoder on (M, F, *s) per target group; ``indices`` (M,) (frames already expanded)."""
        groups: list[int] = torch.unique(indices).tolist()
        if len(groups) == 1:
            return self.decoder(h, code[:1])
        frames_per_code = indices.shape[0] // code.shape[0]
        pieces: list[torch.Tensor] = []
        order: list[torch.Tensor] = []
        for g in groups:
            sel = (indices == g).nonzero().squeeze(1)
            first = int(sel[0]) // frames_per_code
            pieces.append(self.decoder(h.index_select(0, sel), code[first : first + 1]))
            order.append(sel)
        return torch.cat(pieces)[torch.argsort(torch.cat(order))]

    def forward(
        self, x: torch.Tensor, target: torch.Tensor | int | list[int], out_frames: int | None = None
    ) -> torch.Tensor:
        """Synthesise ``target`` from the source ``x`` (see the class docstring for shapes)."""
        x, no_frames = self._as_frames(x)
        code, indices = self.condition_code(target)
        frames = self.frames_of(indices, out_frames)
        y = self.decode(self.encode(x), code, frames, indices)
        if no_frames and frames == 1:
            y = y.squeeze(1)
        return y

    @torch.jit.export
    def forward_multi(
        self, sources: list[torch.Tensor], target: torch.Tensor | int | list[int], out_frames: int | None = None
    ) -> torch.Tensor:
        """Multi-source synthesis: the mean of the sources' representations is decoded.

        Args:
            sources: tensors (B, T_s, C, *spatial) (T_s may differ per source) on the same grid.
            target: as in :meth:`forward`.

        Returns:
            (B, T_out, out_channels, *spatial).
        """
        if len(sources) == 0:
            raise ValueError("Seq2Seq.forward_multi: no sources given.")
        z = self.encode(sources[0])
        for src in sources[1:]:
            other = self.encode(src)
            if other.shape != z.shape:
                raise ValueError(
                    "Seq2Seq.forward_multi: sources disagree in batch or grid: "
                    + str(list(sources[0].shape))
                    + " vs "
                    + str(list(src.shape))
                    + "."
                )
            z = z + other
        z = z / len(sources)
        code, indices = self.condition_code(target)
        return self.decode(z, code, self.frames_of(indices, out_frames), indices)

    @torch.no_grad()
    def fold(self, target: int | str = 0, share: bool = False) -> "FoldedSeq2Seq":
        """The network with every conditioned layer turned into a plain one for ``target``.

        The folded network has the same outputs as ``self(x, target)`` and exports to TorchScript and ONNX.

        Args:
            target: code index of the target sequence.
            share: reuse this network's encoder and ConvLSTM modules instead of copying them (for caching one
                folded decoder per target in memory); the default copy is a standalone module for export.
        """
        code, indices = self.condition_code(int(target))
        take = (lambda m: m) if share else copy.deepcopy
        return FoldedSeq2Seq(
            take(self.encoder),
            take(self.temporal_encoder),
            take(self.temporal_decoder),
            self.decoder.fold(code),
            self.frames_of(indices),
            self.spatial_dims,
            self.in_channels,
            self.downsample_factor,
        ).eval()


class FoldedSeq2Seq(nn.Module):
    """A :class:`Seq2Seq` frozen to one target: plain convolutions, ``forward(x)`` only.

    Shapes:
        ``x``: (B, T, C, *spatial) or (B, C, *spatial). Output: (B, T_out, C_out, *spatial), or
        (B, C_out, *spatial) when ``x`` had no frame axis and T_out = 1.
    """

    def __init__(
        self,
        encoder: nn.Module,
        temporal_encoder: nn.Module,
        temporal_decoder: nn.Module,
        decoder: nn.Module,
        out_frames: int,
        spatial_dims: int,
        in_channels: int,
        downsample_factor: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.temporal_encoder = temporal_encoder
        self.temporal_decoder = temporal_decoder
        self.decoder = decoder
        self.out_frames = out_frames
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.downsample_factor = downsample_factor

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, *spatial) -> (B, F, *spatial / 4): identical to :meth:`Seq2Seq.encode`."""
        if x.dim() != self.spatial_dims + 3 or x.shape[2] != self.in_channels:
            raise ValueError("FoldedSeq2Seq: bad input shape " + str(list(x.shape)) + ".")
        batch, frames = x.shape[0], x.shape[1]
        f = self.encoder(x.reshape([batch * frames] + list(x.shape[2:])))
        return self.temporal_encoder(f.reshape([batch, frames] + list(f.shape[1:]))).mean(dim=1)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, F, *s) -> (N, T_out, C_out, *S) for the folded target."""
        h = self.temporal_decoder(z.unsqueeze(1).expand([z.shape[0], self.out_frames] + list(z.shape[1:])))
        return self.decode_frames(h)

    @torch.jit.export
    def decode_frames(self, h: torch.Tensor) -> torch.Tensor:
        """The folded decoder alone on frame features (N, T_out, F, *s) -> (N, T_out, C_out, *S)."""
        batch, frames = h.shape[0], h.shape[1]
        y = self.decoder(h.reshape([batch * frames] + list(h.shape[2:])))
        return y.reshape([batch, frames] + list(y.shape[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        no_frames = x.dim() == self.spatial_dims + 2
        if no_frames:
            x = x.unsqueeze(1)
        y = self.decode(self.encode(x))
        if no_frames and self.out_frames == 1:
            y = y.squeeze(1)
        return y
