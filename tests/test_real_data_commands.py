"""The real-data commands of docs/USER_GUIDE.md ("Your own data"), run exactly as written with the ``seq2seq``
console script, in a fresh folder: a phantom folder stands in for the user's own data.

The commands are read from the first ``bash`` block of the guide's "Your own data" section (the fallback list below
until the guide has one). Each command runs as a subprocess with the relative paths of the guide; then the outputs
are checked: nothing a subject has is synthesised, the ranking covers what the subjects have, and, with one
sequence deleted from the folder, the same commands synthesise exactly that sequence.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from monai_seq2seq.cli import COMMANDS, _resolve

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "USER_GUIDE.md"
SEQ2SEQ = Path(sys.executable).with_name("seq2seq")

FALLBACK = """
seq2seq phantom brain --subjects 1 --spacing 4 --out my_data
seq2seq datalist my_data --out my_data/datalist.json
seq2seq inspect my_data
seq2seq synthesize --datalist my_data/datalist.json --out my_synthetic
seq2seq diffmap --datalist my_data/datalist.json --out my_diffmaps
"""


def documented_commands(guide: Path = GUIDE) -> tuple[list[list[str]], str]:
    """The ``seq2seq`` lines of the first bash block of the guide's "Your own data" section (comments and line
    continuations handled), and where they came from."""
    text = guide.read_text() if guide.is_file() else ""
    section = re.search(r"^(#+) Your own data\b.*?$(.*?)(?=^\1 |\Z)", text, re.MULTILINE | re.DOTALL)
    block = re.search(r"```(?:bash|sh|console)\n(.*?)```", section.group(2), re.DOTALL) if section else None
    source, body = (f"{guide.name} 'Your own data'", block.group(1)) if block else ("the fallback list", FALLBACK)
    body = body.replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in body.splitlines()]
    return [c for c in commands if c and c[0] == "seq2seq"], source


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAGER": "cat", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(SEQ2SEQ), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"`{shlex.join(argv)}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_the_guide_has_runnable_commands():
    """Fast: every documented command names a ``seq2seq`` command and only flags it has (run nothing)."""
    import inspect

    commands, source = documented_commands()
    assert [c[1] for c in commands][:1] == ["phantom"] and {"synthesize", "diffmap"} <= {c[1] for c in commands}
    for argv in commands:
        target = _resolve(COMMANDS[argv[1]]) if argv[1] in COMMANDS else None
        if target is None:
            continue  # a command another part adds; the slow test says so
        if isinstance(target, type):
            target = getattr(target, argv[2])
        parameters = inspect.signature(target).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        for flag in (a[2:].split("=")[0] for a in argv if a.startswith("--")):
            assert flag in parameters or takes_any, f"{source}: `{shlex.join(argv)}`: no flag --{flag}"


@pytest.mark.slow
def test_real_data_commands_run_as_documented(tmp_path):
    """Issue 19: the README's real-data commands must work exactly as written (they failed on --drop "[]", on a
    relative datalist, and deleted a subject's real T1Gd)."""
    commands, source = documented_commands()
    unavailable = sorted({c[1] for c in commands if c[1] not in COMMANDS})
    outputs = {}
    for argv in commands:
        if argv[1] in unavailable:
            continue
        outputs[argv[1]] = (argv, _run(argv, tmp_path))
    data = Path(tmp_path / _option(outputs["phantom"][0], "--out"))
    subjects = sorted(p.name for p in data.iterdir() if p.is_dir())
    assert subjects, f"{source}: the phantom command wrote no subject folder"

    # a subject with every sequence: nothing deleted, nothing synthesised, and the log says so
    argv, done = outputs["synthesize"]
    synthetic = tmp_path / _option(argv, "--out")
    assert not list(synthetic.rglob("*_synthetic.nii.gz")), (
        f"`{shlex.join(argv)}` synthesised a sequence the subject has"
    )
    assert "nothing to synthesise" in done.stdout + done.stderr  # the log (the bundle's logging.conf: stdout)
    # the ranking covers the four sequences the subject has
    argv, _ = outputs["diffmap"]
    with open(tmp_path / _option(argv, "--out") / "ranking.csv") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:5]] == ["T1", "T1Gd", "T2", "FLAIR"]

    # delete T1Gd from the folder: the same commands synthesise it, and only it
    for path in data.glob("*/*_t1ce.nii.gz"):
        path.unlink()
    rerun = [c for c in commands if c[1] in ("datalist", "synthesize") and c[1] not in unavailable]
    if "datalist" in unavailable:  # the phantom's own datalist lists T1Gd: write it again without
        datalist = data / "datalist.json"
        raw = json.loads(datalist.read_text())
        for entry in (e for key in ("training", "validation", "testing") for e in raw.get(key, [])):
            entry.pop("T1Gd", None)
            entry["available"] = [n for n in entry["available"] if n != "T1Gd"]
        datalist.write_text(json.dumps(raw))
    again = tmp_path / "again"
    for argv in rerun:
        if argv[1] == "synthesize":  # the same command into a new folder
            argv = [*argv[: argv.index("--out") + 1], str(again), *argv[argv.index("--out") + 2 :]]
        _run(argv, tmp_path)
    made = sorted(p.name for p in again.rglob("*_synthetic.nii.gz"))
    assert made == [f"{s}_T1Gd_synthetic.nii.gz" for s in subjects]
    if unavailable:
        pytest.skip(f"{source}: ran every command except {unavailable} (not in seq2seq's COMMANDS yet)")
