from experiments.normalisation_scale import main


def test_identity_baseline_regime_follows_where_t1gd_percentile_lands():
    """The README's claim: ET above 0.5% of the brain moves T1Gd's 99.5th percentile into the enhancement and
    copying T1 scores low; below 0.5% copying is nearly perfect."""
    rows = main(["--subjects", "4", "--seed", "1000", "--spacing", "2.0"])
    assert len(rows) == 4
    for r in rows:
        assert 1.0 < r["p995_over_median_T1"] < 1.5
        enhancing_percentile = r["p995_over_median_T1Gd"] > 1.5 * r["p995_over_median_T1"]
        assert enhancing_percentile == (r["et_percent"] > 0.5)
        assert (r["identity_psnr_db"] < 20) == enhancing_percentile
    assert {r["et_percent"] > 0.5 for r in rows} == {True, False}  # both regimes among the held-out subjects
