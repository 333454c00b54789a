"""MR signal equations of the phantoms (spin echo, inversion recovery, gadolinium, DCE kinetics, IVIM).

All functions accept scalars or numpy arrays (broadcasting) and return float32/float64 arrays or floats;
times are in ms (relaxation) or s (DCE), b-values in s/mm^2 and diffusivities in mm^2/s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from monai_seq2seq.phantoms.tissues import GADOLINIUM_R1, IVIM_DSTAR_FACTOR, InversionRecovery, Kinetics, SpinEcho
from monai_seq2seq.transforms.dwi import ivim_signal

__all__ = [
    "spin_echo",
    "inversion_recovery",
    "sequence_signal",
    "gadolinium_t1",
    "enhancement",
    "ivim_attenuation",
    "partial_volume",
    "wash_in_out",
]


def spin_echo(pd, t1, t2, tr: float, te: float):
    """Spin-echo signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (ms)."""
    return pd * (1.0 - np.exp(-tr / np.asarray(t1, dtype=np.float64))) * np.exp(-te / np.asarray(t2, dtype=np.float64))


def inversion_recovery(pd, t1, t2, tr: float, ti: float, te: float):
    """Magnitude inversion-recovery signal ``PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)`` (ms)."""
    t1 = np.asarray(t1, dtype=np.float64)
    return pd * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / np.asarray(t2, dtype=np.float64))


def sequence_signal(pd, t1, t2, timing: SpinEcho | InversionRecovery):
    """Signal of a tissue (PD, T1 ms, T2 ms) for a sequence timing from :mod:`.tissues`."""
    if isinstance(timing, InversionRecovery):
        return inversion_recovery(pd, t1, t2, timing.tr, timing.ti, timing.te)
    if isinstance(timing, SpinEcho):
        return spin_echo(pd, t1, t2, timing.tr, timing.te)
    raise TypeError(f"unknown sequence timing {timing!r}.")


def gadolinium_t1(t1_ms, concentration_mm, r1: float = GADOLINIUM_R1):
    """Post-contrast T1 in ms: ``1/T1post = 1/T1 + r1 C`` with r1 in 1/(mM s) and C in mM."""
    rate = 1000.0 / np.asarray(t1_ms, dtype=np.float64) + r1 * np.asarray(concentration_mm, dtype=np.float64)
    return 1000.0 / rate


def enhancement(kinetics: Kinetics, times_s: Sequence[float]) -> np.ndarray:
    """Relative enhancement ``E(t) = A (1 - exp(-a t)) exp(-b t)`` at ``times_s``; ``S(t) = S0 (1 + E(t))``.

    Returns:
        float64 array of shape ``(len(times_s),)``; ``E(0) = 0`` exactly.
    """
    t = np.asarray(times_s, dtype=np.float64)
    return kinetics.amplitude * (1.0 - np.exp(-kinetics.uptake * t)) * np.exp(-kinetics.washout * t)


def ivim_attenuation(bvalues: Sequence[float], adc, perfusion_fraction, dstar_factor: float = IVIM_DSTAR_FACTOR):
    """IVIM signal fraction ``f exp(-b D*) + (1 - f) exp(-b ADC)`` with ``D* = dstar_factor ADC``.

    The model is :func:`monai_seq2seq.transforms.dwi.ivim_signal` (the one IVIM model of the code base) with
    ``S0 = 1`` and ``D = ADC``, evaluated in float64.

    Args:
        bvalues: b-values in s/mm^2, shape ``(B,)``.
        adc: ADC in mm^2/s, scalar or array of shape ``S``.
        perfusion_fraction: f, scalar or array broadcastable with ``adc``.
        dstar_factor: pseudo-diffusion D* as a multiple of the ADC.

    Returns:
        float64 numpy array of shape ``(B, *S)``.
    """
    adc = np.asarray(adc, dtype=np.float64)
    f = np.asarray(perfusion_fraction, dtype=np.float64)
    return ivim_signal(np.float64(1.0), adc, f, dstar_factor * adc, bvalues).numpy()


def partial_volume(fractions: Mapping[str, np.ndarray], signals: Mapping[str, float | np.ndarray]) -> np.ndarray:
    """Partial-volume signal ``sum_k fraction_k * signal_k`` over the tissues in ``fractions``.

    Args:
        fractions: tissue name -> fraction map, all of shape ``S`` (they sum to at most 1).
        signals: tissue name -> signal (scalar or array of shape ``S``); a tissue missing here gives 0.

    Returns:
        float32 array of shape ``S``.
    """
    out = None
    for name, frac in fractions.items():
        sig = signals.get(name, 0.0)
        if np.ndim(sig) == 0 and float(sig) == 0.0:
            continue
        term = frac * np.asarray(sig, dtype=np.float32)
        out = term.astype(np.float32, copy=False) if out is None else out + term
    if out is None:
        shape = np.shape(next(iter(fractions.values())))
        return np.zeros(shape, dtype=np.float32)
    return out.astype(np.float32, copy=False)


def wash_in_out(series, eps: float = 1e-6, min_signal_fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Wash-in and wash-out of a DCE series: :func:`monai_seq2seq.transforms.dce.wash_in_out`, the one formula.

    ``wash-in = (S1 - S0) / max(S0, eps)``, ``wash-out = (S_last - S1) / max(S1, eps)``, each 0 where its
    denominator is below ``min_signal_fraction`` x that frame's 99th percentile.

    Args:
        series: frames first, ``(T, *S)`` with ``T >= 2`` (frame 0 pre-contrast, frame 1 first post-contrast).
        eps: floor of the denominators.
        min_signal_fraction: dark-voxel threshold; ``None``: the transform's default.

    Returns:
        ``(wash_in, wash_out)``, each float32 numpy of shape ``S``.
    """
    from monai_seq2seq.transforms.dce import DEFAULT_MIN_SIGNAL_FRACTION
    from monai_seq2seq.transforms.dce import wash_in_out as _wash_in_out

    fraction = DEFAULT_MIN_SIGNAL_FRACTION if min_signal_fraction is None else min_signal_fraction
    return _wash_in_out(np.asarray(series, dtype=np.float32), eps=eps, min_signal_fraction=fraction)
