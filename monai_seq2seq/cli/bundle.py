"""Running a bundle's configs with MONAI's ``ConfigWorkflow``: the one place that builds the workflow.

``seq2seq synthesize | diffmap | evaluate | train`` and ``make demo`` all go through :func:`bundle_workflow`.

On the command line: the bundle folder is looked up in the current folder first, then in the source checkout
(``bundles/seq2seq_brain`` works from any folder); ``--datalist`` is made absolute, so relative paths inside it are
relative to its own folder (MONAI's decathlon convention) wherever the command runs; ``--split`` chooses the
datalist's list (see :func:`datalist_split`); a run that fails removes the output folder it created if it is still
empty (never a folder that existed before, never one with files in it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "bundle_workflow",
    "untrained_synthesizer",
    "run_bundle_config",
    "resolve_bundle",
    "datalist_split",
    "synthesize",
    "diffmap",
    "evaluate",
    "train",
]

_CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree's root (monai_seq2seq/cli/bundle.py)


def resolve_bundle(bundle: str | Path) -> Path:
    """The bundle folder: ``bundle`` as given when it holds ``configs/``, else (a relative path) the same path in
    the source checkout, so that the default ``bundles/seq2seq_brain`` works outside the repository's root."""
    path = Path(bundle).expanduser()
    if (path / "configs").is_dir() or path.is_absolute():
        return path
    checkout = _CHECKOUT / path
    return checkout if (checkout / "configs").is_dir() else path


