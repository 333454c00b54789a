"""Table 2 analogue (experiments/ranking_table.py): runs the bundles' differentiation configs and writes the table."""

import json
import re

import pytest

from experiments.ranking_table import PAPER_TABLE2, PLANTED, _expectation_met, main, run_experiment


def test_tiny_run_writes_table_json_and_figure(tmp_path):
    payload = run_experiment(tmp_path, protocols=("brain", "breast"), mode="tiny", command="test")
    for protocol, n in (("brain", 4), ("breast", 8)):
        table = payload["results"][protocol]["ranking"]["table"]
        assert len(table) == n
        assert sorted(r["rank_C_d"] for r in table) == list(range(1, n + 1))
        assert {r["sequence"] for r in table} == set(PAPER_TABLE2[protocol]) == set(PLANTED[protocol])
    # the recorded verdict reads the ranks of the table it sits beside, and the Markdown says the same
    ranks = {p: {r["sequence"]: r["rank_C_d"] for r in payload["results"][p]["ranking"]["table"]} for p in PLANTED}
    brain_met = ranks["brain"]["T1Gd"] == 1
    breast_met = ranks["breast"]["WashIn"] > 4 and ranks["breast"]["WashOut"] > 4
    assert payload["results"]["brain"]["expectation_met"] is brain_met
    assert payload["results"]["breast"]["expectation_met"] is breast_met
    text = (tmp_path / "table2_ranking.md").read_text()
    verdicts = re.findall(r"Expected from the planted truth: .*: \*\*(met|NOT met)\*\*", text)
    assert verdicts == ["met" if brain_met else "NOT met", "met" if breast_met else "NOT met"]
    assert "| T1Gd |" in text and "| WashOut |" in text and "1.734 (1)" in text  # paper's T1Gd C_d beside ours
    assert "mode: tiny" in text and "Expected from the planted truth" in text
    on_disk = json.loads((tmp_path / "table2_ranking.json").read_text())
    assert on_disk["results"]["brain"]["ranking"]["table"] == payload["results"]["brain"]["ranking"]["table"]
    assert (tmp_path / "table2_ranking.png").stat().st_size > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "table2_ranking.json",
        "table2_ranking.md",
        "table2_ranking.png",
    ]  # bundle outputs stay elsewhere


def test_expectations_read_the_ranks():
    brain = {n: {"rank_C_d": r} for n, r in zip(["T1", "T1Gd", "T2", "FLAIR"], [2, 1, 3, 4], strict=True)}
    assert _expectation_met("brain", brain)
    brain["T1Gd"]["rank_C_d"], brain["T2"]["rank_C_d"] = 3, 1
    assert not _expectation_met("brain", brain)
    breast = {n: {"rank_C_d": i + 1} for i, n in enumerate(PLANTED["breast"])}  # WashIn 6, WashOut 7
    assert _expectation_met("breast", breast)
    breast["WashIn"]["rank_C_d"] = 4
    assert not _expectation_met("breast", breast)


def test_unknown_protocol_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown protocols \\['knee'\\]"):
        run_experiment(tmp_path, protocols=("knee",), mode="tiny")
    with pytest.raises(SystemExit):
        main(["--protocols", "knee", "--out", str(tmp_path)])
