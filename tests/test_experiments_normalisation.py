from experiments.normalisation_scale import main


def test_t1gd_scale_follows_the_enhancement():
    rows = main(["--subjects", "2", "--seed", "1000", "--spacing", "4.0"])
    assert len(rows) == 2
    for r in rows:
        assert 1.0 < r["p995_over_median_T1"] < 2.0 and r["identity_psnr_db"] > 0
        # T1Gd's top percentile is never below T1's: the enhancement only adds signal
        assert r["p995_over_median_T1Gd"] >= r["p995_over_median_T1"] - 0.05
