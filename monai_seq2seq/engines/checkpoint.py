"""Training checkpoint files: atomic writes, reading with one-line errors, the newest complete one, early checks.

A checkpoint is one ``torch.save`` dict (loadable with ``weights_only=True``): a state dict per object of
:meth:`~.trainer.Seq2SeqTrainer.checkpoint_objects` (``generator``, ``discriminator``, ``g_optimizer``,
``d_optimizer``, ``trainer``, ``rng`` and, when they exist, ``ema``, the AMP scalers, ``data``: the position in
the training data, and the extra state of validation, e.g. ``best_model``) and ``run``: what the run was
configured with (protocol, network size and variant...), so that a resume with other settings is refused before
anything is set up.

Files in a checkpoint folder: ``checkpoint_iteration=<N>.pt`` (every ``save_interval`` iterations) and
``checkpoint_final.pt`` (end of a run). Each is written to a hidden temporary file in the same folder, fsynced
and renamed, so a file with a checkpoint's name is always complete; a kill leaves at most a hidden
``.checkpoint_*`` temporary file, which the next run's saver removes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_seq2seq.core.errors import UnreadableFileError
from monai_seq2seq.core.files import atomic_write

__all__ = [
    "CheckpointError",
    "UnreadableCheckpointError",
    "REQUIRED_KEYS",
    "WRITE_DELAY_ENV",
    "save_checkpoint",
    "read_checkpoint",
    "checkpoint_iteration",
    "checkpoint_files",
    "find_latest_checkpoint",
    "check_checkpoint",
    "resolve_resume",
    "prune_checkpoints",
    "remove_partial_writes",
]

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("generator", "discriminator", "g_optimizer", "d_optimizer", "trainer", "rng")
"""What every training checkpoint holds (networks, optimizers, iteration, RNG states)."""

WRITE_DELAY_ENV = "SEQ2SEQ_CHECKPOINT_WRITE_DELAY"
"""Test hook: seconds to sleep after a checkpoint is written to its temporary file and before it is renamed (the
kill test uses it to kill a run inside the write window)."""

_INTERVAL = re.compile(r"^checkpoint_iteration=(\d+)\.pt$")
_LATEST = ("latest", "auto")


class CheckpointError(ValueError):
    """A training checkpoint cannot be resumed from: it lacks a state, or was made with other settings."""


class UnreadableCheckpointError(CheckpointError, UnreadableFileError):
    """A checkpoint file is missing, empty, truncated or not a PyTorch checkpoint; the message names the file."""


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a temporary file in the same folder, fsynced, renamed.

    Until the rename, a file already at ``path`` is untouched; a kill at any moment leaves either the old or the
    new complete file (and perhaps a hidden temporary one, see :func:`remove_partial_writes`).
    """

    def write(tmp: Path) -> None:
        torch.save(dict(state), tmp)
        delay = float(os.environ.get(WRITE_DELAY_ENV, "0") or 0)
        if delay > 0:
            time.sleep(delay)

    return atomic_write(path, write)


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """``torch.load(path, weights_only=True)`` of a training checkpoint, with errors that name the file.

    Args:
        path: the checkpoint file.
        map_location: as in ``torch.load``.
        mmap: map the tensors instead of reading them (a cheap check of a large file: a truncated file has no zip
            directory and fails at once).

    Raises:
        UnreadableCheckpointError: the file is missing, empty, truncated, not a PyTorch file, or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpointError(f"checkpoint {path} does not exist.")
    size = path.stat().st_size
    if size == 0:
        raise UnreadableCheckpointError(f"checkpoint {path} is empty (0 bytes): it was cut off while written.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 (torch raises RuntimeError, EOFError, UnpicklingError, ValueError...)
        reason = " ".join(str(err).split()).split(". ")[0].rstrip(".")[:200] or type(err).__name__
        raise UnreadableCheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a PyTorch checkpoint: {reason}."
        ) from None
    if not isinstance(state, dict):
        raise UnreadableCheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict.")
    return state


def checkpoint_iteration(state: Mapping[str, Any]) -> int:
    """The trainer iteration a checkpoint was saved at (``-1`` when it has no trainer state)."""
    trainer = state.get("trainer")
    if not isinstance(trainer, Mapping) or "iteration" not in trainer:
        return -1
    return int(trainer["iteration"])


def checkpoint_files(folder: str | Path) -> list[Path]:
    """``checkpoint_iteration=<N>.pt`` and ``checkpoint_final.pt`` files of ``folder`` (no temporary files)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and (_INTERVAL.match(p.name) or p.name == "checkpoint_final.pt")
    )


