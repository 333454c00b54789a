import json
import math

import pytest

from experiments.wash_map_noise import S0_BANDS, STAGES, main
from monai_seq2seq.core import BREAST


def test_wash_map_noise_report(tmp_path, one_thread):
    result = main(["--out", str(tmp_path)])
    rec = result["subjects"][0]
    sds = [b["wash_in_sd"] for b in rec["wash_in_sd_by_s0"] if b["wash_in_sd"] is not None]
    assert len(rec["wash_in_sd_by_s0"]) == len(S0_BANDS)
    assert sds[0] > 5 * sds[-1]  # a ratio of noise where the pre-contrast signal is low
    bands = rec["wash_in_sd_by_s0"]
    assert bands[0]["thresholded_fraction"] == 1.0 and bands[-1]["thresholded_fraction"] == 0.0
    assert 0 < rec["thresholded_voxels"] < rec["body_voxels"]
    for name in ("WashIn", "WashOut"):
        m = rec["maps"][name]
        before, thresholded, now = (m["by_stage"][stage] for stage in STAGES)
        # the threshold takes out the part of the map that is noise, so more of it survives smoothing; the fixed
        # window stops stretching what is left over [0, 1], so a smooth prediction comes far closer
        assert thresholded["corr_with_3x3x3_smoothed"] > before["corr_with_3x3x3_smoothed"] + 0.1
        assert now["psnr_of_smoothed"] > before["psnr_of_smoothed"] + 6
        assert now["range"] == BREAST.intensity_windows()[name]
        assert thresholded["range"][1] < now["range"][1] / 2  # percentiles of what is left: set by the noise
        assert set(m["psnr_by_source"]) >= {"DCE", "T2", name} and all(map(math.isfinite, m["psnr_by_source"].values()))
    assert rec["lesion"]["min_s0_over_threshold"] > 1  # the threshold never removes the lesion
    md = (tmp_path / "wash_map_noise.md").read_text()
    assert (
        "| WashIn |" in md and "date (UTC): " in md and f"`python -m experiments.wash_map_noise --out {tmp_path}`" in md
    )
    on_disk = json.loads((tmp_path / "wash_map_noise.json").read_text())
    assert (
        on_disk["command"] == f"python -m experiments.wash_map_noise --out {tmp_path}" and "torch" in on_disk["machine"]
    )
    assert on_disk["subjects"][0]["maps"]["WashIn"]["psnr_by_source"] == pytest.approx(
        rec["maps"]["WashIn"]["psnr_by_source"]
    )
