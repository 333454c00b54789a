import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from monai_seq2seq.cli import profile, synthesize
from monai_seq2seq.cli.bundle import bundle_workflow

BRAIN = str(Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain")


def test_profile_counts_released_config():
    result = profile("released", "C")
    assert result["params_M"] == pytest.approx(155.16, abs=0.01) and result["GMACs"] == pytest.approx(105.45, abs=0.01)


def test_synthesize_command_runs_the_bundle(tmp_path):
    out = synthesize(
        BRAIN,
        out=str(tmp_path),
        num_subjects=1,
        phantom_spacing=4.0,
        load_weights=False,
        **{"network_def#name": "tiny"},
    )
    assert Path(out) == tmp_path
    assert len(list(tmp_path.rglob("*_T1Gd_synthetic.nii.gz"))) == 1


def test_bundle_workflow_applies_overrides_and_leaves_none_out(tmp_path):
    with bundle_workflow(BRAIN, "inference", output_dir=str(tmp_path), num_subjects=None, phantom_seed=7) as workflow:
        assert workflow.parser.get_parsed_content("output_dir") == str(tmp_path)
        assert workflow.parser.get_parsed_content("phantom_seed") == 7
        assert workflow.parser.get_parsed_content("num_subjects") == 4  # the config's own value
    with pytest.raises(ValueError, match="missing.json does not exist"):
        with bundle_workflow(BRAIN, "missing"):
            pass


def test_unknown_override_ids_are_refused_before_anything_runs(tmp_path):
    """`seq2seq synthesize --help` reaches the command as help=True; a typo would add an id nobody reads."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"no config id \['help'\].*-- --help"):
        synthesize(BRAIN, out=str(out), help=True)
    with pytest.raises(ValueError, match=r"no config id \['num_subject'\].*'num_subjects'"):
        synthesize(BRAIN, out=str(out), num_subject=1)
    assert not out.exists()
    with pytest.raises(ValueError, match=r"no config id \['networkdef#name'\]"):
        synthesize(BRAIN, out=str(out), **{"networkdef#name": "paper"})
    nested = {"network_def#variant": "C", "network_def#spatial_dims": 2}  # ids of the base config, and a new kwarg
    with bundle_workflow(BRAIN, "differentiation", output_dir=str(tmp_path), **nested) as workflow:
        assert workflow.parser["network_def"]["spatial_dims"] == 2


def test_help_of_a_bundle_command_shows_help_and_runs_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "from monai_seq2seq.cli import main; main(['synthesize', '--help'])"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    text = done.stdout + done.stderr
    assert "Synthesise every missing sequence" in text and "--datalist" in text.replace("DATALIST", "datalist"), text
    assert list(tmp_path.iterdir()) == [] and not (Path(BRAIN) / "eval").exists()


# every `seq2seq ... --help` in one process (imports once): exit status, text, and the flags each signature has
_HELP_ALL = r"""
import contextlib, inspect, io, json, sys
from monai_seq2seq.cli import COMMANDS, _resolve, main

def flags(function):
    return [
        (p.name, p.default is inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]

commands = []
for name, target in COMMANDS.items():
    obj = _resolve(target)
    if isinstance(obj, type):
        methods = [m for m, f in vars(obj).items() if callable(f) and not m.startswith("_")]
        commands.append(([name], methods))
        commands += [([name, m], flags(getattr(obj, m))) for m in methods]
    else:
        commands.append(([name], flags(obj)))
report = []
for argv, expected in commands:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*argv, "--help"])
        except SystemExit as exit:
            code = exit.code
    report.append({"argv": argv, "expected": expected, "code": code, "text": out.getvalue() + err.getvalue()})
print(json.dumps(report))
"""


def test_help_of_every_command_shows_its_flags_and_runs_nothing(tmp_path):
    """Issue 19: `--help` on every COMMANDS entry and every subcommand of a group shows the flags, runs nothing."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _HELP_ALL],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    from monai_seq2seq.cli import COMMANDS

    assert {tuple(r["argv"][:1]) for r in report} == {(name,) for name in COMMANDS}
    assert any(len(r["argv"]) == 2 for r in report)  # phantom / zoo subcommands are checked too
    for r in report:
        text = r["text"].replace("\x1b[1m", "").replace("\x1b[0m", "")
        assert r["code"] in (0, None), (r["argv"], r["code"], text[-500:])
        assert "NAME" in text and "Traceback" not in text, (r["argv"], text[-500:])
        for flag in r["expected"]:
            if isinstance(flag, str):  # a group: its subcommands are listed
                assert flag in text, (r["argv"], flag)
            else:  # a function: its flags (positional ones in upper case)
                name, positional = flag
                assert f"--{name}" in text or (positional and name.upper() in text), (r["argv"], name, text[-800:])
    assert list(cwd.iterdir()) == [] and not list(Path(BRAIN).parent.glob("*/eval"))


