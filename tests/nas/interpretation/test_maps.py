"""nas.interpretation.maps: class-by-channel importances learned by perturbation."""

from __future__ import annotations

import torch
from torch import nn

from nas.interpretation import class_maps, deletion_accuracy, learn_importances


def _known_task(seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Class c lights up channel c of the explained layer; channels 4 and 5 carry noise the
    head ignores: class c needs channel c and nothing else."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(6, 6, 1, bias=False)
    head = nn.Linear(6, 4)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(6).view(6, 6, 1, 1))
        head.weight.zero_()
        head.weight[:, :4] = 4 * torch.eye(4) - 1
        head.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    batches = []
    for _ in range(4):
        y = torch.arange(32) % 4
        x = 0.1 * torch.rand(32, 6, 4, 4)
        x[torch.arange(32), y] += 1.0
        x[:, 4:] = torch.rand(32, 2, 4, 4)  # noise channels
        batches.append((x, y))
    return model, batches


def test_each_class_is_found_to_need_its_own_channel_and_the_weights_are_untouched() -> None:
    model, batches = _known_task()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = learn_importances(model, "1", batches, 4, 6, sparsity=0.5, steps=300)
    assert m.shape == (4, 6) and bool(((m >= 0) & (m <= 1)).all())
    assert m[:, :4].argmax(1).tolist() == [0, 1, 2, 3]
    assert bool((m.diagonal() > 0.5).all()) and float(m[:, 4:].max()) < 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in model.parameters())  # given back trainable
    # removing each image's predicted class's top channel breaks the decision; a random one
    # (one of six) mostly does not
    full, without_top, without_random = deletion_accuracy(model, "1", batches, m, 1)
    assert full == 100.0 and without_top < 30.0 and without_random > 50.0


def test_a_class_map_lights_up_where_its_channels_fire() -> None:
    model, _ = _known_task()
    x = 0.01 * torch.rand(2, 6, 8, 8)
    x[0, 1, :3, :3] = 1.0  # class 1's channel, top left
    x[1, 2, 5:, 5:] = 1.0  # class 2's channel, bottom right
    importances = torch.zeros(4, 6)
    importances[1, 1] = importances[2, 2] = 1.0
    maps = class_maps(model, "1", x, torch.tensor([1, 2]), importances)
    assert maps.shape == (2, 8, 8) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert float(maps[0, :3, :3].mean()) > 0.9 and float(maps[0, 5:, 5:].mean()) < 0.1
    assert float(maps[1, 5:, 5:].mean()) > 0.9 and float(maps[1, :3, :3].mean()) < 0.1
