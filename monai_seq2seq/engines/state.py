"""Checkpoint handlers of a training run: RNG state as a checkpointable object, atomic savers of the training
state, of the generator and of the best generator, the loader that resumes a run, and the start handlers.

Savers and loaders take their objects from the trainer when attached (so a config lists them among the trainer's
own handlers); every file is written atomically (see :mod:`.checkpoint`).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Events

from .checkpoint import (
    CheckpointError,
    checkpoint_iteration,
    prune_checkpoints,
    read_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from .loader import randomizable_transforms

__all__ = [
    "RNGState",
    "TrainingCheckpointSaver",
    "TrainingCheckpointLoader",
    "GeneratorSaver",
    "BestGeneratorSaver",
    "start_handlers",
]

logger = logging.getLogger(__name__)

OPTIONAL_KEYS = ("data", "best_model")
"""States a checkpoint of an older version may lack: the resume is then exact only at the start of a pass."""


class RNGState:
    """The RNG states of python, numpy, torch (CPU and CUDA) and of MONAI random transforms, as a checkpointable
    object (``state_dict``/``load_state_dict``): put it in a checkpoint for exact resume.

    Args:
        transforms: a ``Compose``, a dataset with a ``transform``, or a list of them: their ``Randomizable``
            members' ``R`` states are saved too (their states live outside the global RNGs when the data loader
            has no workers).
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = randomizable_transforms(transforms)

    def state_dict(self) -> dict:
        state = {
            "python": random.getstate(),
            "numpy": _np_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "transforms": [_np_state(t.R.get_state()) for t in self.transforms],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        random.setstate(_as_python_state(state["python"]))
        np.random.set_state(_np_unstate(state["numpy"]))
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in state["cuda"]])
        for t, s in zip(self.transforms, state.get("transforms", []), strict=False):
            t.R.set_state(_np_unstate(s))


