"""Saved networks: ``arch.json`` + ``model.pt`` (+ ``model.pt2``, ``model.ts``), rebuilt with
their key names.

Saved models are "spec + state_dict" plus deployable copies that run without this package:
``arch.json``, ``model.pt`` (loads with ``torch.load(..., weights_only=True)``), ``model.pt2``
(``torch.export``: the deployable file, batch dimension dynamic, ``torch.export.load(path)
.module()`` runs it) and ``model.ts`` (TorchScript, which PyTorch marks deprecated: kept for
older runtimes). :func:`load_model` rebuilds the network from the first two.
"""

from __future__ import annotations

import copy
import io
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.errors import WeightsError, first_line
from nas.extraction.weights import check_spec_weights
from nas.io import (
    atomic_torch_save,
    atomic_write_bytes,
    is_writer,
    load_state_dict_file,
    load_weights,
)
from search_spaces import WidthSpec
from search_spaces.files import factory_digest

__all__ = ["EXPORT_TOLERANCE", "MODEL_FILES", "exported_bytes", "load_model", "save_model"]
__all__ += ["to_torchscript"]

# -- saving and loading ----------------------------------------------------------------------------
MODEL_FILES = ("arch.json", "model.pt", "model.pt2", "model.ts")
EXPORT_TOLERANCE = 1e-5  # largest difference allowed between model.pt2 and the network


def save_model(
    model: nn.Module, spec: WidthSpec, out_dir: str | Path, *, torchscript: bool = True
) -> None:
    """Write ``arch.json``, ``model.pt`` (state_dict) and, with ``torchscript``, the deployable
    ``model.pt2`` (``torch.export``) and ``model.ts`` (TorchScript); nothing on a rank other
    than 0 of several processes."""
    if not is_writer():
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()  # keeps the modules' versions (its _metadata)
    for k, v in state.items():
        state[k] = v.detach().cpu()
    ts_bytes = _torchscript_bytes(model, spec) if torchscript else None
    pt2_bytes = exported_bytes(model, spec) if torchscript else None
    spec.save(out / "arch.json")
    atomic_torch_save(state, out / "model.pt")
    if pt2_bytes is not None:
        atomic_write_bytes(out / "model.pt2", pt2_bytes)
    if ts_bytes is not None:
        atomic_write_bytes(out / "model.ts", ts_bytes)


def exported_bytes(model: nn.Module, spec: WidthSpec, *, quiet: bool = False) -> bytes | None:
    """``model.pt2``: ``torch.export`` of the network in eval mode with a dynamic batch
    dimension, the exported program checked against the network on random batches of 1 and 3
    inputs (largest difference within :data:`EXPORT_TOLERANCE`,
    else an internal error). None, with one line on stderr, for a network ``torch.export``
    cannot capture (a per-input network that slices its weights for each image, a user's
    network with Python it refuses): ``arch.json`` + ``model.pt`` still rebuild it."""
    net = copy.deepcopy(model).cpu().eval()
    shape = (spec.in_channels, *spec.input_size)
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    checks = [torch.randn(n, *shape, generator=torch.Generator().manual_seed(n)) for n in (1, 3)]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(
                net, (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), strict=False
            )
            torch.export.save(program, buf)
            exported = program.module()  # (the saved file's round trip is tested)
            diff = max(float((exported(x) - net(x)).abs().max()) for x in checks)
    except Exception as exc:  # torch.export raises many kinds
        if not quiet:
            print(
                f"warning: model.pt2 not written: torch.export cannot capture the network "
                f"({first_line(exc)})",
                file=sys.stderr,
            )
        return None
    if not diff <= EXPORT_TOLERANCE:
        raise AssertionError(f"model.pt2 differs from the network by {diff:.3g}")
    return buf.getvalue()


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """The deployable form of a network: scripted and frozen for inference (eval mode, BN folded
    into the preceding conv). Runs with torch alone; the model itself is left unchanged."""
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, still supported
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(copy.deepcopy(model).cpu().eval())
        return torch.jit.freeze(scripted)


def _torchscript_bytes(model: nn.Module, spec: WidthSpec) -> bytes | None:
    """The TorchScript file: scripted; a network that does not script (a user's network with
    Python the compiler refuses) or that runs Python hooks (which scripting leaves out: a
    traced space's conditional network) traced at the spec's input size; None, with one line
    on stderr, if neither works (``arch.json`` + ``model.pt`` still rebuild it)."""
    buf = io.BytesIO()
    hooked = any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if hooked:
                raise RuntimeError("the network runs forward hooks, which scripting leaves out")
            torch.jit.save(to_torchscript(model), buf)
        except Exception as scripting:  # torch.jit raises many kinds
            if spec.get_space().family != "traced":
                raise
            try:
                example = torch.zeros(1, spec.in_channels, *spec.input_size)
                net = copy.deepcopy(model).cpu().eval()
                torch.jit.save(torch.jit.freeze(torch.jit.trace(net, example)), buf)
            except Exception:
                print(
                    f"warning: model.ts not written: the network neither scripts nor traces "
                    f"({first_line(scripting)})",
                    file=sys.stderr,
                )
                return None
    return buf.getvalue()


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved network from ``arch.json`` + ``model.pt`` (in eval mode).

    ``path`` is a directory written by :func:`save_model` (or by ``nas train``/``nas extract``).
    """
    d = Path(path)
    if not d.is_dir():
        raise WeightsError(f"model directory not found: {d}")
    spec = WidthSpec.load(d / "arch.json")
    _warn_if_changed(d / "arch.json", spec)
    state = load_state_dict_file(d / "model.pt")
    check_spec_weights(spec, state, source=f"the weights {d / 'model.pt'}")
    model = spec.get_space().build(spec.widths)
    load_weights(model, state)
    return model.to(device).eval()


def _warn_if_changed(arch: Path, spec: WidthSpec) -> None:
    """One line on stderr when the file a file-factory space was saved from has changed since
    (the network is rebuilt from today's file; its weights may no longer mean the same)."""
    saved = json.loads(arch.read_text(encoding="utf-8")).get("space_sha256")
    now = factory_digest(spec.space)
    if saved and now and saved != now:
        where = spec.space.rpartition(":")[0]
        print(f"warning: {where} has changed since {arch} was written", file=sys.stderr)
