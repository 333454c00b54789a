"""Which config files make up a bundle config: the model-zoo way, an override file is read on top of its base.

A bundle's ``inference.json`` and ``train.json`` are complete configs; ``differentiation.json`` and ``evaluate.json``
hold only what differs from ``inference.json`` (output folder, no dropped sequence, handlers, evaluator), and
``multi_gpu_train.json`` only what differs from ``train.json`` (model-zoo: ``evaluate.json`` on ``train.json``).
MONAI merges a list of config files in order, later ids replacing earlier ones::

    python -m monai.bundle run --config_file "['configs/inference.json','configs/differentiation.json']"

Macros (``%file#key``) that name a file are not used in the bundles: MONAI resolves their path against the working
directory, not the bundle, so they would break ``monai.bundle run`` from anywhere but the bundle folder and could
point outside a packed bundle (:func:`external_macros` finds them; ``check_bundle`` refuses them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.utils import MACRO_KEY

__all__ = ["BASE_CONFIGS", "config_files", "external_macros"]

# override config -> the config it is read on top of
BASE_CONFIGS: dict[str, str] = {
    "differentiation": "inference",
    "evaluate": "inference",
    "advise": "inference",
    "multi_gpu_train": "train",
    # subjects sharded over torchrun ranks (monai_seq2seq.engines.distributed), each on its single-device config
    "multi_gpu_inference": "inference",
    "multi_gpu_differentiation": "differentiation",
    "multi_gpu_evaluate": "evaluate",
}


def config_files(bundle_dir: str | Path, config: str) -> list[str]:
    """The files MONAI reads, in order, for ``configs/<config>.json`` of a bundle (later files override ids).

    Args:
        bundle_dir: the bundle folder.
        config: a config name without ``.json`` (``"inference"``, ``"differentiation"``, ``"multi_gpu_train"``...).

    Returns:
        Paths of the base config(s) first, then ``configs/<config>.json``; pass the list as ``config_file`` to
        ``monai.bundle.ConfigWorkflow`` or ``ConfigParser.read_config``.

    Raises:
        FileNotFoundError: a file of the list is missing (named, with the bundle folder).
    """
    configs = Path(bundle_dir) / "configs"
    names = [config]
    while names[0] in BASE_CONFIGS:
        names.insert(0, BASE_CONFIGS[names[0]])
    files = [configs / f"{name}.json" for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"config {config!r} of bundle {bundle_dir} needs {[f.name for f in files]}; missing: {missing}. "
            "Is it a monai-seq2seq bundle folder?"
        )
    return [str(f) for f in files]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def external_macros(bundle_dir: str | Path) -> list[str]:
    """``"<config file>: <macro>"`` for every ``%file#key`` macro in ``configs/*.json`` that names a file.

    Such a macro is resolved against the working directory, not the bundle (MONAI's rule), so a bundle that uses one
    runs only from one folder and may depend on a file a packed archive does not hold.
    """
    found = []
    for path in sorted((Path(bundle_dir) / "configs").glob("*.json")):
        if path.name == "metadata.json":
            continue
        for text in _strings(json.loads(path.read_text())):
            if text.startswith(MACRO_KEY) and ConfigParser.split_path_id(text[len(MACRO_KEY) :])[0]:
                found.append(f"{path.name}: {text}")
    return found