def _missing_keys(state: Mapping[str, Any], ema: bool = False) -> list[str]:
    wanted = [*REQUIRED_KEYS, "ema"] if ema else list(REQUIRED_KEYS)
    return [k for k in wanted if k not in state]


def find_latest_checkpoint(folder: str | Path) -> Path | None:
    """The complete checkpoint of ``folder`` with the highest iteration, ``None`` when there is none.

    Complete: it loads (tensors mapped, not read) and holds every :data:`REQUIRED_KEYS` state. Every other
    checkpoint file is skipped with a warning that names it and why.
    """
    best: tuple[int, int, Path] | None = None
    for path in checkpoint_files(folder):
        try:
            state = read_checkpoint(path, mmap=True)
        except UnreadableCheckpointError as err:
            logger.warning("resume: skipping %s", err)
            continue
        missing = _missing_keys(state)
        if missing:
            logger.warning("resume: skipping checkpoint %s: it has no %s state.", path, "/".join(missing))
            continue
        rank = (checkpoint_iteration(state), path.name != "checkpoint_final.pt", path)  # a tie: the interval file
        if best is None or rank[:2] > best[:2]:
            best = rank
    return None if best is None else best[2]


def _setting_differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return [
        f"{key} {saved[key]!r}, the config asks {value!r}"
        for key, value in wanted.items()
        if key in saved and value is not None and saved[key] != value
    ]


def check_checkpoint(
    path: str | Path,
    run_info: Mapping[str, Any] | None = None,
    ema: bool = False,
    num_iterations: int | None = None,
) -> int:
    """Check that a run can resume from ``path``, reading only the file's index (tensors are mapped).

    Args:
        path: the checkpoint file.
        run_info: the settings this run is configured with (``protocol``, ``network_size``, ...); each one the
            checkpoint recorded must be equal.
        ema: the run keeps an EMA of the generator, so the checkpoint must hold its state.
        num_iterations: the iterations this run ends at; the checkpoint must not be past them.

    Returns:
        The checkpoint's iteration.

    Raises:
        UnreadableCheckpointError: missing, empty, truncated or not a PyTorch file.
        CheckpointError: a state is missing (e.g. a generator-only ``model.pt``), the settings differ, or the
            checkpoint is past ``num_iterations``.
    """
    state = read_checkpoint(path, mmap=True)
    missing = _missing_keys(state, ema)
    if missing == ["ema"]:
        raise CheckpointError(
            f"checkpoint {path} has no ema state: it was saved without --ema_decay; resume without --ema_decay or "
            "start a new run."
        )
    if missing:
        hint = (
            "it holds generator weights only: use --init_weights to start a new run from them"
            if not any(k in state for k in REQUIRED_KEYS)
            else "it is not a complete training checkpoint"
        )
        raise CheckpointError(f"checkpoint {path} has no {'/'.join(missing)} state: {hint}.")
    differences = _setting_differences(state.get("run") or {}, run_info or {})
    if differences:
        raise CheckpointError(
            f"checkpoint {path} holds {'; '.join(differences)}: resume with the checkpoint's settings or start a "
            "new run (without --resume_from)."
        )
    iteration = checkpoint_iteration(state)
    if num_iterations is not None and iteration > num_iterations:
        raise CheckpointError(
            f"checkpoint {path} is at iteration {iteration}, past this run's {num_iterations} iterations: raise "
            "--num_iterations to continue it."
        )
    return iteration


