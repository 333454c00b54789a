"""DWI transforms: mono-exponential and IVIM fits, b-value selection/synthesis, ADC and IVIM maps."""

import gzip
import os

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.data import DWI_BVALUES
from monai_seq2seq.data.phantoms.signal import ivim_attenuation
from monai_seq2seq.io.dicom_vendor import get_bvalue
from monai_seq2seq.io.errors import FrameValuesError
from monai_seq2seq.transforms import (
    ADCMap,
    ADCMapd,
    IVIMMaps,
    IVIMMapsd,
    SelectBValues,
    SelectBValuesd,
    fit_ivim,
    fit_monoexponential,
)

AFFINE = torch.diag(torch.tensor([1.0, 1.0, 4.0, 1.0], dtype=torch.float64))
SHAPE = (4, 3, 2)


def _adc_field():
    return torch.linspace(0.5e-3, 2.5e-3, int(np.prod(SHAPE)), dtype=torch.float64).reshape(SHAPE)


def _dwi(bvalues, adc=None, s0=1000.0, meta=True):
    adc = _adc_field() if adc is None else adc
    data = torch.stack([s0 * torch.exp(-float(b) * adc) for b in bvalues]).float()
    if not meta:
        return data
    return MetaTensor(data, affine=AFFINE, meta={"frame_axis": "bvalue", "frame_values": list(bvalues),
                                                 "filename_or_obj": "dwi.nii.gz"})


