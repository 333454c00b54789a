"""Every analysis config of every bundle runs through MONAI's ConfigWorkflow (model-zoo style, tiny overrides); the
composed configs (override files on ``inference.json``) resolve to the pipelines the copied files used to define."""

import json
from pathlib import Path

import nibabel as nib
import pytest
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.transforms import DeleteItemsd, LoadImaged

from monai_seq2seq.transforms import CheckTrainedOnd, DeriveMissingd, MatchGridd, PercentileScaleIntensityd
from monai_seq2seq.zoo.configs import BASE_CONFIGS, config_files

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
TINY = {
    "num_subjects": 1,
    "phantom_spacing": 4.0,
    "load_weights": False,
    "network_def#name": "tiny",
    "synthesizer#batch_size": 8,
}


def _run(bundle: str, config: str, out: Path, **extra):
    root = BUNDLES / bundle
    if "breast" in bundle:
        extra = {"phantom_shape": [80, 48, 32], **extra}
    workflow = ConfigWorkflow(
        config_file=config_files(root, config),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=None,
        workflow_type="inference",
        bundle_root=str(root),
        output_dir=str(out),
        **{**TINY, **extra},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.mark.parametrize(
    "bundle,dropped",
    [("seq2seq_brain", ["T1Gd"]), ("seq2seq_breast", ["DCE", "WashIn", "WashOut"])],  # DCE takes its maps along
)
def test_inference_config(tmp_path, bundle, dropped):
    _run(bundle, "inference", tmp_path)
    files = sorted(tmp_path.rglob("*_synthetic.nii.gz"))
    assert sorted(f.name.split("_")[-2] for f in files) == sorted(dropped)
    image = nib.load(files[0])
    assert image.shape[-1] == (6 if files[0].name.endswith("_DCE_synthetic.nii.gz") else image.shape[-1])
    assert b"SYNTHETIC" in image.header["descrip"].tobytes()


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_differentiation_config(tmp_path, bundle):
    _run(bundle, "differentiation", tmp_path)
    ranking = json.loads((tmp_path / "ranking.json").read_text())
    protocol = json.loads((BUNDLES / bundle / "configs" / "metadata.json").read_text())["name"]
    assert protocol == bundle and len(ranking["table"]) == (4 if "brain" in bundle else 8)
    assert (tmp_path / "adjacency.png").stat().st_size > 1000 and (tmp_path / "ranks.png").exists()
    assert len(list(tmp_path.rglob("*_diffmap.nii.gz"))) == len(ranking["table"])


@pytest.mark.parametrize("bundle", ["seq2seq_brain"])
def test_evaluate_config(tmp_path, bundle):
    _run(bundle, "evaluate", tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "| T1 -> T1Gd |" in (tmp_path / "metrics.md").read_text()
    assert {"psnr", "ssim", "ssim_tumour", "ssim_outside", "psnr_identity"} <= set(metrics["pairs"]["T1->T1Gd"])


def test_datalist_override_reads_real_files(tmp_path):
    """A datalist of files on disk (here: a phantom written in the BraTS layout) replaces the embedded cohort."""
    from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort

    datalist = write_cohort(
        BrainPhantomCohort(1, seed=5, spacing=4.0), tmp_path / "brats", progress=False, test_fraction=1.0
    )
    # on a datalist nothing is deleted unless asked (issue 19): ask for T1Gd to be dropped and made again
    testing = {"datalist": str(datalist), "datalist_split": "testing"}
    _run("seq2seq_brain", "inference", tmp_path / "out", drop=["T1Gd"], **testing)
    assert len(list((tmp_path / "out").rglob("*_T1Gd_synthetic.nii.gz"))) == 1


def test_own_weights_load_with_their_sha256_only(tmp_path):
    """Weights from outside the bundle (e.g. a model you trained) load when their sha256 is given, not without."""
    import torch

    from monai_seq2seq.networks import build_seq2seq
    from monai_seq2seq.zoo import IntegrityError, sha256_file

    torch.manual_seed(1)
    weights = tmp_path / "mine.pt"
    torch.save(build_seq2seq("tiny", protocol="brain").state_dict(), weights)
    _run(
        "seq2seq_brain",
        "inference",
        tmp_path / "ok",
        load_weights=True,
        weights=str(weights),
        weights_sha256=sha256_file(weights),
    )
    assert list((tmp_path / "ok").rglob("*_synthetic.nii.gz"))
    with pytest.raises(Exception) as info:
        _run("seq2seq_brain", "inference", tmp_path / "refused", load_weights=True, weights=str(weights))
    error = info.value
    while error is not None and not isinstance(error, IntegrityError):
        error = error.__cause__ or error.__context__
    assert error is not None and "--weights_sha256" in str(error)
    assert not list((tmp_path / "refused").rglob("*_synthetic.nii.gz"))


def _parser(bundle: str, config: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(config_files(BUNDLES / bundle, config))
    parser.update({"bundle_root": str(BUNDLES / bundle), **overrides})
    return parser


def _flat(value, prefix=""):
    """Config ids (``a#b#0``) -> leaf values, for comparing configs id by id."""
    if isinstance(value, dict) and value:
        items = value.items()
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(_flat(item, f"{prefix}#{key}" if prefix else str(key)))
    return flat


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
@pytest.mark.parametrize(
    "config,evaluator,handlers,folder",
    [
        # issue 23: the DICOM writers are listed too; output_format (default nifti) disables them
        (
            "inference",
            "SynthesisEvaluator",
            ["ProgressBar", "SyntheticImageWriter", "SyntheticDicomWriter"],
            "synthesis",
        ),
        (
            "differentiation",
            "DifferentiationEvaluator",
            ["ProgressBar", "DifferentiationWriter", "DifferentiationDicomWriter", "MetricsTableWriter"],
            "differentiation",
        ),
        ("evaluate", "DifferentiationEvaluator", ["ProgressBar", "MetricsTableWriter"], "evaluation"),
    ],
)
def test_composed_configs_resolve_to_their_pipelines(bundle, config, evaluator, handlers, folder):
    """What each config built when it was a full copy: its evaluator, handlers (in order) and output folder, and the
    preprocessing: analysis configs drop no sequence, inference drops one; a datalist adds the reader first."""
    parser = _parser(bundle, config)
    assert parser["evaluator"]["_target_"].rsplit(".", 1)[-1] == evaluator
    assert [h["_target_"].rsplit(".", 1)[-1] for h in parser["handlers"]] == handlers
    assert parser.get_parsed_content("output_dir") == f"{BUNDLES / bundle}/eval/{folder}"
    steps = [type(t) for t in parser.get_parsed_content("preprocessing").transforms]
    dropped = [DeleteItemsd] if config == "inference" else []
    # issue 19: every subject is compared with what the weights were trained on, its derived maps computed (WashIn/
    # WashOut from a DCE), then put on one grid
    assert steps == dropped + [CheckTrainedOnd, DeriveMissingd, MatchGridd, PercentileScaleIntensityd]
    parser = _parser(bundle, config, datalist="datalist.json")
    steps = [type(t) for t in parser.get_parsed_content("preprocessing").transforms]
    # issue 19: on a datalist nothing a subject has is deleted unless --drop asks (tests/test_cli.py)
    assert steps[0] is LoadImaged and steps[-1] is PercentileScaleIntensityd and DeleteItemsd not in steps


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_inference_drops_nothing_on_request(bundle):
    """``--drop "[]"`` (synthesise only what a datalist lacks) leaves the reader and the normalisation alone."""
    parser = _parser(bundle, "inference", drop=[])
    steps = [type(t) for t in parser.get_parsed_content("preprocessing").transforms]
    assert steps == [CheckTrainedOnd, DeriveMissingd, MatchGridd, PercentileScaleIntensityd]
    parser = _parser(bundle, "inference", drop=[], derive=False)
    steps = [type(t) for t in parser.get_parsed_content("preprocessing").transforms]
    assert steps == [CheckTrainedOnd, MatchGridd, PercentileScaleIntensityd]


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
@pytest.mark.parametrize("config", sorted(BASE_CONFIGS))
def test_override_files_repeat_nothing_of_their_base(bundle, config):
    """An override file holds only ids whose value differs from its base (a component it replaces is whole)."""
    configs = BUNDLES / bundle / "configs"
    base = ConfigParser(json.loads((configs / f"{BASE_CONFIGS[config]}.json").read_text()))
    override = json.loads((configs / f"{config}.json").read_text())
    repeated = [key for key, value in override.items() if key in base and base[key] == value]
    assert override and not repeated, f"{config}.json repeats {repeated} of {BASE_CONFIGS[config]}.json: leave them out"


# the ids where a brain and a breast config may differ: the protocol and what follows from it
PROTOCOL_IDS = {
    "protocol",  # the sequences and their codes
    "phantom",  # BrainPhantomCohort / BreastPhantomCohort
    "phantom_val",
    "phantom_shape",  # breast phantom grid
    "roi_size",  # 2.5D training crop of the protocol's field of view
    "drop",  # the sequence inference removes from the phantom by default (T1Gd / DCE)
    "normalise#nonzero",  # brain: percentiles over the skull-stripped brain
    "normalise#fixed_ranges",  # breast: wash-in/wash-out by fixed windows
    "handlers#1#model_name",  # the bundle's name in the synthetic images' headers
    "evaluator#tumour_labels",  # breast phantom tumour label
}


@pytest.mark.parametrize(
    "config",
    [
        "inference",
        "differentiation",
        "evaluate",
        "train",
        "multi_gpu_train",
        "multi_gpu_inference",
        "multi_gpu_differentiation",
        "multi_gpu_evaluate",
    ],
)
def test_brain_and_breast_differ_only_where_the_protocols_differ(config):
    brain, breast = (
        _flat(ConfigParser.load_config_files(config_files(BUNDLES / b, config)))
        for b in ("seq2seq_brain", "seq2seq_breast")
    )
    differ = {k for k in brain.keys() | breast.keys() if brain.get(k, "<absent>") != breast.get(k, "<absent>")}
    differ = {k.split("#contour_keys#")[0] + "#contour_keys" if "#contour_keys#" in k else k for k in differ}
    assert differ <= PROTOCOL_IDS | {"handlers#1#contour_keys"}, sorted(differ - PROTOCOL_IDS)
    assert "protocol" in differ


@pytest.mark.parametrize("bundle", ["seq2seq_brain", "seq2seq_breast"])
def test_training_and_inference_normalise_alike(bundle):
    """The network must see at inference the intensities it was trained on (train.json and inference.json are
    complete configs, so each holds the normalisation; MONAI resolves a ``%file#key`` macro against the working
    directory, which would tie the bundle to one folder)."""
    train, inference = (
        ConfigParser.load_config_files(config_files(BUNDLES / bundle, c)) for c in ("train", "inference")
    )
    assert train["normalise"] == inference["normalise"]
    assert train["load"] | {"keys": None} == inference["load"] | {"keys": None}  # inference also reads the label
    assert train["network_def"]["_target_"] == inference["network_def"]["_target_"]
    assert train["network_size"] == inference["network_def"]["name"]
    assert train["network_variant"] == inference["network_def"]["variant"]


def test_config_files_list_the_base_first_and_name_what_is_missing(tmp_path):
    root = BUNDLES / "seq2seq_brain"
    assert config_files(root, "evaluate") == [
        str(root / "configs" / "inference.json"),
        str(root / "configs" / "evaluate.json"),
    ]
    assert config_files(root, "train") == [str(root / "configs" / "train.json")]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "differentiation.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="inference.json"):
        config_files(tmp_path, "differentiation")
