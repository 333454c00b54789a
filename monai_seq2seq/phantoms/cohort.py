"""Lazy phantom cohorts as ``torch.utils.data.Dataset``: subject ``i`` is generated from ``(seed, i)`` on access.

A cohort needs no disk and is a list-like of sample dicts (``len`` and integer indexing), so MONAI wraps it
directly: ``monai.data.Dataset(data=cohort, transform=...)`` or ``monai.data.CacheDataset(cohort, transform)``.

Each item is the sample dict of ``docs/CONTRACTS.md``: one ``MetaTensor`` per sequence, channel-first
(``(1, X, Y, Z)`` for 3D, ``(T, X, Y, Z)`` for 4D with ``meta["frame_axis"]``/``meta["frame_values"]``), plus
``"available"``, ``"subject"``, ``"label"`` (``(1, X, Y, Z)``) and ``"unique-<Sequence>"`` masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from monai.data import MetaTensor

from monai_seq2seq.core.protocols import BRAIN, BREAST, Protocol
from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
from monai_seq2seq.phantoms.breast import BreastPhantomConfig, generate_breast_subject
from monai_seq2seq.phantoms.realism import apply_realism, resolve_realism
from monai_seq2seq.phantoms.subject import PhantomSubject

__all__ = ["subject_to_sample", "PhantomCohort", "BrainPhantomCohort", "BreastPhantomCohort"]


def _meta_tensor(array: np.ndarray, affine: np.ndarray, name: str, sid: str, extra: dict | None = None) -> MetaTensor:
    meta = {"space": "RAS", "filename_or_obj": f"{sid}_{name}", "original_affine": np.asarray(affine).copy()}
    if extra:
        meta.update(extra)
    return MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)),
        affine=torch.as_tensor(affine, dtype=torch.float64),
        meta=meta,
    )


def subject_to_sample(subject: PhantomSubject, protocol: Protocol) -> dict:
    """The CONTRACTS.md sample dict of a generated subject.

    Args:
        subject: output of a ``generate_*_subject`` function.
        protocol: the protocol naming the sequences (``BRAIN`` or ``BREAST``).

    Returns:
        dict with one float32 ``MetaTensor`` per sequence (``(1, X, Y, Z)`` or ``(T, X, Y, Z)``), ``"label"`` and
        ``"unique-<Sequence>"`` (float32 ``(1, X, Y, Z)``), ``"available"`` (protocol order) and ``"subject"``.
    """
    sample: dict = {}
    available = []
    for spec in protocol.sequences:
        if spec.name not in subject.images:
            continue
        img = subject.images[spec.name]
        extra = None
        if spec.is_4d:
            values = subject.frame_values.get(spec.name, list(spec.frame_values))
            extra = {"frame_axis": spec.frame_axis, "frame_values": [float(v) for v in values]}
        else:
            img = img[None]
        sample[spec.name] = _meta_tensor(img, subject.affine, spec.name, subject.subject, extra)
        available.append(spec.name)
    sample["label"] = _meta_tensor(subject.label[None], subject.affine, "seg", subject.subject)
    for name, mask in subject.unique.items():
        sample[f"unique-{name}"] = _meta_tensor(mask[None], subject.affine, f"unique-{name}", subject.subject)
    sample["available"] = available
    sample["subject"] = subject.subject
    return sample


class PhantomCohort(torch.utils.data.Dataset):
    """Base class of the lazy cohorts: ``len(cohort)`` subjects, ``cohort[i]`` generated from ``(seed, i)``.

    Args:
        num_subjects: cohort size.
        seed: cohort seed; ``(seed, index)`` fixes a subject bit for bit.
        config: phantom settings of the cohort.
        realism: clinical acquisition effects (``None``: clean, the default): ``"clinical"``, effect names such as
            ``"bias,noise"`` or a :class:`~.realism.RealismConfig`; see :func:`~.realism.apply_realism`.
    """

    protocol: Protocol

    def __init__(self, num_subjects: int, seed: int, config, realism=None) -> None:
        if int(num_subjects) < 0:
            raise ValueError(f"num_subjects must be >= 0, got {num_subjects}.")
        self.num_subjects = int(num_subjects)
        self.seed = int(seed)
        self.config = config
        self.realism = resolve_realism(realism)

    def _realistic(self, subject: PhantomSubject, index: int) -> PhantomSubject:
        """The subject with the cohort's clinical effects (unchanged without them)."""
        if self.realism is None:
            return subject
        return apply_realism(subject, self.protocol, self.realism, seed=self.seed, index=index)

    def __len__(self) -> int:
        return self.num_subjects

    def _index(self, index) -> int:
        i = int(index)
        if i < 0:
            i += self.num_subjects
        if not 0 <= i < self.num_subjects:
            raise IndexError(f"subject index {index} out of range for a cohort of {self.num_subjects}.")
        return i

    def generate(self, index: int) -> PhantomSubject:
        """The raw generated subject (numpy arrays, ground truth and generation info)."""
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.num_subjects))]
        return subject_to_sample(self.generate(self._index(index)), self.protocol)

    def __iter__(self) -> Iterator[dict]:
        for i in range(self.num_subjects):
            yield self[i]

    def subject_ids(self) -> list[str]:
        raise NotImplementedError


