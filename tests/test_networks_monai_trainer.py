"""Seq2Seq plugs into a stock MONAI SupervisedTrainer: the target code reaches forward() as an extra input."""

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import PrepareBatchExtraInput, SupervisedTrainer

from monai_seq2seq.networks import Seq2Seq


def test_supervised_trainer_with_prepare_batch_extra_input():
    torch.manual_seed(0)
    net = Seq2Seq(
        2,
        1,
        num_sequences=2,
        channels=(4, 8, 8),
        num_res_blocks=1,
        num_hyper_res_blocks=1,
        lstm_layers=1,
        bank_dim=2,
        code_dim=8,
        upsample_mode="nearest",  # the mode this toy's loss threshold was set with
    )
    # toy "translation": target 0 = the image itself, target 1 = its negative
    images = [torch.rand(1, 16, 16) * 2 - 1 for _ in range(4)]
    data = [{"image": im, "label": im if t == 0 else -im, "target": t} for im in images for t in (0, 1)]
    loader = DataLoader(Dataset(data), batch_size=8, shuffle=False)
    losses = []

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=30,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-2),
        loss_function=torch.nn.L1Loss(),
        prepare_batch=PrepareBatchExtraInput(extra_keys="target"),
        decollate=False,
    )
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda engine: losses.append(engine.state.output["loss"].item())
    )
    trainer.run()
    assert len(losses) == 30
    assert losses[-1] < 0.75 * losses[0], losses
    net.eval()
    with torch.no_grad():
        batch = next(iter(loader))
        pred = net(batch["image"], batch["target"])
    assert pred.shape == batch["label"].shape
    # the per-sample targets really select different outputs: image vs its negative
    err_right = (pred - batch["label"]).abs().mean()
    swapped = torch.where(batch["target"].view(-1, 1, 1, 1) == 0, -batch["image"], batch["image"])
    err_swapped = (pred - swapped).abs().mean()
    assert err_right < err_swapped
