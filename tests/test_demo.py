"""The main job (`make demo`): bundle workflows with the shipped weights, then a report a person can open."""

import json
import math

import pytest

from monai_seq2seq.cli.demo import AUC_KEY, AUC_TUMOUR_KEY, run_demo


def test_demo_writes_report_summary_and_outputs(tmp_path):
    summary = run_demo(out=str(tmp_path), subjects=1, spacing=4.0)
    report = (tmp_path / "report.md").read_text()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["weights"] == summary["weights"] == "shipped"
    assert "shipped weights `models/model.pt`" in report and "## Sequence ranking" in report
    assert {r["sequence"] for r in summary["ranking"]} == {"T1", "T1Gd", "T2", "FLAIR"}
    row = summary["auc"][0]
    # 1 subject at 4 mm (the weights were trained at 2 mm): measured 0.76 for M_d(T1Gd), 0.49 for M_d(T1) and
    # 0.998 for the T1Gd intensity itself, which finds its own planted enhancement.
    assert row["T1Gd intensity"] > 0.95
    assert row[AUC_KEY] > 0.7 and row[AUC_KEY] > row["M_d(T1)"] + 0.15, row
    assert not math.isnan(row[AUC_TUMOUR_KEY])
    assert f"| {row['subject']} |" in report
    assert (tmp_path / "differentiation" / "ranking.json").is_file()
    assert list((tmp_path / "synthesis").rglob("*_synthetic.nii.gz"))
    for figure in ("adjacency.png", "ranks.png"):
        assert (tmp_path / "differentiation" / figure).stat().st_size > 1000
    again = run_demo(out=str(tmp_path), subjects=1, spacing=4.0)  # `make demo` twice: the rerun replaces its outputs
    assert again["ranking"] == summary["ranking"]


def test_demo_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(ValueError, match="is not a seq2seq bundle"):
        run_demo(out=str(tmp_path / "out"), bundle=str(tmp_path))
    assert not (tmp_path / "out" / "report.md").exists()
