"""Data: protocols (sequence registries), datalists, phantom cohorts and the toy set."""

from .datalists import (
    DatalistError,
    build_brats_datalist,
    build_breast_datalist,
    load_datalist,
    scan_subject,
    split_subjects,
    write_datalist,
)
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
    "DatalistError",
    "FrameAxis",
    "Protocol",
    "SequenceSpec",
    "build_brats_datalist",
    "build_breast_datalist",
    "get_protocol",
    "list_protocols",
    "load_datalist",
    "register_protocol",
    "scan_subject",
    "split_subjects",
    "write_datalist",
]
