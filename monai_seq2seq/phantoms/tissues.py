"""The one table of tissue parameters, sequence timings and kinetic/diffusion parameters of the phantoms.

Every number the phantom simulators use lives here, so a value can be changed in one place. Relaxation
times are textbook 3 T values in milliseconds; proton density (PD) is relative to water; ADC and D* are in
mm^2/s; gadolinium relaxivity r1 is in 1/(mM s). Values marked "assumed" are not in the specification
(``/work/shared/spec/phantoms.md``) and were chosen to look plausible.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "Tissue",
    "SpinEcho",
    "InversionRecovery",
    "Kinetics",
    "BRAIN_TISSUES",
    "BRAIN_SEQUENCES",
    "BRAIN_LABELS",
    "BRAIN_MIMIC",
    "BREAST_TISSUES",
    "BREAST_SEQUENCES",
    "BREAST_LABELS",
    "BREAST_MIMICS",
    "BREAST_KINETICS",
    "LESION_KINETIC_RANGES",
    "KINETIC_TYPES",
    "GADOLINIUM_R1",
    "GADOLINIUM_CONCENTRATION_MM",
    "FAT_SATURATION_FACTOR",
    "IVIM_DSTAR_FACTOR",
    "INTENSITY_SCALE",
    "BIAS_GROUPS",
]


@dataclass(frozen=True)
class Tissue:
    """MR parameters of one tissue.

    Args:
        t1: longitudinal relaxation time in ms.
        t2: transverse relaxation time in ms.
        pd: proton density relative to water (0 = no signal).
        adc: apparent diffusion coefficient in mm^2/s (breast DWI only).
        perfusion_fraction: IVIM perfusion fraction f (breast DWI only).
        fat: whether fat saturation suppresses this tissue.
    """

    t1: float
    t2: float
    pd: float
    adc: float = 0.0
    perfusion_fraction: float = 0.0
    fat: bool = False


@dataclass(frozen=True)
class SpinEcho:
    """Spin-echo timing (ms): ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``."""

    tr: float
    te: float


@dataclass(frozen=True)
class InversionRecovery:
    """Inversion-recovery timing (ms): ``S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``."""

    tr: float
    ti: float
    te: float


@dataclass(frozen=True)
class Kinetics:
    """Empirical DCE enhancement ``E(t) = A (1 - exp(-a t)) exp(-b t)`` (t in s), ``S(t) = S0 (1 + E(t))``.

    Args:
        amplitude: A (relative enhancement at the plateau).
        uptake: a in 1/s.
        washout: b in 1/s (0 = no wash-out).
    """

    amplitude: float
    uptake: float
    washout: float = 0.0


# ----------------------------------------------------------------------------------------------- brain
BRAIN_TISSUES = MappingProxyType(
    {
        "WM": Tissue(t1=830.0, t2=80.0, pd=0.70),
        "GM": Tissue(t1=1330.0, t2=110.0, pd=0.80),
        "CSF": Tissue(t1=4000.0, t2=2000.0, pd=1.00),
        "oedema": Tissue(t1=1500.0, t2=200.0, pd=0.90),
        "tumour": Tissue(t1=1300.0, t2=120.0, pd=0.85),
        "necrosis": Tissue(t1=2500.0, t2=300.0, pd=0.95),
        # subacute blood products (intracellular methaemoglobin); its T1 is shortened per voxel, see BRAIN_MIMIC
        "haemorrhage": Tissue(t1=1300.0, t2=45.0, pd=0.95),  # assumed
    }
)
"""Brain tissues (spec). Enhancing tumour is ``"tumour"`` plus gadolinium; ``"haemorrhage"`` is the mimic."""

BRAIN_SEQUENCES = MappingProxyType(
    {
        "T1": SpinEcho(tr=500.0, te=10.0),
        "T1Gd": SpinEcho(tr=500.0, te=10.0),
        "T2": SpinEcho(tr=4000.0, te=100.0),
        "FLAIR": InversionRecovery(tr=9000.0, ti=2500.0, te=120.0),
    }
)

BRAIN_LABELS = MappingProxyType({"NCR": 1, "ED": 2, "ET": 4, "HEM": 5})
"""BraTS labels: 1 necrotic core / non-enhancing tumour, 2 peritumoral oedema, 4 enhancing tumour; 5 (not BraTS)
blood products, the bright-but-predictable mimic of ET (outside the tumour, so BraTS' WT/TC/ET are unchanged)."""

BRAIN_MIMIC = "haemorrhage"
"""The brain's mimic tissue: as bright as enhancing tumour on T1Gd, but equally bright on T1 (paramagnetic
methaemoglobin shortens T1 before contrast, and it does not enhance) and dark on T2 and FLAIR (its short T2), so
T1 predicts it on T1Gd where nothing predicts ET.

Its T1 shortening is written ``1/T1 = 1/T1_0 + r1 c`` like gadolinium's, with an equivalent concentration ``c``
(times a smooth spatial variation like ET's) solved per blob so that the blob's mean T1Gd signal, bias field
included, equals the subject's ET mean: in every subject raw intensity cannot tell them apart."""

GADOLINIUM_R1 = 4.0
"""T1 relaxivity r1 in 1/(mM s): ``1/T1post = 1/T1 + r1 C``."""

GADOLINIUM_CONCENTRATION_MM = (0.3, 0.8)
"""Range of the mean gadolinium concentration (mM) in enhancing tumour."""

# ---------------------------------------------------------------------------------------------- breast
BREAST_TISSUES = MappingProxyType(
    {
        "air": Tissue(t1=1000.0, t2=1.0, pd=0.0, adc=0.0),
        "skin": Tissue(t1=1000.0, t2=45.0, pd=0.70, adc=1.5e-3, perfusion_fraction=0.10),  # assumed
        "fat": Tissue(t1=370.0, t2=130.0, pd=0.90, adc=0.3e-3, perfusion_fraction=0.0, fat=True),  # pd/adc assumed
        "FGT": Tissue(t1=1400.0, t2=50.0, pd=0.80, adc=1.8e-3, perfusion_fraction=0.08),
        "muscle": Tissue(t1=1400.0, t2=40.0, pd=0.75, adc=1.5e-3, perfusion_fraction=0.10),
        "thorax": Tissue(t1=1300.0, t2=30.0, pd=0.12, adc=1.5e-3, perfusion_fraction=0.10),  # lung, assumed
        "cyst": Tissue(t1=3000.0, t2=1000.0, pd=1.00, adc=2.8e-3, perfusion_fraction=0.0),
        "lesion": Tissue(t1=1200.0, t2=80.0, pd=0.70, adc=1.0e-3, perfusion_fraction=0.12),  # pd: ~iso on T1
        # mimics, all assumed: a haematoma (T1 set per subject, see BREAST_MIMICS) and a cyst whose long T2
        # shines through on DWI without restricted diffusion
        "haematoma": Tissue(t1=400.0, t2=60.0, pd=0.90, adc=1.4e-3, perfusion_fraction=0.0),
        "shine_cyst": Tissue(t1=2500.0, t2=85.0, pd=0.95, adc=1.8e-3, perfusion_fraction=0.0),
    }
)
"""Breast tissues: T1/T2 (ms) from the spec, PD and perfusion fractions assumed, ADC (mm^2/s) from the spec."""

BREAST_SEQUENCES = MappingProxyType(
    {
        "T1": SpinEcho(tr=500.0, te=10.0),  # also the pre-contrast frame of DCE
        "T2": SpinEcho(tr=4000.0, te=90.0),  # assumed
        "DWI": SpinEcho(tr=5000.0, te=70.0),  # b=0 image, assumed
    }
)

BREAST_LABELS = MappingProxyType({"FGT": 1, "cyst": 2, "lesion": 3, "haematoma": 4, "shine_cyst": 5})
"""Breast segmentation labels (0 elsewhere): 4 and 5 are the mimics of the lesion (see ``BREAST_MIMICS``)."""

BREAST_MIMICS = MappingProxyType({"DCE": "haematoma", "DWI": "shine_cyst"})
"""Planted sequence -> its mimic tissue. The haematoma is as bright as the enhancing lesion on the DCE series
(mean over frames) but already bright before contrast and non-enhancing, so T1/FatSatT1 predict it (it is
matched on DCE, the planted sequence; on FatSatDCE, whose fat is dark, it is not). The shine-through cyst is
as bright as the restricted lesion on DWI (mean over b-values) through its long T2, with free diffusion, so T2
predicts it."""

FAT_SATURATION_FACTOR = 0.05
"""Fat saturation multiplies the fat signal by this factor."""

IVIM_DSTAR_FACTOR = 10.0
"""IVIM pseudo-diffusion D* = this factor x ADC."""

KINETIC_TYPES = ("persistent", "plateau", "washout")

BREAST_KINETICS = MappingProxyType(
    {
        "FGT": Kinetics(amplitude=0.15, uptake=1 / 300.0),  # background parenchymal enhancement
        "muscle": Kinetics(amplitude=0.30, uptake=1 / 120.0),
        "skin": Kinetics(amplitude=0.20, uptake=1 / 150.0),
        "thorax": Kinetics(amplitude=0.30, uptake=1 / 60.0),
    }
)
"""Enhancement of normal tissues; fat, air and cysts do not enhance."""

LESION_KINETIC_RANGES = MappingProxyType(
    {
        # type: ((A_min, A_max), (a_min, a_max) 1/s, (b_min, b_max) 1/s)
        "persistent": ((1.0, 2.0), (1 / 300.0, 1 / 200.0), (0.0, 0.0)),
        "plateau": ((1.0, 2.0), (1 / 30.0, 1 / 20.0), (0.0, 1 / 4000.0)),
        "washout": ((1.0, 2.0), (1 / 30.0, 1 / 20.0), (1 / 700.0, 1 / 400.0)),
    }
)
"""Lesion kinetic parameters drawn uniformly per subject; the ranges keep the curve type unambiguous at the
DCE frame times of the protocol: late change (S_last - S1)/S1 > +10 % (persistent), within +-10 % (plateau),
< -10 % (washout)."""

INTENSITY_SCALE = 1000.0
"""Nominal scanner intensity scale (signal of PD 1 with full recovery)."""

BIAS_GROUPS = MappingProxyType(
    {
        # sequences acquired with the same coil set-up in one session share one bias field
        "T1Gd": "T1",  # brain: pre- and post-contrast T1
        "DCE": "T1",  # breast: the DCE series and the non-fat-saturated T1
        "FatSatDCE": "FatSatT1",
    }
)
"""Sequence -> sequence whose bias field it shares (others get their own)."""
