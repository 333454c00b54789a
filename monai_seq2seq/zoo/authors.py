"""The Seq2Seq authors' checkpoints (repository fiy2W/mri_seq2seq) as networks and bundles of this package.

Their training script saves ``torch.save(net.state_dict())`` of their ``Generator(args)``, built from the
``seq2seq:`` section of a YAML config (``c_s, c_w, c_in, c_enc, k_enc, s_enc, nres_enc, norm, c_lstm, c_dec, k_dec,
s_dec, nres_dec, ndims``). That network is :class:`~monai_seq2seq.networks.Seq2Seq` variant C with bilinear
(trilinear in 3D) decoder upsampling: its state dict maps onto ours key for key (same shapes, same one-hot order
T1, T1Gd, T2, FLAIR, same ConvLSTM gate order i, f, o, g). This module reads their config (or infers it from the
tensors' shapes), renames their keys, refuses anything that does not fit with the key named, and builds the network;
:func:`import_authors` writes a complete bundle around it (``seq2seq zoo import-authors``).

Axis convention: they read volumes with SimpleITK, whose arrays are (Z, Y, X); this package reads NIfTI with
nibabel, (X, Y, Z). The same 2.5D slab is therefore transposed in-plane (3D: every axis reversed). A conv network
gives the transposed image for the transposed input when every kernel is transposed the same way, so
``layout="nifti"`` transposes the kernels: the network then maps our slabs to the authors' outputs on the same
voxels. ``layout="authors"`` keeps their tensors as saved (same tensor in, same tensor out as their code).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from monai_seq2seq.core.integrity import verify_sha256

__all__ = [
    "AUTHORS_REPOSITORY",
    "AuthorsCheckpointError",
    "AuthorsConfig",
    "RELEASED",
    "read_authors_config",
    "infer_authors_config",
    "authors_keys",
    "rename_authors_key",
    "load_authors_state_dict",
    "convert_authors_state_dict",
    "authors_network",
    "load_authors_checkpoint",
    "import_authors",
    "count_parameters",
    "write_released_bundle",
]

AUTHORS_REPOSITORY = "fiy2W/mri_seq2seq"
_YAML_KEYS = ("ndims", "c_s", "c_w", "c_in", "c_enc", "k_enc", "s_enc", "nres_enc", "norm", "c_lstm", "c_dec")
_YAML_KEYS += ("k_dec", "s_dec", "nres_dec")
LAYOUTS = ("nifti", "authors")


class AuthorsCheckpointError(ValueError):
    """An authors' checkpoint or config that does not fit this package's network; the message names the key."""


@dataclass(frozen=True)
class AuthorsConfig:
    """The ``seq2seq:`` section of the authors' YAML (their names), plus the ConvLSTM depth (3 in their code).

    The released BraTS configuration: ``c_s 64, c_w 16, c_in 3, c_enc [64, 128, 256], k_enc [7, 3, 3],
    s_enc [1, 2, 2], nres_enc 6, c_lstm 256, c_dec [128, 64, 3], k_dec [3, 3, 7], s_dec [1, 1, 1], nres_dec 6``.
    """

    ndims: int
    c_s: int
    c_w: int
    c_in: int
    c_enc: tuple[int, ...]
    k_enc: tuple[int, ...]
    s_enc: tuple[int, ...]
    nres_enc: int
    norm: str
    c_lstm: int
    c_dec: tuple[int, ...]
    k_dec: tuple[int, ...]
    s_dec: tuple[int, ...]
    nres_dec: int
    lstm_layers: int = 3
    lstm_kernel: int = 3

    def check(self, source: str = "the authors' config") -> AuthorsConfig:
        """Refuse what :class:`~monai_seq2seq.networks.Seq2Seq` cannot express, naming the key; returns ``self``.

        Raises:
            AuthorsCheckpointError: the first key that does not fit, with its value and what is expected.
        """
        levels = len(self.c_enc)
        expected = {
            "ndims": (self.ndims in (2, 3), "2 or 3"),
            "norm": (self.norm.lower() in ("instancenorm", "instance"), "InstanceNorm"),
            "k_enc": (self.k_enc == (7,) + (3,) * (levels - 1), f"{[7] + [3] * (levels - 1)}"),
            "s_enc": (self.s_enc == (1,) + (2,) * (levels - 1), f"{[1] + [2] * (levels - 1)}"),
            "c_lstm": (self.c_lstm == self.c_enc[-1], f"c_enc[-1] = {self.c_enc[-1]}"),
            "c_dec": (
                len(self.c_dec) == levels and self.c_dec[:-1] == tuple(reversed(self.c_enc[:-1])),
                f"{list(reversed(self.c_enc[:-1]))} + [output channels] (the encoder's widths mirrored)",
            ),
            "k_dec": (self.k_dec == (3,) * (levels - 1) + (7,), f"{[3] * (levels - 1) + [7]}"),
            "s_dec": (self.s_dec == (1,) * levels, f"{[1] * levels}"),
            "c_s": (self.c_s >= 1, "a positive code length"),
        }
        for key, (ok, want) in expected.items():
            if not ok:
                raise AuthorsCheckpointError(
                    f"{source}: {key}={_plain(getattr(self, key))} cannot be converted; this package's Seq2Seq "
                    f"needs {key} = {want}."
                )
        return self

    def network_kwargs(self) -> dict[str, Any]:
        """Arguments of :func:`~monai_seq2seq.networks.build_seq2seq` (on top of ``"released"``, variant C)."""
        return {
            "spatial_dims": self.ndims,
            "in_channels": self.c_in,
            "out_channels": self.c_dec[-1],
            "code_dim": self.c_s,
            "bank_dim": self.c_w,
            "channels": list(self.c_enc),
            "num_res_blocks": self.nres_enc,
            "num_hyper_res_blocks": self.nres_dec,
            "lstm_layers": self.lstm_layers,
            "lstm_kernel_size": self.lstm_kernel,
            "upsample_mode": "linear",
        }

    def to_yaml_dict(self) -> dict[str, Any]:
        """The ``seq2seq:`` section as the authors write it (lists, not tuples)."""
        return {k: _plain(v) for k, v in asdict(self).items()}


# The authors' released BraTS configuration (seq2seq_brats_2d_missing.yaml and _complete.yaml): 155.2 M parameters.
RELEASED = AuthorsConfig(
    ndims=2,
    c_s=64,
    c_w=16,
    c_in=3,
    c_enc=(64, 128, 256),
    k_enc=(7, 3, 3),
    s_enc=(1, 2, 2),
    nres_enc=6,
    norm="InstanceNorm",
    c_lstm=256,
    c_dec=(128, 64, 3),
    k_dec=(3, 3, 7),
    s_dec=(1, 1, 1),
    nres_dec=6,
)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _from_mapping(section: Mapping[str, Any], source: str) -> AuthorsConfig:
    missing = [k for k in _YAML_KEYS if k not in section]
    if missing:
        raise AuthorsCheckpointError(
            f"{source}: the seq2seq section lacks {missing}; the authors' YAML has all of {list(_YAML_KEYS)}."
        )
    values: dict[str, Any] = {}
    for key in _YAML_KEYS:
        value = section[key]
        if key == "norm":
            values[key] = str(value)
        elif isinstance(value, (list, tuple)):
            values[key] = tuple(int(v) for v in value)
        else:
            values[key] = int(value)
    for key in ("c_enc", "k_enc", "s_enc", "c_dec", "k_dec", "s_dec"):
        if not isinstance(values[key], tuple) or not values[key]:
            raise AuthorsCheckpointError(f"{source}: seq2seq.{key}={section[key]!r} must be a non-empty list.")
    for key in ("lstm_layers", "lstm_kernel"):
        if key in section:
            values[key] = int(section[key])
    return AuthorsConfig(**values)


def read_authors_config(path: str | Path) -> AuthorsConfig:
    """The authors' YAML config (its ``seq2seq:`` section), checked.

    Raises:
        AuthorsCheckpointError: the file does not exist, has no ``seq2seq:`` section, lacks a key or holds a value
            this package's network cannot express (named).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise AuthorsCheckpointError(
            f"authors' config {str(path)!r} does not exist (their YAML, e.g. "
            "seq2seq_brats_2d_missing.yaml; or leave --config out to infer the sizes)."
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("seq2seq"), dict):
        raise AuthorsCheckpointError(f"{path}: no 'seq2seq:' section; is it one of the authors' Seq2Seq configs?")
    return _from_mapping(data["seq2seq"], str(path)).check(str(path))


