"""Ignite handler that loads bundle weights only after their sha256 checks out (MONAI CheckpointLoader style)."""

from __future__ import annotations

from pathlib import Path

import torch

from monai_seq2seq.core.integrity import load_weights
from monai_seq2seq.core.trust import check_bundle_configs

__all__ = ["VerifiedCheckpointLoader"]


class VerifiedCheckpointLoader:
    """Load a state dict into a network when the engine starts, after a sha256 check.

    Args:
        load_path: weights file (a state dict, or a checkpoint dict with a ``"model"`` entry).
        network: the module to load into.
        sha256: expected hash; or ``bundle_dir`` whose ``large_files.yml`` records it.
        bundle_dir: the bundle folder holding ``load_path``; when its ``large_files.yml`` gives the hash, the
            bundle's configs must first pass the allow-list (:func:`~monai_seq2seq.core.trust.check_bundle_configs`).
        strict: ``load_state_dict`` strictness.
        map_location: as in ``torch.load``.
        trust_modules: packages that bundle's configs may use beyond the default allow-list.
    """

    def __init__(
        self,
        load_path: str | Path,
        network: torch.nn.Module,
        sha256: str | None = None,
        bundle_dir: str | Path | None = None,
        strict: bool = True,
        map_location: str = "cpu",
        trust_modules: str | list[str] | None = None,
    ) -> None:
        self.load_path = Path(load_path)
        self.network = network
        self.sha256 = sha256
        self.bundle_dir = bundle_dir
        self.strict = strict
        self.map_location = map_location
        self.trust_modules = trust_modules

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine=None) -> None:
        if self.sha256 is None and self.bundle_dir is not None:  # the bundle vouches for the weights: trusted?
            check_bundle_configs(self.bundle_dir, self.trust_modules)
        state = load_weights(self.load_path, self.sha256, self.bundle_dir, self.map_location)
        target = self.network.module if hasattr(self.network, "module") else self.network
        target.load_state_dict(state, strict=self.strict)
        if engine is not None:
            engine.logger.info(f"loaded verified weights {self.load_path}")
