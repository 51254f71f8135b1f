"""``nas rank``: the options parsed into one call of :func:`nas.width_search.run_rank` (the GCN
predictor fitted on a finished search's supernet, its pick, and with ``--holdout`` the evidence
whether its ranking is worth it), and its result printed.

Writes into ``--out`` (default ``RUN/rank``): ``args.yaml``, ``predictor.pt``,
``selection.json``, ``arch.json`` (the selected spec), ``rank_metrics.json`` and
``rank_scatter.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.engine import ThreadOptions
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option
from nas.selection import RankConfig
from nas.width_search import run_rank

__all__ = ["COMMAND", "RankOptions"]


@dataclass
class RankOptions(ThreadOptions):
    """Which search ``nas rank`` reads and where it writes."""

    group: ClassVar[str] = "run"

    run: str = option("", "a nas search output directory (required)")
    out_dir: str | None = option(None, "output directory (default RUN/rank)", flag="--out")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def _cli(options: RankOptions, config: RankConfig) -> int:
    m = run_rank(
        options.run,
        config,
        out_dir=options.out_dir,
        overwrite=options.overwrite,
        progress=options.progress,
        threads=options.threads,
    )
    if m["pool_ranked"] < m["pool"]:
        print(f"note: only {m['pool_ranked']:,} distinct candidates lie within the budget band")
    print(
        f"selected {human(m['selected_macs'])} MACs ({m['selected_macs_ratio']:.1%}), "
        f"val acc {m['selected_val_acc']:.2f} % after the brief fine-tune"
    )

    def corr(value: float | None) -> str:
        return "  n/a " if value is None else f"{value:+.3f}"

    rows = dict(m.get("correlations", {}))
    if "noise_ceiling" in m:
        rows["ceiling"] = m["noise_ceiling"]  # the truth re-measured with a second seed
    for name, c in rows.items():
        print(f"  {name:<9} Kendall tau {corr(c['kendall_tau'])}  Spearman {corr(c['spearman'])}")
    if "correlations_note" in m:
        print(f"  {m['correlations_note']}")
    return 0


COMMAND = Command(
    options=(RankOptions, RankConfig),
    run=_cli,
    description="Fits a GCN predictor to supernet scores of a finished search, ranks candidates "
    "under its budget, and measures the ranking against stand-alone training.",
    config_file=True,
    required=frozenset({"run"}),
)