def _shape(state: Mapping[str, torch.Tensor], key: str, source: str) -> tuple[int, ...]:
    if key not in state:
        raise AuthorsCheckpointError(
            f"{source}: missing key {key!r}, needed to infer the network's sizes; is it an "
            "authors' Seq2Seq state dict (torch.save(net.state_dict()))?"
        )
    return tuple(state[key].shape)


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_authors_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> AuthorsConfig:
    """The sizes of an authors' state dict, read from its tensors' shapes.

    Strides are not stored in a state dict: the authors' ``s_enc [1, 2, ...]`` and ``s_dec [1, ...]`` are assumed.

    Raises:
        AuthorsCheckpointError: a key needed to read a size is missing (named), or the sizes do not fit.
    """
    stem = _shape(state, "encoder.conv.0.0.weight", source)
    levels = _count(state, r"encoder\.conv\.(\d+)\.0\.weight$")
    enc = [_shape(state, f"encoder.conv.{i}.0.weight", source) for i in range(levels)]
    up = _count(state, r"decoder\.convs\.(\d+)\.param$")
    dec = [_shape(state, f"decoder.convs.{i}.param", source) for i in range(up)]
    last = _shape(state, "decoder.conv_last.param", source)
    lstm = _shape(state, "enc_convlstm.cell_list.0.conv.weight", source)
    config = AuthorsConfig(
        ndims=len(stem) - 2,
        c_s=_shape(state, "style_fc.0.weight", source)[0],
        c_w=last[-1],
        c_in=stem[1],
        c_enc=tuple(s[0] for s in enc),
        k_enc=tuple(s[2] for s in enc),
        s_enc=(1,) + (2,) * (levels - 1),
        nres_enc=_count(state, r"encoder\.res\.(\d+)\."),
        norm="InstanceNorm",
        c_lstm=lstm[0] // 4,
        c_dec=tuple(s[0] for s in dec) + (last[0],),
        k_dec=tuple(s[2] for s in dec) + (last[2],),
        s_dec=(1,) * (up + 1),
        nres_dec=_count(state, r"decoder\.res\.(\d+)\."),
        lstm_layers=_count(state, r"enc_convlstm\.cell_list\.(\d+)\."),
        lstm_kernel=lstm[2],
    )
    return config.check(f"{source} (sizes inferred from its tensors)")