def resolve_resume(
    resume_from: str | Path | None,
    checkpoint_dir: str | Path,
    run_info: Mapping[str, Any] | None = None,
    ema: bool = False,
    num_iterations: int | float | None = None,
    init_weights: str | None = None,
) -> str | None:
    """The checkpoint a training run resumes from, checked before anything is set up (a config's ``initialize``).

    Args:
        resume_from: a checkpoint file; ``"latest"``: the newest complete checkpoint of ``checkpoint_dir`` (an error
            when there is none); ``"auto"``: the same, or a new run when ``checkpoint_dir`` holds no checkpoint
            file at all (a job script resubmitted after a pre-emption); ``None``: a new run.
        checkpoint_dir: the run's checkpoint folder (``models/``).
        run_info, ema, num_iterations: see :func:`check_checkpoint`.
        init_weights: the ``--init_weights`` of the run; it excludes ``resume_from``.

    Returns:
        The checkpoint path, or ``None`` for a new run.

    Raises:
        ValueError: both ``resume_from`` and ``init_weights`` are given.
        CheckpointError: ``"latest"`` finds no complete checkpoint, or the checkpoint cannot be resumed from
            (see :func:`check_checkpoint`).
    """
    if resume_from in (None, "", False):
        return None
    if init_weights:
        raise ValueError(
            "give either resume_from (continue a run, every state restored) or init_weights (start a "
            "new run from generator weights), not both."
        )
    if str(resume_from).lower() in _LATEST:
        path = find_latest_checkpoint(checkpoint_dir)
        if path is None:
            found = len(checkpoint_files(checkpoint_dir))
            if str(resume_from).lower() == "auto" and not found:
                logger.info("resume_from auto: no checkpoint in %s, starting a new run.", checkpoint_dir)
                return None
            what = f"{found} checkpoint files, none complete (see the warnings above)" if found else "no checkpoint"
            raise CheckpointError(
                f"--resume_from {resume_from}: {checkpoint_dir} holds {what}: give a checkpoint file, or start a new "
                "run (without --resume_from, or with --resume_from auto)."
            )
        logger.info("resume_from %s: %s", resume_from, path)
    else:
        path = Path(resume_from)
    total = None if num_iterations is None or not math.isfinite(num_iterations) else int(num_iterations)
    iteration = check_checkpoint(path, run_info, ema=ema, num_iterations=total)
    logger.info("resuming from %s (iteration %d).", path, iteration)
    return str(path)


def prune_checkpoints(folder: str | Path, iteration: int, n_saved: int | None) -> list[Path]:
    """Remove the interval checkpoints a run no longer keeps, after it wrote the one of ``iteration``.

    Kept: the ``n_saved`` highest ``checkpoint_iteration=<N>.pt`` with ``N <= iteration`` (all with ``None``).
    Removed: the older ones, also those a killed run left, and any with ``N > iteration`` (from a run this one
    does not continue). ``checkpoint_final.pt`` is only ever replaced by the next final one.

    Returns:
        The removed files.
    """
    numbered = []
    for path in checkpoint_files(folder):
        match = _INTERVAL.match(path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    older = sorted((n, p) for n, p in numbered if n <= iteration)
    keep = {p for _, p in (older if n_saved is None else older[len(older) - max(int(n_saved), 1) :])}
    removed = []
    for _, path in numbered:
        if path not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
            logger.info("removed checkpoint %s (n_saved=%s).", path, n_saved)
    return removed


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Remove the hidden temporary files (``.checkpoint_*``, ``.model*``) a killed run left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if path.is_file() and path.name.startswith((".checkpoint_", ".model")) and path.name.endswith(".pt"):
            path.unlink(missing_ok=True)
            removed.append(path)
            logger.info("removed %s: a checkpoint write a killed run did not finish.", path)
    return removed
