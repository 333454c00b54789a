"""The files of a bundle around the Seq2Seq authors' weights: configs composed from a template bundle, metadata,
licence and model card (:func:`write_authors_bundle`); the weights themselves come from
:func:`monai_seq2seq.zoo.authors.import_authors`.

The template (``bundles/seq2seq_brain`` for the brain protocol) gives every config; only what the authors' weights
need differs: ``network_def`` (their sizes, bilinear upsampling, pinned), ``normalise`` (their intensity scaling)
and the writer's model name. Override files (``differentiation.json``, ``evaluate.json``, ``multi_gpu_train.json``)
are copied as they are, so they compose on the new base configs the usual way.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai_seq2seq.core.files import atomic_write_text

if TYPE_CHECKING:
    from .authors import AuthorsConfig

__all__ = [
    "AUTHORS_NORMALISE",
    "FITTED_TO_TEMPLATE_WEIGHTS",
    "authors_network_def",
    "compose_authors_configs",
    "authors_metadata",
    "authors_license",
    "authors_model_card",
    "write_authors_bundle",
    "default_template",
]

REPOSITORY_URL = "https://github.com/fiy2W/mri_seq2seq"
PAPER = (
    "Han L, Tan T, Zhang T, et al. Synthesis-based imaging-differentiation representation learning for "
    "multi-sequence 3D/4D MRI. Medical Image Analysis 92 (2024) 103044. doi:10.1016/j.media.2023.103044"
)
TERMS = (
    "The weights are the Seq2Seq authors' (Luyi Han et al., " + REPOSITORY_URL + "), not monai-seq2seq's: "
    "they are used under the authors' terms (their repository is MIT-licensed, Copyright (c) 2023 Luyi Han; check "
    "its README for the terms of the published checkpoints). monai-seq2seq does not distribute them."
)
# The authors' dataloader: clip(x, 0, 2 * p99) / (2 * p99) over the whole volume, then * 2 - 1. In [0, 1] (the
# synthesiser maps to [-1, 1]): (x - p0) / (p99 - p0) * 0.5, capped at 1; p0 = 0 on skull-stripped BraTS volumes.
AUTHORS_NORMALISE: dict[str, Any] = {
    "_target_": "Compose",
    "transforms": [
        {
            "_target_": "ScaleIntensityRangePercentilesd",
            "keys": "@sequence_keys",
            "lower": 0,
            "upper": 99,
            "b_min": 0.0,
            "b_max": 0.5,
            "clip": False,
            "relative": False,
            "allow_missing_keys": True,
        },
        {
            "_target_": "ThresholdIntensityd",
            "keys": "@sequence_keys",
            "threshold": 1.0,
            "above": False,
            "cval": 1.0,
            "allow_missing_keys": True,
        },
    ],
}
_TEMPLATES = {"brain": "seq2seq_brain", "breast": "seq2seq_breast"}


def default_template(protocol: str) -> Path:
    """The shipped bundle of ``protocol`` in the source checkout (``bundles/seq2seq_<protocol>``).

    Raises:
        ValueError: no shipped bundle for ``protocol``, or the checkout's ``bundles`` folder is absent (installed
            package): give ``template`` (e.g. a folder from ``seq2seq zoo download seq2seq_brain``).
    """
    if str(protocol) not in _TEMPLATES:
        raise ValueError(
            f"no template bundle for protocol {protocol!r} (known: {sorted(_TEMPLATES)}); give --template <bundle>."
        )
    path = Path(__file__).resolve().parents[2] / "bundles" / _TEMPLATES[str(protocol)]
    if not (path / "configs" / "inference.json").is_file():
        raise ValueError(
            f"template bundle {path} not found (an installed package has no bundles/ folder): "
            f"`seq2seq zoo download {_TEMPLATES[str(protocol)]}` and give --template <that folder>."
        )
    return path


def authors_network_def(
    config: AuthorsConfig, base: dict[str, Any] | None = None, train: bool = False
) -> dict[str, Any]:
    """``network_def`` of the bundle: the template's (its ``_target_`` and extra arguments, e.g. a default target)
    as ``"released"``, variant C, with every size of the authors' network and their upsampling pinned.

    ``train=True`` takes ``spatial_dims`` and ``in_channels`` from ``train.json``'s ``@spatial_dims`` and
    ``@num_slices`` (set to the same values), which its slicing reads too.
    """
    definition: dict[str, Any] = {"_target_": "monai_seq2seq.networks.build_seq2seq", "protocol": "@protocol"}
    definition.update(base or {})
    definition.update(name="released", variant="C", **config.network_kwargs())
    if train:
        definition.update(spatial_dims="@spatial_dims", in_channels="@num_slices")
    return definition


def _rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, dict):
        return {k: _rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, old, new) for v in value]
    return value


FITTED_TO_TEMPLATE_WEIGHTS = ("quality.json", "uncertainty_calibration.json")
"""Template configs that are models fitted to the template's own weights (per-case quality, error model): they would
describe another network wrongly, so an authors' bundle leaves them out (no quality flag, raw uncertainty)."""


