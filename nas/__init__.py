"""channel-nas: channel-width neural architecture search for ResNets.

The public API, in the order a user meets it::

    import nas

    data = nas.load_data("digits")                                   # DataBundle
    space = nas.create_space("resnet20", num_classes=data.num_classes,
                             in_channels=data.in_channels, input_size=data.input_size)
    model = space.build()                                            # full width
    nas.train_model(model, data.train, config=nas.TrainConfig(epochs=10), val_loader=data.val)
    spec = space.spec(space.uniform_widths(0.5))                     # a WidthSpec
    nas.count_macs(spec)                                             # exact, analytic
    small = nas.extract(model, spec, nas.channel_order(model, space), recalibrate=data.train)
    # recalibrate=: BN statistics for the new widths, = nas.recalibrate_bn(small, data.train)
    nas.save_model(small, spec, "out/")                              # arch.json + model.pt + .ts
    same = nas.load_model("out/")
    result = nas.search(model, data.train, data.val, config=nas.SearchConfig(target_macs="0.5"))
    pruned = nas.prune(model, data.train, data.val, criterion="chip", target_macs="0.5")

Names are imported on first use (``import nas`` loads neither torch nor anything heavy), from
the package that owns them; ``nas.__all__`` lists them. The layers, bottom to top, are described
in the README's "Architecture" section.
"""

from __future__ import annotations

import importlib
import os

# oneDNN keeps 1,024 compiled convolution primitives by default; a process that runs many
# networks of different widths (latency tables and their calibration, a pruning sweep) evicts
# them and then times their recompilation (measured: 5 of 16 SqueezeNet widths 4x slower when
# timed interleaved). A larger cache unless the user set one (read at the first convolution).
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API: dict[str, str] = {
    # errors
    "ConfigError": "nas.errors",
    "DataError": "nas.errors",
    "NasError": "nas.errors",
    "SpaceError": "nas.errors",
    "SpecError": "nas.errors",
    "WeightsError": "nas.errors",
    # registries and spaces
    "Registry": "nas.registry",
    "SearchSpace": "search_spaces",
    "WidthSpec": "search_spaces",
    "list_spaces": "search_spaces",
    # data and training
    "DataBundle": "nas.data",
    "DataOptions": "nas.data",
    "load_data": "nas.data",
    "Distillation": "nas.engine",
    "EpochRecord": "nas.engine",
    "EvalResult": "nas.engine",
    "TrainConfig": "nas.engine",
    "evaluate": "nas.engine",
    "kd_loss": "nas.engine",
    "recalibrate_bn": "nas.engine",
    "train_model": "nas.engine",
    # compute
    "count_macs": "nas.cost",
    "count_model_params": "nas.cost",
    "count_params": "nas.cost",
    "measure_macs": "nas.cost",
    # extraction and channel importance
    "channel_order": "nas.importance",
    "channel_scores": "nas.importance",
    "allocate": "nas.pruning",
    "PruneConfig": "nas.pruning",
    "extract": "nas.extraction",
    "kept_channels": "nas.extraction",
    "load_model": "nas.extraction",
    "mask_channels": "nas.extraction",
    "save_model": "nas.extraction",
    "spec_masks": "nas.extraction",
    # the search
    "GateStrategy": "nas.gates",
    "create_strategy": "nas.gates",
    "list_strategies": "nas.gates",
    "register_strategy": "nas.gates",
    "SearchConfig": "nas.width_search",
    "search_widths": "nas.width_search",
    "RankConfig": "nas.selection",
    # runs into a directory (what the commands run) and their in-memory twins
    "RunOptions": "nas.runs",
    "SearchResult": "nas.width_search",
    "run_search": "nas.width_search",
    "search": "nas.width_search",
    "run_rank": "nas.width_search",
    "PruneResult": "nas.pruning",
    "prune": "nas.pruning.pipeline",
    "run_prune": "nas.pruning",
    "train_baseline": "nas.runs",
    "extract_to_dir": "nas.runs",
    "TransferResult": "nas.transfer_learning",
    "transfer": "nas.transfer_learning",
    "run_transfer": "nas.transfer_learning",
    "SweepConfig": "nas.sweep",
    "run_sweep": "nas.sweep",
    # after the search: weight clustering, compound scaling
    "load_clustered": "nas.compression",
    "run_compress": "nas.compression",
    "run_scale": "nas.scaling",
}
_RENAMED = {"create_space": ("search_spaces", "create")}

__all__ = [
    "ConfigError",
    "DataBundle",
    "DataError",
    "DataOptions",
    "Distillation",
    "EpochRecord",
    "EvalResult",
    "GateStrategy",
    "NasError",
    "PruneConfig",
    "PruneResult",
    "RankConfig",
    "Registry",
    "RunOptions",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "SpaceError",
    "SpecError",
    "SweepConfig",
    "TrainConfig",
    "TransferResult",
    "WeightsError",
    "WidthSpec",
    "__version__",
    "allocate",
    "channel_order",
    "channel_scores",
    "count_macs",
    "count_model_params",
    "count_params",
    "create_space",
    "create_strategy",
    "evaluate",
    "extract",
    "extract_to_dir",
    "kd_loss",
    "kept_channels",
    "list_spaces",
    "list_strategies",
    "load_clustered",
    "load_data",
    "load_model",
    "mask_channels",
    "measure_macs",
    "prune",
    "recalibrate_bn",
    "register_strategy",
    "run_compress",
    "run_prune",
    "run_rank",
    "run_scale",
    "run_search",
    "run_sweep",
    "run_transfer",
    "save_model",
    "search",
    "search_widths",
    "spec_masks",
    "train_baseline",
    "train_model",
    "transfer",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from nas.cost import count_macs, count_model_params, count_params, measure_macs
    from nas.data import DataBundle, DataOptions, load_data
    from nas.engine import (
        Distillation,
        EpochRecord,
        EvalResult,
        TrainConfig,
        evaluate,
        kd_loss,
        recalibrate_bn,
        train_model,
    )
    from nas.errors import ConfigError, DataError, NasError, SpaceError, SpecError, WeightsError
    from nas.extraction import (
        extract,
        kept_channels,
        load_model,
        mask_channels,
        save_model,
        spec_masks,
    )
    from nas.gates import GateStrategy, create_strategy, list_strategies, register_strategy
    from nas.importance import channel_order, channel_scores
    from nas.pruning import PruneConfig, PruneResult, allocate, run_prune
    from nas.pruning.pipeline import prune
    from nas.registry import Registry
    from nas.runs import RunOptions, extract_to_dir, train_baseline
    from nas.selection import RankConfig
    from nas.sweep import SweepConfig, run_sweep
    from nas.transfer_learning import TransferResult, run_transfer, transfer
    from nas.width_search import (
        SearchConfig,
        SearchResult,
        run_rank,
        run_search,
        search,
        search_widths,
    )
    from search_spaces import SearchSpace, WidthSpec, list_spaces
    from search_spaces import create as create_space