def _np_state(state) -> dict:
    """numpy RNG state as tensors and plain numbers (loadable with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, gauss = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _np_unstate(state: dict):
    keys = torch.as_tensor(state["keys"]).numpy().astype(np.uint32)
    return state["name"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["gauss"])


def _as_python_state(state):
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


def _objects(engine) -> dict:
    getter = getattr(engine, "checkpoint_objects", None)
    if getter is None:
        raise TypeError("the engine has no checkpoint_objects(); attach this handler to a Seq2SeqTrainer.")
    return getter()


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return (
        module.module
        if isinstance(module, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel))
        else module
    )


class TrainingCheckpointSaver:
    """Save everything for an exact resume (networks, optimizers, scalers, EMA, trainer state, data position, RNG
    states) as ``<save_dir>/checkpoint_iteration=<iteration>.pt`` every ``save_interval`` iterations and
    ``<save_dir>/<final_filename>`` at the end. Attach on rank 0 only, after the ``ValidationHandler``.

    Every file is written atomically (temporary file, fsync, rename); an older checkpoint is removed only after
    the newer one is complete, and ``n_saved`` counts the files of earlier (killed) runs in ``save_dir`` too (see
    :func:`~.checkpoint.prune_checkpoints`). A checkpoint due at the last iteration of an epoch is saved when the
    epoch completes, after its validation, so that a run resumed from it does not skip or repeat a validation.
    Nothing is saved when the run fails (the state in the middle of an iteration could not be resumed exactly).

    Args:
        save_dir: the checkpoint folder.
        save_interval: iterations between checkpoints (``0``: none).
        n_saved: interval checkpoints kept (``None``: all).
        final_filename: the file saved when the run completes.
        save_final: save it.
        run_info: the run's settings stored as the checkpoint's ``"run"`` (``protocol``, ``network_size``...), which
            a resume checks against its own before anything is set up.
    """

    def __init__(
        self,
        save_dir: str,
        save_interval: int = 0,
        n_saved: int | None = 1,
        final_filename: str = "checkpoint_final.pt",
        save_final: bool = True,
        run_info: Mapping[str, Any] | None = None,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.save_interval = int(save_interval)
        self.n_saved = n_saved
        self.final_filename = final_filename
        self.save_final = save_final
        self.run_info = dict(run_info or {})

    def attach(self, engine) -> None:
        _objects(engine)  # fail at attach time on an engine without checkpoint objects
        engine.add_event_handler(Events.STARTED, lambda e: remove_partial_writes(self.save_dir))
        if self.save_interval > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        if self.save_final:
            engine.add_event_handler(Events.COMPLETED, self._completed)

    def _due(self, engine) -> bool:
        return engine.state.iteration % self.save_interval == 0

    def _iteration_completed(self, engine) -> None:
        epoch_end = engine.state.epoch_length and engine.state.iteration % engine.state.epoch_length == 0
        if self._due(engine) and not epoch_end:
            self.save(engine)

    def _epoch_completed(self, engine) -> None:
        if self._due(engine):
            self.save(engine)

    def _completed(self, engine) -> None:
        path = self.save(engine, self.final_filename)
        logger.info("training completed, saved the final checkpoint %s.", path)

    def state(self, engine) -> dict:
        """The checkpoint dict of ``engine`` now."""
        state = {k: obj.state_dict() for k, obj in _objects(engine).items()}
        state["run"] = dict(self.run_info)
        return state

    def save(self, engine, filename: str | None = None) -> Path:
        """Write the checkpoint (``filename``, default: the interval name) and prune the older interval ones."""
        iteration = engine.state.iteration
        path = save_checkpoint(self.save_dir / (filename or f"checkpoint_iteration={iteration}.pt"), self.state(engine))
        if filename is None:
            logger.info("saved checkpoint %s.", path)
            prune_checkpoints(self.save_dir, iteration, self.n_saved)
        return path


class GeneratorSaver:
    """Save the generator's state dict (the EMA weights when EMA is on) as ``<save_dir>/<filename>`` at the end
    of training (atomically), the ``models/model.pt`` that the inference configs load. Attach on rank 0 only.

    Args:
        save_dir: the folder.
        filename: the file written when the run completes.
        save_interval: also write ``<stem>_iteration=<iteration><suffix>`` every this many iterations (only the
            newest kept; ``0``: never).
    """

    def __init__(self, save_dir: str, filename: str = "model.pt", save_interval: int = 0) -> None:
        self.save_dir = Path(save_dir)
        self.filename = filename
        self.save_interval = int(save_interval)
        self._last: Path | None = None

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self._completed)
        if self.save_interval > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self._interval)

    def _completed(self, engine) -> None:
        save_checkpoint(self.save_dir / self.filename, engine.inference_network().state_dict())

    def _interval(self, engine) -> None:
        name = Path(self.filename)
        path = save_checkpoint(
            self.save_dir / f"{name.stem}_iteration={engine.state.iteration}{name.suffix}",
            engine.inference_network().state_dict(),
        )
        if self._last is not None and self._last != path:
            self._last.unlink(missing_ok=True)
        self._last = path


class BestGeneratorSaver:
    """Save the generator's state dict (atomically) as ``<save_dir>/<filename>`` whenever validation beats the
    best score so far (strictly greater). Attach to the evaluator (rank 0 only); give it to the trainer as an
    ``extra_state`` so that the best score so far is part of the training checkpoint (a resumed run then saves
    exactly the files an uninterrupted one saves).

    Args:
        save_dir: the folder.
        network: the generator (may be DDP-wrapped).
        filename: the file.
        metric_name: the metric to compare (default: the evaluator's key metric).
    """

    def __init__(
        self, save_dir: str, network: torch.nn.Module, filename: str = "model_best.pt", metric_name: str | None = None
    ) -> None:
        self.save_dir = Path(save_dir)
        self.network = network
        self.filename = filename
        self.metric_name = metric_name
        self.best: float | None = None

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine) -> None:
        name = self.metric_name or getattr(engine.state, "key_metric_name", None)
        if name is None or name not in engine.state.metrics:
            raise ValueError(f"BestGeneratorSaver: the evaluator has no metric {name!r} to compare; set metric_name.")
        score = float(engine.state.metrics[name])
        if math.isnan(score) or (self.best is not None and score <= self.best):
            return
        self.best = score
        path = save_checkpoint(self.save_dir / self.filename, _unwrap(self.network).state_dict())
        logger.info("saved the best generator %s (%s %.4f).", path, name, score)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else float(best)


def _module_mismatch(module: torch.nn.Module, state: Mapping[str, Any]) -> str:
    """What differs between ``module``'s state dict and ``state``, in a few words (the first difference named)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(torch.as_tensor(state[k]).shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} tensors of other shapes (e.g. {k!r}: {list(torch.as_tensor(state[k]).shape)} in the "
            f"checkpoint, {list(own[k].shape)} in the network)"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
    return ", ".join(parts) or "no tensor differs"


class TrainingCheckpointLoader:
    """Resume a run from a :class:`TrainingCheckpointSaver` file when the trainer starts: every object of the
    trainer's ``checkpoint_objects()`` gets its state (iteration and data position included). The run keeps its
    own ``max_epochs`` and epoch length (a resumed run may be longer). Attach on every rank, before the others.

    Args:
        load_path: the checkpoint file (checked early by :func:`~.checkpoint.resolve_resume` in the bundles).
        map_location: as in ``torch.load``.
        strict: ``load_state_dict`` strictness of the networks.

    Raises:
        CheckpointError: (when the run starts) the checkpoint lacks a state the trainer has, or a state does not
            fit (the message names the file, the object and what differs).
    """

    def __init__(self, load_path: str, map_location: Any = "cpu", strict: bool = True) -> None:
        self.load_path = Path(load_path)
        self.map_location = map_location
        self.strict = strict

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine) -> None:
        state = read_checkpoint(self.load_path, self.map_location)
        objects = _objects(engine)
        missing = [k for k in objects if k not in state and k not in OPTIONAL_KEYS]
        if missing:
            raise CheckpointError(f"checkpoint {self.load_path} has no {'/'.join(missing)} state for this run.")
        epoch_length, max_epochs = engine.state.epoch_length, engine.state.max_epochs
        for key, obj in objects.items():
            if key not in state:
                logger.warning(
                    "checkpoint %s has no %r state (an older checkpoint): the resume is exact only from the start "
                    "of a pass over the data.",
                    self.load_path,
                    key,
                )
                continue
            self._load(key, obj, state[key])
        self._restore_schedule(engine, epoch_length, max_epochs)
        logger.info("resumed from %s at iteration %d.", self.load_path, checkpoint_iteration(state))

    def _load(self, key: str, obj: Any, state: Any) -> None:
        try:
            if isinstance(obj, torch.nn.Module):
                obj.load_state_dict(state, strict=self.strict)
            else:
                obj.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            detail = _module_mismatch(obj, state) if isinstance(obj, torch.nn.Module) else " ".join(str(err).split())
            raise CheckpointError(
                f"checkpoint {self.load_path}: its {key} state does not fit this run ({detail[:300]}): resume with "
                "the settings it was saved with."
            ) from None

    def _restore_schedule(self, engine, epoch_length: int | None, max_epochs: int | None) -> None:
        iteration = engine.state.iteration
        if epoch_length and engine.state.epoch_length != epoch_length:
            logger.info("epoch length %d (the checkpoint's: %d).", epoch_length, engine.state.epoch_length)
            engine.state.epoch_length = epoch_length
            engine.state.epoch = iteration // epoch_length
        if max_epochs is not None:
            engine.state.max_epochs = max_epochs
            if epoch_length and iteration > max_epochs * epoch_length:
                raise CheckpointError(
                    f"checkpoint {self.load_path} is at iteration {iteration}, past this run's "
                    f"{max_epochs * epoch_length} iterations: raise --num_iterations to continue it."
                )


