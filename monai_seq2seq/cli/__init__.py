"""``seq2seq`` command line (python-fire): ``seq2seq <group> <command> --flag value``.

The bundle commands (``synthesize``, ``diffmap``, ``evaluate``) live in :mod:`.bundle`, re-exported here. Groups
are imported lazily so that ``seq2seq --help`` stays fast and a missing optional piece of one group
does not break the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from .bundle import diffmap, evaluate, run_bundle_config, synthesize

__all__ = [
    "main",
    "root_cause",
    "error_line",
    "COMMANDS",
    "run_bundle_config",
    "synthesize",
    "diffmap",
    "evaluate",
    "profile",
]

# group name -> "module:attribute" providing a fire-compatible object (class, function or dict)
COMMANDS: dict[str, str] = {
    "synthesize": "monai_seq2seq.cli.bundle:synthesize",
    "diffmap": "monai_seq2seq.cli.bundle:diffmap",
    "evaluate": "monai_seq2seq.cli.bundle:evaluate",
    "advise": "monai_seq2seq.cli.advise:advise",
    "train": "monai_seq2seq.cli.bundle:train",
    "phantom": "monai_seq2seq.cli.phantom:Phantom",
    "zoo": "monai_seq2seq.cli.zoo:Zoo",
    "profile": "monai_seq2seq.cli:profile",
    "demo": "monai_seq2seq.cli.demo:run_demo",
    "inspect": "monai_seq2seq.cli.inspect:inspect",
    "datalist": "monai_seq2seq.cli.datalist:datalist",
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


_MONAI_WRAPPERS = ("Failed to evaluate ", "Failed to instantiate ")  # monai.bundle's messages around the real error


def root_cause(error: BaseException) -> BaseException:
    """The error under MONAI's config-evaluation wrappers (``RuntimeError("Failed to evaluate ...") from e``)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None or not (isinstance(error, RuntimeError) and str(error).startswith(_MONAI_WRAPPERS)):
            break
        error = inner
    return error


def error_line(error: BaseException) -> str:
    """One line for an error: its message (whitespace and line breaks folded), with the type name when the error is
    not one of the library's own (``ValueError`` and subclasses, whose messages name the fix)."""
    message = " ".join(str(error).split()) or repr(error)
    if isinstance(error, ValueError):
        return message
    return f"{type(error).__name__}: {message} (run again with --debug for the traceback)"


def _command_name(args: list[str]) -> str:
    if not args or args[0] not in COMMANDS:
        return "seq2seq"
    group = len(args) > 1 and not args[1].startswith("-") and _importable(COMMANDS[args[0]])
    group = group and isinstance(_resolve(COMMANDS[args[0]]), type)
    return f"seq2seq {args[0]} {args[1]}" if group else f"seq2seq {args[0]}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``seq2seq`` console script.

    A command that fails prints ``seq2seq <command>: error: <cause>`` as its last line (the cause under MONAI's
    config wrappers) and exits with status 1; the traceback only with ``--debug`` or ``SEQ2SEQ_DEBUG=1``.
    """
    import os
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:cut] or os.environ.get("SEQ2SEQ_DEBUG", "0") not in ("", "0")
    args = [a for a in args[:cut] if a != "--debug"] + args[cut:]
    try:
        _fire(args)
    except Exception as error:  # noqa: BLE001 (every failure of a command ends in one line and status 1)
        if debug:
            import traceback

            traceback.print_exc()
        sys.stdout.flush()
        print(f"{_command_name(args)}: error: {error_line(root_cause(error))}", file=sys.stderr)
        raise SystemExit(1) from None


def _fire(args: list[str]) -> None:
    import fire

    if args and args[0] in COMMANDS:
        command = args[1:]
        if "--" not in command and {"--help", "-h"} & set(command):
            # fire hands `--help` to a command that takes **overrides as help=True; `-- --help` asks fire itself
            command = [a for a in command if a not in ("--help", "-h")] + ["--", "--help"]
        component = _resolve(COMMANDS[args[0]])
        # a group (Phantom, Zoo) as an instance: fire then lists its commands in `seq2seq phantom --help`
        fire.Fire(component() if isinstance(component, type) else component, command=command, name=f"seq2seq {args[0]}")
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