# ---- key names -------------------------------------------------------------------------------------------------
_HYPER = {"param": "weight_bank", "b": "bias_bank", "fc.weight": "weight_mix.weight", "fc.bias": "weight_mix.bias"}
_HYPER.update({"fc_bias.weight": "bias_mix.weight", "fc_bias.bias": "bias_mix.bias"})
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"encoder\.conv\.0\.0\.(weight|bias)"), lambda m: f"encoder.stem.conv.{m[1]}"),
    (re.compile(r"encoder\.conv\.([1-9]\d*)\.0\.(weight|bias)"), lambda m: f"encoder.down{m[1]}.conv.{m[2]}"),
    (
        re.compile(r"encoder\.res\.(\d+)\.conv_block\.1\.(weight|bias)"),
        lambda m: f"encoder.res{m[1]}.conv1.conv.{m[2]}",
    ),
    (
        re.compile(r"encoder\.res\.(\d+)\.conv_block\.5\.(weight|bias)"),
        lambda m: f"encoder.res{m[1]}.conv2.conv.{m[2]}",
    ),
    (
        re.compile(r"enc_convlstm\.cell_list\.(\d+)\.conv\.(weight|bias)"),
        lambda m: f"temporal_encoder.cells.{m[1]}.conv.{m[2]}",
    ),
    (
        re.compile(r"dec_convlstm\.cell_list\.(\d+)\.conv\.(weight|bias)"),
        lambda m: f"temporal_decoder.cells.{m[1]}.conv.{m[2]}",
    ),
    (re.compile(r"style_fc\.0\.(weight|bias)"), lambda m: f"decoder.code_embed.0.{m[1]}"),
    (
        re.compile(r"decoder\.res\.(\d+)\.conv([12])\.(.+)"),
        lambda m: _hyper(f"decoder.res_blocks.{m[1]}.conv{m[2]}", m[3]),
    ),
    (re.compile(r"decoder\.convs\.(\d+)\.(.+)"), lambda m: _hyper(f"decoder.up_convs.{m[1]}", m[2])),
    (re.compile(r"decoder\.conv_last\.(.+)"), lambda m: _hyper("decoder.head", m[1])),
]