def compose_authors_configs(
    template: Path, config: AuthorsConfig, name: str, protocol: str = "brain"
) -> dict[str, dict[str, Any]]:
    """``configs/<file>.json`` contents: the template's configs with the authors' network and normalisation
    (without :data:`FITTED_TO_TEMPLATE_WEIGHTS`).

    Raises:
        ValueError: the template lacks ``configs/inference.json``.
    """
    configs = Path(template) / "configs"
    if not (configs / "inference.json").is_file():
        raise ValueError(f"template {template} has no configs/inference.json: not a monai-seq2seq bundle folder.")
    template_name = json.loads((configs / "metadata.json").read_text()).get("name", Path(template).name)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(configs.glob("*.json")):
        if path.name == "metadata.json" or path.name in FITTED_TO_TEMPLATE_WEIGHTS:
            continue
        content = _rename(json.loads(path.read_text()), template_name, name)
        if "network_def" in content:
            content["network_def"] = authors_network_def(config, content["network_def"], "num_slices" in content)
            content["protocol"] = protocol
        if "num_slices" in content:
            content.update(spatial_dims=config.ndims, num_slices=config.c_in, network_size="released")
        if "normalise" in content:
            content["normalise"] = copy.deepcopy(AUTHORS_NORMALISE)
        out[path.name] = content
    return out


def _data_format(config: AuthorsConfig) -> dict[str, Any]:
    factor = 2 ** (len(config.c_enc) - 1)
    shape = [f"{factor}*n"] * config.ndims
    if config.ndims == 2 and config.c_in > 1:
        half = config.c_in // 2
        channels = {str(i): f"slice z{i - half:+d}" if i != half else "slice z" for i in range(config.c_in)}
    else:
        channels = {str(i): "image" for i in range(config.c_in)}

    def tensor(num_channels: int) -> dict[str, Any]:
        return {
            "type": "image",
            "format": "magnitude",
            "modality": "MR",
            "num_channels": num_channels,
            "spatial_shape": shape,
            "dtype": "float32",
            "value_range": [-1, 1],
            "is_patch_data": False,
            "channel_def": channels if num_channels == config.c_in else {str(i): "image" for i in range(num_channels)},
        }

    return {
        "inputs": {"image": tensor(config.c_in)},
        "outputs": {"pred": tensor(config.c_dec[-1])},
        "extra_forward_args": {"target": "int code index of the target sequence (protocol order: the authors' one)"},
    }


