"""SynthesisEvaluator / DifferentiationEvaluator on in-memory subjects: outputs, affines, bad input."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, MetaTensor

from monai_seq2seq.analysis import DifferentiationEvaluator, DifferentiationWriter, MetricsTableWriter
from monai_seq2seq.inference import Seq2SeqSynthesizer, SynthesisEvaluator, SyntheticImageWriter, subject_collate
from monai_seq2seq.networks import build_seq2seq

AFFINE = torch.tensor([[1.5, 0, 0, -10.0], [0, 1.5, 0, 20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)


def _subject(i, names=("T1", "T2", "FLAIR")):
    g = torch.Generator().manual_seed(i)
    subject = {n: MetaTensor(torch.rand(1, 16, 16, 12, generator=g), affine=AFFINE) for n in names}
    label = torch.zeros(1, 16, 16, 12)
    label[:, 4:12, 4:12, 3:9] = 2
    subject.update(subject=f"sub{i}", label=label)
    return subject


@pytest.fixture
def synth():
    torch.manual_seed(0)
    return Seq2SeqSynthesizer(build_seq2seq("tiny", protocol="brain"), "brain", batch_size=6, progress=False)


def _loader(subjects):
    return DataLoader(subjects, batch_size=1, collate_fn=subject_collate)


def test_synthesis_evaluator_writes_missing_sequences(tmp_path, synth):
    writer = SyntheticImageWriter(tmp_path / "out", synth.protocol)
    engine = SynthesisEvaluator(
        "cpu", _loader([_subject(0), _subject(1, ("T1Gd", "T2"))]), synth, val_handlers=[writer]
    )
    engine.run()
    names = sorted(p.name for p in writer.written)
    assert names == sorted(["sub0_T1Gd_synthetic.nii.gz", "sub1_T1_synthetic.nii.gz", "sub1_FLAIR_synthetic.nii.gz"])
    image = nib.load(tmp_path / "out" / "sub0" / "sub0_T1Gd_synthetic.nii.gz")
    np.testing.assert_allclose(image.affine, AFFINE.numpy())
    assert image.shape == (16, 16, 12) and b"SYNTHETIC" in image.header["descrip"].tobytes()
    sidecar = json.loads((tmp_path / "out" / "sub0" / "sub0_T1Gd_synthetic.json").read_text())
    assert sidecar["Synthetic"] and sidecar["Sources"] == ["T1", "T2", "FLAIR"]
    assert sidecar["IntensitySpace"] == "[0, 1] after per-sequence percentile normalisation"


def test_sidecar_records_registration_and_derived_sources(tmp_path, synth):
    """A source moved by RegisterToReferenced, or computed by a formula, is said so in the synthetic sidecar."""
    subject = _subject(2)
    subject["T2"].meta["registration"] = {
        "transform": "rigid",
        "reference": "T1",
        "metric": "AdvancedMattesMutualInformation",
        "translation_norm_mm": np.float64(3.2),
        "rotation_deg": 2.0,
        "matrix_ras": torch.eye(4, dtype=torch.float64),
        "parameters": [0.0] * 6,
    }
    subject["FLAIR"].meta.update(derived_from="flair_source.nii.gz", formula="made up for the test")
    writer = SyntheticImageWriter(tmp_path / "out", synth.protocol)
    SynthesisEvaluator("cpu", _loader([subject]), synth, val_handlers=[writer]).run()
    sidecar = json.loads((tmp_path / "out" / "sub2" / "sub2_T1Gd_synthetic.json").read_text())
    moved = sidecar["Registration"]
    assert list(moved) == ["T2"] and moved["T2"]["transform"] == "rigid" and moved["T2"]["reference"] == "T1"
    assert moved["T2"]["translation_norm_mm"] == 3.2 and moved["T2"]["matrix_ras"] == np.eye(4).tolist()
    assert "parameters" not in moved["T2"]
    assert sidecar["DerivedSources"] == {
        "FLAIR": {"DerivedFrom": "flair_source.nii.gz", "Formula": "made up for the test"}
    }
    plain = SyntheticImageWriter(tmp_path / "plain", synth.protocol)
    SynthesisEvaluator("cpu", _loader([_subject(3)]), synth, val_handlers=[plain]).run()
    untouched = json.loads((tmp_path / "plain" / "sub3" / "sub3_T1Gd_synthetic.json").read_text())
    assert "Registration" not in untouched and "DerivedSources" not in untouched


def test_sequences_off_one_grid_are_refused_by_the_evaluators(tmp_path, synth):
    """Same shapes, affines 10 mm apart: refused by synthesis and analysis alike, naming both sequences."""
    from monai_seq2seq.transforms.validation import GridMismatchError

    subject = _subject(4)
    shifted = AFFINE.clone()
    shifted[0, 3] += 10.0
    subject["T2"] = MetaTensor(subject["T2"].as_tensor(), affine=shifted)
    with pytest.raises(GridMismatchError, match=r"subject 'sub4': T2.* is not on the grid of T1"):
        SynthesisEvaluator("cpu", _loader([subject]), synth).run()
    with pytest.raises(GridMismatchError, match="is not on the grid of T1"):
        DifferentiationEvaluator("cpu", _loader([subject]), synth).run()


def test_synthesis_bad_requests(tmp_path, synth):
    with pytest.raises(ValueError, match="already has"):
        SynthesisEvaluator("cpu", _loader([_subject(0)]), synth, targets=["T1"]).run()
    with pytest.raises(ValueError, match="lacks the requested source"):
        SynthesisEvaluator("cpu", _loader([_subject(0)]), synth, sources=["T1Gd"]).run()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    writer = SyntheticImageWriter(blocker / "out", synth.protocol)
    with pytest.raises(ValueError, match="cannot create output directory"):
        SynthesisEvaluator("cpu", _loader([_subject(0)]), synth, val_handlers=[writer]).run()
    assert writer.written == []
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        writer = SyntheticImageWriter(locked / "out", synth.protocol)
        with pytest.raises(ValueError, match="cannot create output directory|not writable"):
            SynthesisEvaluator("cpu", _loader([_subject(0)]), synth, val_handlers=[writer]).run()
        assert writer.written == []
    finally:
        os.chmod(locked, 0o700)


def test_differentiation_evaluator_outputs(tmp_path, synth):
    out = tmp_path / "diff"
    subjects = [_subject(0, ("T1", "T1Gd", "T2", "FLAIR")), _subject(1)]
    engine = DifferentiationEvaluator(
        "cpu",
        _loader(subjects),
        synth,
        use_lpips=False,
        val_handlers=[DifferentiationWriter(out, synth.protocol), MetricsTableWriter(out)],
    )
    engine.run()
    assert (out / "ranking.csv").exists() and (out / "adjacency.png").exists() and (out / "ranks.png").exists()
    ranking = json.loads((out / "ranking.json").read_text())
    assert ranking["choices"]["metrics_left_out"] == ["lpips"] and "switched off" in ranking["choices"]["lpips"]
    assert len(ranking["table"]) == 4
    diffmap = nib.load(out / "sub0" / "sub0_T1Gd_diffmap.nii.gz")
    np.testing.assert_allclose(diffmap.affine, AFFINE.numpy())
    assert (out / "sub1" / "sub1_diffmaps.png").exists() and not (out / "sub1" / "sub1_T1Gd_diffmap.nii.gz").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert "ssim_tumour" in metrics["pairs"]["T1->T2"] and "psnr" in metrics["pairs"]["T2->T1"]


def test_subject_with_one_sequence_is_refused(tmp_path, synth):
    engine = DifferentiationEvaluator(
        "cpu",
        _loader([_subject(0, ("T2",))]),
        synth,
        use_lpips=False,
        val_handlers=[DifferentiationWriter(tmp_path / "d", synth.protocol)],
    )
    with pytest.raises(ValueError, match="at least two sequences"):
        engine.run()
    assert not list((tmp_path / "d").glob("*.json"))


def test_sidecar_says_which_intensity_space_a_synthetic_image_is_in():
    from monai_seq2seq.core import BRAIN, BREAST
    from monai_seq2seq.inference.engine import _intensity_space

    assert _intensity_space(BREAST["WashIn"]) == "[0, 1] = the fixed window [0, 2] of WashIn (clipped)"
    assert _intensity_space(BREAST["WashOut"]) == "[0, 1] = the fixed window [-0.5, 1] of WashOut (clipped)"
    assert "percentile" in _intensity_space(BREAST["DCE"]) and "percentile" in _intensity_space(BRAIN["T1Gd"])


def test_differentiation_leaves_a_sequence_no_subject_has_out_of_every_ranking_output(tmp_path, synth):
    """Issue 19: on subjects without T1Gd, ranking.csv and ranks.png ranked the absent T1Gd 2nd by C_d."""
    out = tmp_path / "diff"
    subjects = [_subject(0), _subject(1)]  # T1, T2, FLAIR
    subjects[0]["unique-T1Gd"] = "sub0/sub0_unique-T1Gd.nii.gz"  # a datalist mask the bundle did not load: no contour
    writer = DifferentiationWriter(out, synth.protocol, contour_keys={"T1": "unique-T1Gd"})
    DifferentiationEvaluator("cpu", _loader(subjects), synth, use_lpips=False, val_handlers=[writer]).run()
    ranking = json.loads((out / "ranking.json").read_text())
    assert [row["sequence"] for row in ranking["table"]] == ["T1", "T2", "FLAIR"] and ranking["sequences"] == [
        "T1",
        "T2",
        "FLAIR",
    ]
    assert sorted(row["rank_C_d"] for row in ranking["table"]) == [1, 2, 3]
    assert ranking["choices"]["sequences_left_out"] == {"T1Gd": "no sample has this sequence"}
    assert len(ranking["adjacency"]) == 3 and "T1Gd" not in (out / "ranking.csv").read_text()
    assert (
        (out / "ranks.png").exists()
        and (out / "adjacency.png").exists()
        and (out / "sub0" / "sub0_diffmaps.png").exists()
    )


def test_a_subject_with_every_sequence_gets_nothing_and_a_line_saying_so(tmp_path, synth, caplog):
    writer = SyntheticImageWriter(tmp_path / "out", synth.protocol)
    engine = SynthesisEvaluator(
        "cpu", _loader([_subject(0, ("T1", "T1Gd", "T2", "FLAIR"))]), synth, val_handlers=[writer]
    )
    engine.logger.addHandler(caplog.handler)  # the engine's logger may not propagate to the root
    try:
        with caplog.at_level("INFO", logger=engine.logger.name):
            engine.run()
    finally:
        engine.logger.removeHandler(caplog.handler)
    assert writer.written == [] and not list((tmp_path / "out").rglob("*.nii.gz"))
    assert "subject 'sub0' has all of ['T1', 'T1Gd', 'T2', 'FLAIR']: nothing to synthesise." in caplog.text
