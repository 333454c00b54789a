"""Named Seq2Seq sizes: the authors' released configuration, a paper-size one, and small CPU ones."""

from __future__ import annotations

from typing import Any

from ..blocks.conditional import Conditioning
from .seq2seq import Seq2Seq

__all__ = ["SEQ2SEQ_CONFIGS", "seq2seq_config", "build_seq2seq"]

SEQ2SEQ_CONFIGS: dict[str, dict[str, Any]] = {
    # The authors' released 2D configuration: 155.2 M parameters (decoder 119.4 M, each ConvLSTM 14.2 M,
    # encoder 7.5 M).
    "released": {
        "channels": (64, 128, 256),
        "num_res_blocks": 6,
        "num_hyper_res_blocks": 6,
        "lstm_layers": 3,
        "bank_dim": 16,
        "code_dim": 64,
        "upsample_mode": "linear",  # the authors' decoder: nn.Upsample(scale_factor=2, mode="bilinear")
    },
    # At most the paper's Table 1 budget of 35.8 M: same widths and depths, weight bank c_w = 2 and one-layer
    # ConvLSTMs (31.8 M). See README "Network sizes" for why the paper's count is lower than the released one.
    "paper": {
        "channels": (64, 128, 256),
        "num_res_blocks": 6,
        "num_hyper_res_blocks": 6,
        "lstm_layers": 1,
        "bank_dim": 2,
        "code_dim": 64,
        "upsample_mode": "linear",
    },
    # CPU demo / shipped weights.
    "small": {
        "channels": (16, 32, 64),
        "num_res_blocks": 3,
        "num_hyper_res_blocks": 3,
        "lstm_layers": 1,
        "bank_dim": 8,
        "code_dim": 64,
        "upsample_mode": "nearest",  # the shipped brain and breast weights were trained with it
    },
    # Unit tests.
    "tiny": {
        "channels": (4, 8, 8),
        "num_res_blocks": 1,
        "num_hyper_res_blocks": 1,
        "lstm_layers": 1,
        "bank_dim": 2,
        "code_dim": 16,
        "upsample_mode": "nearest",
    },
}

_VARIANTS = {"A": Conditioning.ADAIN, "B": Conditioning.DYNAMIC, "C": Conditioning.HYPER}


def seq2seq_config(name: str = "small", variant: str = "C", protocol: Any = None, **overrides: Any) -> dict[str, Any]:
    """Constructor arguments of :class:`Seq2Seq` for a named size.

    Args:
        name: ``"released"``, ``"paper"``, ``"small"`` or ``"tiny"``.
        variant: paper ablation variant ``"A"`` (AdaIN), ``"B"`` (dynamic filters) or ``"C"`` (HyperConv).
        protocol: a protocol (name, file or object) setting ``num_sequences``, ``target_frames`` and ``code_dim``.
        overrides: any other :class:`Seq2Seq` argument.
    """
    if name not in SEQ2SEQ_CONFIGS:
        raise ValueError(f"unknown Seq2Seq configuration {name!r}; choose from {sorted(SEQ2SEQ_CONFIGS)}.")
    if str(variant).upper() not in _VARIANTS:
        raise ValueError(f"variant must be 'A', 'B' or 'C', got {variant!r}.")
    config: dict[str, Any] = dict(SEQ2SEQ_CONFIGS[name])
    config["conditioning"] = _VARIANTS[str(variant).upper()]
    if protocol is not None:
        from monai_seq2seq.core.protocols import get_protocol

        proto = get_protocol(protocol)
        config.update(num_sequences=len(proto), target_frames=proto.frames, code_dim=proto.code_dim)
    config.update(overrides)
    return config


def build_seq2seq(name: str = "small", variant: str = "C", protocol: Any = None, **overrides: Any) -> Seq2Seq:
    """A :class:`Seq2Seq` of a named size (see :func:`seq2seq_config`)."""
    return Seq2Seq(**seq2seq_config(name, variant, protocol, **overrides))
