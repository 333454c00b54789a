"""monai-seq2seq: multi-sequence 3D/4D MRI synthesis, imaging-differentiation maps and sequence ranking on MONAI.

Subpackages load on first use (``monai_seq2seq.core``, ``.networks``, ``.transforms``, ``.io``, ``.losses``,
``.phantoms``, ``.data``, ``.engines``, ``.inference``, ``.analysis``, ``.zoo``, ``.cli``), so
``import monai_seq2seq`` is cheap and bundle configs can write ``$monai_seq2seq.inference.subject_collate`` after a
single ``$import monai_seq2seq``.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "analysis",
    "core",
    "data",
    "engines",
    "inference",
    "io",
    "losses",
    "networks",
    "phantoms",
    "transforms",
    "zoo",
    "cli",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
