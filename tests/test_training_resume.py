"""Exact resume at any iteration (engine level, CPU): resumed runs see the same batches and pairs, and end with
bitwise the same losses, weights and best model as an uninterrupted run; atomic checkpoints and their pruning."""

import math

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.handlers import ValidationHandler
from monai.transforms import Compose

from monai_seq2seq.engines import (
    AvailabilityCollate,
    BestGeneratorSaver,
    CheckpointError,
    ResumableDataLoader,
    ResumableSampler,
    Seq2SeqEvaluator,
    Seq2SeqTrainer,
    TrainingCheckpointSaver,
    find_latest_checkpoint,
    pair_metrics,
    resolve_resume,
    start_handlers,
)
from monai_seq2seq.engines.checkpoint import prune_checkpoints, read_checkpoint, remove_partial_writes, save_checkpoint
from monai_seq2seq.losses import Seq2SeqLoss
from monai_seq2seq.networks import SequenceDiscriminators, build_seq2seq
from monai_seq2seq.transforms import RandSilenceSequencesd, Slices25Dd

NAMES = ["T1", "T1Gd", "T2", "FLAIR"]
ITERATIONS = 8  # 9 with epochs of a pass (3 batches), 8 with epochs of 2 iterations
SUBJECTS = 5  # batches of 2: 3 per pass, the last one short; 2 (epoch) and 8 are no multiples of 3

pytestmark = pytest.mark.usefixtures("one_thread")


def _subjects(n: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    subjects = []
    for s in range(n):
        base = torch.rand(1, 20, 20, 6, generator=generator)
        available = NAMES if s % 3 else NAMES[:3]  # every third subject lacks FLAIR
        subject = {name: base * (0.5 + 0.3 * k) - 0.4 for k, name in enumerate(NAMES) if name in available}
        subjects.append({**subject, "available": list(available), "subject": f"s{s}"})
    return subjects


def _train_transform() -> Compose:
    return Compose(
        [
            RandSilenceSequencesd(NAMES, prob=0.5, max_silence=1),
            Slices25Dd(NAMES, roi_size=(16, 16), random=True, allow_missing_keys=True),
        ]
    )


def _evaluator(network):
    val = Dataset(_subjects(2, seed=9), Slices25Dd(NAMES, roi_size=(16, 16), random=False, allow_missing_keys=True))
    loader = DataLoader(val, batch_size=1, collate_fn=AvailabilityCollate(NAMES))  # its iterator draws a seed
    key, extra = pair_metrics(NAMES, per_target=False)
    return Seq2SeqEvaluator("cpu", loader, network, NAMES, key_val_metric=key, additional_metrics=extra)


def _run(folder, resume_from=None, epoch_length=None, num_workers=0, iterations=ITERATIONS, save_interval=1):
    """A run as the bundles make it: seeded, networks, a resumable loader, validation every epoch, checkpoints."""
    torch.manual_seed(0)
    dataset = Dataset(_subjects(SUBJECTS, seed=1), _train_transform())
    loader = ResumableDataLoader(
        dataset,
        batch_size=2,
        seed=3,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,  # one pool a run: the test stays fast
        collate_fn=AvailabilityCollate(NAMES),
    )
    generator = build_seq2seq("tiny", protocol="brain")
    discriminator = SequenceDiscriminators(2, 3, 4, channels=4, num_layers_d=2)
    evaluator = _evaluator(generator)
    best = BestGeneratorSaver(str(folder), generator)
    best.attach(evaluator)
    length = epoch_length or len(loader)
    record = {}  # iteration: (source, target, g_loss, d_loss); "metrics": the last validation's
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: record.__setitem__("metrics", dict(e.state.metrics)))
    handlers = [
        *start_handlers(generator, resume_from=resume_from),
        ValidationHandler(validator=evaluator, interval=1, epoch_level=True),
        TrainingCheckpointSaver(str(folder), save_interval=save_interval, n_saved=None, run_info={"size": "tiny"}),
    ]
    trainer = Seq2SeqTrainer(
        "cpu",
        math.ceil(iterations / length),
        loader,
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), 2e-3),
        torch.optim.Adam(discriminator.parameters(), 2e-3),
        Seq2SeqLoss(),
        NAMES,
        epoch_length=length,
        rng_transforms=dataset,
        extra_state={"best_model": best},
        train_handlers=handlers,
    )
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: record.__setitem__(
            e.state.iteration,
            (e.state.output["source"], e.state.output["target"], e.state.output["g_loss"], e.state.output["d_loss"]),
        ),
    )
    trainer.run()
    return trainer, record


