"""DWI transforms: mono-exponential and IVIM fits, b-value selection/synthesis, ADC and IVIM maps."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_seq2seq.core import DWI_BVALUES
from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.phantoms.signal import ivim_attenuation
from monai_seq2seq.transforms import (
    ADCMap,
    ADCMapd,
    IVIMMaps,
    IVIMMapsd,
    SelectBValues,
    SelectBValuesd,
    diffusion_signal,
    fit_ivim,
    fit_monoexponential,
    ivim_signal,
)

__all__: list[str] = []

AFFINE = torch.diag(torch.tensor([1.0, 1.0, 4.0, 1.0], dtype=torch.float64))
SHAPE = (4, 3, 2)
S0 = 1000.0


def _adc_field() -> torch.Tensor:
    return torch.linspace(0.5e-3, 2.5e-3, int(np.prod(SHAPE)), dtype=torch.float64).reshape(SHAPE)


def _frames(bvalues, adc=None, s0=S0, dtype=torch.float32) -> torch.Tensor:
    """Noise-free mono-exponential frames ``(len(bvalues), *SHAPE)``."""
    adc = _adc_field() if adc is None else adc
    return torch.stack([s0 * torch.exp(-float(b) * adc) for b in bvalues]).to(dtype)


def _dwi(bvalues, **kwargs) -> MetaTensor:
    return MetaTensor(
        _frames(bvalues, **kwargs),
        affine=AFFINE.clone(),
        meta={"frame_axis": "bvalue", "frame_values": [float(b) for b in bvalues], "filename_or_obj": "dwi.nii.gz"},
    )


def test_monoexponential_fit_exact_noise_free():
    b = list(DWI_BVALUES)
    s0, adc = fit_monoexponential(_frames(b, dtype=torch.float64), b)
    assert s0.dtype == adc.dtype == torch.float64 and adc.shape == SHAPE
    torch.testing.assert_close(adc, _adc_field(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(s0, torch.full(SHAPE, S0, dtype=torch.float64), rtol=1e-10, atol=1e-9)
    # numpy input and unsorted b-values give the same fit
    order = [2, 0, 3, 1]
    _, adc_np = fit_monoexponential(_frames(b, dtype=torch.float64).numpy()[order], [b[i] for i in order])
    torch.testing.assert_close(adc_np, _adc_field(), rtol=1e-10, atol=1e-14)


def test_monoexponential_fit_with_noise():
    b = [0.0, 150.0, 800.0, 1500.0]
    rng = np.random.default_rng(0)
    clean = _frames(b, adc=torch.full((4000,), 1.2e-3, dtype=torch.float64), dtype=torch.float64)
    noisy = clean * torch.as_tensor(1.0 + 0.02 * rng.standard_normal(clean.shape))
    s0, adc = fit_monoexponential(noisy, b)
    assert abs(float(adc.mean()) - 1.2e-3) < 2e-5, float(adc.mean())
    assert 1e-6 < float(adc.std()) < 5e-5, float(adc.std())  # noise is visible, but small
    assert abs(float(s0.mean()) - S0) < 5.0


def test_monoexponential_fit_errors():
    with pytest.raises(
        FrameValuesError,
        match=r"ADC/mono-exponential fit needs at least two distinct b-values, "
        r"got \[800.0\]",
    ):
        fit_monoexponential(_frames([800.0, 800.0]), [800.0, 800.0])
    with pytest.raises(FrameValuesError, match=r"3 frames but 2 b-values"):
        fit_monoexponential(_frames([0.0, 500.0, 1000.0]), [0.0, 1000.0])
    with pytest.raises(FrameValuesError, match=r">= 0 s/mm\^2, got \[-10.0, 1000.0\]"):
        fit_monoexponential(_frames([0.0, 1000.0]), [-10.0, 1000.0])


@pytest.mark.parametrize("bvalues", [[0.0, 50.0, 150.0, 300.0, 800.0, 1500.0], list(DWI_BVALUES)])
def test_ivim_fit_recovers_d_and_f(bvalues):
    d_true = np.array([0.8e-3, 1.2e-3, 1.6e-3, 2.0e-3])
    f_true = np.array([0.05, 0.10, 0.20, 0.0])
    signal = torch.as_tensor(500.0 * ivim_attenuation(bvalues, d_true, f_true))  # D* = 10 D (phantom's factor)
    s0, d, f, dstar = fit_ivim(signal, bvalues)
    np.testing.assert_allclose(d.numpy(), d_true, rtol=0.03)
    np.testing.assert_allclose(f.numpy(), f_true, atol=0.015)
    np.testing.assert_allclose(s0.numpy(), 500.0, rtol=1e-12)
    assert bool(((dstar >= 3e-3) & (dstar <= 0.5)).all())
    # the fitted model reproduces the acquired signal
    np.testing.assert_allclose(ivim_signal(s0, d, f, dstar, bvalues).numpy(), signal.numpy(), rtol=0.03, atol=1.0)


def test_ivim_fit_recovers_dstar_with_several_low_bvalues():
    b = [0.0, 20.0, 50.0, 100.0, 400.0, 800.0, 1500.0]
    d_true, f_true, dstar_true = torch.tensor([1.0e-3, 1.5e-3]), torch.tensor([0.15, 0.25]), torch.tensor([0.03, 0.05])
    signal = ivim_signal(torch.tensor(300.0), d_true.double(), f_true.double(), dstar_true.double(), b)
    _, d, f, dstar = fit_ivim(signal, b)
    np.testing.assert_allclose(d.numpy(), d_true.numpy(), rtol=1e-3)
    np.testing.assert_allclose(f.numpy(), f_true.numpy(), atol=2e-3)
    np.testing.assert_allclose(dstar.numpy(), dstar_true.numpy(), rtol=0.02)


def test_ivim_fit_errors_name_what_is_missing():
    signal = torch.ones(4, 2)
    with pytest.raises(FrameValuesError, match=r"needs a b = 0 frame"):
        fit_ivim(signal, [50.0, 150.0, 800.0, 1500.0])
    with pytest.raises(FrameValuesError, match=r"b-value in \(0, 200\) for D\*"):
        fit_ivim(signal, [0.0, 300.0, 800.0, 1500.0])
    with pytest.raises(FrameValuesError, match=r"D from b >= 200.*needs at least two distinct b-values, got \[800.0\]"):
        fit_ivim(signal, [0.0, 150.0, 800.0, 800.0])


def test_forward_models():
    s0, adc = torch.tensor([100.0, 200.0], dtype=torch.float64), torch.tensor([1e-3, 2e-3], dtype=torch.float64)
    out = diffusion_signal(s0, adc, [0.0, 1000.0])
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[1], s0 * torch.exp(-1000.0 * adc))
    torch.testing.assert_close(out[0], s0)
    f, dstar = torch.tensor([0.0, 0.2], dtype=torch.float64), torch.tensor([0.02, 0.02], dtype=torch.float64)
    torch.testing.assert_close(ivim_signal(s0, adc, f, dstar, [1000.0])[0, 0], out[1, 0])  # f = 0: mono-exp


def test_select_bvalues_copies_exactly_and_synthesises():
    acquired = [800.0, 0.0, 1500.0, 50.0]  # unsorted; 150 and 1000 missing
    img = _dwi(acquired)
    img_before = img.clone()
    requested = [1500.0, 0.0, 150.0, 800.0, 1000.0]
    out = SelectBValues(requested)(img)
    assert isinstance(out, MetaTensor) and out.shape == (5, *SHAPE)
    assert out.meta["frame_axis"] == "bvalue" and out.meta["frame_values"] == requested
    assert out.meta["synthesised_bvalues"] == [150.0, 1000.0]
    for i_out, i_in in ((0, 2), (1, 1), (3, 0)):
        assert torch.equal(out[i_out].as_tensor(), img[i_in].as_tensor())  # bit-exact copies
    torch.testing.assert_close(out[4].as_tensor(), _frames([1000.0])[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out[2].as_tensor(), _frames([150.0])[0], rtol=1e-5, atol=1e-4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.affine, AFFINE)
    # the input is untouched
    assert img.meta["frame_values"] == acquired and "synthesised_bvalues" not in img.meta
    assert torch.equal(img.as_tensor(), img_before.as_tensor())


def test_select_bvalues_ivim_model_and_tolerance():
    b = list(DWI_BVALUES)
    d_map, f_map = np.full(SHAPE, 1.0e-3), np.full(SHAPE, 0.1)
    img = MetaTensor(
        torch.as_tensor(700.0 * ivim_attenuation(b, d_map, f_map), dtype=torch.float32),
        meta={"frame_axis": "bvalue", "frame_values": b},
    )
    out = SelectBValues([0.0, 1000.0], model="ivim")(img)
    expected = 700.0 * ivim_attenuation([1000.0], d_map, f_map)[0]
    np.testing.assert_allclose(out[1].numpy(), expected, rtol=0.01)
    mono = SelectBValues([0.0, 1000.0], model="monoexp")(img)
    assert not np.allclose(mono[1].numpy(), expected, rtol=0.01)  # the mono-exponential model differs here
    assert SelectBValues([0.0, 799.5], tol=1.0)(img).meta["synthesised_bvalues"] == []
    assert SelectBValues([0.0, 799.5], tol=0.1)(img).meta["synthesised_bvalues"] == [799.5]


def test_select_bvalues_errors():
    with pytest.raises(FrameValuesError, match=r"lacks b-values \[150.0, 1000.0\]"):
        SelectBValues([0.0, 150.0, 800.0, 1000.0], synthesise=False)(_dwi([0.0, 800.0]))
    with pytest.raises(FrameValuesError, match=r"two distinct b-values, got \[800.0\]"):
        SelectBValues([0.0, 800.0])(_dwi([800.0]))
    with pytest.raises(FrameValuesError, match=r"'dwi.nii.gz' has duplicate b-values \[800.0\]"):
        SelectBValues([0.0])(_dwi([0.0, 800.0, 800.0]))
    with pytest.raises(FrameValuesError, match="no 'frame_values'"):
        SelectBValues([0.0])(_frames([0.0, 800.0]).numpy())
    with pytest.raises(FrameValuesError, match="expected frame axis 'bvalue'"):
        SelectBValues([0.0])(MetaTensor(torch.ones(2, 2, 2, 2), meta={"frame_axis": "time", "frame_values": [0, 1]}))
    with pytest.raises(ValueError, match="model"):
        SelectBValues([0.0], model="kurtosis")
    with pytest.raises(ValueError, match="repeat"):
        SelectBValues([0.0, 0.0])
    bad = _dwi([0.0, 800.0])
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"1 non-finite voxels \(1 NaN"):
        SelectBValues([0.0, 1000.0])(bad)


def test_select_bvalues_average_duplicates():
    base = _frames([0.0, 800.0])
    img = MetaTensor(
        torch.stack([base[1] * 0.9, base[0], base[1] * 1.1]),
        affine=AFFINE.clone(),
        meta={"frame_axis": "bvalue", "frame_values": [800.0, 0.0, 800.0]},
    )
    out = SelectBValues([0.0, 800.0, 1500.0], duplicates="average")(img)
    assert torch.equal(out[0].as_tensor(), base[0])
    torch.testing.assert_close(out[1].as_tensor(), base[1])
    torch.testing.assert_close(out[2].as_tensor(), _frames([1500.0])[0], rtol=1e-5, atol=1e-4)


def test_numpy_in_numpy_out_and_integer_input():
    frames = _frames([0.0, 800.0]).numpy()
    out = SelectBValues([0.0, 1000.0, 800.0], frame_values=[0.0, 800.0])(frames)
    assert isinstance(out, np.ndarray) and out.shape == (3, *SHAPE) and out.dtype == np.float32
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[2], frames[1])
    adc = ADCMap(frame_values=[0.0, 800.0])(frames)
    assert isinstance(adc, np.ndarray) and adc.shape == (1, *SHAPE)
    np.testing.assert_allclose(adc[0], _adc_field().numpy(), rtol=1e-4)
    as_int = np.round(frames).astype(np.uint16)
    out_int = SelectBValues([0.0, 800.0, 1000.0], frame_values=[0.0, 800.0])(as_int)
    assert out_int.dtype == np.float32 and np.array_equal(out_int[:2], as_int.astype(np.float32))
    assert not np.array_equal(out_int[2], np.round(out_int[2]))  # synthesised frame not truncated to integers


def test_adc_map():
    img = _dwi([0.0, 50.0, 800.0, 1500.0])
    adc = ADCMap(bvalue_range=(50, 1500), scale=1e3)(img)
    assert isinstance(adc, MetaTensor) and adc.shape == (1, *SHAPE) and adc.dtype == torch.float32
    assert adc.meta["bvalues_used"] == [50.0, 800.0, 1500.0] and adc.meta["units"] == "0.001 mm^2/s"
    assert "frame_values" not in adc.meta and "frame_axis" not in adc.meta
    assert adc.meta["derived_from"] == "image 'dwi.nii.gz'"
    torch.testing.assert_close(adc[0].as_tensor().double(), _adc_field() * 1e3, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(adc.affine, AFFINE)
    assert img.meta["frame_values"] == [0.0, 50.0, 800.0, 1500.0]  # input meta untouched
    with pytest.raises(FrameValuesError, match=r"in \[1000, 2000\].*two distinct b-values, got \[1500.0\]"):
        ADCMap(bvalue_range=(1000, 2000))(img)
    bad = img.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"1 non-finite voxels \(0 NaN, 1 Inf\)"):
        ADCMap()(bad)


def test_ivim_maps():
    b = [0.0, 50.0, 150.0, 300.0, 800.0, 1500.0]
    d_map, f_map = np.full(SHAPE, 1.2e-3), np.linspace(0.0, 0.3, int(np.prod(SHAPE))).reshape(SHAPE)
    img = MetaTensor(
        torch.as_tensor(400.0 * ivim_attenuation(b, d_map, f_map), dtype=torch.float32),
        affine=AFFINE.clone(),
        meta={"frame_axis": "bvalue", "frame_values": b},
    )
    maps = IVIMMaps()(img)
    assert maps.shape == (3, *SHAPE) and maps.meta["channels"] == ["D", "f", "Dstar"]
    np.testing.assert_allclose(maps[0].numpy(), d_map, rtol=0.02)
    np.testing.assert_allclose(maps[1].numpy(), f_map, rtol=0.05, atol=1e-3)  # segmented-fit bias ~ 4% of f
    torch.testing.assert_close(maps.affine, AFFINE)
    with pytest.raises(FrameValuesError, match="needs a b = 0 frame"):
        IVIMMaps()(MetaTensor(img[1:].as_tensor(), meta={"frame_axis": "bvalue", "frame_values": b[1:]}))


def test_dict_twins_equal_array_versions():
    img = _dwi([0.0, 50.0, 800.0, 1500.0])
    data = {"DWI": img, "T1": torch.ones(1, *SHAPE)}
    sel = SelectBValuesd("DWI", bvalues=[0.0, 1000.0], model="ivim")(data)
    assert torch.equal(sel["DWI"].as_tensor(), SelectBValues([0.0, 1000.0], model="ivim")(img).as_tensor())
    assert sel["T1"] is data["T1"] and data["DWI"] is img  # other keys and the input dict untouched
    adc = ADCMapd("DWI", scale=1e3)(data)
    assert torch.equal(adc["ADC"].as_tensor(), ADCMap(scale=1e3)(img).as_tensor()) and adc["DWI"] is img
    maps = IVIMMaps()(img)
    ivim = IVIMMapsd("DWI")(data)
    for i, key in enumerate(("D", "f", "Dstar")):
        assert ivim[key].shape == (1, *SHAPE) and torch.equal(ivim[key].as_tensor(), maps[i : i + 1].as_tensor())
    assert ivim["f"].meta["channels"] == ["f"]
    assert SelectBValuesd("DWI", bvalues=[0.0], allow_missing_keys=True)({"T1": 1}) == {"T1": 1}
    with pytest.raises(KeyError, match="DWI"):  # MONAI's default: a missing key is an error
        SelectBValuesd("DWI", bvalues=[0.0])({"T1": 1})


def test_adcmapd_refuses_overwrite():
    img = _dwi([0.0, 800.0])
    acquired_adc = torch.zeros(1, *SHAPE)
    with pytest.raises(ValueError, match=r"already has \['ADC'\].*overwrite=True"):
        ADCMapd("DWI")({"DWI": img, "ADC": acquired_adc, "subject": "s1"})
    out = ADCMapd("DWI", overwrite=True)({"DWI": img, "ADC": acquired_adc})
    assert out["ADC"] is not acquired_adc and float(out["ADC"].mean()) > 0
    with pytest.raises(ValueError, match=r"already has \['f'\]"):
        IVIMMapsd("DWI")({"DWI": _dwi([0.0, 50.0, 800.0, 1500.0]), "f": acquired_adc})


def _nibabel_dwi_file(b: int):
    import nibabel
    import pydicom

    path = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data", f"siemens_dwi_{b}.dcm.gz")
    if not os.path.exists(path):
        pytest.skip(f"nibabel's Siemens DWI test file {path} is not installed with this nibabel")
    with gzip.open(path, "rb") as fh:
        return pydicom.dcmread(fh)


def test_adc_on_real_siemens_scanner_files():
    """nibabel's two real Siemens DWI mosaics (b = 0 and b = 1000 in the CSA header).

    nibabel ships them with the pixel data blanked (all zeros), so no tissue ADC can be measured from them: the
    test checks the b-values read from the real vendor fields, the shared grid, and that blank voxels give a
    finite ADC of 0 (signal floor on both frames), not NaN. If the files ever carry real pixels, the blank-data
    assertion fails and the tissue-range check below must take its place.
    """
    from monai_seq2seq.io.dicom_vendor import get_bvalue

    ds0, ds1000 = _nibabel_dwi_file(0), _nibabel_dwi_file(1000)
    bvalues = [get_bvalue(ds0), get_bvalue(ds1000)]
    assert bvalues == [0.0, 1000.0]
    assert "MOSAIC" in list(ds0.ImageType) and (ds0.Rows, ds0.Columns) == (ds1000.Rows, ds1000.Columns)
    frames = np.stack([ds0.pixel_array, ds1000.pixel_array]).astype(np.float32)[..., None]
    img = MetaTensor(torch.as_tensor(frames), meta={"frame_axis": "bvalue", "frame_values": bvalues})
    adc = ADCMap()(img)
    assert adc.shape == (1, ds0.Rows, ds0.Columns, 1) and bool(torch.isfinite(adc).all())
    b0 = frames[0, ..., 0]
    tissue = b0 > np.percentile(b0, 75)
    median = float(np.median(adc[0, ..., 0].numpy()[tissue])) if tissue.any() else float("nan")
    print(
        f"siemens_dwi: b-values {bvalues}, nonzero b=0 voxels {int(np.count_nonzero(b0))}, "
        f"tissue voxels {int(tissue.sum())}, median ADC {median:.3g} mm^2/s, max |ADC| {float(adc.abs().max()):g}"
    )
    assert not frames.any(), "nibabel's DWI files now carry pixels: check 0.2e-3 < median ADC < 3.5e-3 instead"
    assert float(adc.abs().max()) == 0.0
