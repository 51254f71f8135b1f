"""The commands of ``nas``: where each one's job lives and its one-line help.

Kept free of imports so that ``nas --help`` answers without loading torch; a command's module is
imported only when that command runs (or its ``--help`` is asked for).
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

# name -> (module holding its COMMAND, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "spaces": ("nas.jobs.spaces", "list the search spaces"),
    "profile": ("nas.jobs.profile", "MACs, parameters and units of a space or a width spec"),
    "latency-table": (
        "nas.jobs.latency",
        "measure a space's per-layer latency table on this machine (for --cost latency)",
    ),
    "train": ("nas.jobs.train", "train a full-width network (baseline / teacher)"),
    "extract": ("nas.jobs.extract", "slice a trained full network down to a width spec"),
    "search": (
        "nas.jobs.search",
        "search widths under a MAC or latency budget, extract and fine-tune the network",
    ),
    "criteria": ("nas.jobs.criteria", "compare how channel-importance criteria rank channels"),
    "prune": (
        "nas.jobs.prune",
        "prune a trained network with a channel-importance criterion under a MAC budget",
    ),
    "rank": (
        "nas.jobs.rank",
        "rank sub-networks of a finished search with a GCN predictor and measure the ranking "
        "against stand-alone training",
    ),
    "sweep": ("nas.sweep.run", "many searches as an Optuna study: accuracy/MAC Pareto front"),
    "transfer": ("nas.jobs.transfer", "train a found architecture on another dataset"),
    "export": (
        "nas.jobs.export",
        "write a finished run's network as ONNX, checked in ONNX Runtime",
    ),
    "scale": (
        "nas.jobs.scale",
        "compound scaling: depth, width and input size shrunk together to a MAC budget, trained",
    ),
    "compress": (
        "nas.jobs.compress",
        "cluster a finished run's weights to K values per layer (DKM) and save them packed",
    ),
    "explain": (
        "nas.jobs.explain",
        "which channels of a layer each class needs: importances and maps over images",
    ),
    "plot": ("nas.sweep.plot", "figures from finished runs"),
}
