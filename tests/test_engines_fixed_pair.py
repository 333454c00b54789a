"""FixedPairTrainer: the Seq2Seq trainer on one fixed pair, training an unconditioned per-pair model."""

import pytest
import torch
from ignite.engine import Events

from monai_seq2seq.engines import MASK_KEY, FixedPairTrainer
from monai_seq2seq.inference import PairInferer
from monai_seq2seq.losses import Seq2SeqLoss
from monai_seq2seq.networks import PlainEncoderDecoder, SequenceDiscriminators

NAMES = ["T1", "T1Gd", "T2", "FLAIR"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(available=(True, True, True, True), size=16):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx**2 + yy**2) < 0.4).float()
    batch = {n: (disc * (0.9 - 0.35 * k) - 0.3).expand(1, 1, 3, size, size).clone() for k, n in enumerate(NAMES)}
    batch[MASK_KEY] = torch.tensor([available])
    return batch


def _trainer(loader, pair=(0, 2)):
    torch.manual_seed(0)
    g = PlainEncoderDecoder(2, 3, channels=(8, 16), num_res_blocks=1, num_dec_res_blocks=1)
    d = SequenceDiscriminators(2, 3, 4, channels=4, num_layers_d=2)
    return FixedPairTrainer(
        "cpu",
        1,
        loader,
        g,
        d,
        torch.optim.Adam(g.parameters(), 2e-3),
        torch.optim.Adam(d.parameters(), 2e-3),
        Seq2SeqLoss(lambda_cyc=0.0),
        NAMES,
        pair=pair,
        inferer=PairInferer(pair[1]),
    )


def test_every_iteration_trains_the_fixed_pair():
    batch = _batch()
    trainer = _trainer([batch] * 6)
    seen = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: seen.append((e.state.output["source"], e.state.output["target"]))
    )
    before = (trainer.generator(batch["T1"]) - batch["T2"]).abs().mean().item()
    trainer.run()
    after = (trainer.generator(batch["T1"]) - batch["T2"]).abs().mean().item()
    assert seen == [(0, 2)] * 6
    out = trainer.state.output
    # the cycle pass returns the prediction itself (no reverse model) and weighs nothing in the generator loss
    assert float(out["cycle"]) == pytest.approx(float((out["pred"] - batch["T1"]).abs().mean()), rel=1e-5)
    no_cycle = out["rec_l1"] * trainer.loss_function.lambda_r + out["adversarial"] * trainer.loss_function.lambda_adv
    assert float(out["g_loss"]) == pytest.approx(float(no_cycle), rel=1e-5)
    assert float(trainer.state.output["d_loss"]) > 0  # a translation: the discriminator step ran
    assert after < before


def test_sample_pair_draws_nothing_and_refuses_incomplete_batches():
    trainer = _trainer([])
    state = torch.get_rng_state()
    assert trainer.sample_pair([0, 1, 2, 3]) == (0, 2)
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(RuntimeError, match=r"batch lacks pair \(0, 2\) \(available: \[0, 1, 3\]\)"):
        trainer.sample_pair([0, 1, 3])
    with pytest.raises(RuntimeError, match="lacks pair"):
        _trainer([_batch((True, True, False, True))]).run()
