"""``seq2seq datalist ROOT [--out datalist.json]``: recognise a folder's layout and write its datalist.

Prints a table of what was recognised per subject and, with the reason, every image file that is not used; see
:func:`monai_seq2seq.data.build_datalist` for the layouts (BraTS 2021, BraTS 2023-2025, BraSyn, BIDS, MAMA-MIA,
subject folders, DICOM studies).
"""

from __future__ import annotations

import sys

__all__ = ["datalist"]


def datalist(
    root: str,
    out: str | None = None,
    protocol: str | None = None,
    layout: str = "auto",
    dce_times: str | list[float] | None = None,
    derived_dir: str | None = None,
    use_dicom: bool = False,
    bvalues: list[float] | None = None,
    fractions: list[float] | None = None,
    seed: int = 0,
) -> None:
    """Recognise the layout of ROOT, print what was recognised and what not (and why), write ``--out``.

    Example: ``seq2seq datalist /data/BraTS2023-GLI --out brats.json``, then
    ``seq2seq synthesize --datalist brats.json --split training --out syn``.

    Args:
        root: the data set's folder.
        out: the datalist JSON to write (paths relative to its folder); without it only the table is printed.
        protocol: ``brain``, ``breast`` or a protocol file; default: from the layout.
        layout: ``auto`` or one of brats2021, brats2023, brasyn, bids, mama-mia, subjects, dicom.
        dce_times: MAMA-MIA DCE timing in seconds per phase (``"[0,90,180,270]"``) or a JSON file
            (a list, or ``{case: [seconds...]}``): the phases are then stacked into 4D NIfTI files with their
            timing in ``--derived_dir`` (default: ``derived`` beside ``--out``).
        derived_dir: folder for the stacked DCE files.
        use_dicom: subject folders: use ``<sid>/dicom/<Sequence>/`` series for sequences without NIfTI.
        bvalues: DICOM studies: b-values of DWI series whose files carry none (``"[0,800]"``, one per frame).
        fractions: ``[train, val, test]`` split fractions (default: everyone in ``training``).
        seed: shuffle seed of the split.
    """
    from monai_seq2seq.data import DatalistError, scan_layout
    from monai_seq2seq.data.layouts import datalist_from_scan, default_derived_dir

    try:
        derived = default_derived_dir(out, derived_dir)
        scan = scan_layout(
            root, protocol, layout=layout, dce_times=dce_times, use_dicom=bool(use_dicom), skip=derived, bvalues=bvalues
        )
        print(scan.table())
        if out is None:
            print("no --out given: nothing written.")
            return
        built = datalist_from_scan(scan, out, fractions=fractions, seed=int(seed), derived_dir=derived)
    except (DatalistError, ValueError, OSError) as err:
        print(f"seq2seq datalist: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    n = sum(len(built[k]) for k in ("training", "validation", "testing"))
    print(f"wrote {out} ({n} subject(s), layout {built['layout']}, protocol {built['protocol']}).")
