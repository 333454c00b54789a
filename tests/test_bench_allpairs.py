"""benchmarks/bench_allpairs.py measures the authors' loop, the per-slice loop and the fast path side by side (tiny
sizes here; the figures are in benchmarks/RESULTS.md)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_allpairs.py"


def test_three_paths_agree_and_the_mac_bound_is_printed(capsys):
    spec = importlib.util.spec_from_file_location("bench_allpairs", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = [
        "--config",
        "tiny",
        "--spacing",
        "8",
        "--slices",
        "3",
        "--size",
        "24",
        "--batch-size",
        "2",
        "--repeats",
        "2",
    ]
    results = bench.main([*argv, "--loop-slices", "2", "--device", "cpu"])
    assert results["authors_s"] > 0 and results["fast_s"] > 0 and results["slice_loop_s"] > 0
    assert results["max_diff_fast"] <= 1e-5 and results["max_diff_slice_loop"] <= 1e-5
    assert 1.0 < results["mac_bound"] < 16.0  # the fast path leaves re-encoding out; decoding all pairs stays
    out = capsys.readouterr().out
    assert "authors' loop" in out and "multiply-accumulate bound" in out and "of 3x24x24" in out
    assert "measured on 2 of 3 slices" in out and "machine" in out and "fastest of 2" in out
