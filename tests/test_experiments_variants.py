"""Table 1 analogue (experiments/variants_table.py) in its tiny mode: outputs, rows, counts (CPU, no network)."""

import json
import math

import pytest
import torch

from experiments.variants_table import (
    METHODS,
    PAIR_METHOD,
    TRANSLATIONS,
    VARIANTS,
    build_method_networks,
    main,
    pair_iterations,
    run_experiment,
)
from monai_seq2seq.networks import PlainEncoderDecoder, build_seq2seq, count_macs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1")
    payload = main(["--mode", "tiny", "--out", str(out)])
    return out, payload


def _n_params(modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_tiny_writes_table_json_and_figure(tiny_run):
    out, payload = tiny_run
    md = (out / "table1_variants.md").read_text()
    data = json.loads((out / "table1_variants.json").read_text())
    assert (out / "table1_variants.png").stat().st_size > 0
    assert "python -m experiments.variants_table --mode tiny" in md
    assert "mode: `tiny`" in md and "date (UTC)" in md and "torch" in md
    assert list(data["methods"]) == list(METHODS) == list(payload["methods"])
    for name in METHODS:
        assert f"| {name} |" in md
    assert "Pix2Pix" in md and "27.8 ± 3.3" in md  # the paper's Seq2Seq-C PSNR beside ours
    if not data["lpips"]["available"]:
        assert md.count("n/a (") >= len(METHODS)


def test_tiny_rows_counts_and_metrics(tiny_run):
    _, payload = tiny_run
    expected_pairs = {f"{s}->{t}" for s, t in TRANSLATIONS}
    n_test = payload["data"]["n_test"]
    for name, row in payload["methods"].items():
        assert row["translations_evaluated"] == 12
        assert set(row["per_translation"]) == expected_pairs
        assert row["n_models"] == (12 if name == PAIR_METHOD else 1)
        assert all(math.isfinite(tr["psnr"]["mean"]) for tr in row["per_translation"].values())
        # the summary is the mean/std of the per-subject records: every subject x translation once
        records = row["per_subject"]
        assert sorted((r["source"], r["target"]) for r in records) == sorted(TRANSLATIONS * n_test)
        for metric in ("psnr", "ssim"):
            values = [r[metric] for r in records]
            assert row["mean"][metric]["n"] == len(values) == 12 * n_test
            assert row["mean"][metric]["mean"] == pytest.approx(sum(values) / len(values))
        first = f"{TRANSLATIONS[0][0]}->{TRANSLATIONS[0][1]}"
        first_values = [r["ssim"] for r in records if (r["source"], r["target"]) == TRANSLATIONS[0]]
        assert row["per_translation"][first]["ssim"]["mean"] == pytest.approx(sum(first_values) / n_test)
        # the MACs are those of one translation of the evaluated slice by the method's (first) network
        net = build_method_networks(name, "tiny")[0]
        probe = torch.zeros(1, 1, *row["slice_size"])
        assert row["macs_per_slice"] == (count_macs(net, probe, 1) if name in VARIANTS else count_macs(net, probe))
        assert sum(row["iterations_run"]) == row["total_iterations"] == row["iterations_per_model"] * row["n_models"]
    budget = payload["budget"]
    assert payload["methods"][PAIR_METHOD]["iterations_per_model"] == budget["pair_iterations"]
    assert budget["pair_iterations"] == pair_iterations(budget["seq2seq_iterations"], "split")


def test_tiny_parameter_counts_match_built_networks(tiny_run):
    _, payload = tiny_run
    for name, variant in VARIANTS.items():
        net = build_seq2seq("tiny", variant=variant, protocol="brain", spatial_dims=2, in_channels=3)
        assert payload["methods"][name]["params"] == _n_params([net])
    pairs = [PlainEncoderDecoder.from_config("tiny") for _ in range(12)]
    assert payload["methods"][PAIR_METHOD]["params"] == _n_params(pairs)
    assert payload["methods"][PAIR_METHOD]["params_per_model"] == _n_params(pairs[:1])


def test_unknown_mode_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown mode 'bogus'.*full.*quick.*tiny"):
        run_experiment(tmp_path, mode="bogus")
    with pytest.raises(SystemExit):
        main(["--mode", "bogus", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown methods"):
        run_experiment(tmp_path, mode="tiny", methods=["Pix2Pix"])
    assert not list(tmp_path.iterdir())


def test_budget_split():
    assert pair_iterations(3, "split") == 1 and pair_iterations(400, "split") == 34
    assert pair_iterations(400, "same") == 400
    with pytest.raises(ValueError, match="pair_budget"):
        pair_iterations(10, "half")
    with pytest.raises(ValueError, match="unknown method 'Pix2Pix'"):
        build_method_networks("Pix2Pix", "tiny")


def test_datalist_mode(tmp_path):
    from monai_seq2seq.phantoms import BrainPhantomCohort, write_cohort

    datalist = write_cohort(
        BrainPhantomCohort(2, seed=7, spacing=8.0), tmp_path / "cohort", progress=False, test_fraction=0.5
    )
    payload = run_experiment(tmp_path / "out", mode="tiny", datalist=str(datalist), methods=["Seq2Seq-C"])
    assert payload["data"]["source"] == "datalist" and payload["data"]["test_split"] == "testing"
    assert payload["data"]["n_train"] == 1 and payload["data"]["n_test"] == 1
    row = payload["methods"]["Seq2Seq-C"]
    assert row["translations_evaluated"] == 12 and math.isfinite(row["mean"]["psnr"]["mean"])
    assert "datalist" in (tmp_path / "out" / "table1_variants.md").read_text()
