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
    small = nas.extract(model, spec, nas.channel_order(model, space))
    nas.save_model(small, spec, "out/")                              # arch.json + model.pt + .ts
    same = nas.load_model("out/")
"""

from __future__ import annotations

__version__ = "0.1.0"

from nas.compute import count_macs, count_model_params, count_params, measure_macs
from nas.data import DataBundle, load_data
from nas.errors import ConfigError, DataError, NasError, SpaceError, SpecError, WeightsError
from nas.extract import (
    channel_order,
    extract,
    kept_channels,
    load_model,
    mask_channels,
    save_model,
    spec_masks,
)
from nas.train import EpochRecord, EvalResult, TrainConfig, evaluate, kd_loss, train_model
from nas.workflows import extract_to_dir, train_baseline
from search_spaces import SearchSpace, WidthSpec, list_spaces
from search_spaces import create as create_space

__all__ = [
    "ConfigError",
    "DataBundle",
    "DataError",
    "EpochRecord",
    "EvalResult",
    "NasError",
    "SearchSpace",
    "SpaceError",
    "SpecError",
    "TrainConfig",
    "WeightsError",
    "WidthSpec",
    "__version__",
    "channel_order",
    "count_macs",
    "count_model_params",
    "count_params",
    "create_space",
    "evaluate",
    "extract",
    "extract_to_dir",
    "kd_loss",
    "kept_channels",
    "list_spaces",
    "load_data",
    "load_model",
    "mask_channels",
    "measure_macs",
    "save_model",
    "spec_masks",
    "train_baseline",
    "train_model",
]