def _assert_same_run(straight, resumed, start):
    (trainer_a, record_a), (trainer_b, record_b) = straight, resumed
    assert record_a["metrics"] == record_b["metrics"]
    iterations = [k for k in record_b if k != "metrics"]
    assert sorted(iterations) == list(range(start + 1, len(record_a)))  # len(record_a): its iterations + 1
    for it in iterations:
        a, b = record_a[it], record_b[it]
        assert a[:2] == b[:2], (start, it)
        assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3]), (start, it, a, b)
    for net in ("generator", "discriminator"):
        for (k, x), y in zip(
            getattr(trainer_a, net).state_dict().items(), getattr(trainer_b, net).state_dict().values(), strict=True
        ):
            assert torch.equal(x, y), (start, net, k)
    assert trainer_a.extra_state["best_model"].best == trainer_b.extra_state["best_model"].best


@pytest.mark.parametrize(
    "epoch_length, num_workers",
    [(None, 0), (2, 0), pytest.param(None, 2, marks=pytest.mark.filterwarnings("ignore::DeprecationWarning"))],
    ids=["pass_epochs", "epoch_length_2", "two_workers"],
)
def test_resume_at_every_iteration_is_exact(tmp_path, epoch_length, num_workers):
    straight = _run(tmp_path / "straight", epoch_length=epoch_length, num_workers=num_workers)
    assert len(straight[1]) - 1 == (9 if epoch_length is None else 8)
    for start in range(1, len(straight[1]) - 1):
        folder = tmp_path / f"resume{start}"
        folder.mkdir()
        checkpoint = tmp_path / "straight" / f"checkpoint_iteration={start}.pt"
        (folder / checkpoint.name).write_bytes(checkpoint.read_bytes())
        resumed = _run(
            folder, resume_from=str(folder / checkpoint.name), epoch_length=epoch_length, num_workers=num_workers
        )
        _assert_same_run(straight, resumed, start)
        best_a = torch.load(tmp_path / "straight" / "model_best.pt", weights_only=True)
        best_b = torch.load(folder / "model_best.pt", weights_only=True)
        assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def test_batches_do_not_depend_on_workers(tmp_path):
    """Per-sample seeds: 0 and 2 loader workers make the same batches, so the same run."""
    _, record_0 = _run(tmp_path / "w0", iterations=4, save_interval=0)
    _, record_2 = _run(tmp_path / "w2", iterations=4, num_workers=2, save_interval=0)
    assert record_0["metrics"] == record_2["metrics"]
    assert all(torch.equal(record_0[i][2], record_2[i][2]) for i in range(1, 5))


def test_checkpoints_hold_the_data_position_and_run_info(tmp_path):
    _run(tmp_path, iterations=4, epoch_length=2)
    state = read_checkpoint(tmp_path / "checkpoint_iteration=4.pt")
    assert state["data"] == {"pass": 1, "batches": 1, "samples": SUBJECTS}  # 3 batches in pass 0, 1 in pass 1
    assert state["run"] == {"size": "tiny"} and state["trainer"]["iteration"] == 4
    assert {"generator", "discriminator", "g_optimizer", "d_optimizer", "rng", "best_model"} <= set(state)
    final = read_checkpoint(tmp_path / "checkpoint_final.pt")
    assert final["data"] == state["data"] and final["best_model"]["best"] is not None
    assert find_latest_checkpoint(tmp_path).name in ("checkpoint_iteration=4.pt", "checkpoint_final.pt")


