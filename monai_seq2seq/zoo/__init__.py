"""Model zoo: integrity checks of bundle files (packing, download and verification build on them)."""

from .handlers import VerifiedCheckpointLoader
from .integrity import IntegrityError, expected_hash, load_weights, sha256_file, verify_sha256

__all__ = [
    "IntegrityError",
    "VerifiedCheckpointLoader",
    "expected_hash",
    "load_weights",
    "sha256_file",
    "verify_sha256",
]
