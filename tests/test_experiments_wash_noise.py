import math

from experiments.wash_map_noise import S0_BANDS, main


def test_wash_map_noise_report(tmp_path, one_thread):
    result = main(["--out", str(tmp_path)])
    rec = result["subjects"][0]
    sds = [b["wash_in_sd"] for b in rec["wash_in_sd_by_s0"] if b["wash_in_sd"] is not None]
    assert len(rec["wash_in_sd_by_s0"]) == len(S0_BANDS)
    assert sds[0] > 5 * sds[-1]  # a ratio of noise where the pre-contrast signal is low
    for name in ("WashIn", "WashOut"):
        m = rec["maps"][name]
        assert -1 <= m["corr_with_3x3x3_smoothed"] <= 1
        assert set(m["psnr_by_source"]) >= {"DCE", "T2", name} and all(map(math.isfinite, m["psnr_by_source"].values()))
    assert "| WashIn |" in (tmp_path / "wash_map_noise.md").read_text()
    assert (tmp_path / "wash_map_noise.json").stat().st_size > 0
