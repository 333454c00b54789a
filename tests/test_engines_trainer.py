"""Seq2Seq trainer/evaluator and the batching helpers on tiny synthetic data (CPU)."""

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import MetaTensor

from monai_seq2seq.engines import (
    MASK_KEY,
    AvailabilityCollate,
    PairMetric,
    RNGState,
    Seq2SeqEvaluator,
    Seq2SeqTrainer,
    availability_collate,
    pair_metrics,
    scalar_output,
)
from monai_seq2seq.losses import Seq2SeqLoss
from monai_seq2seq.networks import SequenceDiscriminators, build_seq2seq
from monai_seq2seq.transforms import RandSilenceSequencesd, Slices25Dd

NAMES = ["T1", "T1Gd", "T2", "FLAIR"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _volume_sample(available=NAMES, shape=(20, 18, 12)):
    base = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(1, *shape)
    sample = {name: MetaTensor(base * (k + 1)) for k, name in enumerate(NAMES) if name in available}
    sample.update(available=list(available), subject="s0")
    return sample


def test_slices_share_one_position_and_crop():
    out = Slices25Dd(NAMES, roi_size=(8, 8), random=True).set_random_state(3)(_volume_sample())
    for k, name in enumerate(NAMES):
        assert out[name].shape == (1, 3, 8, 8)
        torch.testing.assert_close(out[name], out["T1"] * (k + 1))  # identical position for every sequence
    z = out["T1"][0, :, 0, 0] - out["T1"][0, 0, 0, 0]
    assert z.tolist() == [0.0, 1.0, 2.0]  # adjacent slices along the last axis


def test_slices_deterministic_centre_and_padding():
    transform = Slices25Dd(["T1"], roi_size=(24, 10), random=False)
    a, b = transform(_volume_sample(["T1"])), transform(_volume_sample(["T1"]))
    torch.testing.assert_close(a["T1"], b["T1"])
    assert a["T1"].shape == (1, 3, 24, 10)
    assert a["T1"][0, :, 20:].eq(a["T1"].min()).all()  # padded with the image minimum
    four_d = {"DCE": torch.rand(6, 16, 16, 8), "available": ["DCE"]}
    assert Slices25Dd(["DCE"], random=False)(four_d)["DCE"].shape == (6, 3, 16, 16)


def test_slices_focus_on_labelled_voxels():
    sample = _volume_sample()
    label = torch.zeros(1, 20, 18, 12)
    label[0, 17, 2, 9] = 5  # one labelled voxel near a corner
    sample["label"] = label
    base = sample["T1"][0]
    focused = Slices25Dd(NAMES, roi_size=(8, 8), focus_key="label", focus_prob=1.0, focus_labels=[5])
    for seed in range(5):
        out = focused.set_random_state(seed)(dict(sample))
        assert (out["T1"] == base[17, 2, 9]).any()  # the labelled voxel is in every stack
    # other labels are not targets; without a hit (or without the key) the stack is drawn as usual
    out = Slices25Dd(NAMES, roi_size=(8, 8), focus_key="label", focus_prob=1.0, focus_labels=[4])
    assert out.set_random_state(0)(dict(sample))["T1"].shape == (1, 3, 8, 8)
    plain = Slices25Dd(NAMES, roi_size=(8, 8)).set_random_state(3)(_volume_sample())
    keyless = Slices25Dd(NAMES, roi_size=(8, 8), focus_key="label", focus_prob=1.0).set_random_state(3)
    torch.testing.assert_close(keyless(_volume_sample())["T1"], plain["T1"])
    # focus_prob 0 keeps the random stream of an unfocused cutter (resumable training stays bitwise the same)
    zero = Slices25Dd(NAMES, roi_size=(8, 8), focus_key="label", focus_prob=0.0).set_random_state(3)(dict(sample))
    torch.testing.assert_close(zero["T1"], plain["T1"])
    with pytest.raises(ValueError, match="focus_prob"):
        Slices25Dd(NAMES, focus_prob=1.5)
    sample["label"] = torch.ones(1, 4, 4, 4)
    with pytest.raises(ValueError, match="label grid"):
        focused.set_random_state(0)(dict(sample))


def test_silence_keeps_at_least_one():
    transform = RandSilenceSequencesd(NAMES, prob=1.0, min_silence=1, max_silence=3).set_random_state(0)
    for _ in range(20):
        out = transform(_volume_sample())
        assert 1 <= len(out["available"]) <= 3
        assert sorted(out["available"]) == sorted(k for k in NAMES if k in out)


def test_collate_mask_and_placeholders():
    slicer = Slices25Dd(NAMES, roi_size=(8, 8), random=False, allow_missing_keys=True)  # samples lack sequences
    batch = availability_collate([slicer(_volume_sample(["T1", "T2"])), slicer(_volume_sample(["T1", "FLAIR"]))], NAMES)
    assert batch[MASK_KEY].tolist() == [[True, False, True, False], [True, False, False, True]]
    assert "T1Gd" not in batch and batch["T2"].shape == (2, 1, 3, 8, 8)
    assert batch["T2"][1].abs().sum() == 0 and batch["FLAIR"][0].abs().sum() == 0
    assert AvailabilityCollate(NAMES)([slicer(_volume_sample())])[MASK_KEY].all()


def _fixed_batch(b=1, size=32):
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx**2 + yy**2) < 0.4).float()
    batch = {}
    for k, name in enumerate(NAMES):  # the same anatomy with a different contrast per sequence
        img = (disc * (0.8 - 0.4 * k) + (1 - disc) * (-0.9 + 0.3 * k)).expand(b, 1, 3, size, size).clone()
        batch[name] = img + 0.02 * torch.randn_like(img)
    batch[MASK_KEY] = torch.ones(b, len(NAMES), dtype=torch.bool)
    return batch


