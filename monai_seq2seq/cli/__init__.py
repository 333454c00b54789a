"""``seq2seq`` command line (python-fire): ``seq2seq <group> <command> --flag value``.

Groups are imported lazily so that ``seq2seq --help`` stays fast and a missing optional piece of one group
does not break the others.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["main", "COMMANDS"]

# group name -> "module:attribute" providing a fire-compatible object (class, function or dict)
COMMANDS: dict[str, str] = {
    "synthesize": "monai_seq2seq.cli:synthesize",
    "diffmap": "monai_seq2seq.cli:diffmap",
    "evaluate": "monai_seq2seq.cli:evaluate",
    "phantom": "monai_seq2seq.cli.phantom:Phantom",
    "zoo": "monai_seq2seq.cli.zoo:Zoo",
    "profile": "monai_seq2seq.cli:profile",
    "demo": "monai_seq2seq.cli.demo:run_demo",
}


def run_bundle_config(bundle: str, config: str, **overrides: Any) -> str:
    """Run ``<bundle>/configs/<config>.json`` with MONAI's ConfigWorkflow; overrides are config ids.

    Returns:
        The output folder.
    """
    from pathlib import Path

    from monai.bundle import ConfigWorkflow

    root = Path(bundle)
    config_file = root / "configs" / f"{config}.json"
    if not config_file.is_file():
        raise ValueError(f"{config_file} does not exist: is {bundle!r} a monai-seq2seq bundle folder?")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    workflow = ConfigWorkflow(
        config_file=str(config_file),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=None,
        workflow_type="inference",
        bundle_root=str(root),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
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


def profile(config: str = "paper", variant: str = "C", size: int = 192, protocol: str = "brain") -> dict[str, Any]:
    """Parameters and multiply-accumulates of a named Seq2Seq size on one 3 x size x size 2.5D slice."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from monai_seq2seq.networks import build_seq2seq

    with torch.device("meta"):
        net = build_seq2seq(config, variant, protocol=protocol)
        with FlopCounterMode(display=False) as counter:
            net(torch.randn(1, 3, size, size), torch.eye(net.code_dim)[:1])
    return {
        "config": config,
        "variant": variant,
        "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "GMACs": round(counter.get_total_flops() / 2e9, 2),
    }


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``seq2seq`` console script."""
    import sys

    import fire

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        fire.Fire(_resolve(COMMANDS[args[0]]), command=args[1:], name=f"seq2seq {args[0]}")
        return
    fire.Fire(
        {name: _resolve(target) for name, target in COMMANDS.items() if _importable(target)},
        command=args,
        name="seq2seq",
    )


def _importable(target: str) -> bool:
    try:
        _resolve(target)
    except (ImportError, AttributeError):
        return False
    return True


if __name__ == "__main__":
    main()
