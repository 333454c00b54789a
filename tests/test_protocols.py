import json

import pytest
import torch

from monai_seq2seq.core import BRAIN, BREAST, Protocol, SequenceSpec, get_protocol, list_protocols


def test_builtin_protocols():
    assert BRAIN.names == ["T1", "T1Gd", "T2", "FLAIR"]
    assert BREAST.names == ["T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "WashIn", "WashOut", "DWI"]
    assert BREAST.frames == [1, 1, 1, 6, 6, 1, 1, 4]
    assert BREAST["DWI"].frame_values == (0.0, 150.0, 800.0, 1500.0)
    assert BREAST["DCE"].frame_values[-1] == 450.0  # 7.5 min
    assert BREAST["DCE"].is_4d and not BREAST["T2"].is_4d
    assert set(list_protocols()) >= {"brain", "breast"}
    # the wash ratios are normalised by a fixed window, everything else by its percentiles
    assert BREAST.intensity_windows() == {"WashIn": [0.0, 2.0], "WashOut": [-0.5, 1.0]}
    assert BRAIN.intensity_windows() == {}
    assert Protocol.from_dict(BREAST.to_dict()) == BREAST


@pytest.mark.parametrize(
    "filename,expected",
    [
        ("BraTS2021_00000_t1ce.nii.gz", "T1Gd"),
        ("BraTS2021_00000_t1.nii.gz", "T1"),
        ("BraTS2021_00000_flair.nii.gz", "FLAIR"),
        ("BraTS2021_00000_seg.nii.gz", None),
        ("sub-01_ses-1_T1w.nii.gz", "T1"),
        ("sub-01_ce-gadolinium_T1w.nii.gz", "T1Gd"),
        ("sub-01_T2w.nii", "T2"),
        ("BraTS-GLI-00000-000-t2f.nii.gz", "FLAIR"),  # BraTS 2023
        ("BraTS-GLI-00000-000-t1c.nii.gz", "T1Gd"),
        ("BraTS-GLI-00000-000-seg.nii.gz", None),
    ],
)
def test_match_filename(filename, expected):
    assert BRAIN.match_filename(filename) == expected


def test_code_and_index():
    assert BRAIN.index("t1ce") == 1 and BRAIN.index("FLAIR") == 3 and BRAIN.index(2) == 2
    code = BRAIN.code("T2")
    assert code.shape == (64,) and code[2] == 1 and code.sum() == 1
    codes = BREAST.code(["DCE", "DWI"])
    assert codes.shape == (2, 64) and codes.argmax(1).tolist() == [3, 7]
    assert codes.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown sequence 'PD'"):
        BRAIN.index("PD")
    with pytest.raises(ValueError, match="no sequence index 4"):
        BRAIN.index(4)


def test_user_protocol_from_json_and_yaml(tmp_path):
    spec = {
        "name": "prostate",
        "code_dim": 8,
        "sequences": [
            "T2",
            {"name": "DWI", "frames": 3, "frame_axis": "bvalue", "frame_values": [0, 500, 1000], "aliases": ["dwi"]},
            {"name": "ADC", "derived_from": "DWI"},
        ],
    }
    path = tmp_path / "prostate.json"
    path.write_text(json.dumps(spec))
    proto = get_protocol(str(path))
    assert proto.names == ["T2", "DWI", "ADC"] and proto.frames == [1, 3, 1]
    assert Protocol.from_dict(proto.to_dict()) == proto
    yaml_path = tmp_path / "prostate.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump(spec))
    assert get_protocol(str(yaml_path)) == proto


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "DCE", "frames": 3}, "frame_axis"),
        ({"name": "DCE", "frames": 2, "frame_axis": "time", "frame_values": (0, 1, 2)}, "3 frame values"),
        ({"name": "DCE", "frames": 2, "frame_axis": "time", "frame_values": (5, 5)}, "duplicate"),
        ({"name": "", "frames": 1}, "non-empty"),
        ({"name": "ADC", "intensity_window": (1.0, 1.0)}, "low < high"),
        ({"name": "ADC", "intensity_window": (0.0,)}, "low < high"),
    ],
)
def test_bad_sequence_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceSpec(**kwargs)


def test_bad_protocols(tmp_path):
    with pytest.raises(ValueError, match="used by both"):
        Protocol("x", (SequenceSpec("A", aliases=("b",)), SequenceSpec("B")))
    with pytest.raises(ValueError, match="code_dim"):
        Protocol("x", (SequenceSpec("A"), SequenceSpec("B")), code_dim=1)
    with pytest.raises(ValueError, match="derived from unknown"):
        Protocol("x", (SequenceSpec("A", derived_from="Z"),))
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("knee")
    with pytest.raises(ValueError, match="does not exist"):
        get_protocol(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="unknown sequence field"):
        Protocol.from_dict({"name": "x", "sequences": [{"name": "A", "frame": 2}]})


def test_with_derived_drops_the_maps_computed_from_a_dropped_sequence():
    from monai_seq2seq.core.protocols import get_protocol

    breast = get_protocol("breast")
    assert breast.with_derived(["DCE"]) == ["DCE", "WashIn", "WashOut"]  # else the maps would leak DCE
    assert breast.with_derived(["dwi", "T1"]) == ["T1", "DWI"] and breast.with_derived([]) == []
    assert breast.with_derived(["WashIn"]) == ["WashIn"]  # dropping a map leaves its source
    assert breast.with_derived(["DCE", "Other"]) == ["DCE", "WashIn", "WashOut", "Other"]
    assert get_protocol("brain").with_derived(["T1Gd"]) == ["T1Gd"]
