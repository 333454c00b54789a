"""A training data loader whose position in the data is part of the training state (exact resume anywhere).

A pass over the training set is a permutation drawn from ``(seed, pass number)`` alone, and every sample of a pass
carries its own seed, to which the random transforms are set just before the sample is made. What a batch holds
therefore depends only on ``(seed, pass, position in the pass)``: not on the number of loader workers, not on the
RNG states of the processes, not on how many batches were read ahead. The loader counts the batches it has handed
out in the current pass; ``state_dict()`` is ``{"pass", "batches"}``, and after ``load_state_dict`` the next pass
starts at that batch of that permutation, so a resumed run sees the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.transforms import Compose, Randomizable
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["ResumableSampler", "ResumableDataLoader", "SeededSamples", "randomizable_transforms"]

logger = logging.getLogger(__name__)

_SEED_BOUND = 2**31 - 1


def randomizable_transforms(obj: Any) -> list[Randomizable]:
    """The ``Randomizable`` transforms of a ``Compose``, a dataset with a ``transform``, or a list of them."""
    if obj is None:
        return []
    if isinstance(obj, Compose):
        return [r for t in obj.transforms for r in randomizable_transforms(t)]
    if isinstance(obj, Randomizable):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, torch.Tensor)):
        return [r for t in obj for r in randomizable_transforms(t)]
    transform = getattr(obj, "transform", None)  # a dataset
    return randomizable_transforms(transform) if transform is not None else []


def _pass_seed(seed: int, pass_index: int) -> int:
    return int(np.random.SeedSequence([int(seed) % 2**32, int(pass_index)]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """Sampler of ``(index, sample seed)`` pairs: pass ``p`` is a permutation drawn from ``(seed, p)`` alone.

    Every ``iter()`` starts the next pass; :meth:`set_position` chooses the pass and how many of its samples to
    skip. Distributed (``distributed=True``): the pass is padded to a multiple of the world size by repeating its
    first samples (``even_divisible``) and rank ``r`` takes every ``world_size``-th sample from ``r``, as torch's
    ``DistributedSampler``; all ranks draw the same permutation and seeds.

    Args:
        data_source: the dataset (only its length is used).
        shuffle: permute each pass (``False``: index order; the sample seeds still change per pass).
        seed: seed of every pass's permutation and sample seeds.
        distributed: shard the passes over the ranks of the default process group.
        num_replicas, rank: the world size and this rank (default: from the process group when ``distributed``,
            else 1 and 0).
        even_divisible: pad each pass so that every rank gets the same number of samples.
    """

    def __init__(
        self,
        data_source: Sized,
        shuffle: bool = True,
        seed: int = 0,
        distributed: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        even_divisible: bool = True,
    ) -> None:
        if distributed and (num_replicas is None or rank is None):
            if not (dist.is_available() and dist.is_initialized()):
                raise ValueError("ResumableSampler(distributed=True) needs an initialised torch.distributed group.")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        self.num_replicas = 1 if num_replicas is None else int(num_replicas)
        self.rank = 0 if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} is not in [0, {self.num_replicas}).")
        self.size = len(data_source)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.even_divisible = even_divisible
        self.pass_index = 0
        self.skip = 0

    def __len__(self) -> int:
        if self.even_divisible:
            return -(-self.size // self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))

    def set_position(self, pass_index: int, skip: int = 0) -> None:
        """The next ``iter()`` yields pass ``pass_index`` from its sample ``skip`` (this rank's samples)."""
        self.pass_index = int(pass_index)
        self.skip = int(skip)

    def plan(self, pass_index: int) -> tuple[list[int], list[int]]:
        """This rank's ``(indices, sample seeds)`` of pass ``pass_index``."""
        generator = torch.Generator().manual_seed(_pass_seed(self.seed, pass_index))
        order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
        indices = order.tolist()
        if self.even_divisible and self.size % self.num_replicas:
            total = len(self) * self.num_replicas
            indices += (indices * (-(-total // self.size)))[: total - self.size]
        seeds = torch.randint(_SEED_BOUND, (len(indices),), generator=generator).tolist()
        return indices[self.rank :: self.num_replicas], seeds[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.plan(self.pass_index)
        skip, self.skip = self.skip, 0
        self.pass_index += 1
        return iter(list(zip(indices[skip:], seeds[skip:], strict=True)))


class SeededSamples(Dataset):
    """A map-style dataset read with ``(index, seed)`` items: the random transforms are set to ``seed`` (one seed
    per transform, derived from it) before ``dataset[index]`` is made.

    Args:
        dataset: a dataset whose ``transform`` holds the random transforms (MONAI ``Dataset``/``CacheDataset``).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.transforms = randomizable_transforms(dataset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        if self.transforms:
            states = np.random.SeedSequence(int(seed)).generate_state(len(self.transforms))
            for transform, state in zip(self.transforms, states, strict=True):
                transform.set_random_state(seed=int(state))
        return self.dataset[index]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` of a :class:`ResumableSampler` whose position (pass, batches handed out) is checkpointable.

    :class:`~.trainer.Seq2SeqTrainer` puts it in its checkpoints (``"data"``). Creating an iterator does not
    advance the global torch RNG (the loader's seed draw for its workers is made on a forked RNG), so the training
    draws do not depend on when passes start either.

    Args:
        dataset: the training dataset (its random transforms are seeded per sample, see :class:`SeededSamples`).
        batch_size: samples per batch.
        shuffle: permute each pass.
        seed: seed of the passes (the bundle's ``seed``).
        sampler: a :class:`ResumableSampler` of ``dataset`` (e.g. ``distributed=True``); default: one from
            ``shuffle`` and ``seed``.
        kwargs: other ``DataLoader`` arguments (``num_workers``, ``collate_fn``, ``drop_last``, ...).

    Raises:
        TypeError: ``sampler`` is not a :class:`ResumableSampler`.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        sampler: ResumableSampler | None = None,
        **kwargs: Any,
    ) -> None:
        if sampler is None:
            sampler = ResumableSampler(dataset, shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
        if not isinstance(sampler, ResumableSampler):
            raise TypeError(f"ResumableDataLoader needs a ResumableSampler, got {type(sampler).__name__}.")
        super().__init__(SeededSamples(dataset), batch_size=batch_size, sampler=sampler, **kwargs)
        self.pass_index = 0
        self.batches = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self.sampler.set_position(self.pass_index, self.batches * int(self.batch_size or 1))
        with torch.random.fork_rng(devices=[]):
            batches = super().__iter__()
        for batch in batches:
            self.batches += 1
            yield batch
        self.pass_index += 1
        self.batches = 0

    def state_dict(self) -> dict[str, int]:
        """``{"pass": the current pass, "batches": its batches handed out, "samples": the dataset's length}``."""
        return {"pass": self.pass_index, "batches": self.batches, "samples": len(self.dataset)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at ``state``'s position (a finished pass continues with the next one). A dataset of another
        length starts a new pass (with a warning): the position of another dataset means nothing here."""
        pass_index, batches = int(state["pass"]), int(state["batches"])
        if int(state.get("samples", len(self.dataset))) != len(self.dataset):
            logger.warning(
                "the training set has %d samples, the checkpoint's had %d: the data position restarts with pass %d.",
                len(self.dataset),
                int(state["samples"]),
                pass_index + 1,
            )
            pass_index, batches = pass_index + 1, 0
        if batches >= len(self):
            pass_index, batches = pass_index + 1, 0
        self.pass_index, self.batches = pass_index, batches