def authors_metadata(
    template_meta: dict[str, Any],
    config: AuthorsConfig,
    name: str,
    parameters: int,
    source: dict[str, Any] | None = None,
    layout: str = "nifti",
    protocol: str = "brain",
) -> dict[str, Any]:
    """``configs/metadata.json``: the template's versions and schema, the authors' sizes, source and terms."""
    import monai_seq2seq

    meta = {k: v for k, v in template_meta.items() if k not in ("trained_on", "changelog", "version")}
    file = (source or {}).get("file", "not imported yet")
    meta.update(
        version="0.1.0",
        changelog={
            "0.1.0": f"the Seq2Seq authors' {config.ndims}D network ({parameters / 1e6:.1f} M parameters) as a "
            f"monai-seq2seq {monai_seq2seq.__version__} bundle; configs composed from {template_meta.get('name')} "
            f"{template_meta.get('version')}; weights: {file} (github.com/fiy2W/mri_seq2seq), converted by "
            "`seq2seq zoo import-authors`"
        },
        name=name,
        task="Multi-sequence MRI translation with the Seq2Seq authors' weights, differentiation maps and ranking",
        description=(
            "The Seq2Seq authors' network (Seq2Seq-C, HyperConv decoder, bilinear upsampling) and their weights, run "
            "by monai-seq2seq's configs: synthesis, differentiation maps, sequence ranking."
        ),
        authors="Weights: Luyi Han et al. (github.com/fiy2W/mri_seq2seq); configs: monai-seq2seq authors",
        copyright="Weights: Copyright (c) 2023 Luyi Han, under the authors' terms; configs: monai-seq2seq authors",
        data_source="BraTS 2021, as the authors trained (their data lists)" if protocol == "brain" else "the authors'",
        image_classes=(
            "MRI sequences scaled as the authors do: clip(x, 0, 2 * p99) / (2 * p99) per volume, to [-1, 1]"
            + ("; 2.5D: adjacent axial slices as channels" if config.ndims == 2 and config.c_in > 1 else "")
        ),
        network_data_format=_data_format(config),
        references=[PAPER, REPOSITORY_URL],
        network={
            "authors_config": config.to_yaml_dict(),
            "build_seq2seq": config.network_kwargs(),
            "parameters": parameters,
            "upsample_mode": "linear",
        },
        authors_weights={
            "repository": REPOSITORY_URL,
            "file": file,
            "sha256": (source or {}).get("sha256"),
            "layout": layout,
            "terms": TERMS,
        },
        trained_on=_trained_on(protocol),
    )
    meta.setdefault("required_packages_version", {})["monai-seq2seq"] = monai_seq2seq.__version__
    return meta


def _trained_on(protocol: str) -> dict[str, Any]:
    """What the bundle's inputs are compared with (``CheckTrainedOnd``): BraTS 2021's published geometry."""
    block: dict[str, Any] = {"protocol": protocol, "data": "the authors' training data (not available here)"}
    if protocol == "brain":
        block.update(
            data="BraTS 2021 (1 mm isotropic, skull-stripped, co-registered), as the authors trained",
            spacing_mm=[1.0, 1.0, 1.0],
            skull_stripped=True,
        )
    return block


def authors_license() -> str:
    """``LICENSE``: Apache-2.0 for the configs, the authors' terms for the weights."""
    return (
        "Configs, metadata and documentation of this bundle: Copyright 2026 the monai-seq2seq authors, licensed\n"
        "under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).\n\n"
        "models/model.pt (when present): " + TERMS + "\n"
    )


