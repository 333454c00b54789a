"""Model zoo: integrity checks of bundle files, packing and safe installation of bundle archives."""

from .handlers import VerifiedCheckpointLoader
from .integrity import IntegrityError, expected_hash, load_weights, record_hash, sha256_file, verify_sha256
from .pack import check_bundle, pack_bundle, safe_extract, update_index

__all__ = [
    "IntegrityError",
    "VerifiedCheckpointLoader",
    "check_bundle",
    "expected_hash",
    "load_weights",
    "pack_bundle",
    "record_hash",
    "safe_extract",
    "sha256_file",
    "update_index",
    "verify_sha256",
]
