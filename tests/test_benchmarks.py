"""The benchmark scripts run and report what they claim (tiny sizes; the figures themselves are in RESULTS.md)."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_measures_brain_and_breast_steps(capsys):
    bench = _load("bench_train")
    results = bench.main(
        [
            "--config",
            "tiny",
            "--size",
            "32",
            "--batch-sizes",
            "1",
            "2",
            "--iterations",
            "2",
            "--warmup",
            "1",
            "--disc-channels",
            "4",
            "--breast",
            "--breast-size",
            "32",
            "--device",
            "cpu",
        ]
    )
    assert [(r["protocol"], r["batch"], r["amp"]) for r in results] == [
        ("brain", 1, False),
        ("brain", 2, False),
        ("brain", 1, True),
        ("brain", 2, True),
        ("breast", 1, False),
        ("breast", 1, True),
    ]
    assert all(r["it_s"] > 0 for r in results)
    out = capsys.readouterr().out
    assert "it/s" in out and "brain batch 2: AMP bf16 / float32 = " in out and "peak memory: CUDA only" in out
    assert "breast batch 1: AMP bf16 / float32 = " in out


@pytest.mark.parametrize("limit,largest", [(256, 16), (8, 8), (0, 0)])
def test_largest_fitting_batch_doubles_until_it_does_not_fit(limit, largest):
    bench = _load("bench_train")
    tried = []

    def fits(batch):
        tried.append(batch)
        return batch <= 20

    assert bench.largest_fitting_batch(fits, limit) == largest
    assert all(b <= max(limit, 1) for b in tried)