def datalist_split(datalist: str | Path, split: str = "auto") -> str:
    """The list of ``datalist`` to run on: ``split`` when it names a non-empty list; ``"auto"``: ``testing`` when
    it has subjects, else ``training`` or ``validation`` if only one of them has any (``seq2seq datalist`` puts
    everyone in ``training``).

    Raises:
        ValueError: the file is not a datalist JSON, the named list is missing or empty, or ``"auto"`` finds no
            ``testing`` subjects and several other non-empty lists (the message gives the counts and the flag).
    """
    path = Path(datalist)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"datalist {str(datalist)!r} does not exist (make one with `seq2seq datalist ROOT`)."
        ) from None
    except (OSError, ValueError) as err:
        raise ValueError(f"datalist {str(datalist)!r} is not a readable JSON file: {err}.") from None
    lists = {k: len(v) for k, v in raw.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
    if split != "auto":
        if not lists.get(split):
            raise ValueError(
                f"datalist {str(datalist)!r} has no subject in {split!r}; subjects per list: {lists}: "
                f"pass --split with one of {sorted(lists)}."
            )
        return split
    if lists.get("testing"):
        return "testing"
    splits = [k for k in ("training", "validation") if lists.get(k)]  # other lists (e.g. "unused") are no split
    if len(splits) == 1:
        return splits[0]
    raise ValueError(
        f"datalist {str(datalist)!r} has no 'testing' subjects; subjects per list: {lists}: "
        f"choose one with --split {'|'.join(sorted(lists)) or '<list>'}."
    )


def untrained_synthesizer(workflow: Any, seed: int = 0) -> Any:
    """A copy of an initialised (not yet run) workflow's ``synthesizer``: the network as built, before its weights
    load (the checkpoint loader runs when the workflow starts), seeded so the baseline is the same every run."""
    import copy

    import torch

    torch.manual_seed(int(seed))
    return copy.deepcopy(workflow.parser.get_parsed_content("synthesizer"))


@contextmanager
def bundle_workflow(bundle: str | Path, config: str, workflow_type: str = "inference", **overrides: Any) -> Iterator:
    """An initialised ``ConfigWorkflow`` of ``<bundle>/configs/<config>.json``, finalised when the block ends.

    Use it to look at the workflow's parsed objects between ``run()`` and ``finalize()``::

        with bundle_workflow("bundles/seq2seq_brain", "differentiation", num_subjects=1) as workflow:
            workflow.run()
            evaluator = workflow.parser.get_parsed_content("evaluator")

    The workflow is not finalised when the block raises (the error is not hidden behind a finalisation one).

    Args:
        bundle: the bundle folder.
        config: a config name in ``<bundle>/configs`` without ``.json`` (``"inference"``, ``"differentiation"``...).
        workflow_type: as in ``ConfigWorkflow`` (``"inference"`` or ``"train"``).
        overrides: config ids and their values; ``None`` values are left out (the config's default applies).

    Raises:
        ValueError: ``<bundle>/configs/<config>.json`` does not exist, or an override names an id the config lacks
            (a typo would otherwise add a new id and be silently ignored).
    """
    from monai.bundle import ConfigWorkflow

    from monai_seq2seq.core.trust import check_bundle_configs, trusting
    from monai_seq2seq.zoo.configs import config_files

    root = resolve_bundle(bundle)
    config_file = root / "configs" / f"{config}.json"
    if not config_file.is_file():
        raise ValueError(f"{config_file} does not exist: is {str(bundle)!r} a monai-seq2seq bundle folder?")
    files = config_files(root, config)  # an override config (evaluate, differentiation) on its base
    overrides = {k: v for k, v in overrides.items() if v is not None}
    trusted = overrides.pop("trust_module", None)  # --trust_module mypkg: packages the configs may use too
    check_bundle_configs(root, trusted)  # configs are data until trusted: before anything is parsed into objects
    _refuse_unknown_ids(files, overrides, config)
    with trusting(trusted):  # a VerifiedCheckpointLoader in the run trusts what the command line trusted
        workflow = ConfigWorkflow(
            config_file=files,
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=None,
            workflow_type=workflow_type,
            bundle_root=str(root),
            **overrides,
        )
        workflow.initialize()
        yield workflow
        workflow.finalize()


def _refuse_unknown_ids(files: list[str], overrides: dict[str, Any], config: str) -> None:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(files)
    # a nested id may add a key to a dict the config has (e.g. a constructor argument): its parent must exist
    unknown = sorted(k for k in overrides if k not in parser and not ("#" in k and k.rpartition("#")[0] in parser))
    if not unknown:
        return
    hint = (
        " For this command's own options run it with `-- --help` (python-fire), e.g. `seq2seq synthesize -- --help`."
        if "help" in unknown
        else ""
    )
    top_level = sorted(k for k in parser.get() if not k.startswith("_"))
    raise ValueError(
        f"{files[-1]} has no config id {unknown}: nothing was run. Ids of {config!r} that can be overridden: "
        f"{top_level}.{hint}"
    )


def run_bundle_config(bundle: str | Path, config: str, **overrides: Any) -> str:
    """Run ``<bundle>/configs/<config>.json`` with MONAI's ConfigWorkflow; overrides are config ids.

    Returns:
        The output folder.

    A run that fails removes the output folder (and the parents) it created when nothing was written into them.

    Raises:
        ValueError: ``<bundle>/configs/<config>.json`` does not exist.
    """
    created = _first_new_folder(_planned_output_dir(bundle, config, overrides))
    try:
        with bundle_workflow(bundle, config, **overrides) as workflow:
            workflow.run()
    except BaseException:
        _remove_empty_folders(created)
        raise
    return str(workflow.parser.get_parsed_content("output_dir"))


def _planned_output_dir(bundle: str | Path, config: str, overrides: dict[str, Any]) -> Path | None:
    """The output folder a run will write to (``output_dir`` as overridden, or the config's), ``None`` if unknown."""
    if overrides.get("output_dir") is not None:
        return Path(overrides["output_dir"])
    from monai.bundle import ConfigParser

    from monai_seq2seq.core.trust import check_bundle_configs
    from monai_seq2seq.zoo.configs import config_files

    root = resolve_bundle(bundle)
    try:
        check_bundle_configs(root, overrides.get("trust_module"))  # refused: the run itself says why
        parser = ConfigParser()
        parser.read_config(config_files(root, config))
        parser["bundle_root"] = str(root)  # as ConfigWorkflow sets it
        return Path(parser.get_parsed_content("output_dir"))
    except Exception:  # noqa: BLE001 (a config that does not parse fails in the run itself, with its own message)
        return None


def _first_new_folder(folder: Path | None) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (``None``: it exists or is unknown)."""
    if folder is None or folder.exists():
        return None
    folder = folder.absolute()
    while not folder.parent.exists():
        folder = folder.parent
    return folder


def _remove_empty_folders(top: Path | None) -> None:
    """Remove ``top`` and the folders under it, bottom up, as far as they are empty (a file anywhere keeps it)."""
    if top is None or not top.is_dir():
        return
    for folder, _, _ in os.walk(top, topdown=False):
        try:
            Path(folder).rmdir()  # only succeeds on an empty folder
        except OSError:
            pass


def _datalist_overrides(datalist: str | None, split: str) -> dict[str, Any]:
    """``datalist`` (absolute: MONAI then joins its own folder, not the working folder's relative path, into each
    relative path inside it) and the chosen ``datalist_split``; nothing for the phantom."""
    if datalist is None:
        return {}
    path = Path(datalist).expanduser().resolve()
    chosen = datalist_split(path, split)
    if chosen != split:
        print(f"datalist {datalist}: running on its {chosen!r} list (--split to choose another).", file=sys.stderr)
    return {"datalist": str(path), "datalist_split": chosen}


def synthesize(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "auto",
    drop: list[str] | None = None,
    **overrides: Any,
) -> str:
    """Synthesise every missing sequence of each subject from those it has: <out>/<subject>/<subject>_<Seq>_synthetic.

    With ``--datalist`` nothing a subject has is deleted (``--drop "['T1Gd']"`` deletes T1Gd first, to compare);
    without it, the embedded phantom with the bundle's default sequence (T1Gd / DCE) dropped.
    Example: ``seq2seq synthesize --datalist brats/datalist.json --out syn``.

    Args:
        bundle: the bundle folder.
        out: output folder (default: the bundle's ``eval/synthesis``).
        datalist: a datalist JSON (``seq2seq datalist ROOT --out ROOT/datalist.json``); paths in it are relative to
            its folder.
        split: the datalist's list to run on; ``auto``: ``testing`` if it has subjects, else the one non-empty list.
        drop: sequences to delete from every subject before synthesis (default: none with a datalist).
        overrides: any other config id (``--num_subjects 2``, ``--network_def#name tiny``...).
    """
    return run_bundle_config(
        bundle, "inference", output_dir=out, drop=drop, **_datalist_overrides(datalist, split), **overrides
    )


def diffmap(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "auto",
    **overrides: Any,
) -> str:
    """Differentiation maps, the ranking table (C_t, C_d), heatmap and rank chart for a datalist or the phantom.

    Sequences no subject has are left out of the ranking outputs (and named in ranking.json and the figures).

    Args:
        bundle: the bundle folder.
        out: output folder (default: the bundle's ``eval/differentiation``).
        datalist: a datalist JSON; paths in it are relative to its folder.
        split: the datalist's list to run on; ``auto``: ``testing`` if it has subjects, else the one non-empty list.
        overrides: any other config id.
    """
    return run_bundle_config(
        bundle, "differentiation", output_dir=out, **_datalist_overrides(datalist, split), **overrides
    )


def evaluate(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "auto",
    **overrides: Any,
) -> str:
    """PSNR, SSIM (and LPIPS with local weights) per translation, SSIM inside/outside the tumour.

    Args:
        bundle: the bundle folder.
        out: output folder (default: the bundle's ``eval/evaluation``).
        datalist: a datalist JSON; paths in it are relative to its folder.
        split: the datalist's list to run on; ``auto``: ``testing`` if it has subjects, else the one non-empty list.
        overrides: any other config id.
    """
    return run_bundle_config(bundle, "evaluate", output_dir=out, **_datalist_overrides(datalist, split), **overrides)


def train(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    resume_from: str | None = None,
    multi_gpu: bool = False,
    **overrides: Any,
) -> str:
    """Train the bundle's generator (``configs/train.json``): checkpoints, ``model.pt`` and ``model_best.pt`` in
    ``<out>/models``, TensorBoard events in ``<out>/logs``.

    Example: ``seq2seq train --out runs/brain --network_size tiny --num_iterations 2000``. After a kill or a
    pre-emption, the same command with ``--resume_from latest`` continues exactly where the newest complete
    checkpoint of ``<out>/models`` stopped (``auto``: the same, or a new run when ``<out>/models`` holds no
    checkpoint, for a job script that is simply resubmitted). A checkpoint that cannot be resumed from (truncated,
    another network size, variant or protocol, no optimizer state) stops the command before any data is read.
    Several GPUs: ``torchrun --nproc_per_node=N $(command -v seq2seq) train --multi_gpu True --out ...``.

    Args:
        bundle: the bundle folder.
        out: the run's folder (required: the bundle's own folder holds its shipped weights).
        datalist: a datalist JSON whose ``training`` and ``validation`` lists train and validate (default: the
            bundle's phantom).
        resume_from: a checkpoint file, ``latest`` or ``auto``.
        multi_gpu: run ``configs/multi_gpu_train.json`` (under ``torchrun``).
        overrides: any other config id (``--num_iterations 200``, ``--save_interval 100``...).

    Raises:
        ValueError: no ``out``.
    """
    if out is None:
        raise ValueError("seq2seq train needs --out: the run's folder (checkpoints in <out>/models).")
    data = {"datalist": str(Path(datalist).expanduser().resolve())} if datalist else {}
    return run_bundle_config(
        bundle,
        "multi_gpu_train" if multi_gpu else "train",
        workflow_type="train",
        output_dir=out,
        resume_from=resume_from,
        **data,
        **overrides,
    )