def _hyper(prefix: str, leaf: str) -> str | None:
    return f"{prefix}.conv.layer.{_HYPER[leaf]}" if leaf in _HYPER else None


def rename_authors_key(key: str) -> str | None:
    """This package's name of an authors' state-dict key (``None``: a key their Generator does not have)."""
    for pattern, target in _RULES:
        match = pattern.fullmatch(key)
        if match:
            return target(match)
    return None


def authors_keys(config: AuthorsConfig) -> list[str]:
    """Every key of the authors' Generator state dict for ``config``, in their order."""
    keys = [f"encoder.conv.{i}.0.{p}" for i in range(len(config.c_enc)) for p in ("weight", "bias")]
    keys += [
        f"encoder.res.{i}.conv_block.{j}.{p}"
        for i in range(config.nres_enc)
        for j in (1, 5)
        for p in ("weight", "bias")
    ]
    hyper = list(_HYPER)
    keys += [f"decoder.res.{i}.conv{j}.{h}" for i in range(config.nres_dec) for j in (1, 2) for h in hyper]
    keys += [f"decoder.convs.{i}.{h}" for i in range(len(config.c_dec) - 1) for h in hyper]
    keys += [f"decoder.conv_last.{h}" for h in hyper]
    for name in ("enc_convlstm", "dec_convlstm"):
        keys += [f"{name}.cell_list.{i}.conv.{p}" for i in range(config.lstm_layers) for p in ("weight", "bias")]
    return keys + ["style_fc.0.weight", "style_fc.0.bias"]