def test_main_prints_the_root_cause_as_its_last_line_and_exits_1(tmp_path, capsys):
    """Issue 19: the message sat in the middle of a traceback ending in MONAI's `$__local_refs['evaluator'].run()`."""
    from monai_seq2seq.cli import main, root_cause

    datalist = tmp_path / "datalist.json"
    entry = {"subject": "s1", "T1": "s1/s1_t1.nii.gz", "T2": "s1/s1_t2.nii.gz", "available": ["T1", "T2"]}
    datalist.write_text(json.dumps({"name": "x", "protocol": "brain", "testing": [entry]}))
    argv = ["synthesize", "--bundle", BRAIN, "--datalist", str(datalist), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seq2seq synthesize: error: datalist ") and "lists files that do not exist" in err[-1]
    assert "s1_t1.nii.gz" in err[-1] and not any("Traceback" in line or "Failed to evaluate" in line for line in err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main([*argv, "--debug"])
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("seq2seq synthesize: error: datalist ")
    # the unwrapping itself: MONAI's wrappers are peeled, a library error's own cause is kept
    try:
        try:
            raise ValueError("the real cause")
        except ValueError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression: $x") from inner
    except RuntimeError as outer:
        assert str(root_cause(outer)) == "the real cause"
    wrapped = ValueError("library message")
    wrapped.__cause__ = OSError("low level")
    assert root_cause(wrapped) is wrapped


def _nifti(path: Path, value: float = 1.0) -> None:
    import nibabel as nib
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).uniform(0, value, (12, 12, 8)).astype("float32")
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), str(path))


def test_a_failed_run_leaves_no_empty_output_folder(tmp_path, capsys):
    """Issue 19: a run that failed after the writers created the output folder left it behind, empty."""
    from monai_seq2seq.cli import main

    _nifti(tmp_path / "data" / "s1" / "s1_t2.nii.gz")  # one sequence: differentiation maps need two
    datalist = tmp_path / "data" / "datalist.json"
    entry = {"subject": "s1", "T2": "s1/s1_t2.nii.gz", "available": ["T2"]}
    datalist.write_text(json.dumps({"name": "x", "protocol": "brain", "testing": [entry]}))
    common = ["diffmap", "--bundle", BRAIN, "--datalist", str(datalist), "--load_weights", "False"]
    common += ["--network_def#name", "tiny", "--evaluator#use_lpips", "False"]
    with pytest.raises(SystemExit) as exit:
        main([*common, "--out", str(tmp_path / "new" / "deeper")])
    assert exit.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "seq2seq diffmap: error: subject 's1' has only ['T2']: differentiation maps and rankings need at least two "
        "sequences."
    )
    assert not (tmp_path / "new").exists()  # the folder and the parent the run made, both empty: removed
    (tmp_path / "kept").mkdir()
    with pytest.raises(SystemExit):
        main([*common, "--out", str(tmp_path / "kept")])
    assert (tmp_path / "kept").is_dir()  # it existed before: left alone


def test_on_a_datalist_the_bundles_delete_nothing_by_default():
    """Issue 19: the default `drop: ["T1Gd"]` deleted a subject's real T1Gd and synthesised it instead."""
    breast = str(Path(BRAIN).parent / "seq2seq_breast")
    for bundle, default in ((BRAIN, ["T1Gd"]), (breast, ["DCE"])):
        with bundle_workflow(bundle, "inference", output_dir="unused") as workflow:
            assert workflow.parser.get_parsed_content("drop") == default  # the phantom: one sequence to make
        with bundle_workflow(bundle, "inference", output_dir="unused", datalist="d.json") as workflow:
            assert workflow.parser.get_parsed_content("drop") == []
            assert workflow.parser.get_parsed_content("drop_missing") is None  # disabled
        with bundle_workflow(bundle, "inference", output_dir="unused", datalist="d.json", drop=default) as workflow:
            assert workflow.parser.get_parsed_content("drop") == default  # still there when asked for


