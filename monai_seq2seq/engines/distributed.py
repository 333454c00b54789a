"""Subjects sharded over torchrun ranks: the split, per-subject records, the failure path and the final gather.

A cohort run under ``torchrun --nproc_per_node=N`` (``multi_gpu_inference.json``, ``multi_gpu_evaluate.json``,
``multi_gpu_differentiation.json``) gives each rank a disjoint share of the subjects (:class:`SubjectShard`, the
split of MONAI's ``DistributedSampler`` with ``even_divisible=False``: no subject twice, none left out). Each rank
writes its subjects' files and, after them, one record per subject (:class:`SubjectRecords`,
``<output_dir>/subject_records/<subject>.json``): the subject is done when its record exists, and the record holds
what the cohort outputs need from it, so a rerun with ``skip_existing`` redoes only the subjects without one and
still reaches the whole cohort. At the end the records are gathered on rank 0
(``torch.distributed.all_gather_object``), checked (every subject once) and put back in the data's order
(:meth:`ShardedRun.finish`).

Faults: a subject that fails stops its rank with an error naming the subject and the rank
(:class:`SubjectFailedError`); the rank leaves the process group, so peers waiting in a collective fail at once
instead of waiting, and torchrun stops the other ranks. Every collective also has a timeout
(:func:`init_distributed`), so a rank that hangs cannot block the others for ever.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

__all__ = [
    "SubjectFailedError",
    "init_distributed",
    "destroy_distributed",
    "local_device",
    "rank_and_world",
    "shard_indices",
    "dataset_subject_ids",
    "SubjectRecords",
    "SubjectShard",
    "merge_records",
    "ShardedRun",
]

logger = logging.getLogger(__name__)

RECORDS_FOLDER = "subject_records"


class SubjectFailedError(RuntimeError):
    """A subject failed on one rank of a sharded run; the message names the subject, the rank and the way on."""


def init_distributed(backend: str | None = None, timeout_s: float = 3600.0) -> bool:
    """Join the torchrun process group (``nccl`` on CUDA, ``gloo`` on CPUs) with a timeout on every collective.

    Without torchrun's environment (no ``WORLD_SIZE``) nothing is done: the run is one process with every subject.

    Args:
        backend: ``None`` chooses ``nccl`` when CUDA is available, else ``gloo``.
        timeout_s: the longest any collective waits (the final gather waits for the slowest rank: allow for the
            difference in finish time between ranks).

    Returns:
        Whether a process group is initialised.
    """
    if dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_device())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=float(timeout_s)))
    return True


def destroy_distributed() -> None:
    """Leave the process group (if any): the end of a run, or its failure path (peers then fail at once)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when CUDA is available (rank 0's GPU without torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks (``(0, 1)`` outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(items: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The share of ``items`` of ``rank``: every ``world_size``-th item from the ``rank``-th, the split of MONAI's
    ``DistributedSampler(shuffle=False, even_divisible=False)`` (every item on exactly one rank, ranks differ by
    at most one item), which also holds when there are fewer items than ranks (a rerun that has little left;
    MONAI's sampler refuses that).

    Raises:
        ValueError: ``rank`` is not in ``[0, world_size)``.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size}): check torchrun's RANK and WORLD_SIZE.")
    return list(items)[rank::world_size]


def dataset_subject_ids(dataset) -> list[str]:
    """The subject id of every item of ``dataset`` (or of its ``.data``) without loading it: a phantom cohort's
    ``subject_ids()``, a datalist entry's ``"subject"``, else ``subject_<n>`` (n from 1, as the evaluators name a
    subject without an id).

    Raises:
        ValueError: two items have the same id (records are kept per subject id).
    """
    data = getattr(dataset, "data", dataset)
    if hasattr(data, "subject_ids"):
        ids = [str(s) for s in data.subject_ids()]
    else:
        ids = [
            str(item["subject"]) if isinstance(item, dict) and item.get("subject") else f"subject_{n + 1}"
            for n, item in enumerate(data)
        ]
    seen: set[str] = set()
    twice = sorted({s for s in ids if s in seen or seen.add(s)})
    if twice:
        raise ValueError(f"subject ids {twice} occur more than once in the data: give every subject its own id.")
    return ids