def test_sampler_passes_are_permutations_and_shards():
    sampler = ResumableSampler(range(5), seed=3)
    first, second = [i for i, _ in sampler], [i for i, _ in sampler]
    assert sorted(first) == sorted(second) == list(range(5)) and first != second
    sampler.set_position(0, skip=2)
    assert [i for i, _ in sampler] == first[2:]
    shards = [ResumableSampler(range(5), seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    plans = [s.plan(0) for s in shards]
    assert [len(p[0]) for p in plans] == [3, 3]  # padded to 6
    assert sorted(plans[0][0] + plans[1][0])[:5] == [0, 1, 1, 2, 3] or set(plans[0][0] + plans[1][0]) == set(range(5))
    assert set(plans[0][1]).isdisjoint(plans[1][1])  # every sample of a pass has its own seed


def test_loader_position_restarts_on_another_dataset(caplog):
    loader = ResumableDataLoader(Dataset(list(range(4))), batch_size=2, seed=0)
    loader.load_state_dict({"pass": 3, "batches": 1, "samples": 4})
    assert loader.state_dict() == {"pass": 3, "batches": 1, "samples": 4}
    assert len(list(loader)) == 1 and loader.state_dict()["pass"] == 4
    loader.load_state_dict({"pass": 3, "batches": 2, "samples": 4})  # a finished pass: the next one
    assert loader.state_dict()["pass"] == 4 and loader.state_dict()["batches"] == 0
    with caplog.at_level("WARNING"):
        loader.load_state_dict({"pass": 3, "batches": 1, "samples": 9})
    assert "restarts" in caplog.text and loader.state_dict()["batches"] == 0
    rng = torch.get_rng_state()
    iter(loader).__next__()
    assert torch.equal(rng, torch.get_rng_state())  # starting a pass does not move the training RNG


def test_atomic_save_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint_final.pt", {"trainer": {"iteration": 1}})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"trainer": {"iteration": 2}})
    monkeypatch.undo()
    assert read_checkpoint(path)["trainer"]["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_final.pt"]  # no temporary file left
    (tmp_path / ".checkpoint_iteration=3.pt.abc.pt").write_bytes(b"partial")  # what a kill leaves
    assert [p.name for p in remove_partial_writes(tmp_path)] == [".checkpoint_iteration=3.pt.abc.pt"]


def _fake_checkpoint(path, iteration, **extra):
    state = {k: {} for k in ("generator", "discriminator", "g_optimizer", "d_optimizer", "rng")}
    save_checkpoint(path, {**state, "trainer": {"iteration": iteration}, **extra})


def test_pruning_counts_the_files_of_killed_runs(tmp_path):
    for it in (10, 20, 40):  # 40: a run this one does not continue
        _fake_checkpoint(tmp_path / f"checkpoint_iteration={it}.pt", it)
    _fake_checkpoint(tmp_path / "checkpoint_iteration=30.pt", 30)
    removed = prune_checkpoints(tmp_path, 30, n_saved=2)
    assert sorted(p.name for p in removed) == ["checkpoint_iteration=10.pt", "checkpoint_iteration=40.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_iteration=20.pt", "checkpoint_iteration=30.pt"]


def test_latest_skips_incomplete_checkpoints(tmp_path, caplog):
    _fake_checkpoint(tmp_path / "checkpoint_iteration=10.pt", 10)
    (tmp_path / "checkpoint_iteration=20.pt").write_bytes(b"")  # cut off
    full = (tmp_path / "checkpoint_iteration=10.pt").read_bytes()
    (tmp_path / "checkpoint_iteration=30.pt").write_bytes(full[: len(full) // 2])  # truncated
    save_checkpoint(tmp_path / "checkpoint_iteration=40.pt", {"generator": {}, "trainer": {"iteration": 40}})
    with caplog.at_level("WARNING"):
        assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint_iteration=10.pt"
    for name in ("=20.pt", "=30.pt", "=40.pt"):
        assert name in caplog.text
    assert resolve_resume("latest", tmp_path) == str(tmp_path / "checkpoint_iteration=10.pt")
    assert resolve_resume("auto", tmp_path / "empty") is None  # a first run
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resolve_resume("latest", tmp_path / "empty")
    (tmp_path / "checkpoint_iteration=10.pt").unlink()
    with pytest.raises(CheckpointError, match="none complete"):
        resolve_resume("auto", tmp_path)  # checkpoints there, none usable: not silently a new run


def test_resume_checks_name_the_file_and_what_differs(tmp_path):
    path = tmp_path / "checkpoint_final.pt"
    _fake_checkpoint(path, 10, run={"network_size": "tiny", "protocol": "brain"})
    assert resolve_resume(str(path), tmp_path, run_info={"network_size": "tiny"}) == str(path)
    with pytest.raises(CheckpointError, match="network_size 'tiny', the config asks 'small'") as info:
        resolve_resume(str(path), tmp_path, run_info={"network_size": "small", "protocol": "brain"})
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="no ema state"):
        resolve_resume(str(path), tmp_path, ema=True)
    with pytest.raises(CheckpointError, match="past this run's 5 iterations"):
        resolve_resume(str(path), tmp_path, num_iterations=5)
    with pytest.raises(ValueError, match="not both"):
        resolve_resume(str(path), tmp_path, init_weights="model.pt")
    weights = tmp_path / "model.pt"
    torch.save(build_seq2seq("tiny", protocol="brain").state_dict(), weights)
    with pytest.raises(CheckpointError, match="generator weights only: use --init_weights"):
        resolve_resume(str(weights), tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_resume(str(tmp_path / "absent.pt"), tmp_path)


def test_a_checkpoint_of_an_older_version_still_resumes(tmp_path, caplog):
    """Checkpoints written before the data position and best score were saved: the run resumes (exact only at
    the start of a pass), with a warning."""
    _run(tmp_path / "old", iterations=3, save_interval=3)
    state = read_checkpoint(tmp_path / "old" / "checkpoint_iteration=3.pt")
    for key in ("data", "best_model", "run"):
        del state[key]
    del state["trainer"]["skipped_steps"], state["trainer"]["uninformative_samples"]
    torch.save(state, tmp_path / "old.pt")
    with caplog.at_level("WARNING"):
        trainer, record = _run(tmp_path / "resumed", resume_from=str(tmp_path / "old.pt"), iterations=6)
    assert "no 'data' state" in caplog.text and trainer.state.iteration == 6 and 4 in record
    del state["rng"]
    torch.save(state, tmp_path / "no_rng.pt")
    with pytest.raises(CheckpointError, match="has no rng state for this run"):
        _run(tmp_path / "no_rng", resume_from=str(tmp_path / "no_rng.pt"))
