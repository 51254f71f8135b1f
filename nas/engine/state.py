"""State that makes a run resumable bit for bit: seeds, RNG states, loader states, checkpoints.

Everything here is stored in forms ``torch.load(..., weights_only=True)`` reads.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from nas.errors import WeightsError, first_line
from nas.io import atomic_torch_save, is_writer, torch_load

if TYPE_CHECKING:
    from nas.data import DataBundle

__all__ = [
    "has_checkpoint",
    "loader_state",
    "loader_states",
    "read_checkpoint",
    "restore_loader",
    "restore_loaders",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
]


# -- seeding, losses -------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU, and CUDA if present)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` reads."""
    np_state = cast(tuple[Any, ...], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
    }


def loader_state(loader: object) -> dict[str, Any]:
    """The shuffling state of a loader (ours, or a torch DataLoader with its own generator)."""
    if _has_state(loader):
        return {"loader": loader.state_dict(), "generator": None}  # type: ignore[attr-defined]
    gen = _loader_generator(loader)
    return {"loader": None, "generator": gen.get_state() if gen is not None else None}


def restore_loader(loader: object, state: dict[str, Any]) -> None:
    """Undo :func:`loader_state`."""
    if state["loader"] is not None and _has_state(loader):
        loader.load_state_dict(state["loader"])  # type: ignore[attr-defined]
    elif state["generator"] is not None and (gen := _loader_generator(loader)):
        gen.set_state(state["generator"])


def loader_states(data: DataBundle) -> dict[str, dict[str, Any]]:
    """The shuffling state of a bundle's training and validation loaders."""
    loaders = {"train": data.train, "val": data.val}
    return {k: loader_state(v) for k, v in loaders.items() if v is not None}


def restore_loaders(data: DataBundle, states: dict[str, dict[str, Any]]) -> None:
    """Undo :func:`loader_states`."""
    restore_loader(data.train, states["train"])
    if data.val is not None and "val" in states:
        restore_loader(data.val, states["val"])


def _has_state(loader: object) -> bool:
    return callable(getattr(loader, "state_dict", None)) and callable(
        getattr(loader, "load_state_dict", None)
    )


def _loader_generator(loader: object) -> torch.Generator | None:
    """The generator a torch DataLoader (or its sampler) shuffles with, if it has its own."""
    for owner in (loader, getattr(loader, "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator):
            return gen
    return None


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint before the newest is kept (``checkpoint.prev.pt``)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def has_checkpoint(path: Path) -> bool:
    """A checkpoint to resume from exists: the newest, or the previous one (a process killed
    between :func:`save_checkpoint`'s two renames leaves only that)."""
    return path.is_file() or previous_checkpoint(path).is_file()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically, keeping the one it replaces as the previous one: a
    process killed anywhere leaves at least one complete checkpoint."""
    if not is_writer():  # rank 0 of several processes writes it
        return
    tmp = path.with_name(f".{path.name}.new")
    atomic_torch_save(state, tmp)  # complete on disk before anything is renamed
    if path.is_file():
        os.replace(path, previous_checkpoint(path))
    os.replace(tmp, path)


def read_checkpoint(path: Path, fmt: object, kind: str) -> dict[str, Any]:
    """Load a checkpoint (``weights_only=True``) whose ``format`` entry is ``fmt``. A newest
    checkpoint that is missing, torn (its archive's checksums fail) or foreign falls back to
    the previous one, with a note on stderr; when neither is usable, one-line
    :class:`WeightsError`."""
    try:
        return _checked(torch_load(path, "checkpoint"), path, fmt, kind)
    except WeightsError as exc:
        previous = previous_checkpoint(path)
        if not previous.is_file():
            raise
        try:
            state = _checked(torch_load(previous, "checkpoint"), previous, fmt, kind)
        except WeightsError:
            raise exc from None
        print(f"note: {first_line(exc)}; resuming from the previous {previous}", file=sys.stderr)
        return state


def _checked(state: Any, path: Path, fmt: object, kind: str) -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise WeightsError(f"{path} is not a {kind} checkpoint of this toolkit")
    return state


def restore_rng(rng: dict[str, Any], device: torch.device) -> None:
    """Undo :func:`rng_state`."""
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    cuda = rng["cuda"]
    if cuda is not None and device.type == "cuda" and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
