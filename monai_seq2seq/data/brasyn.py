"""BraTS 2023-2025 file names and the BraSyn challenge's output naming.

BraTS 2023-2025 (GLI, MEN, MET, PED, SSA, ...) name a case ``BraTS-<TASK>-<NNNNN>-<NNN>`` and its files
``<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz``. The BraSyn (brain MR image synthesis) validation and test sets
use the same names with one sequence removed per case; a submission holds the missing sequence under the name
it would have had, ``<case>/<case>-<suffix>.nii.gz``, with no suffix such as ``-synthetic`` added
(hongweilibran/BraSyn, the challenge's tutorial).
"""

from __future__ import annotations

import re

from monai_seq2seq.core.protocols import BRAIN, Protocol, get_protocol

__all__ = ["BRATS2023_SUFFIXES", "BRATS2023_CASE", "is_brats2023_case", "brasyn_filename", "check_brasyn_protocol"]

BRATS2023_SUFFIXES: dict[str, str] = {"T1": "t1n", "T1Gd": "t1c", "T2": "t2w", "FLAIR": "t2f"}
"""BraTS 2023-2025 file suffix of each ``BRAIN`` sequence."""

BRATS2023_CASE = re.compile(r"^BraTS-[A-Za-z]+-\d+-\d+$")
"""A BraTS 2023-2025 case id, e.g. ``BraTS-GLI-00001-000`` or ``BraTS-SSA-00126-000``."""


def is_brats2023_case(name: str) -> bool:
    """Whether ``name`` is a BraTS 2023-2025 case id (``BraTS-XXX-NNNNN-NNN``)."""
    return bool(BRATS2023_CASE.match(str(name)))


def check_brasyn_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol, if BraSyn names exist for each of its sequences (the brain protocol).

    Raises:
        ValueError: a sequence has no BraTS 2023 file suffix (e.g. the breast protocol).
    """
    proto = get_protocol(protocol)
    lacking = [n for n in proto.names if n not in BRATS2023_SUFFIXES]
    if lacking:
        raise ValueError(
            f"BraSyn output names exist for the brain protocol's sequences {list(BRATS2023_SUFFIXES)} only; "
            f"protocol {proto.name!r} has {lacking}: leave brasyn off for this bundle."
        )
    return proto


def brasyn_filename(subject: str, sequence: str, protocol: str | Protocol = BRAIN) -> str:
    """File name the BraSyn challenge expects for a synthesised sequence: ``<case>-<suffix>.nii.gz``.

    Example: ``brasyn_filename("BraTS-GLI-00001-000", "T1Gd") == "BraTS-GLI-00001-000-t1c.nii.gz"``.

    Args:
        subject: the BraTS 2023-2025 case id.
        sequence: the sequence (canonical name or alias of ``protocol``).
        protocol: the protocol naming the sequence (the brain protocol).

    Raises:
        ValueError: the subject is not a BraTS 2023-2025 case id, or the sequence has no BraTS 2023 suffix.
    """
    proto = get_protocol(protocol)
    if not is_brats2023_case(subject):
        raise ValueError(
            f"subject {subject!r} is not a BraTS 2023-2025 case id (BraTS-XXX-NNNNN-NNN): BraSyn names are built "
            "from it; build the datalist from the BraSyn folder with build_datalist / `seq2seq datalist`."
        )
    name = proto.canonical(sequence) if sequence in proto else str(sequence)
    if name not in BRATS2023_SUFFIXES:
        raise ValueError(f"sequence {sequence!r} has no BraTS 2023 suffix; known: {BRATS2023_SUFFIXES}.")
    return f"{subject}-{BRATS2023_SUFFIXES[name]}.nii.gz"