def authors_model_card(
    config: AuthorsConfig, name: str, parameters: int, layout: str = "nifti", source: dict[str, Any] | None = None
) -> str:
    """``docs/README.md``: what the network is, where the weights come from and under whose terms, how to run it."""
    sizes = ", ".join(f"{k} {v}" for k, v in config.to_yaml_dict().items())
    file = (source or {}).get("file")
    sha = (source or {}).get("sha256")
    origin = (
        f"`models/model.pt` was converted from `{file}` (sha256 `{sha}`)."
        if sha
        else "This folder holds no weights yet: `seq2seq zoo import-authors` writes them (below)."
    )
    layout_text = (
        "The kernels are transposed in-plane (3D: axes reversed) at conversion: the authors read volumes with "
        "SimpleITK ((Z, Y, X) arrays), this package with nibabel ((X, Y, Z)), so on the same NIfTI voxels the bundle "
        "gives the authors' images."
        if layout == "nifti"
        else "The kernels are as the authors saved them (`--layout authors`): the same tensor gives the same output "
        "as their code, but NIfTI volumes read by this package are transposed in-plane relative to theirs."
    )
    return f"""# {name}

The Seq2Seq authors' network with **their weights**, run by monai-seq2seq's configs: synthesis of missing
sequences, imaging-differentiation maps and sequence ranking. Network: Seq2Seq-C (HyperConv decoder),
{config.ndims}D, {parameters / 1e6:.1f} M parameters, decoder upsampling bilinear (trilinear in 3D,
`upsample_mode: linear`, pinned in `network_def`), as in their code.

Authors' sizes (their YAML names): {sizes}.

## Source of the weights and terms

{TERMS}

Where to get them: the README of their repository, github.com/fiy2W/mri_seq2seq
(`publications/src/seq2seq/README.md`, "Pre-trained Models"), links the published BraTS 2021 checkpoints
`seq2seq_brats_2d_missing.pth` (trained with missing sequences) and `seq2seq_brats_2d_complete.pth` with their
YAML configs (Google Drive); a `ckpt_best.pth` from their training script works the same way. {origin}
Cite their paper: {PAPER}.

## From the authors' checkpoint to differentiation maps

```bash
seq2seq zoo import-authors seq2seq_brats_2d_missing.pth --config seq2seq_brats_2d_missing.yaml --out path/to/{name}
seq2seq diffmap --bundle path/to/{name} --datalist /data/BraTS2021/datalist.json --out diffmaps
```

The first command checks every tensor against the network (an unknown key, a missing key or a shape that does not
fit is refused, named), loads with `torch.load(weights_only=True)`, writes `models/model.pt` and its sha256 into
`large_files.yml`, and runs `seq2seq zoo verify`. The datalist comes from `seq2seq datalist /data/BraTS2021 --out
/data/BraTS2021/datalist.json`.

## What differs from the seq2seq_brain bundle

- `network_def`: the authors' sizes and bilinear upsampling, every argument pinned.
- `normalise`: the authors' intensity scaling, `clip(x, 0, 2 * p99) / (2 * p99)` over the whole volume (it assumes
  a zero background, as in BraTS), instead of the 0.5/99.5 percentiles of non-zero voxels.
- Axis order: {layout_text}
- `trained_on`: BraTS 2021's geometry (1 mm isotropic, skull-stripped); inputs that differ are logged.

## Equivalence with the authors' code

On the checkpoints the authors' own code made (`tests/test_authors_checkpoints.py` in the monai-seq2seq
repository), the converted network reproduces their outputs to 1e-4 (measured: under 1e-5) for every target and
frame count, through `Seq2Seq.forward`, the folded network and `Seq2SeqSynthesizer.all_pairs`. Whole-volume
outputs can differ from their test script where the pipelines differ, not the network: they crop 128 slices and a
central in-plane window (the instance norms then see another image), and they skip the first and last slice, which
this package predicts from replicated edge slices.

## Limits

Research use only; not for clinical decisions. The weights were trained by the authors on their data; this
package did not train or evaluate them.
"""


def write_authors_bundle(
    out: str | Path,
    config: AuthorsConfig,
    template: str | Path,
    parameters: int,
    name: str | None = None,
    protocol: str = "brain",
    layout: str = "nifti",
    source: dict[str, Any] | None = None,
) -> Path:
    """Write every file of the bundle except the weights (configs, metadata, LICENSE, model card); atomic writes.

    Returns:
        the bundle folder.
    """
    out = Path(out)
    name = name or out.name
    template = Path(template)
    for file, content in compose_authors_configs(template, config, name, protocol).items():
        atomic_write_text(out / "configs" / file, json.dumps(content, indent=4) + "\n")
    template_meta = json.loads((template / "configs" / "metadata.json").read_text())
    meta = authors_metadata(template_meta, config, name, parameters, source, layout, protocol)
    atomic_write_text(out / "configs" / "metadata.json", json.dumps(meta, indent=4) + "\n")
    logging_conf = template / "configs" / "logging.conf"
    if logging_conf.is_file():
        atomic_write_text(out / "configs" / "logging.conf", logging_conf.read_text())
    atomic_write_text(out / "LICENSE", authors_license())
    atomic_write_text(out / "docs" / "README.md", authors_model_card(config, name, parameters, layout, source))
    return out
