"""``torchrun --nproc_per_node=2`` (gloo, CPU) on multi_gpu_differentiation.json: the same cohort outputs and
per-subject files as one process, a failing subject named and stopping the run, a rerun with ``--skip_existing True``
doing only what is missing (issue 26). Slow: every launch starts two Python processes with torch and MONAI."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from test_cohort_sharded import BUNDLE, run_config

from monai_seq2seq.zoo.configs import config_files

TINY = {
    "load_weights": False,
    "network_def#name": "tiny",
    "synthesizer#batch_size": 8,
    "evaluator#use_lpips": False,
}
RECORDS = "subject_records"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three phantom subjects (odd: ranks get 2 and 1) on disk in the BraTS layout, and one process's outputs."""
    from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort

    root = tmp_path_factory.mktemp("cohort")
    datalist = write_cohort(
        BrainPhantomCohort(3, seed=5, spacing=4.0), root / "brats", progress=False, test_fraction=1.0
    )
    data = {"datalist": str(datalist), "datalist_split": "testing"}
    single = root / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # as each rank (OMP_NUM_THREADS=1): float sums in another thread count differ in the last bits
    try:
        run_config("differentiation", single, **data, **TINY)
    finally:
        torch.set_num_threads(threads)
    return datalist, data, single


def _torchrun(out: Path, data: dict, config: str = "multi_gpu_differentiation", **extra) -> subprocess.CompletedProcess:
    tiny = TINY if "inference" not in config else {k: v for k, v in TINY.items() if not k.startswith("evaluator")}
    args = {**tiny, **data, "output_dir": str(out), "bundle_root": str(BUNDLE), "collective_timeout_s": 600, **extra}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", str(config_files(BUNDLE, config))]
    for key, value in args.items():
        # python-fire reads the values: True/False as Python spells them, numbers and lists as JSON
        cmd += [
            f"--{key}",
            value if isinstance(value, str) else repr(value) if isinstance(value, bool) else json.dumps(value),
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=500)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and RECORDS not in p.parts
    }


def _assert_same_outputs(single: Path, sharded: Path, close: tuple[str, ...] = ()) -> None:
    expected, got = _files(single), _files(sharded)
    assert sorted(got) == sorted(expected)  # every per-subject file and cohort output, nothing else
    differ = [name for name in expected if expected[name] != got[name] and not name.endswith(close)]
    assert not differ, f"differ from the single-process run: {differ}"
    for name in (n for n in expected if n.endswith(close)):
        a, b = (nib.load(folder / name).get_fdata() for folder in (single, sharded))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


def test_two_ranks_write_what_one_process_writes(cohort, tmp_path):
    datalist, data, single = cohort
    result = _torchrun(tmp_path / "sharded", data)
    assert result.returncode == 0, result.stderr[-4000:]
    _assert_same_outputs(single, tmp_path / "sharded")
    for name in ("ranking.json", "metrics.json", "ranking.csv"):
        assert (single / name).read_text() == (tmp_path / "sharded" / name).read_text()
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "sharded" / RECORDS).glob("*.json")}
    ids = [s["subject"] for s in json.loads(datalist.read_text())["testing"]]
    assert sorted(records) == sorted(ids)  # no subject skipped (a subject done twice fails the merge itself)
    assert {s: r["rank"] for s, r in records.items()} == {ids[0]: 0, ids[1]: 1, ids[2]: 0}


def test_a_failing_subject_stops_the_run_and_a_rerun_does_only_what_is_missing(cohort, tmp_path):
    datalist, data, single = cohort
    entry = json.loads(datalist.read_text())["testing"][2]  # rank 0's second subject: rank 1 waits in the gather
    bad = datalist.parent / entry["T1"]
    good = bad.read_bytes()
    out = tmp_path / "sharded"
    bad.write_bytes(b"not a NIfTI file")
    try:
        start = time.monotonic()
        failed = _torchrun(out, data)
        elapsed = time.monotonic() - start
    finally:
        bad.write_bytes(good)
    assert failed.returncode != 0
    log = failed.stdout + failed.stderr
    assert f"rank 0: subject {entry['subject']!r}" in log and "--skip_existing True" in log
    assert elapsed < 300, "the run waited for the collective timeout instead of stopping"
    assert not (out / "ranking.json").exists()
    done = {p.stem: p.stat().st_mtime_ns for p in (out / RECORDS).glob("*.json")}
    assert entry["subject"] not in done and "BraTS2021_00000" in done  # rank 0 recorded its first subject

    rerun = _torchrun(out, data, skip_existing=True)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    after = {p.stem: p.stat().st_mtime_ns for p in (out / RECORDS).glob("*.json")}
    assert {s: after[s] for s in done} == done  # what was done was not done again
    assert len(after) == 3
    _assert_same_outputs(single, out)


def test_two_ranks_synthesise_what_one_process_does(tmp_path):
    phantom = {"num_subjects": 3, "phantom_spacing": 4.0}
    run_config(
        "inference", tmp_path / "single", **phantom, **{k: TINY[k] for k in ("load_weights", "network_def#name")}
    )
    result = _torchrun(tmp_path / "sharded", phantom, config="multi_gpu_inference")
    assert result.returncode == 0, result.stderr[-4000:]
    # uncertainty maps differ in the float32 rounding of the spread (seen: 1.2e-7 in one
    # subject of three, the synthetic image itself equal): within float32 rounding, every other file byte-equal
    _assert_same_outputs(tmp_path / "single", tmp_path / "sharded", close=("_uncertainty.nii.gz",))
    assert len(list((tmp_path / "single").rglob("*_T1Gd_synthetic.nii.gz"))) == 3
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "sharded" / RECORDS).glob("*.json"))]
    assert [(r["rank"], r["synthetic"]) for r in records] == [(0, ["T1Gd"]), (1, ["T1Gd"]), (0, ["T1Gd"])]
