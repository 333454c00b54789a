"""Running a bundle's configs with MONAI's ``ConfigWorkflow``: the one place that builds the workflow.

``seq2seq synthesize | diffmap | evaluate`` and ``make demo`` all go through :func:`bundle_workflow`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["bundle_workflow", "run_bundle_config", "synthesize", "diffmap", "evaluate"]


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

    from monai_seq2seq.zoo.configs import config_files

    root = Path(bundle)
    config_file = root / "configs" / f"{config}.json"
    if not config_file.is_file():
        raise ValueError(f"{config_file} does not exist: is {str(bundle)!r} a monai-seq2seq bundle folder?")
    files = config_files(root, config)  # an override config (evaluate, differentiation) on its base
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _refuse_unknown_ids(files, overrides, config)
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

    Raises:
        ValueError: ``<bundle>/configs/<config>.json`` does not exist.
    """
    with bundle_workflow(bundle, config, **overrides) as workflow:
        workflow.run()
    return str(workflow.parser.get_parsed_content("output_dir"))


def synthesize(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "testing",
    drop: list[str] | None = None,
    **overrides: Any,
) -> str:
    """Synthesise every missing sequence of a datalist (default: the embedded phantom with ``drop`` removed).

    Example: ``seq2seq synthesize --bundle bundles/seq2seq_brain --datalist brats.json --drop "[]" --out syn``.
    """
    return run_bundle_config(
        bundle, "inference", output_dir=out, datalist=datalist, datalist_split=split, drop=drop, **overrides
    )


def diffmap(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "testing",
    **overrides: Any,
) -> str:
    """Differentiation maps, the ranking table (C_t, C_d), heatmap and rank chart for a datalist or the phantom."""
    return run_bundle_config(
        bundle, "differentiation", output_dir=out, datalist=datalist, datalist_split=split, **overrides
    )


def evaluate(
    bundle: str = "bundles/seq2seq_brain",
    out: str | None = None,
    datalist: str | None = None,
    split: str = "testing",
    **overrides: Any,
) -> str:
    """PSNR, SSIM (and LPIPS with local weights) per translation, SSIM inside/outside the tumour."""
    return run_bundle_config(bundle, "evaluate", output_dir=out, datalist=datalist, datalist_split=split, **overrides)
