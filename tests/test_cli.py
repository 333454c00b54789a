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
