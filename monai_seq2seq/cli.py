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
    "phantom": "monai_seq2seq.cli_phantom:Phantom",
    "profile": "monai_seq2seq.cli:profile",
    "demo": "monai_seq2seq.demo:run_demo",
}


def profile(config: str = "paper", variant: str = "C", size: int = 192, protocol: str = "brain") -> dict[str, Any]:
    """Parameters and multiply-accumulates of a named Seq2Seq size on one 3 x size x size 2.5D slice."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .networks import build_seq2seq

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
    fire.Fire({name: _resolve(target) for name, target in COMMANDS.items() if _importable(target)},
              command=args, name="seq2seq")


def _importable(target: str) -> bool:
    try:
        _resolve(target)
    except (ImportError, AttributeError):
        return False
    return True


if __name__ == "__main__":
    main()
