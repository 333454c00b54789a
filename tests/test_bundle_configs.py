"""Every analysis config of every bundle runs through MONAI's ConfigWorkflow (model-zoo style, tiny overrides)."""

import json
from pathlib import Path

import nibabel as nib
import pytest
from monai.bundle import ConfigWorkflow

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
        config_file=str(root / "configs" / f"{config}.json"),
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


@pytest.mark.parametrize("bundle,dropped", [("seq2seq_brain", "T1Gd"), ("seq2seq_breast", "DCE")])
def test_inference_config(tmp_path, bundle, dropped):
    _run(bundle, "inference", tmp_path)
    files = sorted(tmp_path.rglob("*_synthetic.nii.gz"))
    assert [f.name.split("_")[-2] for f in files] == [dropped]
    image = nib.load(files[0])
    assert image.shape[-1] == (6 if dropped == "DCE" else image.shape[-1])
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
    _run("seq2seq_brain", "inference", tmp_path / "out", datalist=str(datalist), datalist_split="testing")
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
