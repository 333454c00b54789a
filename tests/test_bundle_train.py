"""train.json / multi_gpu_train.json of both bundles through MONAI's ConfigWorkflow and torchrun (model-zoo style)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from torchvision.models import vgg

from monai_seq2seq.networks import build_seq2seq
from monai_seq2seq.zoo.configs import config_files

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
TINY = {
    "network_size": "tiny",
    "num_subjects": 2,
    "num_val_subjects": 1,
    "cache_rate": 0.0,
    "discriminator_channels": 4,
    "discriminator_layers": 2,
    "num_iterations": 4,
    "iterations_per_epoch": 2,
}
GEOMETRY = {
    "seq2seq_brain": {"phantom_spacing": 4.0, "roi_size": [32, 32]},
    "seq2seq_breast": {"phantom_shape": [40, 24, 16], "phantom_spacing": 8.0, "roi_size": [32, 24]},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _workflow(bundle: str, out: Path, **overrides) -> ConfigWorkflow:
    root = BUNDLES / bundle
    workflow = ConfigWorkflow(
        config_file=str(root / "configs" / "train.json"),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=None,
        workflow_type="train",
        bundle_root=str(root),
        output_dir=str(out),
        **{**TINY, **GEOMETRY[bundle], **overrides},
    )
    workflow.initialize()
    return workflow


def _record(workflow: ConfigWorkflow) -> dict:
    losses = {}
    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.__setitem__(e.state.iteration, dict(e.state.output))
    )
    return losses


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_train_config_runs_and_saves(tmp_path, bundle):
    workflow = _workflow(bundle, tmp_path)
    workflow.check_properties()
    workflow.run()
    workflow.finalize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 4
    models = tmp_path / "models"
    assert {"model.pt", "checkpoint_final.pt", "model_best.pt"} <= {p.name for p in models.iterdir()}
    protocol = "brain" if "brain" in bundle else "breast"
    net = build_seq2seq("tiny", protocol=protocol)
    net.load_state_dict(torch.load(models / "model.pt", weights_only=True))  # a bare generator state dict
    checkpoint = torch.load(models / "checkpoint_final.pt", weights_only=True)
    assert {"generator", "discriminator", "g_optimizer", "d_optimizer", "trainer", "rng"} <= set(checkpoint)
    assert any((tmp_path / "logs").iterdir())  # TensorBoard events
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert {"val_psnr", "val_ssim", "val_psnr_T1", "val_ssim_T2"} <= set(metrics)


class _Killed(Exception):
    pass


def _kill_after_epoch(workflow: ConfigWorkflow, iteration: int) -> None:
    """Stop the run like a kill once the epoch that ends at ``iteration`` is complete (validated, checkpointed)."""

    def kill(engine):
        if engine.state.iteration == iteration:
            raise _Killed

    workflow.parser.get_parsed_content("train#trainer").add_event_handler(Events.EPOCH_COMPLETED, kill)


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_resume_is_exact(tmp_path):
    """Killed in the middle of a pass (3 subjects) at an epoch end (epochs of 2), resumed with `latest`: the same
    pairs, losses, weights and best model as the uninterrupted run, and the killed run's checkpoint pruned."""
    short = {"num_subjects": 3, "num_iterations": 6, "save_interval": 2}
    straight = _workflow("seq2seq_brain", tmp_path / "straight", **short)
    expected = _record(straight)
    straight.run()
    first = _workflow("seq2seq_brain", tmp_path / "resume", **short)
    _kill_after_epoch(first, 4)
    with pytest.raises(Exception) as info:
        first.run()
    assert _chain(info.value, _Killed) is not None
    models = tmp_path / "resume" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_iteration=4.pt", "model_best.pt"]
    resumed = _workflow("seq2seq_brain", tmp_path / "resume", resume_from="latest", **short)
    got = _record(resumed)
    resumed.run()
    resumed.finalize()
    assert sorted(got) == [5, 6]
    for it in (5, 6):
        assert (got[it]["source"], got[it]["target"]) == (expected[it]["source"], expected[it]["target"])
        assert torch.equal(got[it]["g_loss"], expected[it]["g_loss"])
        assert torch.equal(got[it]["d_loss"], expected[it]["d_loss"])
    assert sorted(p.name for p in models.iterdir()) == [
        "checkpoint_final.pt",
        "checkpoint_iteration=6.pt",  # n_saved 1: the killed run's iteration-4 file removed after it
        "model.pt",
        "model_best.pt",
    ]
    for name in ("model.pt", "model_best.pt"):
        a, b = _weights(tmp_path / "straight" / "models" / name), _weights(models / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def _cli_flags(**overrides) -> list[str]:
    flags = []
    for key, value in {**TINY, **GEOMETRY["seq2seq_brain"], **overrides}.items():
        flags += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return flags


def test_bad_checkpoints_stop_before_the_data_with_one_line(tmp_path, capsys, monkeypatch):
    """`seq2seq train --resume_from X`: a truncated, empty or incomplete file, or one of other settings, stops the
    command before the data are set up (the phantom is never built) with one line naming the file and what differs,
    exit status 1 and no output folder left behind."""
    from monai_seq2seq.cli import main

    first = _workflow("seq2seq_brain", tmp_path / "run", num_iterations=2)
    first.run()
    first.finalize()
    good = tmp_path / "run" / "models" / "checkpoint_final.pt"
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.pt").write_bytes(b"")
    state = torch.load(good, weights_only=True)
    torch.save({k: v for k, v in state.items() if "optimizer" not in k}, tmp_path / "no_optimizer.pt")
    torch.save({k: v for k, v in state.items() if k != "trainer"}, tmp_path / "no_trainer.pt")
    cases = [
        (tmp_path / "truncated.pt", {}, "is truncated or not a PyTorch checkpoint"),
        (tmp_path / "empty.pt", {}, "is empty (0 bytes)"),
        (tmp_path / "no_optimizer.pt", {}, "has no g_optimizer/d_optimizer state"),
        (tmp_path / "no_trainer.pt", {}, "has no trainer state"),
        (good, {"network_size": "small"}, "holds network_size 'tiny', the config asks 'small'"),
        (good, {"network_variant": "A"}, "holds network_variant 'C', the config asks 'A'"),
        (good, {"protocol": "breast"}, "holds protocol 'brain', the config asks 'breast'"),
        (tmp_path / "run" / "models" / "model.pt", {}, "generator weights only: use --init_weights"),
    ]
    import monai_seq2seq.phantoms

    def no_data(*args, **kwargs):
        raise AssertionError("the data were set up before the checkpoint was checked")

    monkeypatch.setattr(monai_seq2seq.phantoms.BrainPhantomCohort, "__init__", no_data)
    monkeypatch.setattr(monai_seq2seq.phantoms.BreastPhantomCohort, "__init__", no_data)
    out = tmp_path / "out"
    for path, overrides, message in cases:
        argv = ["train", "--bundle", str(BUNDLES / "seq2seq_brain"), "--out", str(out), *_cli_flags(**overrides)]
        with pytest.raises(SystemExit) as info:
            main([*argv, "--resume_from", str(path)])
        assert info.value.code == 1
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith(f"seq2seq train: error: checkpoint {path} "), last
        assert message in last, last
        assert not out.exists()  # no empty models/ or logs/ folder
    with pytest.raises(SystemExit):
        main(["train", "--bundle", str(BUNDLES / "seq2seq_brain"), "--out", str(out), "--resume_from", "latest"])
    assert "holds no checkpoint" in capsys.readouterr().err and not out.exists()


def _chain(error: BaseException, kind: type) -> BaseException | None:
    """The first ``kind`` in an exception chain (MONAI wraps the errors of config expressions)."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error


def _weights_at_start(workflow: ConfigWorkflow) -> dict:
    seen = {}
    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(
        Events.STARTED,
        lambda e: seen.update(
            {k: v.detach().clone() for k, v in workflow.parser.get_parsed_content("network").state_dict().items()}
        ),
    )
    return seen


def test_fine_tune_from_the_shipped_weights(tmp_path):
    root = BUNDLES / "seq2seq_brain"
    workflow = _workflow(
        "seq2seq_brain",
        tmp_path,
        network_size="small",
        num_iterations=1,
        iterations_per_epoch=1,
        val_interval=10,
        init_weights=str(root / "models" / "model.pt"),
    )  # hash: large_files.yml
    seen = _weights_at_start(workflow)
    workflow.run()
    shipped = torch.load(root / "models" / "model.pt", weights_only=True)
    assert seen and all(torch.equal(seen[k], shipped[k]) for k in shipped)


def test_init_weights_are_checked_and_exclusive(tmp_path):
    from monai_seq2seq.zoo import IntegrityError, sha256_file

    first = _workflow("seq2seq_brain", tmp_path / "first", num_iterations=2)
    first.run()
    first.finalize()
    weights = tmp_path / "first" / "models" / "model.pt"
    tuned = _workflow(
        "seq2seq_brain",
        tmp_path / "tuned",
        num_iterations=2,
        init_weights=str(weights),
        init_weights_sha256=sha256_file(weights),
    )
    seen = _weights_at_start(tuned)
    tuned.run()
    state = torch.load(weights, weights_only=True)
    assert all(torch.equal(seen[k], state[k]) for k in state)
    assert tuned.parser.get_parsed_content("train#trainer").state.iteration == 2  # a new run: counts from 0

    with pytest.raises(Exception) as info:  # a file the bundle does not record, and no hash given
        _workflow("seq2seq_brain", tmp_path / "unchecked", init_weights=str(weights)).run()
    assert "sha256" in str(_chain(info.value, IntegrityError))
    with pytest.raises(Exception) as info:
        _workflow("seq2seq_brain", tmp_path / "wrong", init_weights=str(weights), init_weights_sha256="0" * 64).run()
    assert _chain(info.value, IntegrityError) is not None
    with pytest.raises(Exception) as info:
        _workflow(
            "seq2seq_brain",
            tmp_path / "both",
            init_weights=str(weights),
            init_weights_sha256="0" * 64,
            resume_from=str(tmp_path / "first" / "models" / "checkpoint_final.pt"),
        ).run()
    assert "not both" in str(_chain(info.value, ValueError))


def _write_vgg(path: Path) -> Path:
    torch.save(vgg.make_layers(vgg.cfgs["E"]).state_dict(), path)
    return path


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_perceptual_switch(tmp_path):
    collect = _Collect()
    logger = logging.getLogger("monai_seq2seq")
    logger.addHandler(collect)  # the bundle's logging.conf replaces the root handlers (and pytest's caplog)
    try:
        off = _workflow("seq2seq_brain", tmp_path / "off", num_iterations=1, iterations_per_epoch=1)
        off.parser.get_parsed_content("losses")
        on = _workflow(
            "seq2seq_brain",
            tmp_path / "on",
            num_iterations=1,
            iterations_per_epoch=1,
            perceptual_weights=str(_write_vgg(tmp_path / "vgg.pth")),
            val_interval=10,
        )
        on.run()
    finally:
        logger.removeHandler(collect)
    assert any("perceptual loss OFF" in m for m in collect.messages)
    assert any("perceptual loss ON" in m for m in collect.messages)

    assert float(on.parser.get_parsed_content("train#trainer").state.output["perceptual"]) > 0
    missing = tmp_path / "absent" / "vgg19.pth"
    with pytest.raises(Exception) as info:  # MONAI wraps the error of a config expression; find ours in the chain
        _workflow("seq2seq_brain", tmp_path / "missing", perceptual_weights=str(missing)).run()
    error = info.value
    while error is not None and not isinstance(error, FileNotFoundError):
        error = error.__cause__ or error.__context__
    assert error is not None and str(missing) in str(error)


def test_torchrun_two_ranks_agree(tmp_path):
    bundle = BUNDLES / "seq2seq_brain"
    extra = tmp_path / "dump.json"
    extra.write_text(
        json.dumps(
            {
                "finalize": [
                    "$torch.save(@network.module.state_dict(), @output_dir + '/rank' + str(dist.get_rank()) + '.pt')",
                    "$dist.destroy_process_group()",
                ]
            }
        )
    )
    configs = [*config_files(bundle, "multi_gpu_train"), str(extra)]  # train.json, multi_gpu_train.json, extra
    args = {
        **TINY,
        **GEOMETRY["seq2seq_brain"],
        "num_subjects": 4,
        "num_val_subjects": 2,
        "output_dir": str(tmp_path),
        "bundle_root": str(bundle),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(configs),
    ]
    for key, value in args.items():
        cmd += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=bundle, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6)
    shipped = build_seq2seq("tiny", protocol="brain")
    shipped.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))  # no "module." prefix
    start = build_seq2seq("tiny", protocol="brain").state_dict()
    assert any(not torch.equal(start[k], rank0[k]) for k in rank0)  # trained, not just equal at init


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_train_on_a_datalist(tmp_path, bundle):
    """The documented real-data override: a datalist of NIfTI files on disk (phantoms written in our layouts)."""
    from monai_seq2seq.phantoms import BrainPhantomCohort, BreastPhantomCohort, write_cohort

    if "brain" in bundle:
        cohort = BrainPhantomCohort(2, seed=7, spacing=4.0)
    else:
        cohort = BreastPhantomCohort(2, seed=7, shape=(40, 24, 16), spacing=8.0)
    datalist = write_cohort(cohort, tmp_path / "data", progress=False, val_fraction=0.5)
    workflow = _workflow(bundle, tmp_path / "out", datalist=str(datalist), save_interval=2)
    workflow.run()
    workflow.finalize()
    names = {p.name for p in (tmp_path / "out" / "models").iterdir()}
    assert {"model.pt", "checkpoint_final.pt"} <= names and "checkpoint_iteration=4.pt" in names, names
    assert len(workflow.parser.get_parsed_content("train#dataset")) == 1
    assert workflow.parser.get_parsed_content("validate#evaluator").state.metrics["val_psnr"] > 0
