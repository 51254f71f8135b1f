"""Zero-cost proxies: scores of a sub-network without any training."""

from __future__ import annotations

import torch

from search_spaces import SearchSpace

__all__ = ["synflow"]


def synflow(space: SearchSpace, widths: dict[str, int], seed: int = 0) -> float:
    """SynFlow (Tanaka et al. 2020), a data-free zero-cost proxy: the sum over parameters of
    |theta * dR/dtheta| with R the summed output of the network with |weights| on an all-ones
    input (BN in eval mode at its initial statistics), at a seeded initialisation. The caller's
    global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = space.build(widths).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones(1, space.in_channels, *space.input_size, dtype=torch.float64)
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    with torch.no_grad():
        return float(sum((p * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))
