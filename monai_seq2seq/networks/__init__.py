"""Networks: HyperConv and its blocks, Encoder, HyperDecoder, ConvLSTM, Seq2Seq (3D/4D), discriminators, profiling."""

from .blocks import *  # noqa: F401,F403
from .blocks import __all__ as _blocks_all
from .nets import *  # noqa: F401,F403
from .nets import __all__ as _nets_all
from .profiling import count_macs, profile_seq2seq

__all__ = [*_blocks_all, *_nets_all, "count_macs", "profile_seq2seq"]
