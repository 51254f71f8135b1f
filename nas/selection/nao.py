"""NAO-style optimisation of widths (Luo et al. 2018, "Neural architecture optimization"):
gradient steps in a continuous embedding of width assignments instead of a discrete search.

Three small networks are fitted together on the candidates scored so far (:class:`WidthCodec`):

* an **encoder** maps a width assignment (one one-hot vector over each unit's choices,
  concatenated) to an embedding ``z`` (``dim`` numbers in ``(-1, 1)``);
* a **predictor** maps ``z`` to the candidate's standardised score (minus its one-shot
  validation loss on the supernet, as every chooser here scores);
* a **decoder** maps ``z`` back to per-unit logits over the choices.

Their loss is NAO's ``lambda * MSE(predictor) + (1 - lambda) * cross-entropy(decoder)``
(``lambda`` = :data:`TRADE_OFF`), so the embedding both predicts and reconstructs. Then each of
the best candidates is encoded and moved up the predictor's gradient, ``z + eta * grad f(z)``,
with ``eta`` doubled from :data:`FIRST_STEP` until the decoded widths (each unit's most likely
choice) differ from the candidate's; the new widths are repaired into the MAC band (the
projection's dynamic program, as evolution's children are) and scored. Fitting and stepping
repeat for ``rounds`` rounds; the best candidate scored in the band is returned.

:func:`optimise` runs it on a :class:`~nas.selection.candidates.CandidateScorer`; the first
candidates are evolution's first generation (the seeds, samples of the search's distribution
and uniform draws in the band).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nas.cost import ResolvedBudget
from nas.selection.candidates import CandidateScorer
from nas.selection.choosers import first_population, nearest_choice, repair

__all__ = ["FIRST_STEP", "TRADE_OFF", "WidthCodec", "optimise"]

TRADE_OFF = 0.8  # NAO's lambda: the predictor's share of the loss (the decoder has the rest)
FIRST_STEP = 0.25  # the first step size in the embedding, doubled until the decoding moves
MAX_DOUBLINGS = 8
FIT_STEPS = 300


class WidthCodec(nn.Module):
    """Encoder, predictor and decoder of width assignments over ``choices`` (see the module)."""

    def __init__(self, choices: Mapping[str, Sequence[int]], dim: int = 16, hidden: int = 64):
        super().__init__()
        self.units = list(choices)
        self.choices = {u: list(c) for u, c in choices.items()}
        self.sizes = [len(c) for c in self.choices.values()]
        total = sum(self.sizes)
        self.encoder = nn.Sequential(
            nn.Linear(total, hidden), nn.Tanh(), nn.Linear(hidden, dim), nn.Tanh()
        )
        self.predictor = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, total))

    def indices(self, widths: Sequence[Mapping[str, int]]) -> Tensor:
        """``(n, U)``: each unit's choice index of each assignment (the nearest choice)."""
        return torch.tensor(
            [[nearest_choice(self.choices[u], w[u]) for u in self.units] for w in widths],
            dtype=torch.long,
        )

    def one_hot(self, indices: Tensor) -> Tensor:
        """``(n, sum of choices)``: the concatenated one-hot codes of choice ``indices``."""
        parts = [F.one_hot(indices[:, i], k).float() for i, k in enumerate(self.sizes)]
        return torch.cat(parts, 1)

    def decode(self, z: Tensor) -> list[Tensor]:
        """Per unit, ``(n, its choices)`` logits of the assignments embedded as ``z``."""
        return list(self.decoder(z).split(self.sizes, dim=1))

    def widths(self, z: Tensor) -> list[dict[str, int]]:
        """The decoded assignments: each unit's most likely choice."""
        picks = torch.stack([lg.argmax(1) for lg in self.decode(z)], 1)
        return [
            {u: self.choices[u][int(k)] for u, k in zip(self.units, row, strict=True)}
            for row in picks
        ]

    def loss(self, indices: Tensor, targets: Tensor) -> Tensor:
        """NAO's joint loss on assignments ``indices`` with standardised scores ``targets``."""
        z = self.encoder(self.one_hot(indices))
        predicted = self.predictor(z).squeeze(1)
        reconstruction = sum(
            F.cross_entropy(lg, indices[:, i]) for i, lg in enumerate(self.decode(z))
        )
        assert isinstance(reconstruction, Tensor)
        return TRADE_OFF * F.mse_loss(predicted, targets) + (1 - TRADE_OFF) * reconstruction / len(
            self.sizes
        )

    def fit(self, indices: Tensor, targets: Tensor, steps: int = FIT_STEPS) -> float:
        """Adam on the joint loss over all the candidates at once; returns the last loss."""
        opt = torch.optim.Adam(self.parameters(), lr=1e-2, weight_decay=1e-4)
        loss = torch.zeros(())
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = self.loss(indices, targets)
            loss.backward()
            opt.step()
        return float(loss.detach())

    def improve(self, indices: Tensor) -> list[dict[str, int]]:
        """For each assignment, the first decoding along its predictor's gradient that differs
        from it (``eta`` doubled from :data:`FIRST_STEP`; the last try when none differs)."""
        out = []
        for row in indices:
            z = self.encoder(self.one_hot(row[None])).detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.predictor(z).sum(), z)
            own = self.widths(z.detach())[0]
            moved = own
            eta = FIRST_STEP
            with torch.no_grad():
                for _ in range(MAX_DOUBLINGS):
                    moved = self.widths(z + eta * grad)[0]
                    if moved != own:
                        break
                    eta *= 2
            out.append(moved)
        return out


