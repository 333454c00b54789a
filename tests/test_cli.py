import subprocess
import sys
from pathlib import Path

import pytest

from monai_seq2seq.cli import profile, synthesize

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