class BrainPhantomCohort(PhantomCohort):
    """Lazy BraTS-like brain cohort (T1, T1Gd, T2, FLAIR; labels 1/2/4; ``unique-T1Gd``).

    Args:
        num_subjects: cohort size.
        seed: cohort seed.
        config: :class:`~.brain.BrainPhantomConfig`; keyword arguments override its fields
            (e.g. ``BrainPhantomCohort(4, spacing=2.0, snr=None)``).
        realism: clinical effects (``None``: clean), e.g. ``"clinical"`` or ``"bias,noise"``.

    Example::

        cohort = BrainPhantomCohort(20, seed=0, spacing=2.0)
        ds = monai.data.CacheDataset(cohort, transform=my_transforms)
    """

    protocol = BRAIN

    def __init__(
        self,
        num_subjects: int = 20,
        seed: int = 0,
        config: BrainPhantomConfig | None = None,
        realism=None,
        **overrides,
    ):
        super().__init__(num_subjects, seed, replace(config or BrainPhantomConfig(), **overrides), realism)

    def generate(self, index: int) -> PhantomSubject:
        i = self._index(index)
        return self._realistic(generate_brain_subject(self.seed, i, self.config), i)

    def subject_ids(self) -> list[str]:
        return [f"{self.config.id_prefix}{i:05d}" for i in range(self.num_subjects)]


class BreastPhantomCohort(PhantomCohort):
    """Lazy breast cohort (8 sequences, DCE/FatSatDCE 6 frames, DWI 4 b-values; ``unique-DCE``, ``unique-DWI``).

    Args:
        num_subjects: cohort size.
        seed: cohort seed.
        config: :class:`~.breast.BreastPhantomConfig`; keyword arguments override its fields
            (e.g. ``BreastPhantomCohort(4, shape=(80, 48, 32), spacing=4.0)``).
        realism: clinical effects (``None``: clean), e.g. ``"clinical"`` or ``"bias,noise"``.
    """

    protocol = BREAST

    def __init__(
        self,
        num_subjects: int = 20,
        seed: int = 0,
        config: BreastPhantomConfig | None = None,
        realism=None,
        **overrides,
    ):
        super().__init__(num_subjects, seed, replace(config or BreastPhantomConfig(), **overrides), realism)

    def generate(self, index: int) -> PhantomSubject:
        i = self._index(index)
        return self._realistic(generate_breast_subject(self.seed, i, self.config), i)

    def subject_ids(self) -> list[str]:
        return [f"{self.config.id_prefix}{i:05d}" for i in range(self.num_subjects)]
