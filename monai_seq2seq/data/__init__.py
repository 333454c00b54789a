"""Data: protocols (sequence registries), datalists, phantom cohorts and the toy set."""

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
    "FrameAxis",
    "Protocol",
    "SequenceSpec",
    "get_protocol",
    "list_protocols",
    "register_protocol",
]
