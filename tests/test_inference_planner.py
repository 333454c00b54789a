"""Batch-size planning of the synthesiser (issue 8): the logic on fake memory measurements, the wiring on a CPU."""

import pytest
import torch

import monai_seq2seq.inference.synthesis as synthesis
from monai_seq2seq.inference import Seq2SeqSynthesizer
from monai_seq2seq.inference.planner import plan_batch_size
from monai_seq2seq.networks import build_seq2seq


def test_linear_memory_gives_the_largest_batch_within_budget():
    calls = []

    def peak(b):
        calls.append(b)
        return 100 + 30 * b

    assert plan_batch_size(peak, 1000, 512) == 30  # 100 + 30 * 30 = 1000
    assert calls == [1, 2, 30]
    assert plan_batch_size(peak, 1000, 5) == 5


def test_superlinear_memory_shrinks_until_it_fits():
    assert plan_batch_size(lambda b: 100 + 30 * b + b * b, 1000, 512) == 18  # 19 would need 1031


def test_out_of_memory_counts_as_not_fitting():
    def peak(b):
        if b > 8:
            raise torch.OutOfMemoryError("fake")
        return 10 * b

    assert plan_batch_size(peak, 10_000, 512) == 8


def test_one_sample_over_budget_is_a_clear_error():
    with pytest.raises(RuntimeError, match="one sample does not fit"):
        plan_batch_size(lambda b: 2000 * b, 1000, 8)
    assert plan_batch_size(lambda b: 600 * b, 1000, 8) == 1


def test_auto_on_cpu_is_the_fixed_default_and_bad_values_raise():
    net = build_seq2seq("tiny", protocol="brain")
    vols = {"T1": torch.rand(1, 16, 20, 6)}
    auto = Seq2SeqSynthesizer(net, "brain", batch_size="auto", progress=False)
    fixed = Seq2SeqSynthesizer(net, "brain", batch_size=synthesis.AUTO_CPU_BATCH_SIZE, progress=False)
    torch.testing.assert_close(auto.all_pairs(vols)["T2"]["T1"], fixed.all_pairs(vols)["T2"]["T1"])
    for bad in (0, "max", 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            Seq2SeqSynthesizer(net, "brain", batch_size=bad)
    with pytest.raises(ValueError, match="memory_fraction"):
        Seq2SeqSynthesizer(net, "brain", batch_size="auto", memory_fraction=0)


def test_auto_plans_once_per_slab_shape_on_cuda(monkeypatch):
    synth = Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="breast"), "breast", batch_size="auto", progress=False)
    monkeypatch.setattr(synth, "device", torch.device("cuda"))  # planning only: nothing runs on the device
    monkeypatch.setattr(synthesis, "cuda_memory_budget", lambda device, fraction: 1000 * fraction)
    measured = []

    def fake_peak(slab, batch):
        measured.append((slab.shape[1], batch))
        return 10 * slab.shape[1] * batch  # per-sample memory grows with the frame count

    monkeypatch.setattr(synth, "_peak_bytes", fake_peak)
    t1 = torch.zeros(40, 1, 3, 16, 16)
    dwi = torch.zeros(40, 4, 3, 16, 16)
    assert synth.slab_batch_size(t1) == 40  # limited by the slab count (10 * 40 = 400 <= 800)
    assert synth.slab_batch_size(dwi) == 20  # 40 * 20 = 800
    assert synth.slab_batch_size(dwi) == 20
    assert sorted({f for f, _ in measured}) == [1, 4] and len(measured) == 6  # 3 measurements per shape
    assert [p["batch_size"] for p in synth.describe()["planned_batch_sizes"]] == [40, 20]


def test_fusion_of_sources_with_different_planned_batches_lines_up(monkeypatch):
    torch.manual_seed(0)
    net = build_seq2seq("tiny", protocol="breast")
    vols = {"T1": torch.rand(1, 16, 16, 7), "DWI": torch.rand(4, 16, 16, 7)}
    reference = Seq2SeqSynthesizer(net, "breast", batch_size=7, progress=False).synthesize(vols, "T2")
    auto = Seq2SeqSynthesizer(net, "breast", batch_size="auto", progress=False)
    monkeypatch.setattr(auto, "slab_batch_size", lambda slabs: 3 if slabs.shape[1] == 1 else 2)
    torch.testing.assert_close(auto.synthesize(vols, "T2"), reference, atol=1e-5, rtol=1e-5)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_cuda_planned_batch_stays_within_a_tight_budget():
    from monai_seq2seq.inference.planner import cuda_peak_bytes

    synth = Seq2SeqSynthesizer(
        build_seq2seq("small", protocol="brain"), "brain", batch_size="auto", device="cuda", progress=False
    )
    slab = torch.rand(1, 1, 3, 128, 128) * 2 - 1
    one = synth._peak_bytes(slab, 1)
    budget = 6 * one
    planned = plan_batch_size(lambda b: synth._peak_bytes(slab, b), budget, 512)
    print(f"peak at batch 1: {one / 2**20:.1f} MiB; planned {planned} for a budget of {budget / 2**20:.1f} MiB")
    assert 2 <= planned < 512
    assert synth._peak_bytes(slab, planned) <= budget
    assert cuda_peak_bytes(lambda: torch.empty(2**20, device="cuda"), torch.device("cuda")) >= 4 * 2**20


@needs_cuda
def test_cuda_auto_batch_gives_the_cpu_result():
    import copy

    torch.manual_seed(0)
    net = build_seq2seq("tiny", protocol="breast")
    vols = {"T1": torch.rand(1, 64, 64, 40), "DWI": torch.rand(4, 64, 64, 40)}
    ref = Seq2SeqSynthesizer(net, "breast", batch_size=8, device="cpu", progress=False).all_pairs(vols, ["DCE"])
    auto = Seq2SeqSynthesizer(
        copy.deepcopy(net), "breast", batch_size="auto", device="cuda", progress=False, memory_fraction=0.5
    )
    got = auto.all_pairs(vols, ["DCE"])
    planned = auto.describe()["planned_batch_sizes"]
    assert len(planned) == 2 and all(1 <= p["batch_size"] <= 40 for p in planned)
    for source in vols:  # TF32 convolutions on CUDA
        torch.testing.assert_close(got["DCE"][source], ref["DCE"][source], atol=2e-3, rtol=2e-3)
