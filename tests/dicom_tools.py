"""Checks of DICOM output by tools nobody here wrote: ``dciodvfy`` (Debian's dicom3tools) and ``dcm2niix`` (the pip
package), and putting an image converted by dcm2niix back on the grid of a reference.

Shared by tests/test_io_dicom_output.py and tests/test_dicom_output_end_to_end.py. A tool that is absent makes the
tests that need it skip with the reason and the install command.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

__all__ = ["DCIODVFY", "DCM2NIIX", "needs_dciodvfy", "needs_dcm2niix", "dciodvfy_errors", "dcm2niix", "on_grid"]


def _dcm2niix_binary() -> str | None:
    try:
        import dcm2niix as package
    except ImportError:
        return shutil.which("dcm2niix")
    return package.bin if Path(package.bin).is_file() else shutil.which("dcm2niix")


DCIODVFY = shutil.which("dciodvfy")
DCM2NIIX = _dcm2niix_binary()

needs_dciodvfy = pytest.mark.skipif(
    DCIODVFY is None, reason="dciodvfy (Debian's dicom3tools) is not installed: apt-get install dicom3tools"
)
needs_dcm2niix = pytest.mark.skipif(
    DCM2NIIX is None, reason="dcm2niix is not installed: pip install dcm2niix (in the dev extra of setup.cfg)"
)


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The ``Error`` lines dciodvfy reports for one DICOM file (warnings are left out)."""
    done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    return [f"{Path(path).name}: {line}" for line in lines if line.startswith("Error")]


def dcm2niix(folder: str | Path, out: str | Path) -> list[Path]:
    """Convert the DICOM files of ``folder`` with dcm2niix into ``out`` (uncompressed NIfTI, one per series or
    instance group); returns the NIfTI files, sorted."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [DCM2NIIX, "-z", "n", "-b", "y", "-f", "%s_%j", "-o", str(out), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"dcm2niix failed on {folder}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return sorted(out.glob("*.nii"))


def on_grid(data: np.ndarray, affine: np.ndarray, ref_affine: np.ndarray, ref_shape) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (``(X, Y, Z[, T])`` with ``affine``) rearranged onto the voxel grid of ``ref_affine``, when the two
    grids differ by a permutation or flip of the voxel axes (dcm2niix flips the rows); returns the rearranged array
    and its affine (``affine`` composed with that integer index map), to compare with ``ref_affine``."""
    index_map = np.linalg.inv(affine) @ ref_affine  # reference voxel -> data voxel
    exact = np.round(index_map)
    assert np.allclose(index_map[:3, :3], exact[:3, :3], atol=1e-2), f"grids differ by more than a flip: {index_map}"
    idx = np.indices(tuple(ref_shape)).reshape(3, -1)
    src = (exact[:3, :3] @ idx + exact[:3, 3:4]).astype(int)
    for axis in range(3):
        assert 0 <= src[axis].min() and src[axis].max() < data.shape[axis], "the grids cover other voxels"
    out = data[src[0], src[1], src[2]].reshape(tuple(ref_shape) + data.shape[3:])
    return out, affine @ exact
