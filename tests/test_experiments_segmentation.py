import json
import math

import numpy as np
import pytest
import torch

from experiments.segmentation_subsets import REGIONS, SUBSETS, main, paired_test, prepare_subject, run_experiment


def test_tiny_segmentation_outputs(tmp_path):
    payload = run_experiment(tmp_path, mode="tiny")
    md = (tmp_path / "table3_segmentation.md").read_text()
    assert (tmp_path / "table3_segmentation.png").stat().st_size > 0
    data = json.loads((tmp_path / "table3_segmentation.json").read_text())
    reference = np.asarray(data["per_subject"]["all four"]["dice"], float)
    for name in SUBSETS:
        assert f"| {name} |" in md
        r = data["per_subject"][name]
        assert r["subjects"] == data["per_subject"]["all four"]["subjects"]
        assert all(0.0 <= v <= 1.0 for row in r["dice"] for v in row)
        dice = np.asarray(r["dice"], float)
        for k, reg in enumerate(REGIONS):
            s = payload["summary"][name][f"dice_{reg}"]
            # the summary is computed from the per-subject Dice written beside it
            assert s["n"] == len(r["subjects"]) == 2 and s["mean"] == pytest.approx(dice[:, k].mean())
            if name == "all four":
                assert s["p"] is None and s["p_reason"] == "reference"
                continue
            p, why = paired_test(dice[:, k], reference[:, k], "less")  # NaN p: the test is undefined, say why
            assert (s["p"], s["p_reason"]) == ((None, why) if math.isnan(p) else (pytest.approx(p), ""))
    assert "Dice ET" in md and "ASSD WT" in md
    assert "0.848 ± 0.201" in md  # the paper's T1Gd row sits beside ours
    assert data["data"]["source"] == "brain phantom" and data["data"]["test_seed"] == 1000
    (tmp_path / "table3_segmentation.png").unlink()
    assert main(["--replot", "--out", str(tmp_path)]).stat().st_size > 0  # the figure again, from the JSON


def test_label_channels_are_et_tc_wt():
    from monai_seq2seq.phantoms import BrainPhantomCohort

    sample = BrainPhantomCohort(1, seed=3, spacing=8.0)[0]
    s = prepare_subject(sample)
    from monai.transforms import DivisiblePad

    lab = torch.as_tensor(DivisiblePad(k=8)(sample["label"]))[0]  # padded like the image
    et, tc, wt = s["label"]
    assert REGIONS == ("ET", "TC", "WT")
    assert torch.equal(et.bool(), lab == 4)
    assert torch.equal(tc.bool(), (lab == 1) | (lab == 4))
    assert torch.equal(wt.bool(), torch.isin(lab, torch.tensor([1, 2, 4], dtype=lab.dtype)))  # not 5, the mimics
    assert all(n % 8 == 0 for n in s["image"].shape[1:]) and s["image"].shape[0] == 4
    assert s["spacing"] == pytest.approx([8.0, 8.0, 8.0])


def test_incomplete_or_broken_subject_is_refused():
    from monai_seq2seq.phantoms import BrainPhantomCohort

    sample = dict(BrainPhantomCohort(1, seed=3, spacing=8.0)[0])
    with pytest.raises(ValueError, match="complete subjects.*T2"):
        prepare_subject({k: v for k, v in sample.items() if k != "T2"})
    broken = dict(sample, FLAIR=sample["FLAIR"].clone())
    broken["FLAIR"][0, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="FLAIR holds NaN"):
        prepare_subject(broken)
    with pytest.raises(ValueError, match="different grids"):
        prepare_subject(dict(sample, T1=sample["T1"][:, :-1]))


def test_datalist_mode_with_crops(tmp_path):
    from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort

    datalist = write_cohort(
        BrainPhantomCohort(2, seed=7, spacing=8.0), tmp_path / "cohort", progress=False, test_fraction=0.5
    )
    payload = main(["--tiny", "--out", str(tmp_path / "out"), "--datalist", str(datalist), "--roi", "16"])
    assert payload["data"]["source"] == "datalist" and payload["data"]["test_split"] == "testing"
    assert payload["data"]["n_train"] == 1 and payload["data"]["n_test"] == 1
    assert payload["config"]["roi"] == [16, 16, 16]
    assert all(math.isfinite(v) for v in payload["per_subject"]["all four"]["dice"][0])
    md = (tmp_path / "out" / "table3_segmentation.md").read_text()
    assert "datalist" in md and "16^3 crops" in md


def test_datalist_with_missing_file_fails_before_work(tmp_path):
    from monai_seq2seq.data import DatalistError

    (tmp_path / "dl.json").write_text(json.dumps({"training": [{"subject": "a", "T1": "nope.nii.gz"}]}))
    with pytest.raises(DatalistError, match="do not exist"):
        run_experiment(tmp_path / "out", mode="tiny", datalist=str(tmp_path / "dl.json"))
    assert not (tmp_path / "out").exists()
