from .discriminator import SequenceDiscriminators
from .encoder import Encoder
from .factory import SEQ2SEQ_CONFIGS, build_seq2seq, seq2seq_config
from .hyper_decoder import HyperDecoder
from .plain import PlainEncoderDecoder
from .seq2seq import FoldedSeq2Seq, Seq2Seq

__all__ = [
    "Encoder",
    "FoldedSeq2Seq",
    "HyperDecoder",
    "PlainEncoderDecoder",
    "SEQ2SEQ_CONFIGS",
    "Seq2Seq",
    "SequenceDiscriminators",
    "build_seq2seq",
    "seq2seq_config",
]
