"""Sharded cohorts without torchrun: the split, the records and their merge, the subject named on failure, the
analysis records the cohort is rebuilt from, and the multi_gpu_* configs in one process (issue 26)."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from monai.data import DistributedSampler

from monai_seq2seq.analysis import DifferentiationWriter, MetricsTableWriter, SubjectAnalysis, cohort_ranking
from monai_seq2seq.analysis.sharding import ShardedCohort, SubjectFiles, analysis_from_record, analysis_record
from monai_seq2seq.core import get_protocol
from monai_seq2seq.engines.distributed import (
    ShardedRun,
    SubjectFailedError,
    SubjectRecords,
    SubjectShard,
    dataset_subject_ids,
    merge_records,
    shard_indices,
)
from monai_seq2seq.transforms.trained_on import TRAINED_ON_KEY
from monai_seq2seq.zoo.configs import config_files

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
BUNDLE = BUNDLES / "seq2seq_brain"


def run_config(config: str, out: Path, **overrides) -> None:
    """One process, as ``monai.bundle run`` runs ``config`` (its base configs first)."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=config_files(BUNDLE, config),
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=None,
        workflow_type="inference",
        bundle_root=str(BUNDLE),
        output_dir=str(out),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()


@pytest.mark.parametrize("size,world", [(5, 2), (7, 3), (2, 4), (0, 2), (6, 1)])
def test_shards_cover_every_item_once_as_monais_sampler_does(size, world):
    items = list(range(10, 10 + size))
    shards = [shard_indices(items, rank, world) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == items  # none twice, none left out
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    for rank, shard in enumerate(shards):
        if size >= world:  # MONAI's sampler refuses fewer items than ranks
            sampler = DistributedSampler(items, even_divisible=False, num_replicas=world, rank=rank, shuffle=False)
            assert shard == [items[i] for i in sampler]
    with pytest.raises(ValueError, match="rank 2 is not in"):
        shard_indices(items, 2, 2)


def test_subject_ids_of_cohorts_and_datalists():
    from monai_seq2seq.phantoms import BrainPhantomCohort

    cohort = BrainPhantomCohort(1, seed=3, spacing=8.0)
    assert dataset_subject_ids(cohort) == [cohort[0]["subject"]]
    assert dataset_subject_ids([{"subject": "a"}, {"T1": "x.nii.gz"}]) == ["a", "subject_2"]
    with pytest.raises(ValueError, match=r"\['a'\] occur more than once"):
        dataset_subject_ids([{"subject": "a"}, {"subject": "a"}])


def test_shard_skips_recorded_subjects_and_splits_the_rest(tmp_path):
    records = SubjectRecords(tmp_path / "subject_records")
    data = [{"subject": f"s{i}", "value": i} for i in range(5)]
    records.write("s1", {"rank": 0})
    records.write("s3", {"rank": 1})
    (records.folder / "broken.json").write_text("{not json")  # a torn record counts as not done
    shards = [SubjectShard(data, records, skip_existing=True, rank=r, world_size=2) for r in range(2)]
    assert shards[0].skipped == shards[1].skipped == [1, 3]
    assert shards[0].indices == [0, 4] and shards[1].indices == [2]
    assert [shards[0][k]["value"] for k in range(len(shards[0]))] == [0, 4]
    everything = SubjectShard(data, records, skip_existing=False, rank=0, world_size=1)
    assert everything.indices == [0, 1, 2, 3, 4] and everything.skipped == []
    assert records.read("s3") == {"rank": 1, "subject": "s3"}
    with pytest.raises(FileNotFoundError, match="s4.json does not exist"):
        records.read("s4")
    with pytest.raises(ValueError, match="cannot name a record file"):
        records.path("../s4")


def test_a_subject_that_fails_to_load_is_named_with_its_rank(tmp_path):
    class Failing(list):
        def __getitem__(self, index):
            if index == 2:
                raise OSError("truncated file s2_T1.nii.gz")
            return super().__getitem__(index)

    data = Failing([{"subject": f"s{i}"} for i in range(3)])
    shard = SubjectShard(data, SubjectRecords(tmp_path), rank=0, world_size=2)
    assert shard[0]["subject"] == "s0"
    with pytest.raises(SubjectFailedError, match=r"rank 0: subject 's2' \(item 2 of the data\).*truncated.*"):
        shard[1]


def test_merge_puts_records_in_data_order_and_refuses_duplicates_and_gaps():
    ids = ["a", "b", "c", "d", "e"]
    rank0 = [("a", {"subject": "a", "v": 0}), ("e", {"subject": "e", "v": 4})]
    rank1 = [("d", {"subject": "d", "v": 3})]
    before = {"b": {"subject": "b", "v": 1}, "c": {"subject": "c", "v": 2}}
    assert [r["v"] for r in merge_records([rank0, rank1], ids, before)] == [0, 1, 2, 3, 4]
    with pytest.raises(SubjectFailedError, match=r"done twice \['d'\], not done \[\]"):
        merge_records([rank0, rank1, [("d", {})]], ids, before)
    with pytest.raises(SubjectFailedError, match=r"done twice \['b'\]"):
        merge_records([rank0, rank1, [("b", {})]], ids, before)
    with pytest.raises(SubjectFailedError, match=r"not done \['b', 'c'\]"):
        merge_records([rank0, rank1], ids)


def _engine(batch=None, output=None, analyses=None):
    return SimpleNamespace(state=SimpleNamespace(batch=batch, output=output, analyses=analyses))


def test_recorder_names_the_subject_being_done_when_the_iteration_fails(tmp_path):
    run = ShardedRun(SubjectShard([{"subject": "x"}], SubjectRecords(tmp_path), rank=0, world_size=1))
    engine = _engine(batch=[{"subject": "x"}])
    run._started(engine)
    with pytest.raises(SubjectFailedError, match=r"rank 0: subject\(s\) \['x'\] failed: RuntimeError: boom") as info:
        run._failed(engine, RuntimeError("boom"))
    assert isinstance(info.value.__cause__, RuntimeError)
    named = SubjectFailedError("rank 1: subject 'y' failed")
    with pytest.raises(SubjectFailedError) as again:  # ignite hands the error over twice: not wrapped twice
        run._failed(engine, named)
    assert again.value is named
    run._completed(_engine(output=[{"subject": "x", "synthetic": {"T1Gd": None}}]))
    assert json.loads((tmp_path / "x.json").read_text()) == {"subject": "x", "rank": 0, "synthetic": ["T1Gd"]}
    assert run.finish() == [{"subject": "x", "rank": 0, "synthetic": ["T1Gd"]}]


def _analysis(subject, psnr, warnings=None):
    metrics = {
        (s, t): {"psnr": psnr + i + 0.1 * j, "ssim": 0.5 + 0.01 * i, "ssim_tumour": math.nan}
        for i, s in enumerate(["T1", "T2", "FLAIR"])
        for j, t in enumerate(["T1", "T2", "FLAIR"])
    }
    analysis = SubjectAnalysis(subject, ["T1", "T2", "FLAIR"], {}, {}, metrics)
    analysis.reference = {} if warnings is None else {TRAINED_ON_KEY: warnings}
    return analysis


def test_analysis_records_give_back_the_same_cohort_ranking():
    analyses = [_analysis("a", 20.123456789), _analysis("b", 23.3, ["spacing 4 mm"]), _analysis("c", 1 / 3, [])]
    records = [json.loads(json.dumps({"subject": a.subject, **analysis_record(a)})) for a in analyses]
    rebuilt = [analysis_from_record(r) for r in records]
    assert records[0]["metrics"][0][2]["ssim_tumour"] is None  # NaN stored as null
    assert math.isnan(rebuilt[0].metrics[("T1", "T1")]["ssim_tumour"])
    assert [r.reference for r in rebuilt] == [{}, {TRAINED_ON_KEY: ["spacing 4 mm"]}, {TRAINED_ON_KEY: []}]
    names = ["T1", "T1Gd", "T2", "FLAIR"]
    assert cohort_ranking(rebuilt, names).to_json() == cohort_ranking(analyses, names).to_json()


def test_cohort_handlers_split_into_per_subject_parts_and_rank_0_outputs(tmp_path):
    writer = DifferentiationWriter(tmp_path, get_protocol("brain"))
    table = MetricsTableWriter(tmp_path)
    other = object()
    shard = SubjectShard([{"subject": "a"}], SubjectRecords(tmp_path / "records"), rank=0, world_size=1)
    run = ShardedCohort(shard, [other, writer, table])
    handlers = run.per_subject_handlers()
    assert handlers[0] is other and isinstance(handlers[1], SubjectFiles) and handlers[1].writer is writer
    assert handlers[2:] == [run]  # the metrics table is cohort only: rank 0 writes it from every record
    engine = _engine(output=[_analysis("a", 20.0)], analyses=["kept until recorded"])
    run._completed(engine)
    assert engine.state.analyses == []  # recorded analyses are not kept: the cohort comes from the records


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
@pytest.mark.parametrize("config", ["inference", "differentiation", "evaluate"])
def test_multi_gpu_configs_are_layered_on_their_single_device_config(bundle, config):
    files = config_files(BUNDLES / bundle, f"multi_gpu_{config}")
    assert [Path(f).name for f in files] == [
        "inference.json",
        *([] if config == "inference" else [f"{config}.json"]),
        f"multi_gpu_{config}.json",
    ]


@pytest.mark.usefixtures("one_thread")
def test_multi_gpu_evaluate_in_one_process_equals_evaluate_and_skips_what_is_done(tmp_path):
    """Without torchrun the sharded config is one rank with every subject; a rerun with skip_existing does nothing
    and writes the same cohort outputs from the records."""
    tiny = {
        "num_subjects": 1,
        "phantom_spacing": 8.0,
        "load_weights": False,
        "network_def#name": "tiny",
        "evaluator#use_lpips": False,
    }
    run_config("evaluate", tmp_path / "one", **tiny)
    run_config("multi_gpu_evaluate", tmp_path / "sharded", **tiny)
    record = tmp_path / "sharded" / "subject_records" / "BraTS2021_00000.json"
    stamp = record.stat().st_mtime_ns
    for name in ("metrics.json", "metrics.csv", "metrics.md"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
    (tmp_path / "sharded" / "metrics.json").unlink()
    run_config("multi_gpu_evaluate", tmp_path / "sharded", skip_existing=True, **tiny)
    assert record.stat().st_mtime_ns == stamp  # not analysed again
    assert (tmp_path / "one" / "metrics.json").read_bytes() == (tmp_path / "sharded" / "metrics.json").read_bytes()


def test_bench_cohort_reads_the_slowest_rank_and_computes_efficiency():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cohort.py"
    spec = importlib.util.spec_from_file_location("bench_cohort", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    log = (
        "[rank0] ... Engine run finished. Time taken: 00:00:12.500\n"
        "[rank1] ... Engine run finished. Time taken: 00:01:02.250\n"
    )
    assert bench.engine_seconds(log) == 62.25 and bench.engine_seconds("nothing") is None
    lines = bench.summarise(
        [
            {"processes": 1, "wall_s": 100.0, "engine_s": 80.0, "subjects": 8},
            {"processes": 2, "wall_s": 62.5, "engine_s": None, "subjects": 8},
        ]
    )
    assert lines[2] == "| 1 | 100.0 | 0.080 | 100% | 80.0 | 0.100 | 100% |"
    assert lines[3] == "| 2 | 62.5 | 0.128 | 80% | n/a | n/a | n/a |"
