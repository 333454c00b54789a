"""Checkpoint pieces: RNG state as a checkpointable object, and savers/loaders that take their objects from
the trainer when attached (so a config can list them among the trainer's own handlers)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.transforms import Compose, Randomizable

__all__ = ["RNGState", "TrainingCheckpointSaver", "TrainingCheckpointLoader", "GeneratorSaver", "start_handlers"]


def _randomizables(obj: Any) -> list[Randomizable]:
    if obj is None:
        return []
    if isinstance(obj, Compose):
        return [r for t in obj.transforms for r in _randomizables(t)]
    if isinstance(obj, Randomizable):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, torch.Tensor)):
        return [r for t in obj for r in _randomizables(t)]
    transform = getattr(obj, "transform", None)  # a dataset
    return _randomizables(transform) if transform is not None else []


class RNGState:
    """The RNG states of python, numpy, torch (CPU and CUDA) and of MONAI random transforms, as a checkpointable
    object (``state_dict``/``load_state_dict``): put it in a ``CheckpointSaver``'s ``save_dict`` for exact resume.

    Args:
        transforms: a ``Compose``, a dataset with a ``transform``, or a list of them: their ``Randomizable``
            members' ``R`` states are saved too (their states live outside the global RNGs when the data loader
            has no workers).
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = _randomizables(transforms)

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


def _objects(engine, include_discriminator: bool = True) -> dict:
    getter = getattr(engine, "checkpoint_objects", None)
    if getter is None:
        raise TypeError("the engine has no checkpoint_objects(); attach this handler to a Seq2SeqTrainer.")
    return getter()


class TrainingCheckpointSaver:
    """Save everything for an exact resume (networks, optimizers, scalers, EMA, trainer state, RNG states).

    A thin wrapper of MONAI's ``CheckpointSaver`` whose ``save_dict`` is the trainer's ``checkpoint_objects()``
    at attach time. Files: ``<save_dir>/checkpoint_iteration=<iteration>.pt`` every ``save_interval`` iterations
    (``n_saved`` kept) and ``<save_dir>/<final_filename>`` at the end. Attach on rank 0 only.
    """

    def __init__(
        self,
        save_dir: str,
        save_interval: int = 0,
        n_saved: int = 1,
        final_filename: str = "checkpoint_final.pt",
        save_final: bool = True,
    ) -> None:
        self.kwargs = {
            "save_dir": save_dir,
            "save_interval": save_interval,
            "n_saved": n_saved,
            "final_filename": final_filename,
            "save_final": save_final,
            "file_prefix": "",
            "epoch_level": False,
        }

    def attach(self, engine) -> None:
        self.saver = CheckpointSaver(save_dict=_objects(engine), **self.kwargs)
        self.saver.attach(engine)


class GeneratorSaver:
    """Save the generator's state dict (the EMA weights when EMA is on) as ``<save_dir>/<filename>`` at the end
    of training, the ``models/model.pt`` that the inference configs load. Attach on rank 0 only."""

    def __init__(self, save_dir: str, filename: str = "model.pt", save_interval: int = 0) -> None:
        self.kwargs = {
            "save_dir": save_dir,
            "final_filename": filename,
            "save_final": True,
            "save_interval": save_interval,
            "n_saved": 1,
            "file_prefix": "model",
            "epoch_level": False,
        }

    def attach(self, engine) -> None:
        self.saver = CheckpointSaver(save_dict={"model": engine.inference_network()}, **self.kwargs)
        self.saver.attach(engine)


class TrainingCheckpointLoader:
    """Resume from a :class:`TrainingCheckpointSaver` file: MONAI's ``CheckpointLoader`` on the trainer's
    ``checkpoint_objects()`` (iteration/epoch included). Attach on every rank."""

    def __init__(self, load_path: str, map_location: Any = "cpu", strict: bool = True) -> None:
        self.kwargs = {"load_path": load_path, "map_location": map_location, "strict": strict}

    def attach(self, engine) -> None:
        self.loader = CheckpointLoader(load_dict=_objects(engine), **self.kwargs)
        self.loader.attach(engine)


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
        resume_from: a :class:`TrainingCheckpointSaver` file: continue that run exactly (every state).
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
