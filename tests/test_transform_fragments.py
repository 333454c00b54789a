import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("protocol,bundle", [("brain", "seq2seq_brain"), ("breast", "seq2seq_breast")])
def test_fragment_matches_bundle_and_runs(protocol, bundle):
    fragment = json.loads((ROOT / "transforms" / f"{protocol}_preprocessing.json").read_text())
    for config in ("inference", "differentiation", "evaluate"):
        inlined = json.loads((ROOT / "bundles" / bundle / "configs" / f"{config}.json").read_text())
        assert inlined["normalise"] == fragment["normalise"], (bundle, config)
        assert inlined["load"] == fragment["load"], (bundle, config)
    parser = ConfigParser()
    parser.read_config(str(ROOT / "transforms" / f"{protocol}_preprocessing.json"))
    preprocessing = parser.get_parsed_content("preprocessing")
    frames = {"DCE": 6, "FatSatDCE": 6, "DWI": 4}
    subject = {k: torch.rand(frames.get(k, 1), 8, 8, 4) * 100 for k in fragment["sequence_keys"][:4]}
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
