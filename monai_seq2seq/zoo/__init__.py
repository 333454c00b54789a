"""Model zoo: integrity of bundle files, reproducible packing, zoo indexes, safe download/installation, verification."""

from monai_seq2seq.core.integrity import (
    IntegrityError,
    expected_hash,
    load_weights,
    record_hash,
    sha256_file,
    verify_sha256,
)
from monai_seq2seq.engines.handlers import VerifiedCheckpointLoader

from .configs import BASE_CONFIGS, config_files, external_macros
from .index import download_bundle, github_release_url, list_index, read_index, resolve_entry
from .install import install_archive
from .network import ZooSeq2Seq, build_zoo_seq2seq
from .pack import ArchiveLimits, archive_file_hashes, check_bundle, pack_bundle, safe_extract, update_index
from .verify import verify_against_index, verify_bundle, verify_forward, verify_metadata_offline

__all__ = [
    "ArchiveLimits",
    "BASE_CONFIGS",
    "archive_file_hashes",
    "IntegrityError",
    "VerifiedCheckpointLoader",
    "ZooSeq2Seq",
    "build_zoo_seq2seq",
    "install_archive",
    "verify_against_index",
    "check_bundle",
    "config_files",
    "download_bundle",
    "github_release_url",
    "list_index",
    "read_index",
    "resolve_entry",
    "verify_bundle",
    "verify_forward",
    "verify_metadata_offline",
    "expected_hash",
    "external_macros",
    "load_weights",
    "pack_bundle",
    "record_hash",
    "safe_extract",
    "sha256_file",
    "update_index",
    "verify_sha256",
]
