"""The profile of a network as a library call: :func:`profile_network` (what ``nas profile``
runs): the MACs, parameters and units of a space at some widths, and on request its latency
measured on this machine (and predicted by a latency table) beside the full network's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.errors import ConfigError
from search_spaces import SearchSpace

__all__ = ["profile_network"]


def profile_network(
    space: SearchSpace,
    widths: Mapping[str, int] | None = None,
    *,
    latency: bool = False,
    table: str | None = None,
    batch: int | None = None,
    threads: int | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """``space`` at ``widths`` (default: full width): its task, MACs (and FLOPs = 2 x MACs),
    their ratio to full width, parameters and units (name, kind, width, max width).

    ``latency``: also its latency measured here at ``batch`` (default 1) beside the full
    network's; ``table`` (a latency table file of this space and machine): measured at the
    table's batch and device, and predicted by the table. ``threads``: torch threads while
    measuring (default: the cores this process may use); a table's count must match.
    ``backend``: the runtime measured without a table (``torch``, default, or ``onnxruntime``).
    """
    chosen = space.full_widths() if widths is None else dict(widths)
    report = _profile_report(space, chosen)
    if latency or table is not None:
        report |= _latency(
            space, chosen, table=table, batch=batch, threads=threads, backend=backend
        )
    return report


def _latency(
    space: SearchSpace,
    widths: dict[str, int],
    *,
    table: str | None,
    batch: int | None,
    threads: int | None,
    backend: str | None,
) -> dict[str, Any]:
    """Measured (and with a table, predicted) latency of ``widths`` beside the full network, on
    ``backend`` (default eager torch; with a table, the table's)."""
    from nas.cost.latency import LatencyCost, LatencyTable, check_environment, environment
    from nas.cost.runtime import check_backend
    from nas.cost.timing import latency_report, network_latency_ms
    from nas.engine.config import ThreadOptions, torch_threads

    count = ThreadOptions(threads=threads).thread_count()  # a table's count must match
    with torch_threads(count):
        if table is None:
            batch = batch or 1
            runtime = backend or "torch"
            check_backend(runtime, "cpu")
            full, found = network_latency_ms(
                [space.build(), space.build(widths)],
                (space.in_channels, *space.input_size),
                batch=batch,
                device="cpu",
                backend=runtime,
                threads=count,
            )
            return {
                "latency_ms": found,
                "full_latency_ms": full,
                "latency_ratio": found / full,
                "latency_batch": batch,
                "latency_backend": runtime,
            }
        if batch is not None or backend is not None:
            raise ConfigError("--batch and --backend come from the table when --table is given")
        loaded = LatencyTable.load(table)
        here = environment(
            str(loaded.env["device"]), count, int(loaded.env["batch"]), loaded.env["backend"]
        )
        check_environment(loaded, here, table)
        return latency_report(LatencyCost(space, table=loaded), widths)


def _profile_report(space: SearchSpace, widths: dict[str, int]) -> dict[str, Any]:
    macs = space.macs(widths)
    return {
        "space": space.name,
        "num_classes": space.num_classes,
        "in_channels": space.in_channels,
        "input_size": list(space.input_size),
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "params": space.params(widths),
        "units": [
            {
                "name": u.name,
                "kind": u.kind,
                "width": widths[u.name],
                "max_width": u.max_width,
                "granularity": u.granularity,
            }
            for u in space.units
        ],
        "frozen": [
            {"channels": g.channels, "writers": list(g.writers), "reason": g.reason}
            for g in space.frozen
        ],
    }