class SubjectRecords:
    """One JSON record per finished subject in ``folder`` (``<subject>.json``, written atomically, last).

    Args:
        folder: the records folder (``<output_dir>/subject_records`` in the bundles).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, subject: str) -> Path:
        """The record file of ``subject``.

        Raises:
            ValueError: the id holds a path separator (it would name a file elsewhere).
        """
        if "/" in subject or "\\" in subject or subject in ("", ".", ".."):
            raise ValueError(f"subject id {subject!r} cannot name a record file in {self.folder}: rename it.")
        return self.folder / f"{subject}.json"

    def write(self, subject: str, record: dict[str, Any]) -> Path:
        """Store ``record`` (JSON-ready, ``"subject"`` added) for ``subject``."""
        ensure_writable_dir(self.folder)
        return atomic_write_text(self.path(subject), json.dumps({**record, "subject": subject}, indent=1))

    def read(self, subject: str) -> dict[str, Any]:
        """The record of ``subject``.

        Raises:
            FileNotFoundError: ``subject`` has no record (the message names the file and the fix).
        """
        path = self.path(subject)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: subject {subject!r} is not done; rerun without it.")
        return json.loads(path.read_text())

    def done(self) -> set[str]:
        """Subjects with a readable record (a record that does not parse counts as not done)."""
        if not self.folder.is_dir():
            return set()
        done = set()
        for path in self.folder.glob("*.json"):
            try:
                done.add(str(json.loads(path.read_text())["subject"]))
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning(f"{path} is not a readable subject record: its subject is done again.")
        return done


class SubjectShard(Dataset):
    """This rank's subjects of ``dataset``: those without a record when ``skip_existing``, split over the ranks.

    Items keep the data's ``"subject"`` (set from :func:`dataset_subject_ids` when an item has none); an item
    that fails to load or preprocess raises :class:`SubjectFailedError` naming the subject and the rank.

    Args:
        dataset: the full dataset (e.g. the bundle's ``@dataset``).
        records: where finished subjects are recorded.
        skip_existing: leave out subjects that have a record (a rerun after a failure or an interruption).
        rank / world_size: ``None``: from the process group (``0``/``1`` without one).

    Attributes:
        subject_ids: every subject of the data, in order.
        skipped: data indices of the subjects left out as done (on every rank).
        indices: data indices of this rank's subjects.
    """

    def __init__(
        self,
        dataset,
        records: SubjectRecords,
        skip_existing: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.records = records
        own_rank, own_world = rank_and_world()
        self.rank = own_rank if rank is None else int(rank)
        self.world_size = own_world if world_size is None else int(world_size)
        self.subject_ids = dataset_subject_ids(dataset)
        done = records.done() if skip_existing else set()
        self.skipped = [i for i, s in enumerate(self.subject_ids) if s in done]
        remaining = [i for i, s in enumerate(self.subject_ids) if s not in done]
        self.indices = shard_indices(remaining, self.rank, self.world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        subject = self.subject_ids[index]
        try:
            item = self.dataset[index]
        except Exception as err:
            raise SubjectFailedError(
                f"rank {self.rank}: subject {subject!r} (item {index} of the data) failed to load or preprocess: "
                f"{err}. Fix or remove it, then rerun with --skip_existing True to do only what is missing."
            ) from err
        if isinstance(item, dict) and not item.get("subject"):
            item["subject"] = subject
        return item


def merge_records(
    parts: Sequence[Sequence[tuple[str, dict[str, Any]]]],
    subject_ids: Sequence[str],
    done_before: dict[str, dict[str, Any]] | None = None,
    folder: str | Path = RECORDS_FOLDER,
) -> list[dict[str, Any]]:
    """Every subject's record in the data's order, from the ranks' ``(subject, record)`` lists and the records of
    subjects done before (skipped).

    Raises:
        SubjectFailedError: a subject was done twice (by two ranks, or again after a skip) or not at all; both
            named, with the records folder.
    """
    done_before = dict(done_before or {})
    found = [s for part in parts for s, _ in part] + list(done_before)
    twice = sorted(s for s, n in Counter(found).items() if n > 1)
    done = {**done_before, **{s: r for part in parts for s, r in part}}
    missing = [s for s in subject_ids if s not in done]
    unknown = sorted(set(done) - set(subject_ids))
    if twice or missing or unknown:
        raise SubjectFailedError(
            f"sharded run over {len(subject_ids)} subjects: done twice {twice}, not done {missing}, not in the data "
            f"{unknown} (records in {folder}); rerun with --skip_existing True."
        )
    return [done[s] for s in subject_ids]


def _subject_of(output) -> str:
    return str(output["subject"] if isinstance(output, dict) else output.subject)


class ShardedRun:
    """The handlers of a sharded run and its end: per-subject records after each subject's files, the subject
    named on failure, the records gathered and checked on rank 0.

    Subclasses (``monai_seq2seq.analysis.sharding.ShardedCohort``) add what a record holds (:meth:`record`) and the
    cohort outputs written from all records (:meth:`write_cohort`).

    Args:
        shard: this rank's :class:`SubjectShard` (the data loader's dataset).
        handlers: the config's handlers (writers, progress bar).
    """

    def __init__(self, shard: SubjectShard, handlers: Sequence = ()) -> None:
        self.shard = shard
        self.records = shard.records
        self.handlers = list(handlers)
        self.current: list[str] = []
        self.recorded: dict[str, dict[str, Any]] = {}
        self.cohort: list[dict[str, Any]] = []

    def per_subject_handlers(self) -> list:
        """The handlers every rank attaches: the config's (see :meth:`subject_handler`), then this run's own."""
        wrapped = [self.subject_handler(h) for h in self.handlers]
        return [h for h in wrapped if h is not None] + [self]

    def subject_handler(self, handler):
        """The per-subject part of ``handler`` (``None``: it has none); here the handler as it is."""
        return handler

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._completed)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._failed)

    def record(self, output) -> dict[str, Any]:
        """What the record of one evaluator output holds: here the synthetic sequences of a subject dict."""
        return {"synthetic": sorted(output.get("synthetic", {})) if isinstance(output, dict) else []}

    def _started(self, engine) -> None:
        batch = engine.state.batch if isinstance(engine.state.batch, list) else []
        self.current = [str(s.get("subject", "?")) for s in batch if isinstance(s, dict)]

    def _completed(self, engine) -> None:
        for output in engine.state.output:
            subject = _subject_of(output)
            record = {"subject": subject, "rank": self.shard.rank, **self.record(output)}
            self.records.write(subject, record)
            self.recorded[subject] = json.loads(json.dumps(record))  # as it reads back after a skip
        self.current = []

    def _failed(self, engine, error: BaseException) -> None:
        destroy_distributed()  # peers waiting in a collective fail now, not at the timeout
        if isinstance(error, SubjectFailedError):
            raise error
        if not self.current:  # before the first subject (e.g. the weights) or after the last
            raise SubjectFailedError(
                f"rank {self.shard.rank} failed outside any subject: {type(error).__name__}: {error}"
            ) from error
        raise SubjectFailedError(
            f"rank {self.shard.rank}: subject(s) {self.current} failed: {type(error).__name__}: {error}. "
            "Fix or remove it, then rerun with --skip_existing True to do only what is missing."
        ) from error

    def gather(self) -> list[dict[str, Any]] | None:
        """The records of every subject in the data's order on rank 0 (``None`` on the other ranks).

        Raises:
            SubjectFailedError: a subject was done twice or not at all (named, with the records folder).
        """
        mine = list(self.recorded.items())
        if self.shard.world_size > 1:
            parts: list = [None] * self.shard.world_size
            dist.all_gather_object(parts, mine)
        else:
            parts = [mine]
        if self.shard.rank != 0:
            return None
        ids = self.shard.subject_ids
        done_before = {ids[i]: self.records.read(ids[i]) for i in self.shard.skipped}
        return merge_records(parts, ids, done_before, self.records.folder)

    def finish(self, engine=None) -> list[dict[str, Any]] | None:
        """Gather the records (every rank must call it) and, on rank 0, write the cohort outputs.

        Returns:
            Rank 0: every subject's record in the data's order; other ranks: ``None``.
        """
        records = self.gather()
        if records is not None:
            skipped = len(self.shard.skipped)
            logger.info(f"{len(records)} subjects done ({skipped} done before) on {self.shard.world_size} rank(s).")
            self.cohort = records
            self.write_cohort(engine, records)
        return records

    def write_cohort(self, engine, records: list[dict[str, Any]]) -> None:
        """Rank 0 only, after the gather: cohort outputs from every record (none for synthesis)."""