def optimise(
    scorer: CandidateScorer,
    band: ResolvedBudget,
    seeds: Sequence[Mapping[str, int]],
    log_probs: Mapping[str, Tensor],
    *,
    population: int,
    rounds: int,
    seed: int,
    progress: bool = False,
) -> dict[str, int]:
    """The best candidate (lowest validation loss) NAO finds in the band: ``population`` first
    candidates (:func:`~nas.selection.choosers.first_population`), then ``rounds`` rounds that
    each fit the codec to every candidate scored and move the best ``population // 2`` of them
    along the predictor's gradient (new widths repaired into the band and scored). Python's and
    torch's global random states are left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rng = random.Random(seed)
        gen = torch.Generator().manual_seed(seed)
        pool = first_population(scorer, band, seeds, log_probs, population, gen)
        bar = tqdm(total=rounds + 1, desc="nao", unit="round", disable=not progress)
        losses = dict(
            zip(pool, (r.loss for r in scorer.score_many(list(pool.values()))), strict=True)
        )
        bar.update(1)
        codec = WidthCodec(band.choices)
        for _ in range(rounds):
            keys = list(pool)
            indices = codec.indices([pool[k] for k in keys])
            score = -torch.tensor([losses[k] for k in keys])
            targets = (
                (score - score.mean()) / score.std().clamp_min(1e-8) if len(keys) > 1 else score * 0
            )
            codec.fit(indices, targets)
            best = sorted(keys, key=lambda k: (losses[k], k))[: max(1, population // 2)]
            fresh: list[dict[str, int]] = []
            for moved in codec.improve(codec.indices([pool[k] for k in best])):
                child = repair(moved, band)
                if scorer.key(child) not in pool and child not in fresh:
                    fresh.append(child)
            if not fresh:  # every move decoded to a known candidate: a random neighbour instead
                fresh = [_neighbour(pool[rng.choice(best)], band, rng)]
            for child, result in zip(fresh, scorer.score_many(fresh), strict=True):
                key = scorer.key(child)
                pool[key] = child
                losses[key] = result.loss
            bar.update(1)
        bar.close()
        inside = [k for k in pool if band.holds(pool[k])]
        return dict(pool[min(inside, key=lambda k: (losses[k], k))])


def _neighbour(
    widths: Mapping[str, int], band: ResolvedBudget, rng: random.Random
) -> dict[str, int]:
    """``widths`` with one random unit moved one choice, repaired into the band."""
    unit = rng.choice(list(band.choices))
    options = band.choices[unit]
    k = nearest_choice(options, widths[unit]) + rng.choice((-1, 1))
    moved = {**widths, unit: options[min(max(k, 0), len(options) - 1)]}
    return repair(moved, band)
