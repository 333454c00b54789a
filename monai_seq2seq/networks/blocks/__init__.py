from .adain import AdaptiveInstanceNorm
from .conditional import ConditionalConv, ConditionalConvNormAct, ConditionalNorm, Conditioning
from .conv import ConvNormAct
from .convlstm import ConvLSTM, ConvLSTMCell
from .hyperconv import DynamicConv, HyperConv
from .norm import float32_norm, get_float32_norm_layer
from .residual import HyperResBlock, ResBlock

__all__ = [
    "AdaptiveInstanceNorm",
    "ConditionalConv",
    "ConditionalConvNormAct",
    "ConditionalNorm",
    "Conditioning",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvNormAct",
    "DynamicConv",
    "HyperConv",
    "HyperResBlock",
    "ResBlock",
    "float32_norm",
    "get_float32_norm_layer",
]
