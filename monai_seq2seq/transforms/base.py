"""The one per-key base of the dictionary transforms: an array transform applied to every key in place.

:class:`PerKeyd` runs the array transform on each present key (MONAI's ``key_iterator``: a missing key raises
``KeyError`` unless ``allow_missing_keys``); :class:`InvertiblePerKeyd` also inverts it key by key. A twin that
needs one array transform per key (per-key windows, per-key frame counts) overrides :meth:`PerKeyd.transform_for`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import InvertibleTransform, MapTransform, Transform

from .utils import key_label

__all__ = ["PerKeyd", "InvertiblePerKeyd"]


class PerKeyd(MapTransform):
    """Apply one array transform to every key of ``keys``, in place.

    Args:
        keys: keys of the entries to transform.
        transform: the array transform (its ``backend`` becomes this one's).
        allow_missing_keys: skip keys absent from the data instead of raising ``KeyError``.
        named: pass ``name="key (file)"`` to the array transform, which then names the entry in its errors.
    """

    backend: list = []

    def __init__(
        self, keys: KeysCollection, transform: Transform, allow_missing_keys: bool = False, named: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.named = bool(named)
        self.backend = transform.backend

    def transform_for(self, key: Hashable) -> Transform:
        """The array transform of ``key`` (the shared one; override for per-key transforms)."""
        return self.transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            transform = self.transform_for(key)
            d[key] = transform(d[key], name=key_label(key, d[key])) if self.named else transform(d[key])
        return d


class InvertiblePerKeyd(PerKeyd, InvertibleTransform):
    """:class:`PerKeyd` of an invertible array transform; ``inverse`` inverts every key with its transform."""

    def __init__(
        self,
        keys: KeysCollection,
        transform: InvertibleTransform,
        allow_missing_keys: bool = False,
        named: bool = False,
    ) -> None:
        super().__init__(keys, transform, allow_missing_keys, named)

    def inverse(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform_for(key).inverse(d[key])
        return d
