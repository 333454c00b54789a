import json
import math

from experiments.segmentation_subsets import REGIONS, SUBSETS, run_experiment


def test_tiny_segmentation_outputs(tmp_path):
    payload = run_experiment(tmp_path, mode="tiny")
    md = (tmp_path / "table3_segmentation.md").read_text()
    assert (tmp_path / "table3_segmentation.png").stat().st_size > 0
    data = json.loads((tmp_path / "table3_segmentation.json").read_text())
    for name in SUBSETS:
        assert f"| {name} |" in md
        r = data["per_subject"][name]
        assert r["subjects"] == data["per_subject"]["all four"]["subjects"]
        assert all(0.0 <= v <= 1.0 for row in r["dice"] for v in row)
        for reg in REGIONS:
            s = payload["summary"][name][f"dice_{reg}"]
            assert (0.0 <= s["p"] <= 1.0) or (math.isnan(s["p"]) and s["p_reason"])
    assert "Dice ET" in md and "ASSD WT" in md
