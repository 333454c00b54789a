"""ONNX export of a bundle's network, folded to one target sequence, checked against the eager network."""

from __future__ import annotations

from pathlib import Path

import torch

from monai_seq2seq.core.files import atomic_write

from .verify import load_bundle_network

__all__ = ["export_onnx"]


def export_onnx(
    bundle_dir: str | Path, target: int | str, path: str | Path, size: int = 32, check: bool = True, atol: float = 1e-4
) -> Path:
    """Write ``path``: the bundle's network folded to ``target`` (plain convolutions), as ONNX.

    Inputs ``image`` ``(B, T, C, H, W)`` with dynamic batch, height and width (multiples of the network's
    downsampling factor); output ``pred`` ``(B, T_target, C, H, W)``.

    Args:
        bundle_dir: a bundle folder (weights checked by sha256 before loading).
        target: the target sequence, by name (``"T1Gd"``) or code index.
        path: the ``.onnx`` file, written atomically.
        size: side of the example input used for tracing and the check.
        check: run the exported file in onnxruntime on a second input size and compare with the eager network.
        atol: tolerance of that check.

    Raises:
        ImportError: onnx (or onnxruntime, when ``check``) is not installed (``pip install monai-seq2seq[export]``).
        AssertionError: the ONNX outputs differ from the eager network by more than ``atol``.
    """
    import onnx  # noqa: F401  (a clear ImportError before tracing)

    network, protocol = load_bundle_network(bundle_dir)
    index = protocol.index(target) if isinstance(target, str) else int(target)
    folded = network.fold(index).eval()
    x = torch.rand(1, 1, network.in_channels, size, size) * 2 - 1

    def write(tmp: Path) -> None:
        torch.onnx.export(
            folded,
            (x,),
            str(tmp),
            input_names=["image"],
            output_names=["pred"],
            dynamo=False,
            dynamic_axes={
                "image": {0: "batch", 3: "height", 4: "width"},
                "pred": {0: "batch", 3: "height", 4: "width"},
            },
        )

    out = atomic_write(Path(path), write)
    if check:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        factor = int(network.downsample_factor)
        probe = torch.rand(2, 1, network.in_channels, size + factor, size + 2 * factor) * 2 - 1
        (pred,) = session.run(None, {"image": probe.numpy()})
        with torch.no_grad():
            eager = network(probe, index)
        difference = float((torch.from_numpy(pred) - eager).abs().max())
        assert difference <= atol, f"ONNX output differs from the eager network by {difference} > {atol}"
    return out
