"""The robustness table (experiments/robustness.py): a tiny run writes the table, JSON and figure."""

import json

import numpy as np

from experiments.robustness import CONDITIONS, PAIRS, main


def test_tiny_run_writes_table_json_and_figure(tmp_path, one_thread):
    payload = main(["--tiny", "--out", str(tmp_path)])
    conds = payload["conditions"]
    assert list(conds) == list(CONDITIONS) and len(PAIRS) == 12
    for name, res in conds.items():
        assert set(res["pairs"]) == {f"{s}->{t}" for s, t in PAIRS}
        assert all(np.isfinite(v) for v in res["pairs"].values()), name
        ranks = sorted(r["rank_C_d"] for r in res["ranking"]["table"])
        assert ranks == [1, 2, 3, 4], name
    rows = {r["condition"]: r for r in payload["summary"]}
    assert rows["clean"]["drop_db"] == 0.0
    # the corruption itself: lower SNR, lower input fidelity; the clean condition has no corrupted input
    inputs = [rows[f"noise SNR {s}"]["input_psnr"] for s in (20, 10, 5)]
    assert inputs[0] > inputs[1] > inputs[2] > 10
    assert not np.isfinite(rows["clean"]["input_psnr"])
    assert rows["misalign"]["input_psnr"] < 60 and rows["bias"]["input_psnr"] < 60
    on_disk = json.loads((tmp_path / "robustness.json").read_text())
    assert on_disk["conditions"]["clinical"]["pairs"] == conds["clinical"]["pairs"]
    assert on_disk["conditions"]["clinical"]["realism"] == {"effects": "clinical"}
    text = (tmp_path / "robustness.md").read_text()
    assert "mode: tiny" in text and "| noise SNR 5 |" in text and "| T1->T1Gd |" in text
    assert "python -m experiments.robustness --tiny" in text
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "robustness.png").stat().st_size > 5000