def test_monoexponential_fit_exact_and_noisy():
    b = [0.0, 150.0, 800.0, 1500.0]
    s0, adc = fit_monoexponential(_dwi(b, meta=False), b)
    torch.testing.assert_close(adc, _adc_field(), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(s0, torch.full(SHAPE, 1000.0, dtype=torch.float64), rtol=1e-4, atol=1e-3)
    rng = np.random.default_rng(0)
    noisy = _dwi(b, adc=torch.full((2000,), 1.2e-3, dtype=torch.float64), meta=False)
    noisy = noisy * torch.as_tensor(1 + 0.01 * rng.standard_normal(noisy.shape), dtype=torch.float32)
    _, adc_noisy = fit_monoexponential(noisy, b)
    assert abs(float(adc_noisy.mean()) - 1.2e-3) < 2e-5 and float(adc_noisy.std()) < 5e-5
    with pytest.raises(FrameValuesError, match=r"at least 2 distinct b-values, got \[800.0\]"):
        fit_monoexponential(_dwi([800.0, 800.0], meta=False), [800.0, 800.0])


@pytest.mark.parametrize("bvalues", [[0, 50, 150, 300, 800, 1500], list(DWI_BVALUES)])
def test_ivim_fit_recovers_d_and_f(bvalues):
    d_true = np.array([0.8e-3, 1.2e-3, 1.6e-3])
    f_true = np.array([0.05, 0.10, 0.20])
    # D* = 10 D (the phantom's factor) decays to < 1e-4 of its weight by b = 800 for D >= 0.8e-3
    signal = torch.as_tensor(500.0 * ivim_attenuation(bvalues, d_true, f_true))
    s0, d, f, dstar = fit_ivim(signal, bvalues)
    np.testing.assert_allclose(d.numpy(), d_true, rtol=0.03)
    np.testing.assert_allclose(f.numpy(), f_true, atol=0.015)
    np.testing.assert_allclose(s0.numpy(), 500.0, rtol=1e-9)
    assert bool(((dstar > d) & (dstar <= 0.5)).all())
    with pytest.raises(FrameValuesError, match="needs a b = 0 frame"):
        fit_ivim(signal[1:], bvalues[1:])
    with pytest.raises(FrameValuesError, match=r"b >= 200.0\) needs at least 2 distinct"):
        fit_ivim(signal[:2], bvalues[:2])


def test_select_bvalues_copies_acquired_and_synthesises_missing():
    acquired = [800.0, 0.0, 1500.0, 50.0]  # unsorted, b = 150 and 1000 missing
    img = _dwi(acquired)
    out = SelectBValues([0.0, 150.0, 800.0, 1000.0, 1500.0])(img)
    assert out.shape == (5, *SHAPE) and out.meta["frame_values"] == [0.0, 150.0, 800.0, 1000.0, 1500.0]
    assert out.meta["synthesised_bvalues"] == [150.0, 1000.0]
    assert torch.equal(out[0].as_tensor(), img[1].as_tensor()) and torch.equal(out[2].as_tensor(), img[0].as_tensor())
    torch.testing.assert_close(out[3].as_tensor(), _dwi([1000.0])[0].as_tensor(), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out.affine, AFFINE)


def test_select_bvalues_numpy_tolerance_and_errors():
    img = _dwi([0.0, 800.0])
    plain = img.as_tensor().numpy()
    with pytest.raises(FrameValuesError, match="no 'frame_values'"):
        SelectBValues([0.0])(plain)
    assert SelectBValues([0.0, 799.5])(img).meta["synthesised_bvalues"] == []  # within tol = 1
    with pytest.raises(FrameValuesError, match=r"lacks b-values \[150.0\]"):
        SelectBValues([0.0, 150.0], synthesise=False)(img)
    with pytest.raises(FrameValuesError, match=r"at least 2 distinct b-values, got \[800.0\]"):
        SelectBValues([0.0, 800.0])(_dwi([800.0]))
    with pytest.raises(FrameValuesError, match=r"dwi.nii.gz' has duplicate b-values \[800.0\]"):
        SelectBValues([0.0])(_dwi([0.0, 800.0, 800.0]))
    averaged = SelectBValues([0.0, 800.0], duplicates="average")(
        MetaTensor(torch.stack([_dwi([0.0])[0], _dwi([800.0])[0] * 0.9, _dwi([800.0])[0] * 1.1]),
                   meta={"frame_axis": "bvalue", "frame_values": [0.0, 800.0, 800.0]}))
    torch.testing.assert_close(averaged[1].as_tensor(), _dwi([800.0])[0].as_tensor())
    with pytest.raises(FrameValuesError, match="expected frame axis 'bvalue'"):
        SelectBValues([0.0])(MetaTensor(torch.ones(2, 2, 2, 2), meta={"frame_axis": "time", "frame_values": [0, 1]}))


def test_select_bvalues_ivim_and_dict_twin():
    b = [0.0, 150.0, 800.0, 1500.0]
    signal = 700.0 * ivim_attenuation(b, np.full(SHAPE, 1.0e-3), np.full(SHAPE, 0.1))
    img = MetaTensor(torch.as_tensor(signal, dtype=torch.float32),
                     meta={"frame_axis": "bvalue", "frame_values": b})
    out = SelectBValues([0.0, 1000.0], model="ivim")(img)
    expected = 700.0 * ivim_attenuation([1000.0], np.full(SHAPE, 1.0e-3), np.full(SHAPE, 0.1))[0]
    np.testing.assert_allclose(out[1].numpy(), expected, rtol=0.02)
    d = SelectBValuesd("DWI", bvalues=[0.0, 1000.0], model="ivim")({"DWI": img, "T1": 1})
    torch.testing.assert_close(d["DWI"].as_tensor(), out.as_tensor())
    with pytest.raises(ValueError, match="model"):
        SelectBValues([0.0], model="kurtosis")


def test_adc_and_ivim_maps_and_dict_twins():
    img = _dwi([0.0, 50.0, 800.0, 1500.0])
    adc = ADCMap(bvalue_range=(50, 1500), scale=1e3)(img)
    assert adc.shape == (1, *SHAPE) and adc.meta["bvalues_used"] == [50.0, 800.0, 1500.0]
    assert "frame_values" not in adc.meta and adc.meta["units"] == "0.001 mm^2/s"
    torch.testing.assert_close(adc[0].as_tensor().double(), _adc_field() * 1e3, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(adc.affine, AFFINE)
    with pytest.raises(FrameValuesError, match="at least 2 distinct"):
        ADCMap(bvalue_range=(1000, 2000))(img)
    d = ADCMapd("DWI")({"DWI": img})
    torch.testing.assert_close(d["ADC"].as_tensor(), ADCMap()(img).as_tensor())
    with pytest.raises(ValueError, match=r"already has \['ADC'\]"):
        ADCMapd("DWI")({"DWI": img, "ADC": adc})
    maps = IVIMMaps()(img)
    assert maps.shape == (3, *SHAPE) and maps.meta["channels"] == ["D", "f", "Dstar"]
    dm = IVIMMapsd("DWI")({"DWI": img})
    torch.testing.assert_close(dm["f"].as_tensor(), maps[1:2].as_tensor())
    bad = img.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="Inf"):
        ADCMap()(bad)


def _nibabel_dwi_file(b: int):
    import nibabel

    path = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data", f"siemens_dwi_{b}.dcm.gz")
    if not os.path.exists(path):
        pytest.skip(f"nibabel's test file {path} is not installed")
    with gzip.open(path, "rb") as fh:
        return pydicom.dcmread(fh)


def test_adc_on_real_siemens_scanner_files():
    """nibabel ships one Siemens DWI mosaic at b = 0 and one at b = 1000 (b-values in the CSA header), with the
    pixel data blanked: the b-values come from the real vendor fields, and blank voxels give ADC 0, not NaN."""
    ds0, ds1000 = _nibabel_dwi_file(0), _nibabel_dwi_file(1000)
    assert (get_bvalue(ds0), get_bvalue(ds1000)) == (0.0, 1000.0)
    frames = np.stack([ds0.pixel_array, ds1000.pixel_array]).astype(np.float32)[..., None]
    assert frames.shape == (2, 896, 896, 1) and not frames.any()  # blanked by nibabel: nothing to fit
    img = MetaTensor(torch.as_tensor(frames), meta={"frame_axis": "bvalue",
                                                    "frame_values": [get_bvalue(ds0), get_bvalue(ds1000)]})
    adc = ADCMap()(img)
    assert adc.shape == (1, 896, 896, 1) and bool(torch.isfinite(adc).all()) and float(adc.abs().max()) == 0.0
