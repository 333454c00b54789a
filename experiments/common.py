"""The harness every experiment command uses: brain data, provenance, result files, shipped networks.

- data: :func:`datalist_split`, :func:`brain_loader`, :func:`brain_normalise` and :func:`brain_cohorts` (training
  and held-out subjects from the brain phantom or a real datalist);
- provenance: :func:`command_line`, :func:`provenance` (UTC date, command, machine from
  :func:`monai_seq2seq.core.machine.describe_machine`) and :func:`provenance_lines` for a Markdown header;
- results: :func:`write_json` (NaN/inf written as ``null``, atomic) and :func:`save_figure` (atomic PNG);
- networks: :func:`bundle_network` (a shipped bundle's ``network_def`` with its sha256-checked weights);
- training: :func:`supervised_trainer` (MONAI's ``SupervisedTrainer`` with a loss record and a progress bar).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_seq2seq.core.files import atomic_write, atomic_write_text
from monai_seq2seq.core.machine import describe_machine, machine_info

__all__ = [
    "BRAIN_SEQUENCES",
    "BUNDLES",
    "TEST_SEED_OFFSET",
    "bundle_network",
    "check_device",
    "brain_cohorts",
    "brain_loader",
    "brain_normalise",
    "breast_normalise",
    "command_line",
    "datalist_split",
    "json_safe",
    "machine",
    "machine_info",
    "provenance",
    "provenance_lines",
    "psnr_db",
    "pyplot",
    "save_figure",
    "supervised_trainer",
    "utc_now",
    "write_json",
]

BRAIN_SEQUENCES = ("T1", "T1Gd", "T2", "FLAIR")
BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
"""The shipped bundles (``seq2seq_brain``, ``seq2seq_breast``)."""
TEST_SEED_OFFSET = 1000
"""A held-out phantom cohort uses seed ``seed + TEST_SEED_OFFSET``."""


# ---- provenance ----------------------------------------------------------------------------------------------
def machine(device: torch.device | str | None = None) -> str:
    """One line naming the OS, CPU, torch and, when given, the device a result was measured on."""
    return describe_machine(device)


def utc_now() -> str:
    """The current UTC date and time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """``python -m experiments.<module> <args>`` of this run (``argv=None``: ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([f"python -m experiments.{module}", *args])


def provenance(command: str = "", device: torch.device | str | None = None) -> dict[str, str]:
    """``{"date_utc", "command", "machine"}`` of a result, recorded in its JSON and Markdown."""
    return {"date_utc": utc_now(), "command": command, "machine": machine(device)}


def provenance_lines(prov: dict[str, str], mode: str | None = None) -> list[str]:
    """Markdown bullet lines of :func:`provenance` (and the mode)."""
    lines = [f"- date (UTC): {prov['date_utc']}; machine: {prov['machine']}"]
    if mode is not None:
        lines.append(f"- mode: {mode}")
    lines.append(f"- command: `{prov['command']}`" if prov["command"] else "- command: (called from Python)")
    return lines


# ---- result files --------------------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by ``None`` and tuples made lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as standard JSON (NaN/inf as ``null``; other objects by ``str``), atomically."""
    return atomic_write_text(Path(path), json.dumps(json_safe(payload), indent=1, default=str, allow_nan=False))


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (no partial file on failure) and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def psnr_db(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR (dB) of two volumes of the same shape over all their values (``monai.metrics.PSNRMetric``, double
    precision)."""
    from monai.metrics import PSNRMetric

    pred, target = torch.as_tensor(pred).double(), torch.as_tensor(target).double()
    return float(PSNRMetric(max_val=data_range)(pred.reshape(1, -1), target.reshape(1, -1)))


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device`` once it is known to be usable here.

    Raises:
        ValueError: not ``cpu`` or ``cuda``, or ``cuda`` without a CUDA device.
    """
    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {str(device)!r}.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use --device cpu.")
    return dev


# ---- networks ------------------------------------------------------------------------------------------------
def bundle_network(bundle: str | os.PathLike, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The ``network_def`` of a bundle's ``configs/inference.json`` with its sha256-checked weights, eval mode.

    Args:
        bundle: a bundle folder, or the name of a shipped one (``seq2seq_brain``, ``seq2seq_breast``).
        device: where the network goes.

    Raises:
        IntegrityError: the weights differ from the hash in the bundle's ``large_files.yml``.
    """
    from monai_seq2seq.zoo.verify import load_bundle_network

    folder = Path(bundle)
    if not folder.is_dir() and (BUNDLES / str(bundle)).is_dir():
        folder = BUNDLES / str(bundle)
    network, _ = load_bundle_network(folder, str(device))
    return network


# ---- training ------------------------------------------------------------------------------------------------
def supervised_trainer(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_function: Callable,
    data: Iterable,
    device: torch.device | str = "cpu",
    epoch_length: int | None = None,
    max_epochs: int = 1,
    prepare_batch: Callable | None = None,
    desc: str = "train",
    progress: bool = True,
):
    """MONAI's ``SupervisedTrainer`` over ``data``, recording the loss of every iteration.

    Gradients are set to ``None`` before each step and outputs are not decollated, as a plain training loop.

    Args:
        network, optimizer, loss_function: as ``SupervisedTrainer``; ``loss_function(pred, target)``.
        data: an iterable of batches, re-iterated every epoch (a generator serves one epoch).
        device: training device.
        epoch_length: iterations per epoch (default ``len(data)``).
        max_epochs: epochs.
        prepare_batch: ``prepare_batch(batch, device, non_blocking, **kwargs)`` returning ``(inputs, targets)`` or
            ``(inputs, targets, args, kwargs)`` for ``network(inputs, *args, **kwargs)`` (default: MONAI's, for
            ``(inputs, targets)`` pairs).
        desc: progress bar label.
        progress: show a tqdm bar.

    Returns:
        ``(trainer, losses)``: call ``trainer.run()``; ``losses`` then holds one float per iteration.
    """
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.engines.utils import default_prepare_batch
    from monai.utils.enums import CommonKeys
    from tqdm import tqdm

    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=max_epochs,
        train_data_loader=data,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function,
        epoch_length=epoch_length,
        prepare_batch=prepare_batch or default_prepare_batch,
        decollate=False,
        optim_set_to_none=True,
    )
    losses: list[float] = []
    per_epoch = len(data) if epoch_length is None else epoch_length
    bar = tqdm(total=per_epoch * max_epochs, desc=desc, disable=not progress, leave=False)

    def record(engine) -> None:
        losses.append(float(engine.state.output[CommonKeys.LOSS].detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    trainer.add_event_handler(Events.COMPLETED, lambda _: bar.close())
    return trainer, losses


# ---- data ----------------------------------------------------------------------------------------------------
def datalist_split(path: str | os.PathLike, keys: Sequence[str], purpose: str = "this experiment") -> tuple[list, str]:
    """The first non-empty list among ``keys`` of a brain datalist, with absolute, checked paths.

    Args:
        path: a datalist JSON (``monai_seq2seq.data.load_datalist`` format).
        keys: split names to try in order, e.g. ``("testing", "validation")``.
        purpose: named in the error when the datalist is for another protocol.

    Returns:
        ``(entries, key)``.

    Raises:
        DatalistError: missing JSON, no non-empty list among ``keys``, a listed file that does not exist.
        ValueError: the datalist is for a protocol other than ``brain``.
    """
    from monai_seq2seq.data import DatalistError, load_datalist

    raw = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    protocol = raw.get("protocol", "brain")
    if protocol != "brain":
        raise ValueError(f"datalist {str(path)!r} is for protocol {protocol!r}; {purpose} runs on the brain protocol.")
    for key in keys:
        if raw.get(key):
            return load_datalist(path, key), key
    if not raw:
        load_datalist(path, keys[0])  # raises DatalistError naming the missing file
    raise DatalistError(f"datalist {str(path)!r} has no non-empty {' / '.join(keys)} list.")


def brain_cohorts(
    prepare: Callable[[Sequence, str, bool], list],
    n_train: int,
    n_test: int,
    spacing: float,
    seed: int,
    datalist: str | os.PathLike | None = None,
    purpose: str = "this experiment",
) -> tuple[list, list, dict[str, Any]]:
    """Training and held-out brain subjects, prepared by ``prepare(items, description, from_files)``.

    Args:
        prepare: turns phantom samples (``from_files=False``) or datalist entries (``True``) into subjects.
        n_train, n_test: phantom subjects (ignored with a datalist).
        spacing: phantom voxel size in mm.
        seed: phantom seed of the training cohort; the held-out cohort uses ``seed + TEST_SEED_OFFSET``.
        datalist: a brain datalist of real data: ``training`` for training, ``testing`` (else ``validation``)
            held out; replaces the phantom.
        purpose: named in datalist errors.

    Returns:
        ``(train, test, info)``; ``info`` describes the source, splits or seeds, and the subject counts.

    Raises:
        DatalistError, ValueError: as :func:`datalist_split` (before any subject is prepared).
    """
    if datalist:
        train_items, train_key = datalist_split(datalist, ("training",), purpose)
        test_items, test_key = datalist_split(datalist, ("testing", "validation"), purpose)
        info: dict[str, Any] = {
            "source": "datalist",
            "datalist": str(datalist),
            "train_split": train_key,
            "test_split": test_key,
        }
        train = prepare(train_items, "train subjects", True)
        test = prepare(test_items, "test subjects", True)
    else:
        from monai_seq2seq.phantoms import BrainPhantomCohort

        test_seed = seed + TEST_SEED_OFFSET
        info = {"source": "brain phantom", "train_seed": seed, "test_seed": test_seed, "spacing_mm": spacing}
        train = prepare(BrainPhantomCohort(n_train, seed=seed, spacing=spacing), "train subjects", False)
        test = prepare(BrainPhantomCohort(n_test, seed=test_seed, spacing=spacing), "test subjects", False)
    info.update(n_train=len(train), n_test=len(test))
    return train, test, info


def brain_loader(keys: Sequence[str] = BRAIN_SEQUENCES):
    """``LoadImaged`` of datalist entries (channel first, our NIfTI reader); missing keys are allowed."""
    from monai.transforms import LoadImaged

    from monai_seq2seq.io import Seq2SeqNiftiReader

    return LoadImaged(
        list(keys), reader=Seq2SeqNiftiReader(), ensure_channel_first=True, image_only=True, allow_missing_keys=True
    )


def brain_normalise(keys: Sequence[str] = BRAIN_SEQUENCES):
    """The brain bundles' normalisation: percentiles 0.5/99.5 of the non-zero voxels to [0, 1]."""
    from monai.transforms import Compose

    from monai_seq2seq.transforms import PercentileScaleIntensityd

    return Compose(
        [PercentileScaleIntensityd(list(keys), lower=0.5, upper=99.5, nonzero=True, allow_missing_keys=True)]
    )


def breast_normalise(keys: Sequence[str] | None = None):
    """The breast bundle's normalisation (its ``configs/inference.json``): percentiles 0.5/99.5 of all voxels to
    [0, 1], one scale per series (all frames of a 4D DCE or DWI together), the protocol's fixed intensity windows
    for the wash-in/wash-out maps."""
    from monai.transforms import Compose

    from monai_seq2seq.core import get_protocol
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    protocol = get_protocol("breast")
    return Compose(
        [
            PercentileScaleIntensityd(
                list(keys or protocol.names),
                lower=0.5,
                upper=99.5,
                fixed_ranges=protocol.intensity_windows(),
                allow_missing_keys=True,
            )
        ]
    )