def start_handlers(
    network: Any,
    resume_from: str | None = None,
    init_weights: str | None = None,
    init_sha256: str | None = None,
    bundle_dir: str | None = None,
    map_location: Any = "cpu",
) -> list:
    """The handlers that set where a training run starts.

    Args:
        network: the generator (or its DDP wrapper) that ``init_weights`` loads into.
        resume_from: a :class:`TrainingCheckpointSaver` file: continue that run exactly (every state). The bundles
            resolve ``latest``/``auto`` and check the file first (:func:`~.checkpoint.resolve_resume`).
        init_weights: a generator state dict (e.g. a bundle's ``models/model.pt``): start a new run from it
            (fine-tuning); discriminators, optimisers and the iteration start afresh.
        init_sha256: the expected sha256 of ``init_weights``; without it the hash recorded in ``bundle_dir``'s
            ``large_files.yml`` is used, and a file the bundle does not record is refused.
        bundle_dir: the bundle folder.
        map_location: as in ``torch.load``.

    Raises:
        ValueError: both ``resume_from`` and ``init_weights`` are given.
    """
    if resume_from and init_weights:
        raise ValueError(
            "give either resume_from (continue a run, every state restored) or init_weights (start a "
            "new run from generator weights), not both."
        )
    if resume_from:
        return [TrainingCheckpointLoader(resume_from, map_location=map_location)]
    if init_weights:
        from .handlers import VerifiedCheckpointLoader

        return [
            VerifiedCheckpointLoader(
                init_weights,
                network,
                sha256=init_sha256,
                bundle_dir=None if init_sha256 else bundle_dir,
                map_location=map_location,
            )
        ]
    return []
