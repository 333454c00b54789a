"""4D-aware MONAI transforms for multi-sequence MRI, array versions and dictionary twins (``d`` suffix).

- :mod:`.intensity`: per-series percentile scaling to [0, 1] and the network's [-1, 1] range (invertible).
- :mod:`.slices`: 2.5D slice stacks and the exact reassembly of volumes from slice predictions.
- :mod:`.missing`: availability masks, random silence, source/target sampling, sequence codes.
- :mod:`.frames`: sort, resample and count the frames of 4D series (DCE times, DWI b-values).
- :mod:`.dce`: wash-in and wash-out maps. :mod:`.dwi`: b-value selection/synthesis, ADC and IVIM maps.
- :mod:`.spatial`: one random crop/flip/affine for every frame of every sequence of a subject.
- :mod:`.validation`: grid matching (or resampling to a reference) and per-sequence checks against a protocol.
"""

from .dce import WASH_FORMULA, WashInOut, WashInOutd, wash_in_out
from .dwi import (
    ADCMap,
    ADCMapd,
    IVIMMaps,
    IVIMMapsd,
    SelectBValues,
    SelectBValuesd,
    diffusion_signal,
    fit_ivim,
    fit_monoexponential,
    ivim_signal,
)
from .frames import CheckFrameCount, CheckFrameCountd, ResampleFrames, ResampleFramesd, SortFrames, SortFramesd
from .intensity import (
    INTENSITY_RANGE_KEY,
    FromSymmetricRange,
    FromSymmetricRanged,
    PercentileScaleIntensity,
    PercentileScaleIntensityd,
    ToSymmetricRange,
    ToSymmetricRanged,
)
from .missing import (
    MASK_KEY,
    AvailabilityMask,
    AvailabilityMaskd,
    RandSilenceSequences,
    RandSilenceSequencesd,
    RandSourceTarget,
    RandSourceTargetd,
    SequenceCode,
    SequenceCoded,
)
from .slices import Slices25D, Slices25Dd, SlicesToVolume, SlicesToVolumed, VolumeToSlices, VolumeToSlicesd
from .spatial import RandFrameSpatialAugment, RandSubjectSpatialAugmentd
from .validation import CheckSequence, CheckSequenced, GridMismatchError, MatchGrid, MatchGridd

__all__ = [
    "ADCMap",
    "ADCMapd",
    "IVIMMaps",
    "IVIMMapsd",
    "SelectBValues",
    "SelectBValuesd",
    "diffusion_signal",
    "fit_ivim",
    "fit_monoexponential",
    "ivim_signal",
    "INTENSITY_RANGE_KEY",
    "MASK_KEY",
    "AvailabilityMask",
    "AvailabilityMaskd",
    "CheckFrameCount",
    "CheckFrameCountd",
    "CheckSequence",
    "CheckSequenced",
    "FromSymmetricRange",
    "FromSymmetricRanged",
    "GridMismatchError",
    "MatchGrid",
    "MatchGridd",
    "PercentileScaleIntensity",
    "PercentileScaleIntensityd",
    "RandFrameSpatialAugment",
    "RandSilenceSequences",
    "RandSilenceSequencesd",
    "RandSourceTarget",
    "RandSourceTargetd",
    "RandSubjectSpatialAugmentd",
    "ResampleFrames",
    "ResampleFramesd",
    "SequenceCode",
    "SequenceCoded",
    "Slices25D",
    "Slices25Dd",
    "SlicesToVolume",
    "SlicesToVolumed",
    "SortFrames",
    "SortFramesd",
    "ToSymmetricRange",
    "ToSymmetricRanged",
    "VolumeToSlices",
    "VolumeToSlicesd",
    "WASH_FORMULA",
    "WashInOut",
    "WashInOutd",
    "wash_in_out",
]
