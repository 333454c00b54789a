"""The experiments' shared harness (experiments/common.py): result files, provenance, training."""

import json
import math

import pytest
import torch

from experiments.common import command_line, provenance, provenance_lines, save_figure, supervised_trainer, write_json


def test_write_json_writes_standard_json_without_non_finite_values(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.5, float("inf"), (2, -math.inf)], "c": {"d": 3}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None, [2, None]], "c": {"d": 3}}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_save_figure_is_atomic_and_closes_the_figure(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    path = save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.fignum_exists(fig.number)
    broken = plt.figure()
    broken.savefig = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError, match="disk full"):
        save_figure(broken, tmp_path / "g.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_provenance_names_command_and_machine():
    assert (
        command_line("toy_alphabet", ["--tiny", "--seed", "3"]) == "python -m experiments.toy_alphabet --tiny --seed 3"
    )
    prov = provenance("python -m experiments.x", "cpu")
    assert prov["command"] == "python -m experiments.x" and "logical CPUs" in prov["machine"]
    assert prov["machine"].endswith("device cpu") and prov["date_utc"].endswith("+00:00")
    lines = provenance_lines(prov, mode="tiny")
    assert lines[1] == "- mode: tiny" and lines[2] == "- command: `python -m experiments.x`"
    assert provenance_lines(provenance(""))[-1] == "- command: (called from Python)"


def test_supervised_trainer_matches_a_plain_loop(one_thread):
    """The MONAI trainer takes the same steps as a hand loop (zero_grad, forward, loss, backward, step)."""
    x, y = torch.randn(6, 3), torch.randn(6, 1)
    batches = [(x[:3], y[:3]), (x[3:], y[3:])]
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 1)
    torch.manual_seed(0)
    b = torch.nn.Linear(3, 1)
    trainer, losses = supervised_trainer(
        a, torch.optim.Adam(a.parameters(), 0.1), torch.nn.MSELoss(), batches, max_epochs=3, progress=False
    )
    trainer.run()
    opt, expected = torch.optim.Adam(b.parameters(), 0.1), []
    for _ in range(3):
        for xb, yb in batches:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(b(xb), yb)
            loss.backward()
            opt.step()
            expected.append(float(loss.detach()))
    assert losses == expected and torch.equal(a.weight, b.weight)
