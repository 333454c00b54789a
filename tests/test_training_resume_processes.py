"""Training in other processes (slow): SIGKILL at random moments and inside checkpoint writes, then `--resume_from
auto`, ends with bitwise the weights of an uninterrupted run; the same for a 2-process gloo run under torchrun."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from monai_seq2seq.engines.checkpoint import WRITE_DELAY_ENV
from monai_seq2seq.zoo.configs import config_files

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain"
RUN = {  # 3 subjects (passes of 3 batches), epochs of 4 iterations, a checkpoint every 2
    "network_size": "tiny",
    "num_subjects": 3,
    "num_val_subjects": 1,
    "cache_rate": 0.0,
    "discriminator_channels": 4,
    "discriminator_layers": 2,
    "num_iterations": 12,
    "iterations_per_epoch": 4,
    "save_interval": 2,
    "phantom_spacing": 4.0,
    "roi_size": [32, 32],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.slow


def _flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return flags


def _train(out: Path, **extra) -> list[str]:
    command = "from monai_seq2seq.cli import main; main()"
    return [
        sys.executable,
        "-c",
        command,
        "train",
        "--bundle",
        str(BUNDLE),
        "--out",
        str(out),
        *_flags({**RUN, **extra}),
    ]


def _temporary(models: Path, prefix: str) -> bool:
    return models.is_dir() and any(p.name.startswith(prefix) for p in models.iterdir())


def _run_until(command: list[str], env: dict, kill_when, timeout: float = 240) -> bool:
    """Run ``command``; SIGKILL it as soon as ``kill_when()`` holds. Returns whether it was killed."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while process.poll() is None:
        if kill_when():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        assert time.monotonic() - start < timeout, "the training did not end"
        time.sleep(0.02)
    assert process.returncode == 0, process.stderr.read()[-3000:]
    return False


def _state(path: Path, key: str | None = None) -> dict:
    state = torch.load(path, weights_only=True)
    return state if key is None else state[key]


def _assert_equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k}"


def test_sigkill_at_any_moment_then_resume_is_exact(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_train(reference), env=ENV, check=True, capture_output=True, timeout=300)

    seed = int(os.environ.get("SEQ2SEQ_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    out = tmp_path / "killed"
    models = out / "models"
    slow_writes = {**ENV, WRITE_DELAY_ENV: "0.5"}  # every checkpoint write sleeps before its rename

    # 1. inside the write of the iteration-4 checkpoint: the iteration-2 one is still there and complete
    assert _run_until(
        _train(out, resume_from="auto"), slow_writes, lambda: _temporary(models, ".checkpoint_iteration=4")
    )
    names = sorted(p.name for p in models.iterdir())
    assert "checkpoint_iteration=2.pt" in names and "checkpoint_iteration=4.pt" not in names, names
    assert _state(models / "checkpoint_iteration=2.pt", "trainer")["iteration"] == 2

    # 2. at random moments of the resumed runs (counted from their first checkpoint write)
    killed = []
    for _ in range(2):
        moment = {}

        def random_moment(moment=moment):
            if "t" not in moment and _temporary(models, ".checkpoint_iteration"):
                moment["t"] = time.monotonic() + rng.uniform(0.0, 1.5)
            return "t" in moment and time.monotonic() >= moment["t"]

        killed.append(_run_until(_train(out, resume_from="auto"), slow_writes, random_moment))
    assert killed[0], f"kill seed {seed}"  # resumed from iteration 2: 5 slow writes to go, the kill comes first

    # 3. inside the write of the final checkpoint, if the run got there
    _run_until(_train(out, resume_from="auto"), slow_writes, lambda: _temporary(models, ".checkpoint_final"))
    # 4. to the end
    assert not _run_until(_train(out, resume_from="auto"), ENV, lambda: False)

    for name in ("model.pt", "model_best.pt"):
        _assert_equal(_state(reference / "models" / name), _state(models / name), f"{name} (kill seed {seed})")
    for key in ("generator", "discriminator"):
        a, b = (_state(m / "checkpoint_final.pt", key) for m in (reference / "models", models))
        _assert_equal(a, b, f"checkpoint_final.pt {key} (kill seed {seed})")
    assert not any(p.name.startswith(".") for p in models.iterdir())  # partial writes cleaned up
    assert sorted(p.name for p in models.iterdir() if p.name.startswith("checkpoint_iteration")) == [
        "checkpoint_iteration=12.pt"  # n_saved 1, over all the runs
    ]


def _torchrun(out: Path, extra_config: Path, **overrides) -> subprocess.CompletedProcess:
    configs = [*config_files(BUNDLE, "multi_gpu_train"), str(extra_config)]
    values = {**RUN, "num_subjects": 5, "num_iterations": 8, "output_dir": str(out), "bundle_root": str(BUNDLE)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "monai.bundle", "run", "--config_file", str(configs), *_flags({**values, **overrides})]
    return subprocess.run(command, cwd=BUNDLE, env=ENV, capture_output=True, text=True, timeout=400)


def test_torchrun_resume_in_the_middle_of_a_pass_is_exact(tmp_path):
    """2 ranks (gloo), 5 subjects: passes of 3 batches per rank, epochs of 4, stopped after iteration 5 (its final
    checkpoint) and resumed with `latest`: every rank ends with the uninterrupted run's weights."""
    dump = tmp_path / "dump.json"
    dump.write_text(
        json.dumps(
            {
                "finalize": [
                    "$torch.save(@network.module.state_dict(), @output_dir + '/rank' + str(dist.get_rank()) + '.pt')",
                    "$dist.destroy_process_group()",
                ]
            }
        )
    )
    stop = tmp_path / "stop.json"
    stop.write_text(
        json.dumps(
            {
                "run": [
                    "$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once=5),"
                    " lambda e: e.terminate())",
                    "$@train#trainer.run()",
                ],
                "finalize": ["$dist.destroy_process_group()"],
            }
        )
    )
    straight = _torchrun(tmp_path / "straight", dump)
    assert straight.returncode == 0, straight.stderr[-3000:]
    stopped = _torchrun(tmp_path / "resumed", stop)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    resumed = _torchrun(tmp_path / "resumed", dump, resume_from="latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume_from latest: " in resumed.stdout + resumed.stderr
    for rank in (0, 1):
        _assert_equal(
            _state(tmp_path / "straight" / f"rank{rank}.pt"),
            _state(tmp_path / "resumed" / f"rank{rank}.pt"),
            f"rank {rank}",
        )
    _assert_equal(_state(tmp_path / "straight" / "rank0.pt"), _state(tmp_path / "resumed" / "rank1.pt"), "ranks")
    stopped_at = _state(tmp_path / "resumed" / "models" / "checkpoint_iteration=8.pt", "data")
    assert stopped_at == {"pass": 2, "batches": 2, "samples": 5}  # 8 = 3 + 3 + 2 batches of each rank
