"""Whole-volume synthesis with a Seq2Seq network: 2.5D slab batches (or 3D sliding windows), all pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from monai.utils import convert_to_tensor
from tqdm.auto import tqdm

from monai_seq2seq.core.precision import warn_if_emulated_bf16
from monai_seq2seq.core.protocols import Protocol, get_protocol

from ..transforms.slabs import constant_samples, pad_to_multiple, slabs_to_volume, volume_to_slabs
from ..transforms.validation import check_same_grid
from .planner import cuda_memory_budget, cuda_peak_bytes, plan_batch_size

__all__ = ["AUTO_CPU_BATCH_SIZE", "Seq2SeqSynthesizer", "to_channels_last"]

AUTO_CPU_BATCH_SIZE = 16


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Channels-last layout for the 2D convolution weights only (HyperConv banks have rank 6 and stay as they are)."""
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
    return module


class Seq2SeqSynthesizer:
    """Synthesise whole volumes of any target sequence from available source sequences.

    Volumes are frames-first ``(T, X, Y, Z)`` tensors in the normalised [0, 1] space of the transforms (the
    network works in [-1, 1]; the mapping happens here). In 2.5D mode (``network.spatial_dims == 2``) each axial
    slice and its neighbours form one network sample; slabs are batched, each source is encoded once per batch
    and its representation decoded for every requested target, and the volume is reassembled exactly.
    In 3D mode MONAI's sliding-window inference runs per source and target.

    Args:
        network: a :class:`~monai_seq2seq.networks.Seq2Seq` (or anything with its ``encode``/``decode`` API).
        protocol: the protocol the network was trained on (name, file or object).
        batch_size: slabs per network call (2.5D) or windows per call (3D). ``"auto"`` (2.5D on CUDA): the largest
            batch whose measured peak memory (one encode and the decode of the target with most frames) stays
            within ``memory_fraction`` of the free GPU memory, planned once per slab shape; on a CPU ``"auto"``
            means 16 (host memory is not planned); in 3D mode it means 4 windows.
        device: where the network runs; default: the network's device.
        reassembly: ``"middle"`` (centre channel of each slab) or ``"mean"`` (average of overlapping slabs).
        amp: autocast in bfloat16 (CUDA and CPU; norms and the encoder stem stay in float32, and conv biases that an
            instance norm cancels are left out). On the shipped brain weights the outputs differ from float32 by
            2e-4 on average, at most 0.02, in [0, 1] (edge slabs of a phantom subject, measured by
            ``tests/test_inference_synthesis.py``, which prints them with ``pytest -s``). On a CPU the
            gain depends on the chip (``benchmarks/RESULTS.md``: 1.7-2x on an AMD EPYC with AVX512-BF16, slower than
            float32 on an Intel Xeon with AVX512-BF16 and no AMX); without bf16 instructions it is emulated and
            slow, and a warning says so.
        progress: show a tqdm progress bar.
        roi_size: 3D mode window size.
        fold: decode each target with a cached folded (plain-convolution) decoder: kernels are computed once per
            target instead of once per batch. Same outputs to float precision.
        channels_last: channels-last memory format on CUDA (faster convolutions on tensor cores).
        compile: wrap the encoder and decoders in ``torch.compile`` with weight freezing: the weights at the first
            call are compiled in as constants, so load them before synthesising (the synthesiser never trains).
        memory_fraction: share of the free GPU memory ``batch_size="auto"`` plans for.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        protocol: str | Protocol,
        batch_size: int | str = 16,
        device: str | torch.device | None = None,
        reassembly: str = "middle",
        amp: bool = False,
        progress: bool = True,
        roi_size: Sequence[int] = (96, 96, 96),
        fold: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        memory_fraction: float = 0.8,
    ) -> None:
        self.network = network.eval()
        self.protocol = get_protocol(protocol)
        if getattr(network, "num_sequences", len(self.protocol)) != len(self.protocol):
            raise ValueError(
                f"the network knows {network.num_sequences} sequences, protocol {self.protocol.name!r} has "
                f"{len(self.protocol)}."
            )
        if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}.")
        if not 0.0 < memory_fraction <= 1.0:
            raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}.")
        self.batch_size = batch_size
        self.memory_fraction = float(memory_fraction)
        self._planned: dict[tuple[int, ...], int] = {}
        self.device = torch.device(device) if device is not None else next(network.parameters()).device
        self.network.to(self.device)
        self.reassembly = reassembly
        self.amp = bool(amp) and self.device.type in ("cuda", "cpu")
        if self.amp:
            warn_if_emulated_bf16(self.device, "Seq2SeqSynthesizer(amp=True)")
        self.progress = progress
        self.roi_size = tuple(roi_size)
        self.spatial_dims = int(getattr(network, "spatial_dims", 2))
        self.context = int(getattr(network, "in_channels", 3)) // 2
        self.fold = fold and hasattr(network, "fold")
        self.channels_last = channels_last and self.device.type == "cuda" and self.spatial_dims == 2
        self.compile = compile
        if self.channels_last:
            to_channels_last(self.network)
        self._encode = self._compiled(self.network.encode) if compile else self.network.encode
        self._folded: dict[str, torch.nn.Module] = {}

    # ---- checks -----------------------------------------------------------------------------------------
    def _check(self, volumes: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not volumes:
            raise ValueError("no source volume given.")
        checked: dict[str, torch.Tensor] = {}
        for name, original in volumes.items():
            canonical = self.protocol.canonical(name)
            # plain tensors: MetaTensor's per-op bookkeeping costs time in every layer and breaks torch.compile graphs
            vol = convert_to_tensor(original, track_meta=False)
            spec = self.protocol[canonical]
            if vol.dim() != 4:
                raise ValueError(f"{canonical}: expected a frames-first volume (T, X, Y, Z), got {tuple(vol.shape)}.")
            if vol.shape[0] != spec.frames:
                raise ValueError(
                    f"{canonical}: protocol {self.protocol.name!r} expects {spec.frames} frame(s), got {vol.shape[0]}."
                )
            if not torch.isfinite(vol).all():
                raise ValueError(f"{canonical} contains NaN or Inf values.")
            checked[canonical] = vol
        # shapes, and affines where the volumes are MetaTensors, within the library's one tolerance
        check_same_grid({self.protocol.canonical(n): v for n, v in volumes.items()})
        return checked

    def _targets(self, targets: Sequence[str] | None) -> list[str]:
        return list(self.protocol.names) if targets is None else [self.protocol.canonical(t) for t in targets]

    def _autocast(self):
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    # ---- 2.5D -------------------------------------------------------------------------------------------
    def _padded_slabs(self, volume: torch.Tensor) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """(Z, T, C, X, Y) slabs in [-1, 1] padded to the network's multiple, the padding info, constant slabs."""
        slabs = volume_to_slabs(volume * 2 - 1, self.context)
        empty = constant_samples(slabs)
        slabs, size = pad_to_multiple(slabs, self.network.downsample_factor)
        return slabs, size, empty

    def _encode_batches(self, volume: torch.Tensor, prepared: tuple | None = None, step: int | None = None):
        """Yield (padded size info, representation, empty) per batch of ``step`` slabs (default: planned).

        ``prepared``: the volume's :meth:`_padded_slabs`, when the caller has them already.

        ``empty`` (B,) bool marks constant slabs (all background). Through InstanceNorm every constant input gives
        the same features whatever its value, so the network's output there carries nothing about the input
        (and the trainer never trains on such crops): :meth:`_blank` sets it to background.
        """
        slabs, size, empty = self._padded_slabs(volume) if prepared is None else prepared
        step = self.slab_batch_size(slabs) if step is None else step
        for start in range(0, slabs.shape[0], step):
            batch = slabs[start : start + step].to(self.device, non_blocking=True)
            with self._autocast():
                yield size, self._encode(batch), empty[start : start + step]

    def slab_batch_size(self, slabs: torch.Tensor) -> int:
        """Slabs per call for these (Z, T, C, X, Y) padded slabs: ``batch_size``, or planned for ``"auto"``."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        if self.device.type != "cuda":
            return AUTO_CPU_BATCH_SIZE
        key = tuple(slabs.shape[1:])
        if key not in self._planned:
            budget = cuda_memory_budget(self.device, self.memory_fraction)
            self._planned[key] = plan_batch_size(lambda b: self._peak_bytes(slabs[:1], b), budget, slabs.shape[0])
        return self._planned[key]

    def _peak_bytes(self, slab: torch.Tensor, batch: int) -> int:
        """Peak CUDA memory of encoding ``batch`` copies of ``slab`` and decoding the target with most frames.

        Eager and unfolded (no compilation per trial shape); folding and compiling need no more memory.
        """
        target = max(range(len(self.protocol)), key=lambda j: self.protocol[j].frames)
        code, indices = self.network.condition_code(target)
        x = slab.expand(batch, *slab.shape[1:]).contiguous().to(self.device)

        def run():
            with torch.inference_mode(), self._autocast():
                return self.network.decode(self.network.encode(x), code, self.network.frames_of(indices))

        return cuda_peak_bytes(run, self.device)

    @staticmethod
    def _blank(pred: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
        """Predictions of empty (constant) source slabs set to background, the network range's minimum -1."""
        if bool(empty.any()):
            pred[empty.to(pred.device)] = -1.0
        return pred

    def clear_cache(self) -> None:
        """Forget the folded decoders (call after the network's weights change).

        With ``compile=True`` this is not enough: the compiled graphs hold the weights of their first call as
        constants; call ``torch._dynamo.reset()`` and build a new synthesiser instead.
        """
        self._folded.clear()

    @staticmethod
    def _compiled(fn):
        # freezing folds the (inference-only) weights into the graph as constants: on CPU that lets oneDNN prepack
        # the convolution weights once instead of per call
        return torch.compile(fn, options={"freezing": True})

    def folded(self, target: str) -> torch.nn.Module:
        """The cached folded decoder of ``target`` (frame features -> images), built from the weights at first use."""
        if target not in self._folded:
            module = self.network.fold(self.protocol.index(target), share=True)
            if self.channels_last:
                to_channels_last(module)
            self._folded[target] = self._compiled(module.decode_frames) if self.compile else module.decode_frames
        return self._folded[target]

    def _decode(self, z: torch.Tensor, target: str, frames: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Decode ``target``; ``frames`` caches the target-independent frame features per frame count."""
        code, indices = self.network.condition_code(self.protocol.index(target))
        count = self.network.frames_of(indices)
        with self._autocast():
            if not self.fold:
                return self.network.decode(z, code, count)
            if frames is None:
                frames = {}
            if count not in frames:
                frames[count] = self.network.expand_frames(z, count)
            return self.folded(target)(frames[count])

    @torch.no_grad()
    def all_pairs(
        self,
        volumes: Mapping[str, torch.Tensor],
        targets: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Every source -> target translation of one subject, each source encoded once.

        Args:
            volumes: name -> (T, X, Y, Z) in [0, 1]; the available sequences.
            targets: targets to synthesise (default: every protocol sequence, present or not).
            sources: sources to use (default: every given volume).

        Returns:
            ``predictions[target][source]`` -> (T_target, X, Y, Z) in [0, 1] on the CPU.
        """
        volumes = self._check(volumes)
        targets = self._targets(targets)
        sources = list(volumes) if sources is None else [self.protocol.canonical(s) for s in sources]
        missing = [s for s in sources if s not in volumes]
        if missing:
            raise ValueError(f"sources {missing} are not among the given volumes {list(volumes)}.")
        if self.spatial_dims == 3:
            return {t: {s: self._sliding_window(volumes[s], t) for s in sources} for t in targets}
        depth = next(iter(volumes.values())).shape[-1]
        out: dict[str, dict[str, torch.Tensor]] = {t: {} for t in targets}
        bar = tqdm(
            total=len(sources) * depth, desc="synthesis (slices x sources)", disable=not self.progress, leave=False
        )
        for source in sources:
            pieces: dict[str, list[torch.Tensor]] = {t: [] for t in targets}
            for _, z, empty in self._encode_batches(volumes[source]):
                shared: dict[int, torch.Tensor] = {}
                for target in targets:
                    pieces[target].append(self._blank(self._decode(z, target, shared).float().cpu(), empty))
                bar.update(z.shape[0])
            height, width = volumes[source].shape[1:3]
            for target in targets:
                slabs = torch.cat(pieces[target])[..., :height, :width]
                out[target][source] = ((slabs_to_volume(slabs, self.reassembly) + 1) / 2).clamp(0, 1)
        bar.close()
        return out

    @torch.no_grad()
    def synthesize(
        self,
        volumes: Mapping[str, torch.Tensor],
        target: str,
        sources: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """One target from one or several sources (several: mean of their representations, multi-source fusion).

        Args:
            volumes: name -> (T, X, Y, Z) in [0, 1].
            target: the sequence to synthesise.
            sources: default: every given volume except the target itself.

        Returns:
            (T_target, X, Y, Z) in [0, 1] on the CPU.
        """
        volumes = self._check(volumes)
        target = self.protocol.canonical(target)
        sources = (
            [s for s in volumes if s != target] if sources is None else [self.protocol.canonical(s) for s in sources]
        )
        if not sources:
            raise ValueError(f"no source to synthesise {target} from: only {list(volumes)} given.")
        unknown = [s for s in sources if s not in volumes]
        if unknown:
            raise ValueError(f"sources {unknown} are not among the given volumes {list(volumes)}.")
        if len(sources) == 1:
            return self.all_pairs(volumes, [target], sources)[target][sources[0]]
        if self.spatial_dims == 3:
            raise NotImplementedError("multi-source fusion is implemented for 2.5D networks.")
        # one step for all sources, so that their batches line up slab by slab
        prepared = [self._padded_slabs(volumes[s]) for s in sources]
        step = min(self.slab_batch_size(p[0]) for p in prepared)
        streams = [self._encode_batches(volumes[s], p, step) for s, p in zip(sources, prepared, strict=True)]
        pieces, size = [], None
        for batches in zip(*streams, strict=True):
            size = batches[0][0]
            reps = torch.stack([b[1] for b in batches])  # (S, B, ...)
            empties = torch.stack([b[2] for b in batches])  # (S, B)
            # mean over the sources that have something in this slab (an empty one's features are meaningless)
            weight = (~empties).to(reps.device, reps.dtype).reshape(*empties.shape, *([1] * (reps.ndim - 2)))
            z = (reps * weight).sum(0) / weight.sum(0).clamp_min(1.0)
            empty = empties.all(0)  # background only where no source has anything
            pieces.append(self._blank(self._decode(z, target).float().cpu(), empty))
        slabs = torch.cat(pieces)[..., : size[0], : size[1]]
        return ((slabs_to_volume(slabs, self.reassembly) + 1) / 2).clamp(0, 1)

    # ---- 3D ---------------------------------------------------------------------------------------------
    def _sliding_window(self, volume: torch.Tensor, target: str) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        index = self.protocol.index(target)
        windows = 4 if self.batch_size == "auto" else int(self.batch_size)

        def predictor(window: torch.Tensor) -> torch.Tensor:  # (B, T, x, y, z) -> (B, T_out, x, y, z)
            return self._blank(self.network(window.unsqueeze(2), index).squeeze(2), constant_samples(window))

        with self._autocast():
            pred = sliding_window_inference(
                (volume[None] * 2 - 1).to(self.device),
                self.roi_size,
                windows,
                predictor,
                overlap=0.25,
                mode="gaussian",
            )
        return ((pred[0].float().cpu() + 1) / 2).clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol.name,
            "mode": "2.5D slabs" if self.spatial_dims == 2 else "3D sliding window",
            "context_slices": self.context,
            "reassembly": self.reassembly,
            "batch_size": self.batch_size,
            "planned_batch_sizes": [{"slab_shape": list(k), "batch_size": v} for k, v in self._planned.items()],
            "device": str(self.device),
            "amp_bf16": self.amp,
            "folded_decoders": self.fold,
            "channels_last": self.channels_last,
            "compiled": self.compile,
        }
