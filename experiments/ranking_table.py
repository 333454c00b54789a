"""Table 2 analogue: degree centralities C_t, C_d and ranks of every sequence (paper section 4.3, eq. 4).

Runs each bundle's own ``differentiation.json`` (shipped, sha256-checked weights) through MONAI's
``ConfigWorkflow`` on held-out phantom subjects, and writes the ranking beside the phantom's planted ground truth
(which sequence carries information no other one has) and the paper's Table 2 numbers for BraTS 2021 and its
in-house breast data (measured on other data: a reference for the shape of the result, not a target).

Usage::

    python -m experiments.ranking_table --out docs/results                 # 4 subjects per protocol
    python -m experiments.ranking_table --protocols brain --subjects 8
    python -m experiments.ranking_table --brain_datalist /data/BraTS2021/datalist.json   # real data

With ``--brain_datalist`` / ``--breast_datalist`` the bundle reads the ``testing`` list of that datalist instead
of the phantom (the planted-truth column then says so).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from experiments.common import BUNDLES as BUNDLES_DIR
from experiments.common import command_line, provenance, pyplot, save_figure, write_json

__all__ = ["PAPER_TABLE2", "PLANTED", "EXPECTED", "MODES", "run_experiment", "main"]

BUNDLES = {"brain": "seq2seq_brain", "breast": "seq2seq_breast"}

PAPER_TABLE2 = {
    "brain": {  # BraTS 2021: C_t, rank_t, C_d, rank_d
        "T1": (-0.881, 4, -0.955, 4),
        "T1Gd": (-0.410, 1, 1.734, 1),
        "T2": (-0.518, 2, 0.123, 3),
        "FLAIR": (-0.548, 3, 1.455, 2),
    },
    "breast": {  # the paper's in-house breast data
        "T1": (-2.722, 8, 0.968, 4),
        "FatSatT1": (-0.261, 3, 0.443, 6),
        "T2": (-0.430, 4, 1.737, 2),
        "DCE": (2.013, 1, 2.741, 1),
        "FatSatDCE": (1.199, 2, 0.656, 5),
        "WashIn": (-1.266, 5, -0.370, 7),
        "WashOut": (-1.334, 6, -0.596, 8),
        "DWI": (-1.670, 7, 1.516, 3),
    },
}
"""The paper's Table 2, transcribed."""

PLANTED = {
    "brain": {
        "T1": "pre-contrast; equals T1Gd outside ET",
        "T1Gd": "**unique**: enhancing tumour (random patches, no pre-contrast trace)",
        "T2": "relaxation contrast, shared tissue classes",
        "FLAIR": "relaxation contrast, CSF suppressed",
    },
    "breast": {
        "T1": "frame 0 of DCE (same contrast)",
        "FatSatT1": "frame 0 of FatSatDCE",
        "T2": "T2 contrast (cysts bright)",
        "DCE": "**unique**: lesion/FGT enhancement kinetics",
        "FatSatDCE": "fat-suppressed DCE",
        "WashIn": "**derived** from DCE frames 0, 1",
        "WashOut": "**derived** from DCE frames 1, 5",
        "DWI": "**unique**: restricted diffusion of the lesion",
    },
}
"""What the phantoms put in each sequence (``monai_seq2seq.phantoms``)."""

EXPECTED = {
    "brain": "T1Gd ranks first by C_d",
    "breast": "WashIn and WashOut rank in the bottom half by C_d",
}


def _expectation_met(protocol: str, table: dict[str, dict]) -> bool:
    if protocol == "brain":
        return table["T1Gd"]["rank_C_d"] == 1
    half = len(table) // 2
    return table["WashIn"]["rank_C_d"] > half and table["WashOut"]["rank_C_d"] > half


MODES = {
    "tiny": {
        "num_subjects": 1,
        "load_weights": False,
        "network_def#name": "tiny",
        "phantom_spacing": 4.0,
        "synthesizer#batch_size": 8,
        "breast": {"phantom_shape": [80, 48, 32]},
    },
    "default": {},
}
"""Overrides per mode; ``tiny`` (untrained tiny network, coarse phantom) exists for the tests."""


def _run_bundle(
    protocol: str, out: Path, subjects: int | None, seed: int, mode: str, datalist: str | None
) -> dict[str, Any]:
    from monai_seq2seq.cli import run_bundle_config

    root = BUNDLES_DIR / BUNDLES[protocol]
    overrides = {k: v for k, v in MODES[mode].items() if k not in BUNDLES}
    overrides.update(MODES[mode].get(protocol, {}))
    overrides["phantom_seed"] = seed
    if subjects is not None:
        overrides["num_subjects"] = subjects
    if datalist:
        overrides["datalist"] = datalist
    start = time.perf_counter()
    run_bundle_config(root, "differentiation", output_dir=str(out), **overrides)
    seconds = time.perf_counter() - start
    ranking = json.loads((out / "ranking.json").read_text())
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    return {
        "ranking": ranking,
        "seconds": seconds,
        "bundle_version": meta["version"],
        "overrides": overrides,
        "data": datalist or f"phantom seed {seed}",
        "phantom": not datalist,
    }