def _trainer(loader, lr=2e-3, **kwargs):
    torch.manual_seed(0)
    g = build_seq2seq("tiny", protocol="brain")
    d = SequenceDiscriminators(2, 3, 4, channels=4, num_layers_d=2)
    return Seq2SeqTrainer(
        "cpu",
        1,
        loader,
        g,
        d,
        torch.optim.Adam(g.parameters(), lr),
        torch.optim.Adam(d.parameters(), lr),
        Seq2SeqLoss(),
        NAMES,
        **kwargs,
    )


def _all_pairs_l1(network, batch):
    network.eval()
    with torch.no_grad():
        return np.mean(
            [(network(batch[s], j) - batch[t]).abs().mean().item() for s in NAMES for j, t in enumerate(NAMES)]
        )


def test_loss_goes_down_on_a_fixed_batch():
    batch = _fixed_batch()
    trainer = _trainer([batch] * 40)
    before = _all_pairs_l1(trainer.generator, batch)
    trainer.run()
    after = _all_pairs_l1(trainer.generator, batch)
    assert trainer.state.iteration == 40
    assert after < 0.6 * before, (before, after)
    out = scalar_output(trainer.state.output)
    assert set(out) == {"g_loss", "d_loss", "rec_l1", "perceptual", "adversarial", "cycle", "d_real", "d_fake"}


def test_pair_sampling_uses_common_sequences_only():
    trainer = _trainer([])
    mask = torch.tensor([[1, 0, 1, 1], [1, 1, 0, 1]], dtype=torch.bool)
    assert trainer.available_sequences(mask) == [0, 3]
    trainer.self_recon_prob = 0.0
    assert all(i != j for i, j in (trainer.sample_pair([0, 3]) for _ in range(20)))
    trainer.self_recon_prob = 1.0
    assert all(i == j for i, j in (trainer.sample_pair([0, 2, 3]) for _ in range(20)))
    trainer.self_recon_prob = None
    pairs = {trainer.sample_pair([1, 2]) for _ in range(60)}
    assert pairs == {(1, 1), (1, 2), (2, 1), (2, 2)}


