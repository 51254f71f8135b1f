"""``nas criteria compare``: the options parsed into one call of
:func:`nas.runs.compare_criteria` (how alike channel-importance criteria rank the channels of one
network), and its result printed.

Writes ``criteria_similarity.csv``, ``criteria_similarity.png``, ``scores.pt``, ``metrics.json``
and ``args.yaml`` (see :mod:`nas.runs.criteria`).
"""

from __future__ import annotations

from pathlib import Path

from nas.jobs.base import Command
from nas.runs import CompareOptions, RunOptions, compare_criteria

__all__ = ["COMMAND"]


def _cli(options: RunOptions, config: CompareOptions) -> int:
    report = compare_criteria(options, config)
    names = report["criteria"]
    spearman = report["mean_spearman"]
    pairs = [
        (spearman[i][j], names[i], names[j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if spearman[i][j] == spearman[i][j]  # not NaN
    ]
    pairs.sort(reverse=True)
    closest = ", ".join(f"{a}~{b} {rho:.2f}" for rho, a, b in pairs[:3])
    print(
        f"{report['space']}: {len(names)} criteria on {report['units']} units; most alike "
        f"(mean Spearman): {closest} -> {Path(options.out_dir) / 'criteria_similarity.csv'}"
    )
    return 0


COMMAND = Command(
    description="Channel-importance criteria of a trained network compared.",
    subcommands={
        "compare": (
            "rank correlations and kept-channel overlap between criteria",
            Command(
                options=(RunOptions, CompareOptions),
                run=_cli,
                description="Scores the channels of a trained full network with several "
                "criteria and compares their rankings per unit (Spearman, Kendall, overlap of "
                "the kept channels).",
                exclude=frozenset({"baseline_epochs", "baseline_lr", "resume"}),
                required=frozenset({"weights"}),
                defaults={"out_dir": "runs/criteria"},
            ),
        )
    },
)