# ---- loading and converting ------------------------------------------------------------------------------------
def load_authors_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """An authors' ``ckpt_best.pth`` (``torch.save(net.state_dict())``), loaded with ``weights_only=True``.

    Args:
        path: the checkpoint.
        sha256: when given, the file's sha256 is checked first (e.g. the one you noted at download).

    Raises:
        AuthorsCheckpointError: the file does not exist or holds no state dict of tensors.
        IntegrityError: ``sha256`` is given and differs.
    """
    path = Path(path)
    if not path.is_file():
        raise AuthorsCheckpointError(
            f"authors' checkpoint {str(path)!r} does not exist (download ckpt_best.pth "
            f"from the links in github.com/{AUTHORS_REPOSITORY})."
        )
    if sha256 is not None:
        verify_sha256(path, sha256)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AuthorsCheckpointError(f"{path} does not hold a state dict of tensors (torch.save(net.state_dict())).")
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _transpose_kernels(key: str, value: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Kernels in the other axis order: in-plane swap (2D), reversed axes (3D); other tensors unchanged."""
    if key.endswith("weight_bank"):  # (out, in, *kernel, bank)
        first = 2
    elif key.endswith("conv.weight") and value.dim() == spatial_dims + 2:  # (out, in, *kernel)
        first = 2
    else:
        return value
    dims = list(range(value.dim()))
    kernel = dims[first : first + spatial_dims]
    dims[first : first + spatial_dims] = kernel[::-1]
    return value.permute(dims).contiguous()


def convert_authors_state_dict(
    state: Mapping[str, torch.Tensor],
    config: AuthorsConfig,
    reference: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    layout: str = "authors",
) -> dict[str, torch.Tensor]:
    """The authors' state dict under this package's key names, checked key for key against ``reference``.

    Args:
        state: the authors' state dict.
        config: its sizes (from their YAML or :func:`infer_authors_config`).
        reference: the state dict of the network it will be loaded into (names and shapes to match).
        source: the file, for messages.
        layout: ``"authors"`` (their tensors as saved) or ``"nifti"`` (kernels transposed for nibabel's axis
            order; see the module docstring).

    Raises:
        AuthorsCheckpointError: an unknown key, a missing key or a shape that does not fit, named (with the
            authors' name and ours), or an unknown ``layout``.
    """
    if layout not in LAYOUTS:
        raise AuthorsCheckpointError(f"layout={layout!r} is not one of {LAYOUTS}.")
    expected = authors_keys(config)
    unknown = [k for k in state if k not in set(expected)]
    if unknown:
        raise AuthorsCheckpointError(
            f"{source}: unknown key {unknown[0]!r} ({len(unknown)} in all): not a key of the authors' Generator for "
            f"these sizes; check the --config (or leave it out to infer the sizes from the file)."
        )
    missing = [k for k in expected if k not in state]
    if missing:
        raise AuthorsCheckpointError(
            f"{source}: missing key {missing[0]!r} ({len(missing)} in all) for the sizes "
            "of its config; is the --config the one this checkpoint was trained with?"
        )
    converted: dict[str, torch.Tensor] = {}
    for key in expected:
        ours = rename_authors_key(key)
        if ours not in reference:
            raise AuthorsCheckpointError(f"{source}: key {key!r} maps to {ours!r}, which the network does not have.")
        value = state[key]
        if tuple(value.shape) != tuple(reference[ours].shape):
            raise AuthorsCheckpointError(
                f"{source}: key {key!r} has shape {list(value.shape)}, the network's {ours!r} needs "
                f"{list(reference[ours].shape)}; is the --config the one this checkpoint was trained with?"
            )
        if layout == "nifti":
            value = _transpose_kernels(ours, value, config.ndims)
        converted[ours] = value.detach().to(dtype=reference[ours].dtype).clone()
    left = [k for k in reference if k not in converted]
    if left:
        raise AuthorsCheckpointError(
            f"{source}: the network's key {left[0]!r} has no counterpart in the authors' state dict."
        )
    return converted


def authors_network(config: AuthorsConfig, protocol: Any = "brain", **overrides: Any):
    """An untrained :class:`~monai_seq2seq.networks.Seq2Seq` with the authors' sizes for ``protocol``."""
    from monai_seq2seq.networks import build_seq2seq

    kwargs = {**config.network_kwargs(), **overrides}
    return build_seq2seq("released", "C", protocol=protocol, **kwargs)


def load_authors_checkpoint(
    ckpt: str | Path,
    config: str | Path | AuthorsConfig | None = None,
    protocol: Any = "brain",
    layout: str = "authors",
    sha256: str | None = None,
    **overrides: Any,
) -> tuple[torch.nn.Module, AuthorsConfig]:
    """``(network, config)``: an authors' checkpoint converted into a :class:`Seq2Seq` in eval mode.

    Args:
        ckpt: their ``ckpt_best.pth``.
        config: their YAML (or an :class:`AuthorsConfig`); ``None`` infers the sizes from the tensors.
        protocol: the sequences (name, file or object); its order must be the authors' code order.
        layout: ``"authors"`` (default: same tensor in, same tensor out as their code) or ``"nifti"``.
        sha256: optional expected sha256 of ``ckpt``, checked before loading.
        overrides: more :func:`~monai_seq2seq.networks.build_seq2seq` arguments (e.g. ``target_frames``).

    Raises:
        AuthorsCheckpointError: see :func:`convert_authors_state_dict` and :func:`read_authors_config`.
    """
    state = load_authors_state_dict(ckpt, sha256)
    if config is None:
        cfg = infer_authors_config(state, str(ckpt))
    elif isinstance(config, AuthorsConfig):
        cfg = config.check()
    else:
        cfg = read_authors_config(config)
    network = authors_network(cfg, protocol, **overrides)
    if cfg.c_s < network.num_sequences:
        raise AuthorsCheckpointError(f"{config or ckpt}: c_s={cfg.c_s} codes for {network.num_sequences} sequences.")
    network.load_state_dict(convert_authors_state_dict(state, cfg, network.state_dict(), str(ckpt), layout))
    return network.eval(), cfg


def _bundle_network(bundle: Path) -> torch.nn.Module:
    """``network_def`` of ``<bundle>/configs/inference.json``, untrained."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    return parser.get_parsed_content("network_def", instantiate=True)


def _prepare_out(out: Path, overwrite: bool) -> bool:
    """Whether ``out`` is an authors' bundle waiting for weights (fill it); refuse other non-empty folders."""
    meta_file = out / "configs" / "metadata.json"
    if meta_file.is_file() and "authors_weights" in json.loads(meta_file.read_text()):
        if (out / "models" / "model.pt").is_file() and not overwrite:
            raise AuthorsCheckpointError(f"{out}/models/model.pt exists; pass --overwrite True to replace it.")
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise AuthorsCheckpointError(
            f"--out {str(out)!r} exists and is not an authors' bundle waiting for weights; choose a new folder or "
            "pass --overwrite True."
        )
    return False


def import_authors(
    ckpt: str | Path,
    config: str | Path | None = None,
    out: str | Path | None = None,
    protocol: str = "brain",
    template: str | Path | None = None,
    layout: str = "nifti",
    sha256: str | None = None,
    overwrite: bool = False,
) -> Path:
    """A complete bundle of this package around an authors' checkpoint (``seq2seq zoo import-authors``).

    A new folder gets configs composed from ``template`` (the shipped bundle of ``protocol``) with the authors'
    network, normalisation, metadata (sizes, source, sha256, terms), LICENSE and model card, then the weights. A
    folder that is already an authors' bundle without weights (``bundles/seq2seq_brats2d_released``) only gets the
    weights, after its ``network_def`` accepts every tensor. Either way ``models/model.pt`` (this package's key
    names) and its sha256 in ``large_files.yml`` are written atomically.

    Args:
        ckpt: the authors' ``ckpt_best.pth``.
        config: their YAML; ``None`` infers the sizes from the tensors.
        out: the bundle folder to write.
        protocol: the sequences, in the authors' code order (``brain``: T1, T1Gd, T2, FLAIR).
        template: the bundle whose configs are composed on (default: the checkout's ``bundles/seq2seq_<protocol>``).
        layout: ``"nifti"`` (kernels transposed for nibabel's axis order, see the module docstring) or ``"authors"``;
            a bundle being filled keeps the layout its metadata records.
        sha256: optional expected sha256 of ``ckpt``.
        overwrite: replace weights already there, or write into a non-empty folder.

    Returns:
        the bundle folder.

    Raises:
        AuthorsCheckpointError: a key, shape or config value that does not fit (named), or an ``out`` that cannot be
            written without ``overwrite``.
    """
    from monai_seq2seq.core.files import atomic_write
    from monai_seq2seq.core.integrity import record_hash, sha256_file

    from .authors_bundle import default_template, write_authors_bundle

    if out is None:
        raise AuthorsCheckpointError("give the bundle folder to write: --out DIR.")
    out = Path(out)
    state = load_authors_state_dict(ckpt, sha256)
    cfg = infer_authors_config(state, str(ckpt)) if config is None else read_authors_config(config)
    fill = _prepare_out(out, overwrite)
    source = {"file": Path(ckpt).name, "sha256": sha256_file(ckpt)}
    if fill:
        layout = json.loads((out / "configs" / "metadata.json").read_text())["authors_weights"].get("layout", layout)
        network = _bundle_network(out)
    else:
        network = authors_network(cfg, protocol)
    converted = convert_authors_state_dict(state, cfg, network.state_dict(), str(ckpt), layout)  # before writing
    if not fill:
        parameters = sum(p.numel() for p in network.parameters())
        folder = template or default_template(protocol)
        write_authors_bundle(out, cfg, folder, parameters, None, protocol, layout, source)
    network.load_state_dict(converted)  # strict: every key, every shape
    atomic_write(out / "models" / "model.pt", lambda tmp: torch.save(converted, tmp))
    record_hash(out, "models/model.pt")
    return out


def count_parameters(config: AuthorsConfig, protocol: Any = "brain") -> int:
    """Parameters of the authors' network for ``config`` (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        network = authors_network(config, protocol)
    return sum(p.numel() for p in network.parameters())


def write_released_bundle(out: str | Path | None = None, template: str | Path | None = None) -> Path:
    """(Re)write the checkout's ``bundles/seq2seq_brats2d_released``: the authors' released configuration, configs
    composed from ``bundles/seq2seq_brain``, no weights (``seq2seq zoo import-authors ... --out`` adds them)."""
    from .authors_bundle import default_template, write_authors_bundle

    template = Path(template) if template is not None else default_template("brain")
    out = Path(out) if out is not None else template.parent / "seq2seq_brats2d_released"
    source = {"file": "seq2seq_brats_2d_missing.pth or seq2seq_brats_2d_complete.pth (not shipped)"}
    return write_authors_bundle(out, RELEASED, template, count_parameters(RELEASED), None, "brain", "nifti", source)