def test_translation_iteration_updates_both_networks():
    batch = _fixed_batch()
    trainer = _trainer([batch], self_recon_prob=0.0)
    d_before = [p.clone() for p in trainer.discriminator.parameters()]
    trainer.run()
    out = trainer.state.output
    assert out["source"] != out["target"]
    assert out["adversarial"] > 0 and out["cycle"] > 0 and out["d_loss"] > 0
    changed = [not torch.equal(a, b) for a, b in zip(d_before, trainer.discriminator.parameters(), strict=True)]
    assert any(changed)


def test_gradient_accumulation_steps_every_k():
    batch = _fixed_batch()
    trainer = _trainer([batch] * 3, accumulation_steps=2, self_recon_prob=1.0)
    snapshots = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: snapshots.append(next(e.generator.parameters()).detach().clone())
    )
    start = next(trainer.generator.parameters()).detach().clone()
    trainer.run()
    assert torch.equal(snapshots[0], start)  # iteration 1: gradients only accumulated
    assert not torch.equal(snapshots[1], start)  # iteration 2: optimizer step


def test_ema_and_checkpoint_objects():
    batch = _fixed_batch()
    trainer = _trainer([batch] * 2, ema_decay=0.5)
    trainer.run()
    objects = trainer.checkpoint_objects()
    assert {"generator", "discriminator", "g_optimizer", "d_optimizer", "trainer", "rng", "ema"} <= set(objects)
    assert trainer.inference_network() is trainer.ema.module
    assert "g_scaler" not in objects  # no AMP on CPU


def test_rng_state_roundtrip():
    slicer = Slices25Dd(NAMES, roi_size=(4, 4)).set_random_state(1)
    state = RNGState([slicer])
    saved = state.state_dict()
    a = (torch.rand(3), np.random.rand(3), slicer.R.rand())
    state.load_state_dict(saved)
    b = (torch.rand(3), np.random.rand(3), slicer.R.rand())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_evaluator_metrics_per_target():
    batch = _fixed_batch(b=2)
    batch[MASK_KEY][1, 2] = False  # T2 missing in sample 1
    g = build_seq2seq("tiny", protocol="brain")
    key, extra = pair_metrics(NAMES)
    evaluator = Seq2SeqEvaluator("cpu", [batch], g, NAMES, key_val_metric=key, additional_metrics=extra)
    evaluator.run()
    metrics = evaluator.state.metrics
    assert set(metrics) == {"val_psnr", "val_ssim", *(f"val_{m}_{n}" for m in ("psnr", "ssim") for n in NAMES)}
    pairs = evaluator.state.output["pairs"]
    assert len(pairs) == 12 and all(i != j for i, j, _, _ in pairs)
    assert [p.shape[0] for i, j, p, _ in pairs if 2 in (i, j)] == [1] * 6


def test_pair_metric_values():
    x = torch.zeros(2, 1, 3, 16, 16)
    psnr, ssim = PairMetric("psnr"), PairMetric("ssim")
    for m in (psnr, ssim):
        m.reset()
        m.update({"pairs": [(0, 1, x + 0.2, x), (1, 0, x, x)]})
    # PSNR with data range 2 ([-1, 1]): 20 log10(2 / 0.2) = 20 dB for the first pair; the second pair is exact
    assert psnr.compute() == pytest.approx(float("inf")) or np.isinf(psnr.compute())
    target0 = PairMetric("psnr", target=1)
    target0.reset()
    target0.update({"pairs": [(0, 1, x + 0.2, x), (1, 0, x, x)]})
    assert target0.compute() == pytest.approx(20.0, abs=1e-4)
    assert 0 < ssim.compute() <= 1


def test_amp_dtype_checks():
    batch = _fixed_batch()
    with pytest.raises(ValueError, match="needs CUDA"):  # no gradient scaling on a CPU
        _trainer([batch], amp=True, amp_dtype="float16")
    with pytest.raises(ValueError, match="amp_dtype"):
        _trainer([batch], amp_dtype="int8")
    assert not _trainer([batch], amp=False, amp_dtype="float16").use_amp


