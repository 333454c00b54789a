"""The domain core, the bottom layer: protocols (sequence registries), error types, file safety, integrity, precision.

Every other package may import from here; nothing here imports another package of ``monai_seq2seq``.
"""

from .errors import DicomTagError, FrameValuesError, SeriesConsistencyError, UnreadableFileError
from .files import atomic_write, atomic_write_text, ensure_writable_dir, refuse_overwrite_inputs
from .integrity import (
    IntegrityError,
    expected_hash,
    load_weights,
    name_hash_prefix,
    record_hash,
    sha256_file,
    sha256_prefix_matches,
    verify_sha256,
)
from .machine import describe_machine, machine_info
from .protocols import (
    BRAIN,
    BREAST,
    DCE_TIMES_S,
    DWI_BVALUES,
    FrameAxis,
    Protocol,
    SequenceSpec,
    get_protocol,
    list_protocols,
    register_protocol,
)

__all__ = [
    "BRAIN",
    "BREAST",
    "DCE_TIMES_S",
    "DWI_BVALUES",
    "DicomTagError",
    "FrameAxis",
    "FrameValuesError",
    "IntegrityError",
    "Protocol",
    "SequenceSpec",
    "SeriesConsistencyError",
    "UnreadableFileError",
    "atomic_write",
    "atomic_write_text",
    "describe_machine",
    "ensure_writable_dir",
    "expected_hash",
    "get_protocol",
    "list_protocols",
    "load_weights",
    "machine_info",
    "name_hash_prefix",
    "record_hash",
    "refuse_overwrite_inputs",
    "register_protocol",
    "sha256_file",
    "sha256_prefix_matches",
    "verify_sha256",
]
