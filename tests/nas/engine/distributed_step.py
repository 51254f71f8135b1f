"""One weight step and one architecture step of a width search on a fixed batch the ranks split
unevenly, run as one process or under torchrun (``python -m torch.distributed.run ...
distributed_step.py OUT``): rank 0 saves the gradients each step left (after the all-reduce) to
``OUT``. The test compares the files of one and of two processes."""

from __future__ import annotations

import sys

import torch

import nas
import search_spaces
from nas.engine import distributed
from nas.width_search import SearchConfig, start_run


def main(out: str) -> None:
    torch.set_num_threads(1)
    distributed.start("cpu", sync_bn=True)
    data = nas.load_data("digits", seed=0)
    assert data.val is not None
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(0)
    model = space.build()
    config = SearchConfig(warmup_epochs=0, search_epochs=1, seed=0)
    run = start_run(model, space, data.train, data.val, config)
    run.supernet.model.double()  # in float64: rounding far below the tolerance compared
    run.strategy.double()
    x, y = next(iter(data.train))
    x, y = x[:13].double(), y[:13]  # split 7 / 6: unequal shares, like an epoch's last batch
    with distributed.synced_batch_norm():
        weight_loss = run.weight_step(x, y, tau=1.0)
        weights = [p.grad.clone() for p in run.supernet.weights() if p.grad is not None]
        arch_loss, _ = run.arch_step(x, y, tau=1.0, progress=0.5)
    arch = [p.grad.clone() for p in run.strategy.arch_parameters() if p.grad is not None]
    if distributed.rank() == 0:
        torch.save(
            {"weights": weights, "arch": arch, "losses": [weight_loss, arch_loss]},
            out,
        )
    distributed.stop()


if __name__ == "__main__":
    main(sys.argv[1])
