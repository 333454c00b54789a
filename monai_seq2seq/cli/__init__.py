"""``seq2seq`` command line (python-fire): ``seq2seq <group> <command> --flag value``.

The bundle commands (``synthesize``, ``diffmap``, ``evaluate``) live in :mod:`.bundle`, re-exported here. Groups
are imported lazily so that ``seq2seq --help`` stays fast and a missing optional piece of one group
does not break the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from .bundle import diffmap, evaluate, run_bundle_config, synthesize

__all__ = ["main", "COMMANDS", "run_bundle_config", "synthesize", "diffmap", "evaluate", "profile"]

# group name -> "module:attribute" providing a fire-compatible object (class, function or dict)
COMMANDS: dict[str, str] = {
    "synthesize": "monai_seq2seq.cli.bundle:synthesize",
    "diffmap": "monai_seq2seq.cli.bundle:diffmap",
    "evaluate": "monai_seq2seq.cli.bundle:evaluate",
    "phantom": "monai_seq2seq.cli.phantom:Phantom",
    "zoo": "monai_seq2seq.cli.zoo:Zoo",
    "profile": "monai_seq2seq.cli:profile",
    "demo": "monai_seq2seq.cli.demo:run_demo",
}


def profile(config: str = "paper", variant: str = "C", size: int = 192, protocol: str = "brain") -> dict[str, Any]:
    """Parameters and multiply-accumulates of a named Seq2Seq size on one 3 x size x size 2.5D slice."""
    from monai_seq2seq.networks import profile_seq2seq

    counts = profile_seq2seq(config, variant, size, protocol=protocol)
    return {
        "config": config,
        "variant": variant,
        "params_M": round(counts["params_M"], 2),
        "GMACs": round(counts["gmacs"], 2),
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
        command = args[1:]
        if "--" not in command and {"--help", "-h"} & set(command):
            # fire hands `--help` to a command that takes **overrides as help=True; `-- --help` asks fire itself
            command = [a for a in command if a not in ("--help", "-h")] + ["--", "--help"]
        fire.Fire(_resolve(COMMANDS[args[0]]), command=command, name=f"seq2seq {args[0]}")
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