@pytest.fixture(scope="module")
def brats_folder(tmp_path_factory):
    """Two 4 mm brain phantom subjects in the BraTS 2021 layout; the second without T1Gd; a relative datalist."""
    from monai_seq2seq.data import build_brats_datalist
    from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort

    root = tmp_path_factory.mktemp("real") / "brats"
    write_cohort(BrainPhantomCohort(2, seed=5, spacing=4.0), root, progress=False)
    (root / "datalist.json").unlink()
    next(root.glob("*_00001/*_t1ce.nii.gz")).unlink()
    build_brats_datalist(root, root / "datalist.json")
    return root


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_synthesize_on_a_relative_datalist_makes_only_what_is_missing(brats_folder, tmp_path, monkeypatch, capfd):
    """Issue 19: a relative `--datalist d/datalist.json` failed with the folder joined twice into every path, and
    without `--drop` the subject's real T1Gd was deleted and synthesised."""
    monkeypatch.chdir(brats_folder.parent)
    tiny = {"bundle": BRAIN, "load_weights": False, "network_def#name": "tiny"}
    lines, logger = _Lines(), logging.getLogger("ignite.engine.engine.SynthesisEvaluator")
    logger.addHandler(lines)
    try:
        out = synthesize(out=str(tmp_path / "syn"), datalist="brats/datalist.json", split="training", **tiny)
    finally:
        logger.removeHandler(lines)
    made = sorted(p.name for p in Path(out).rglob("*_synthetic.nii.gz"))
    assert made == ["BraTS2021_00001_T1Gd_synthetic.nii.gz"]  # the T1Gd subject 1 lacks, nothing of subject 0
    said = "subject 'BraTS2021_00000' has all of ['T1', 'T1Gd', 'T2', 'FLAIR']: nothing to synthesise."
    assert said in lines.lines and not any("BraTS2021_00001' has all" in line for line in lines.lines)
    capfd.readouterr()
    out = synthesize(out=str(tmp_path / "asked"), datalist="brats/datalist.json", drop=["T1Gd"], **tiny)
    assert len(list(Path(out).rglob("*_T1Gd_synthetic.nii.gz"))) == 2  # --drop "['T1Gd']" deletes it first
    assert "running on its 'training' list" in capfd.readouterr().err  # --split auto: the one non-empty list
    with pytest.raises(ValueError, match=r"no subject in 'testing'.*--split with one of \['training'\]"):
        synthesize(out=str(tmp_path / "x"), datalist="brats/datalist.json", split="testing", **tiny)
    assert not (tmp_path / "x").exists()
    # the library too (data.load_datalist): paths are relative to the JSON's folder, not joined twice
    from monai_seq2seq.data import load_datalist

    entries = load_datalist("brats/datalist.json", "training")
    assert Path(entries[0]["T1"]).is_absolute() and Path(entries[0]["T1"]).is_file()
    # the default bundle is found from any folder (here the data's), in the source checkout
    from monai_seq2seq.cli.bundle import resolve_bundle

    assert resolve_bundle("bundles/seq2seq_brain") == Path(BRAIN) and resolve_bundle("nowhere") == Path("nowhere")


def test_datalist_split_auto_and_named(tmp_path):
    from monai_seq2seq.cli.bundle import datalist_split

    path = tmp_path / "d.json"
    unused = [{"file": "x.nii.gz", "reason": "no sequence"}]  # a list of dicts that is not a split
    path.write_text(json.dumps({"training": [{"subject": "a"}], "testing": [], "unused": unused}))
    assert datalist_split(path) == "training" and datalist_split(path, "training") == "training"
    path.write_text(json.dumps({"training": [{"subject": "a"}], "testing": [{"subject": "b"}]}))
    assert datalist_split(path) == "testing"
    path.write_text(json.dumps({"training": [{"subject": "a"}], "validation": [{"subject": "b"}]}))
    with pytest.raises(ValueError, match=r"no 'testing' subjects.*--split training\|validation"):
        datalist_split(path)
    with pytest.raises(ValueError, match="does not exist.*seq2seq datalist ROOT"):
        datalist_split(tmp_path / "missing.json")


def test_not_a_bundle(tmp_path):
    with pytest.raises(ValueError, match="is .* a monai-seq2seq bundle"):
        synthesize(str(tmp_path))


def test_console_entry_point_lists_commands():
    done = subprocess.run(
        [sys.executable, "-c", "from monai_seq2seq.cli import main; main(['--help'])"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    text = done.stdout + done.stderr
    for command in ("synthesize", "diffmap", "evaluate", "phantom", "profile", "demo"):
        assert command in text
