"""transforms/*.json: per-protocol preprocessing as views (``%file#key`` macros) of the bundles, where it is written
once; they resolve from the repository root to the bundle's transforms and keep their documented behaviour."""

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from monai_seq2seq.zoo.configs import config_files

ROOT = Path(__file__).resolve().parents[1]
FRAMES = {"DCE": 6, "FatSatDCE": 6, "DWI": 4}


def _fragment(protocol: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(f"transforms/{protocol}_preprocessing.json")  # relative: macros resolve against the cwd
    return parser


@pytest.mark.parametrize("protocol", ["brain", "breast"])
def test_fragment_is_a_view_of_its_bundle(monkeypatch, protocol):
    monkeypatch.chdir(ROOT)
    raw = json.loads((ROOT / "transforms" / f"{protocol}_preprocessing.json").read_text())
    parser = _fragment(protocol)
    parser.resolve_macro_and_relative_ids()
    bundle = ROOT / "bundles" / f"seq2seq_{protocol}"
    inference = ConfigParser.load_config_files(config_files(bundle, "inference"))
    train = ConfigParser.load_config_files(config_files(bundle, "train"))
    for key in ("protocol", "sequence_keys", "load", "normalise"):
        assert raw[key].startswith("%"), f"{key} must come from the bundle, not be a copy"
        assert parser[key] == inference[key], key
    assert parser["to_network_range"] == train["to_network_range"]
    assert parser.get_parsed_content("protocol") == protocol


@pytest.mark.parametrize("protocol", ["brain", "breast"])
def test_fragment_preprocessing_runs(monkeypatch, protocol):
    monkeypatch.chdir(ROOT)
    parser = _fragment(protocol)
    preprocessing = parser.get_parsed_content("preprocessing")
    keys = list(parser.get_parsed_content("sequence_keys"))
    assert len(keys) == (4 if protocol == "brain" else 8)
    subject = {k: torch.rand(FRAMES.get(k, 1), 8, 8, 4) * 100 for k in keys[:4]}
    if "DCE" in subject:
        subject["DCE"][3:] *= 2  # enhancement in later frames must survive the normalisation
    out = preprocessing(subject)
    for key, value in out.items():
        assert 0 <= float(value.min()) and float(value.max()) <= 1, key
    if "DCE" in out:
        assert out["DCE"][3:].mean() > 1.5 * out["DCE"][:3].mean()  # one scale for the whole series
    if protocol == "breast":  # the wash ratios by their fixed windows: 0.5 is a 100% enhancement in any scan
        wash = preprocessing({"WashIn": torch.full((1, 4, 4, 2), 1.0), "WashOut": torch.full((1, 4, 4, 2), 0.25)})
        assert torch.allclose(wash["WashIn"], torch.tensor(0.5)) and torch.allclose(wash["WashOut"], torch.tensor(0.5))
    to_range = parser.get_parsed_content("to_network_range")
    assert float(to_range({keys[0]: torch.zeros(1, 2, 2, 2)})[keys[0]].min()) == -1.0


def test_fragment_macros_name_the_file_they_miss_outside_the_repository_root(monkeypatch, tmp_path):
    """MONAI resolves a macro's file against the working directory: elsewhere the error names the missing file."""
    monkeypatch.chdir(tmp_path)
    parser = ConfigParser()
    parser.read_config(str(ROOT / "transforms" / "brain_preprocessing.json"))
    with pytest.raises(FileNotFoundError, match="bundles/seq2seq_brain/configs/inference.json"):
        parser.get_parsed_content("preprocessing")
