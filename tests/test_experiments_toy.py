"""Tests of the Fig. 4 analogue (experiments/toy_alphabet.py): tiny mode end to end and the M_d formula."""

import json
import re

import pytest
import torch

from experiments.toy_alphabet import (
    MODES,
    PAPER_FIG4,
    build_toy_seq2seq,
    differentiation_maps,
    load_split,
    main,
    make_classifier,
    run_experiment,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig4")
    torch.set_num_threads(1)
    payload = run_experiment(out, mode="tiny", command="pytest tiny", progress=False)
    return out, payload


def test_tiny_outputs(tiny_run):
    out, payload = tiny_run
    for name in ("fig4_toy.md", "fig4_toy.json", "fig4_toy.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "fig4_toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "fig4_toy.md").read_text()
    data = json.loads((out / "fig4_toy.json").read_text())
    sizes = MODES["tiny"]["train_sizes"]
    assert [r["train_size"] for r in data["results"]] == sizes
    for n in sizes:
        assert len(re.findall(rf"^\| {n} \|", md, flags=re.M)) == 1
    for row in data["results"]:
        for model in ("baseline", "with_md"):
            for label in ("acc_X1", "acc_X2"):
                assert 0.0 <= row[model][label] <= 1.0
        assert row["baseline"]["in_channels"] == 2 and row["with_md"]["in_channels"] == 4
        assert row["improvement_X1"] == pytest.approx(row["with_md"]["acc_X1"] - row["baseline"]["acc_X1"])
    # header: UTC date, machine, mode, command; the paper's reference line; the L1-only statement
    assert "date (UTC): " in md and "logical CPUs" in md and "torch " in md and "mode: tiny" in md
    assert "`pytest tiny`" in md
    assert f"{PAPER_FIG4['peak_improvement_X1']} for X1" in md and f"{PAPER_FIG4['peak_improvement_X2']} for X2" in md
    assert "L1 only" in md
    assert data["config"]["image_size"] == MODES["tiny"]["image_size"]
    assert data["config"]["include_self"] is True
    assert data["seq2seq"]["iterations"] == MODES["tiny"]["s2s_iterations"]
    # maps inside the experiment come from the network, formula re-checked per sample
    assert data["differentiation_map"]["formula_check_max_abs_diff"] < 1e-5
    assert data["differentiation_map"]["sources"] == {"X1": ["X1", "X2"], "X2": ["X1", "X2"]}
    assert payload["mode"] == "tiny"


def _formula(net, images, include_self):
    """M_d by eq. 5 with one network call per (sample, source, target)."""
    n = images.shape[0]
    out = torch.zeros_like(images)
    with torch.no_grad():
        for i in range(n):
            for t in range(2):
                errs = []
                for s in range(2):
                    if not include_self and s == t:
                        continue
                    y = net(images[i, s][None, None, None] * 2 - 1, t)  # (1, 1, 1, H, W) in (-1, 1)
                    pred = ((y + 1) / 2).clamp(0, 1)[0, 0, 0]
                    errs.append((pred - images[i, t]).abs())
                out[i, t] = torch.stack(errs).mean(0)
    return out


@pytest.mark.parametrize("include_self", [True, False])
def test_maps_equal_formula(include_self):
    torch.manual_seed(0)
    net = build_toy_seq2seq("tiny").eval()
    images = load_split("test", 3, 32, seed=0, progress=False)["images"]
    maps, info = differentiation_maps(net, images, "cpu", batch_size=2, include_self=include_self)
    assert maps.shape == images.shape
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    expected = _formula(net, images, include_self)
    assert torch.allclose(maps, expected, atol=1e-6, rtol=0)
    assert float(maps.abs().sum()) > 0
    assert info["include_self"] is include_self
    assert info["sources"]["X1"] == (["X1", "X2"] if include_self else ["X2"])


def test_maps_depend_on_network():
    images = load_split("test", 2, 32, seed=0, progress=False)["images"]
    torch.manual_seed(0)
    a, _ = differentiation_maps(build_toy_seq2seq("tiny"), images)
    torch.manual_seed(1)
    b, _ = differentiation_maps(build_toy_seq2seq("tiny"), images)
    assert not torch.allclose(a, b)


def test_classifier_shapes():
    net = make_classifier(4).eval()
    assert net.conv1.in_channels == 4
    with torch.no_grad():
        assert net(torch.rand(2, 4, 32, 32)).shape == (2, 52)


def test_load_split_ranges():
    d = load_split("val", 2, 32, seed=3, progress=False)
    assert d["images"].shape == (2, 2, 32, 32) and d["labels"].shape == (2, 2)
    assert float(d["images"].min()) >= 0.0 and float(d["images"].max()) <= 1.0
    assert bool((d["labels"][:, 0] != d["labels"][:, 1]).all())
    assert int(d["labels"].min()) >= 0 and int(d["labels"].max()) < 26


def test_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="unknown mode 'bogus'"):
        run_experiment(tmp_path, mode="bogus")
    with pytest.raises(SystemExit):
        main(["--mode", "bogus", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_cuda_unavailable(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="cuda"):
        run_experiment(tmp_path, mode="tiny", device="cuda")


def test_train_sizes_and_n_val_override_the_mode(tmp_path):
    payload = main(["--tiny", "--train_sizes", "12", "6", "--n_val", "4", "--out", str(tmp_path)])
    assert payload["config"]["train_sizes"] == [6, 12] and payload["config"]["n_val"] == 4
    assert payload["config"]["paper_sizes"] is None and "set by train_sizes" in payload["config"]["size_note"]
    assert [r["train_size"] for r in payload["results"]] == [6, 12]
    assert "--train_sizes 12 6" in (tmp_path / "fig4_toy.md").read_text()
    for bad in ({"train_sizes": [0]}, {"train_sizes": [9001]}, {"train_sizes": []}, {"n_val": 1001}):
        with pytest.raises(ValueError, match="must lie in"):
            run_experiment(tmp_path / "bad", mode="tiny", progress=False, **bad)
    assert not (tmp_path / "bad").exists()
