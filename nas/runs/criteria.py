"""The criteria comparison as a library call: :func:`compare_criteria` (what ``nas criteria
compare`` runs): how alike channel-importance criteria rank the channels of one network.

Scores every channel of the trained full network in ``--weights`` with each criterion (the
data-driven ones on the first ``--score-images`` training images) and writes, per pair of
criteria and unit, the Spearman and Kendall rank correlations and the overlap of the channels
each keeps at ``--keep`` (:mod:`nas.importance.similarity`): ``criteria_similarity.csv`` (a
``mean`` row per pair after its units), ``criteria_similarity.png`` (heatmaps of the means),
``scores.pt`` (every criterion's scores), ``metrics.json`` (mean matrices, scoring seconds) and
``args.yaml``.
"""

from __future__ import annotations

import csv
import inspect
import io
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from nas.errors import ConfigError
from nas.extraction import check_full_weights
from nas.importance import CRITERIA, channel_scores
from nas.importance.similarity import MEASURES, mean_matrix, similarity_rows
from nas.io import (
    atomic_torch_save,
    atomic_write_text,
    load_state_dict_file,
    load_weights,
    write_json,
)
from nas.options import Options, option
from nas.plots import plot_similarity
from nas.rundir import run_output
from nas.runs.base import (
    RunOptions,
    check_search_out,
    resolve_threads,
    resolved_args,
    search_data,
    torch_threads,
    write_or_check_args,
)

__all__ = ["CompareOptions", "compare_criteria"]

DEFAULT_CRITERIA = ("l1", "l2", "fpgm", "bn", "chip", "hrel", "function", "random")
UNRANKED = ("uniform", "first")  # no scores: nothing to correlate


@dataclass
class CompareOptions(Options):
    """What ``nas criteria compare`` compares."""

    group: ClassVar[str] = "criteria"

    criteria: tuple[str, ...] = option(
        DEFAULT_CRITERIA, "criteria to compare (at least two)", metavar="NAME,NAME,..."
    )
    keep: float = option(0.5, "keep ratio of the kept-channel overlap", gt=0, le=1)
    score_images: int = option(
        256, "training images the data-driven criteria (chip, hrel, function) score on", ge=1
    )
    seed: int = option(0, "seed (data split, random criterion)")

    def check(self) -> None:
        known = CRITERIA.names()
        for name in self.criteria:
            if name not in known:
                raise ConfigError(
                    f"unknown criterion {name!r} in --criteria (choose from {', '.join(known)})"
                )
            if name in UNRANKED:
                raise ConfigError(
                    f"criterion {name!r} gives every channel the same score: nothing to compare"
                )
        if len(set(self.criteria)) != len(self.criteria) or len(self.criteria) < 2:
            raise ConfigError("--criteria needs at least two different criteria, each once")


def compare_criteria(options: RunOptions, config: CompareOptions) -> dict[str, Any]:
    """``nas criteria compare`` (see the module): the files, and the numbers of metrics.json."""
    o, c = options.validate(), config.validate()
    weights = o.weights
    if weights is None:
        raise ConfigError("nas criteria compare needs --weights (a trained full network)")
    out = check_search_out(o, command="criteria")
    threads = resolve_threads(o.threads)
    o = replace(o, threads=threads)
    data, space = search_data(o, c.seed)
    state = load_state_dict_file(weights)
    check_full_weights(space, state, source=f"weights {weights}")
    model = space.build()
    load_weights(model, state)
    model.eval()
    resolved = resolved_args(o, c, data.describe(), command="criteria")
    with (
        run_output(out, overwrite=o.overwrite, command="criteria", inputs=o.inputs()),
        torch_threads(threads),
    ):
        write_or_check_args(out, resolved, resume=False)
        scores, seconds = {}, {}
        for name in c.criteria:
            entry = CRITERIA.get(name)
            accepted = inspect.signature(entry.score).parameters
            kwargs = {
                k: v for k, v in (("seed", c.seed), ("images", c.score_images)) if k in accepted
            }
            start = time.perf_counter()
            data_arg = data.train if entry.needs_data else None
            scores[name] = channel_scores(model, space, name, data_arg, **kwargs)
            seconds[name] = round(time.perf_counter() - start, 3)
        rows = similarity_rows(scores, keep=c.keep)
        names = list(c.criteria)
        matrices = {m: mean_matrix(rows, names, m) for m in MEASURES}
        atomic_write_text(out / "criteria_similarity.csv", _csv(rows, matrices, names))
        atomic_torch_save(scores, out / "scores.pt")
        plot_similarity(matrices, names, out / "criteria_similarity.png")
        report = {
            "space": space.name,
            "dataset": o.dataset,
            "weights": o.weights,
            "criteria": names,
            "keep": c.keep,
            "units": len(space.units),
            "scoring_seconds": seconds,
            **{f"mean_{m}": matrices[m] for m in MEASURES},
        }
        write_json(out / "metrics.json", report)
        return report


def _csv(
    rows: list[dict[str, object]], matrices: dict[str, list[list[float]]], names: list[str]
) -> str:
    buf = io.StringIO()
    columns = ["criterion_a", "criterion_b", "unit", "channels", *MEASURES]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            pair = [r for r in rows if r["criterion_a"] == a and r["criterion_b"] == b]
            for r in pair:
                writer.writerow({k: _fmt(r[k]) for k in columns})
            mean: dict[str, object] = {"criterion_a": a, "criterion_b": b, "unit": "mean"}
            mean["channels"] = sum(int(r["channels"]) for r in pair)  # type: ignore[call-overload]
            mean |= {m: _fmt(matrices[m][i][j]) for m in MEASURES}
            writer.writerow(mean)
    return buf.getvalue()


def _fmt(value: object) -> object:
    return f"{value:.4f}" if isinstance(value, float) else value