def _markdown(results: dict[str, dict], header: str) -> str:
    lines = [header, ""]
    for protocol, res in results.items():
        table = {row["sequence"]: row for row in res["ranking"]["table"]}
        met = _expectation_met(protocol, table)
        lines += [
            f"## {protocol} ({BUNDLES[protocol]} v{res['bundle_version']}, {res['data']}, "
            f"{res['ranking']['choices'].get('subjects', '?')} subjects, {res['seconds']:.0f} s)",
            "",
            f"Expected from the planted truth: {EXPECTED[protocol]}: **{'met' if met else 'NOT met'}**."
            if res["phantom"]
            else "Real data: no planted truth to compare with.",
            "",
            "| sequence | C_t | rank C_t | C_d | rank C_d | planted in the phantom | paper C_t (rank) "
            "| paper C_d (rank) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in table.items():
            p = PAPER_TABLE2[protocol].get(name)
            paper_t = f"{p[0]:.3f} ({p[1]})" if p else "-"
            paper_d = f"{p[2]:.3f} ({p[3]})" if p else "-"
            planted = PLANTED[protocol][name] if res["phantom"] else "(real data)"
            lines.append(
                f"| {name} | {row['C_t']:.3f} | {row['rank_C_t']} | {row['C_d']:.3f} | {row['rank_C_d']} | "
                f"{planted} | {paper_t} | {paper_d} |"
            )
        choices = res["ranking"]["choices"]
        lines += ["", "Choices: " + ", ".join(f"{k}: {v}" for k, v in choices.items()), ""]
    return "\n".join(lines) + "\n"


def _figure(results: dict[str, dict], path: Path) -> None:
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (protocol, res) in zip(axes[0], results.items(), strict=True):
        rows = res["ranking"]["table"]
        names = [r["sequence"] for r in rows]
        x = np.arange(len(names))
        ax.bar(x - 0.2, [r["C_t"] for r in rows], 0.4, label="C_t (totipotency)")
        ax.bar(x + 0.2, [r["C_d"] for r in rows], 0.4, label="C_d (differentiation)")
        for i, r in enumerate(rows):
            ax.annotate(
                str(r["rank_C_d"]),
                (x[i] + 0.2, r["C_d"]),
                ha="center",
                va="bottom" if r["C_d"] >= 0 else "top",
                fontsize=8,
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_title(f"{protocol} phantom (numbers: rank by C_d)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def run_experiment(
    out: str | Path = "docs/results",
    protocols: tuple[str, ...] = ("brain", "breast"),
    subjects: int | None = None,
    seed: int = 1000,
    mode: str = "default",
    datalists: dict[str, str | None] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Rank the sequences of each protocol and write ``table2_ranking.{md,json,png}`` into ``out``.

    Args:
        out: output folder (the bundles' own outputs go to a temporary folder).
        protocols: any of ``brain``, ``breast``.
        subjects: held-out subjects per protocol (``None``: the bundle's default, 4).
        seed: phantom cohort seed (the shipped weights were trained on seed 0 and validated on 500).
        mode: ``default`` or ``tiny`` (tests).
        datalists: per protocol, a datalist of real data to use instead of the phantom.
        command: the command line, recorded in the output.
    """
    from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

    unknown = [p for p in protocols if p not in BUNDLES]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; choose from {list(BUNDLES)}.")
    out = ensure_writable_dir(Path(out))
    datalists = datalists or {}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in protocols:
            results[protocol] = _run_bundle(
                protocol, Path(tmp) / protocol, subjects, seed, mode, datalists.get(protocol)
            )
    prov = provenance(command)
    header = (
        "# Table 2 analogue: degree centrality of totipotency (C_t) and imaging differentiation (C_d)\n\n"
        f"date: {prov['date_utc']}; machine: {prov['machine']}; mode: {mode}; command: `{command}`\n\n"
        "C_t(i) = 1/S sum_j A_ij (how well i generates the others), C_d(i) = -1/S sum_j A_ji (how hard i is to "
        "generate); A = nPSNR + nSSIM (- nLPIPS where its weights are installed), normalised over all samples of "
        "all pairs, diagonal included (the authors' script). Paper columns: the paper's Table 2 on BraTS 2021 and "
        "its in-house breast data, for comparison of the pattern only."
    )
    atomic_write_text(out / "table2_ranking.md", _markdown(results, header))
    payload = {
        "mode": mode,
        **prov,
        "results": {
            p: {
                **r,
                "expectation": EXPECTED[p],
                "expectation_met": _expectation_met(p, {x["sequence"]: x for x in r["ranking"]["table"]}),
            }
            for p, r in results.items()
        },
        "paper": PAPER_TABLE2,
    }
    write_json(out / "table2_ranking.json", payload)
    _figure(results, out / "table2_ranking.png")
    return payload


def main(argv=None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/results")
    p.add_argument("--protocols", nargs="+", default=["brain", "breast"], choices=sorted(BUNDLES))
    p.add_argument("--subjects", type=int, default=None, help="held-out subjects per protocol (default 4)")
    p.add_argument("--seed", type=int, default=1000, help="phantom cohort seed of the held-out subjects")
    p.add_argument("--tiny", action="store_true", help="untrained tiny network on a coarse phantom (tests)")
    p.add_argument("--brain_datalist", default=None, help="datalist of real BraTS data (its 'testing' list)")
    p.add_argument("--breast_datalist", default=None, help="datalist of real breast data (its 'testing' list)")
    a = p.parse_args(argv)
    command = command_line("ranking_table", argv)
    run_experiment(
        a.out,
        tuple(a.protocols),
        a.subjects,
        a.seed,
        "tiny" if a.tiny else "default",
        {"brain": a.brain_datalist, "breast": a.breast_datalist},
        command,
    )


if __name__ == "__main__":
    main()