@pytest.mark.filterwarnings("ignore:.*emulated")
def test_cpu_bf16_amp_trains_and_matches_float32():
    """bf16 autocast on the CPU: the step runs in bf16 (the fake comes out bf16), the loss goes down as in float32,
    and the first iteration's losses agree with float32 within bf16 rounding."""
    batch = _fixed_batch()
    amp = _trainer([batch] * 40, amp=True)
    assert amp.use_amp and amp.g_scaler is None
    first = {}
    amp.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: first.setdefault("amp", scalar_output(e.state.output)) if e.state.iteration == 1 else None,
    )
    before = _all_pairs_l1(amp.generator, batch)
    amp.run()
    assert amp.state.output["pred"].dtype == torch.bfloat16
    assert _all_pairs_l1(amp.generator, batch) < 0.6 * before
    fp32 = _trainer([batch], amp=False)
    fp32.run()
    reference = scalar_output(fp32.state.output)
    for term in ("rec_l1", "cycle"):
        assert first["amp"][term] == pytest.approx(reference[term], rel=0.05), term


def _background(batch, index):
    for name in NAMES:
        batch[name][index] = -1.0  # an all-background crop: constant
    return batch


def test_constant_crops_are_left_out_of_the_step():
    """A constant crop makes InstanceNorm amplify gradients ~300x per layer; it must not reach the optimizer."""
    batch = _background(_fixed_batch(b=2), 1)
    single = {k: v[:1] for k, v in batch.items()}
    mixed = _trainer([batch], self_recon_prob=0.0)
    mixed.run()
    clean = _trainer([single], self_recon_prob=0.0)  # re-seeds: the same weights and the same pair draw
    clean.run()
    assert (mixed.state.output["source"], mixed.state.output["target"]) == (
        clean.state.output["source"],
        clean.state.output["target"],
    )
    assert mixed.state.uninformative_samples == 1 and not hasattr(clean.state, "uninformative_samples")
    for a, b in zip(mixed.generator.parameters(), clean.generator.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the same step as on the informative sample alone
    for a, b in zip(mixed.discriminator.parameters(), clean.discriminator.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_all_constant_batch_gives_zero_gradients():
    trainer = _trainer([_background(_fixed_batch(b=1), 0)], self_recon_prob=0.0)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    grads = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: grads.append(e.state.output["g_loss"]))
    trainer.run()
    assert trainer.state.uninformative_samples == 1 and len(grads) == 1 and torch.isfinite(grads[0])
    for b, a in zip(before, trainer.generator.parameters(), strict=True):
        assert torch.equal(b, a)  # Adam's first step with a zero gradient moves nothing


def test_non_finite_gradients_skip_the_step(caplog):
    batch = _fixed_batch()
    trainer = _trainer([batch, batch], self_recon_prob=0.0)
    first = next(trainer.generator.parameters())
    hook = first.register_hook(lambda g: torch.full_like(g, float("nan")))
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    with caplog.at_level("WARNING"):
        trainer.run()
    hook.remove()
    assert trainer.state.skipped_steps == 2
    assert "non-finite gradients" in caplog.text
    for b, a in zip(before, trainer.generator.parameters(), strict=True):
        assert torch.equal(b, a) and torch.isfinite(a).all()


def test_trainer_state_holds_counters_and_extra_states():
    trainer = _trainer([_background(_fixed_batch(b=1), 0)], self_recon_prob=0.0)
    trainer.run()
    state = trainer.state_dict()
    assert state["iteration"] == 1 and state["uninformative_samples"] == 1 and state["skipped_steps"] == 0
    fresh = _trainer([_fixed_batch()])
    fresh.load_state_dict(state)
    assert fresh.state.iteration == 1 and fresh.state.uninformative_samples == 1
    assert not hasattr(fresh.state, "skipped_steps")  # a zero count stays absent, as in a fresh run
    assert "data" not in fresh.checkpoint_objects()  # a list has no position to save

    class Best:
        def state_dict(self):
            return {"best": 1.0}

        def load_state_dict(self, state):
            pass

    assert _trainer([], extra_state={"best_model": Best()}).checkpoint_objects()["best_model"].state_dict() == {
        "best": 1.0
    }
    with pytest.raises(ValueError, match="trainer's own checkpoint keys"):
        _trainer([], extra_state={"rng": Best()})
