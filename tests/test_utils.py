"""Atomic writes: the file appears whole or not at all, with the permissions a plain open() would give."""

import os
import stat

import pytest

from monai_seq2seq.core import files
from monai_seq2seq.core.files import atomic_write, atomic_write_text


def test_atomic_write_permissions_follow_the_umask(tmp_path):
    path = atomic_write_text(tmp_path / "report.md", "hello\n")
    plain = tmp_path / "plain.md"
    plain.write_text("hello\n")
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_gives_the_umask_mode_not_the_private_temporary_mode(tmp_path, monkeypatch, mask, mode):
    """Whatever umask the test process runs under, the written file has what open() under ``mask`` gives."""
    monkeypatch.setattr(files, "_UMASK", mask)
    path = atomic_write_text(tmp_path / "report.md", "hello\n")
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "table.csv", "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
