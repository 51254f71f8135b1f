"""One search in progress (:class:`SearchRun`): its optimisers and budget, one method per step
and per epoch, and what it delivers at the end.

Data: the weights train on one part of the training split, the architecture parameters on
the other (``arch_fraction`` of it, shuffled, a fresh batch every step); the validation split
(neither) serves the per-epoch accuracy and the final relaxed/argmax/delivered comparison.

* **weight step** (SGD on the weights): the masks of a hard (discrete) sample of the width
  distribution (``weight_sampling="hard"``), a relaxed Gumbel-softmax sample (``"relaxed"``),
  or the sandwich rule (``"sandwich"``: the largest network on the labels, the smallest and
  ``sandwich_samples`` random networks distilled in place from the largest, as in AutoSlim and
  BigNAS, one SGD step for all; each random member draws every unit's width uniformly and
  independently over its choices, so the supernet trains the whole space, not the one network
  the learned distribution concentrates on, and not only uniform networks);
* **architecture step** (Adam on the architecture parameters): a Gumbel-softmax sample at the
  annealed temperature (straight-through hard with ``hard``), BN normalising with the batch's
  statistics but leaving the running ones untouched, and a backward pass into the architecture
  parameters only. Its loss: the architecture signal (``arch_signal``: the cross-entropy on the
  labels, or without labels the full network's outputs or two augmentations' agreement), the
  budget (:data:`nas.cost.BUDGETS`) on the expected MACs, and the crispness term (the mean
  normalised entropy of the width distributions, weighted from 0 up to ``entropy_weight`` over
  the search epochs), so that the relaxed network and the discrete one agree by the end (DAIS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.cost import PROJECTIONS, ResolvedBudget, create_budget
from nas.data import RandomCropFlip
from nas.engine import EvalResult, evaluate, kd_loss, make_optimizer, make_scheduler
from nas.engine.distributed import batches, reduce_step, shard, share
from nas.errors import ConfigError
from nas.extraction import permute_channels
from nas.gates import GateStrategy, temperature
from nas.gates.deploy import calibrate_gates, conditional_network
from nas.supernet import (
    Supernet,
    frozen_bn_statistics,
    recalibrate_bn,
    take_images,
)
from nas.width_search.config import SearchConfig
from nas.width_search.records import SearchOutcome, SearchRecord
from search_spaces import SearchSpace

__all__ = ["SearchRun", "projection_shift"]


class SearchRun:
    """State of one search: optimisers, schedules, budget, records; one method per epoch."""

    def __init__(
        self,
        supernet: Supernet,
        strategy: GateStrategy,
        config: SearchConfig,
        target: ResolvedBudget,
        weight_loader: Iterable[Any],
        arch_loader: Iterable[Any],
        val_loader: Iterable[Any],
        device: torch.device,
    ) -> None:
        """``target``: the run's budget (:func:`nas.width_search.setup.search_budget`)."""
        self.supernet, self.strategy, self.config = supernet, strategy, config
        self.resolved = target
        self.cost, self.target, self.device = target.cost, target.target, device
        self.weight_loader, self.arch_loader, self.val_loader = (
            weight_loader,
            arch_loader,
            val_loader,
        )
        self.steps = len(weight_loader)  # type: ignore[arg-type]
        if self.steps < 1:
            raise ConfigError("the training loader is empty")
        self.total_epochs = config.warmup_epochs + config.search_epochs
        wconf = config.weight_config(self.total_epochs, config.lr)
        self.w_opt = make_optimizer(supernet.weights(), wconf)
        self.w_sched = make_scheduler(self.w_opt, wconf, self.steps)
        arch_params = strategy.arch_parameters()
        self.a_opt = (  # a strategy without parameters of its own (scp) has nothing to step
            torch.optim.Adam(
                arch_params,
                lr=config.arch_lr,
                betas=(0.5, 0.999),
                weight_decay=config.arch_weight_decay,
            )
            if arch_params
            else None
        )
        self.budget = create_budget(
            config.budget, weight=config.budget_weight, lr=config.budget_lr, band=config.budget_band
        )
        self.full_macs = supernet.space.macs()
        self.smallest = {u: min(c) for u, c in strategy.choices.items()}
        self.calibration = take_images(weight_loader, config.calib_images)
        self.records: list[SearchRecord] = []
        self.seconds = 0.0

    # -- schedules ---------------------------------------------------------------------------
    def progress(self, epoch: int, step: int) -> float:
        """Share of the search steps done (0 during the warm-up)."""
        c = self.config
        if epoch <= c.warmup_epochs:
            return 0.0
        done = (epoch - c.warmup_epochs - 1) * self.steps + step
        return min(1.0, done / max(1, c.search_epochs * self.steps - 1))

    def tau(self, epoch: int, step: int) -> float:
        c = self.config
        if epoch <= c.warmup_epochs:
            return c.tau0
        done = (epoch - c.warmup_epochs - 1) * self.steps + step
        return temperature(done, c.search_epochs * self.steps, c.tau0, c.tau_min, c.schedule)

    # -- an epoch ------------------------------------------------------------------------------
    def epoch(self, epoch: int) -> SearchRecord:
        start = time.perf_counter()
        warm = epoch <= self.config.warmup_epochs
        lr = float(self.w_opt.param_groups[0]["lr"])
        sums = {"train": 0.0, "arch": 0.0, "budget": 0.0}
        arch_batches = _cycle(self.arch_loader)
        tau = self.config.tau0
        joint = not warm and not self.strategy.bilevel
        for step, (x, y) in enumerate(batches(self.weight_loader)):
            tau = self.tau(epoch, step)
            if joint:  # single-level: weights and gates in one step on the weights' batch
                ce, budget = self.joint_step(x, y, tau, self.progress(epoch, step))
                sums["train"] += ce
                sums["arch"] += ce
                sums["budget"] += budget
                continue
            sums["train"] += self.weight_step(x, y, tau)
            if not warm:
                xa, ya = next(arch_batches)
                arch, budget = self.arch_step(xa, ya, tau, self.progress(epoch, step))
                sums["arch"] += arch
                sums["budget"] += budget
        record = self._record(epoch, warm, tau, lr, sums, time.perf_counter() - start)
        self.records.append(record)
        return record

    def weight_step(self, x: Tensor, y: Tensor, tau: float) -> float:
        """One SGD step on the weights at the widths of ``weight_sampling``; returns the loss
        (of the largest network for the sandwich rule)."""
        self.supernet.train()
        x, y = x.to(self.device), y.to(self.device)
        x, y, n = shard(x, y)  # several processes: this rank's share of the batch
        m = int(y.shape[0])
        self.w_opt.zero_grad(set_to_none=True)
        if self.config.weight_sampling == "sandwich":
            loss = self._sandwich(x, y, share(m, n))
        else:
            mode = "sample" if self.config.weight_sampling == "relaxed" else "hard"
            with torch.no_grad():  # a hard sample is then exactly one-hot
                self.strategy.gate(mode, tau)
            loss = F.cross_entropy(self.supernet(x), y)
            (loss * share(m, n)).backward()
        total = reduce_step(self.supernet.weights(), loss.detach() * m)
        self.w_opt.step()
        self.w_sched.step()
        return float(total[0]) / n

    def _sandwich(self, x: Tensor, y: Tensor, weight: float) -> Tensor:
        """Largest network on the labels; the smallest and ``sandwich_samples`` random members
        (:meth:`random_widths`) distilled in place from its outputs; gradients accumulated for
        one step (every loss times ``weight``, this rank's share of the batch)."""
        self.supernet.set_masks(None)
        largest = self.supernet(x)
        loss = F.cross_entropy(largest, y)
        (loss * weight).backward()
        teacher = largest.detach()
        for i in range(1 + self.config.sandwich_samples):
            self.supernet.set_widths(self.smallest if i == 0 else self.random_widths())
            distill = kd_loss(self.supernet(x), teacher, y, alpha=1.0, temperature=1.0)
            (distill * weight).backward()
        self.supernet.set_masks(None)
        return loss

    def random_widths(self) -> dict[str, int]:
        """One random member of the sandwich: every unit's width drawn uniformly and
        independently over its choices (torch's generator: seeded, checkpointed)."""
        return {u: c[int(torch.randint(len(c), ()))] for u, c in self.strategy.choices.items()}

    def arch_step(self, x: Tensor, y: Tensor, tau: float, progress: float) -> tuple[float, float]:
        """One Adam step on the architecture parameters; returns (its signal's loss, budget loss).
        BN running statistics and the weights' gradients are left as they were."""
        x, y = x.to(self.device), y.to(self.device)
        x, y, n = shard(x, y)
        self.strategy.set_progress(progress)
        with frozen_bn_statistics(self.supernet):
            self.supernet.train()
            ce = self._arch_signal(x, y, tau)
        budget, update = self._budget_terms()
        crisp = self.config.entropy_weight * progress * self.strategy.entropy()
        loss = ce + budget + crisp + self.strategy.regularizer()
        params = self.strategy.arch_parameters()
        m = int(y.shape[0])
        if params and self.a_opt is not None:
            self.a_opt.zero_grad(set_to_none=True)
            # gradients for the architecture parameters only
            (loss * share(m, n)).backward(inputs=params)
            total = reduce_step(params, ce.detach() * m)
            self.a_opt.step()
        else:
            total = reduce_step([], ce.detach() * m)
        update()
        self.supernet.set_masks(None)
        return float(total[0]) / n, float(budget.detach())

    def _arch_signal(self, x: Tensor, y: Tensor, tau: float) -> Tensor:
        """The architecture step's loss of one Gumbel sample at ``tau`` (``--arch-signal``):
        the cross-entropy on the labels; the KL divergence from the full network's outputs on
        the same images (the supernet at full width, no gradient: no labels); or the agreement
        of the sample's outputs on two augmentations of the images, each view's cross-entropy
        against the other's predicted class (no labels; hard targets, since a soft agreement
        is best met by a network that predicts nothing)."""
        signal = self.config.arch_signal
        teacher = None
        if signal == "teacher":
            with torch.no_grad():
                self.supernet.set_masks(None)
                teacher = self.supernet(x)
        self.strategy.gate("hard" if self.config.hard else "sample", tau)
        logits = self.supernet(x)
        if signal == "labels":
            return F.cross_entropy(logits, y)
        if teacher is not None:
            return kd_loss(logits, teacher, y, alpha=1.0, temperature=1.0)
        other = self.supernet(self._second_view(x))
        return 0.5 * (
            F.cross_entropy(other, logits.detach().argmax(1))
            + F.cross_entropy(logits, other.detach().argmax(1))
        )

    def _second_view(self, x: Tensor) -> Tensor:
        """Another augmentation of the (already augmented) batch ``x``: the architecture
        loader's own augmentation (a random crop, and a flip where the data allow one), else a
        random crop padded by an eighth of the image; drawn from torch's seeded, checkpointed
        generator."""
        augment = getattr(self.arch_loader, "augment", None) or RandomCropFlip(
            max(1, x.shape[-1] // 8)
        )
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        return augment(x, generator)

    def joint_step(self, x: Tensor, y: Tensor, tau: float, progress: float) -> tuple[float, float]:
        """Single-level training (strategies with ``bilevel = False``): one step of the weights
        and the gates together on a weights' batch, at the strategy's ``train_mode`` masks, with
        the budget, crispness and the strategy's regulariser; returns (cross-entropy, budget)."""
        x, y = x.to(self.device), y.to(self.device)
        x, y, n = shard(x, y)
        self.supernet.train()
        self.strategy.set_progress(progress)
        self.w_opt.zero_grad(set_to_none=True)
        if self.a_opt is not None:
            self.a_opt.zero_grad(set_to_none=True)
        self.strategy.gate(self.strategy.train_mode, tau)
        ce = F.cross_entropy(self.supernet(x), y)
        budget, update = self._budget_terms()
        crisp = self.config.entropy_weight * progress * self.strategy.entropy()
        m = int(y.shape[0])
        ((ce + budget + crisp + self.strategy.regularizer()) * share(m, n)).backward()
        both = [*self.supernet.weights(), *self.strategy.arch_parameters()]
        ce_sum = reduce_step(list({id(p): p for p in both}.values()), ce.detach() * m)[0]
        self.w_opt.step()
        if self.a_opt is not None:
            self.a_opt.step()
        self.w_sched.step()
        update()
        self.supernet.set_masks(None)
        return float(ce_sum) / n, float(budget.detach())

    def _budget_terms(self) -> tuple[Tensor, Callable[[], None]]:
        """The budget loss (the strategy's own, weighted by ``budget_weight``, else
        ``--budget`` on the expected cost: MACs or latency) and the update to call after it."""
        own = self.strategy.budget_loss(self.target / self.full_macs)  # MACs only (checked)
        if own is not None:
            return self.config.budget_weight * own, lambda: None
        ratio = self.cost.expected(self.strategy.expected_widths()) / self.target
        with torch.no_grad():
            argmax_ratio = self.cost.exact(self.strategy.discrete_widths()) / self.target

        def update() -> None:  # after the step: the confidence the step reached
            self.budget.update(float(ratio.detach()), argmax_ratio, self.strategy.confidence())

        return self.budget.loss(ratio, argmax_ratio), update

    def _record(
        self, epoch: int, warm: bool, tau: float, lr: float, sums: dict[str, float], seconds: float
    ) -> SearchRecord:
        space = self.supernet.space
        with torch.no_grad():
            expected = float(space.expected_macs(self.strategy.expected_widths()))
            widths = self.strategy.discrete_widths()
            entropy = float(self.strategy.entropy())
        val = self.evaluate("discrete", tau)
        return SearchRecord(
            epoch=epoch,
            phase="warmup" if warm else "search",
            tau=tau,
            lr=lr,
            train_loss=sums["train"] / self.steps,
            arch_loss=None if warm else sums["arch"] / self.steps,
            budget_loss=None if warm else sums["budget"] / self.steps,
            expected_macs=expected,
            expected_macs_ratio=expected / self.full_macs,
            argmax_macs_ratio=space.macs(widths) / self.full_macs,
            confidence=self.strategy.confidence(),
            entropy=entropy,
            multiplier=self.budget.multiplier,
            val_acc=val.accuracy,
            seconds=seconds,
        )

    # -- evaluation and the result ------------------------------------------------------------
    def evaluate(
        self, mode: str = "discrete", tau: float = 1.0, widths: dict[str, int] | None = None
    ) -> EvalResult:
        """Accuracy and loss on the validation split of the supernet with masks of ``mode`` (or
        fixed ``widths``), after recalibrating its BN statistics for exactly those masks."""
        with torch.no_grad():
            if widths is None:
                self.strategy.gate(mode, tau)
            else:
                self.supernet.set_widths(widths)
            recalibrate_bn(self.supernet, self.calibration, self.device)
            result = evaluate(self.supernet, self.val_loader, device=self.device)
            self.supernet.set_masks(None)
        return result

    def finish(self, space: SearchSpace) -> SearchOutcome:
        """The delivered widths (the argmax projected into the budget band), and the relaxed,
        argmax and delivered networks compared on the validation split.

        A per-input strategy's conditional network (gates per image, BN statistics re-estimated
        under them) is taken first: without ``--static`` it is what the search delivers (the
        spec is then the full space's, nothing is projected); with ``--static`` the gates become
        one static pruning and the conditional network is reported beside it."""
        c = self.config
        final_tau = self.records[-1].tau if self.records else c.tau_min
        conditional = self.conditional_network() if self.strategy.per_input else None
        if conditional is not None and not c.static:
            offset, calibrated = None, None
            if c.calibrate_gates:
                offset, calibrated = self.calibrate_gates(conditional)
                delivered = evaluate(conditional, self.val_loader, device=self.device)
            else:
                delivered = self.evaluate("discrete", final_tau)
            return SearchOutcome(
                space.spec(),
                self.supernet,
                self.strategy,
                dict(space.max_widths),
                relaxed=self.evaluate("relaxed", final_tau),
                argmax_result=delivered,
                delivered=delivered,
                arch_confidence=self.strategy.confidence(),
                projection_shift=0.0,
                budget=self.resolved,
                calibration=self.calibration,
                records=list(self.records),
                seconds=self.seconds,
                conditional=conditional,
                static=False,
                gate_offset=offset,
                calibrated_macs_ratio=calibrated,
            )
        if self.strategy.per_input:  # --static: the gates as one static pruning
            self.strategy.make_static(self.weight_loader, c.static_share, self.device)
        order = self.strategy.channel_order()
        if order is not None:  # the most open channels first: a width w keeps exactly them
            permute_channels(self.supernet.model, space, order)
            self.strategy.permute(order)
        argmax = self.strategy.discrete_widths()
        log_probs = self.strategy.choice_log_probs()
        project = PROJECTIONS.get(c.projection)
        widths = project(
            self.cost,
            argmax,
            self.strategy.choices,
            log_probs,
            self.target,
            self.resolved.tolerance,
        )
        return SearchOutcome(
            space.spec(widths),
            self.supernet,
            self.strategy,
            argmax,
            relaxed=self.evaluate("relaxed", final_tau),
            argmax_result=self.evaluate(widths=argmax),
            delivered=self.evaluate(widths=widths),
            arch_confidence=self.strategy.confidence(),
            projection_shift=projection_shift(argmax, widths, self.strategy.choices),
            budget=self.resolved,
            calibration=self.calibration,
            records=list(self.records),
            seconds=self.seconds,
            conditional=conditional,
        )

    def calibrate_gates(self, conditional: nn.Module) -> tuple[float, float]:
        """The conditional network's gate threshold calibrated so that its average MACs over the
        validation images (not augmented; the split that trained nothing) land in the band, its
        BN statistics re-estimated on the calibration (training) images under the gates of each
        offset tried (:func:`nas.gates.deploy.calibrate_gates`); returns the offset and the
        average MAC ratio it gives."""
        return calibrate_gates(
            conditional,
            self.supernet.space,
            self.val_loader,
            self.device,
            self.resolved.ratio,
            self.resolved.tolerance,
            bn_batches=self.calibration,
        )

    @torch.no_grad()
    def conditional_network(self) -> nn.Module:
        """The standalone conditional network of a per-input strategy at the end of the search
        (:func:`nas.gates.deploy.conditional_network`), its BN statistics re-estimated under the
        gates each calibration image opens."""
        self.strategy.gate("discrete", 1.0)
        recalibrate_bn(self.supernet, self.calibration, self.device)
        self.supernet.set_masks(None)
        return conditional_network(self.supernet, self.strategy).to(self.device)


def projection_shift(
    before: dict[str, int], after: dict[str, int], choices: dict[str, list[int]]
) -> float:
    """Mean over units of how many choice steps the projection moved each unit (a width off the
    choices counts by its position between them)."""
    steps = [abs(_position(after[u], c) - _position(before[u], c)) for u, c in choices.items()]
    return sum(steps) / len(steps) if steps else 0.0


def _position(width: int, options: Sequence[int]) -> float:
    """Index of ``width`` in the sorted ``options``, interpolated between neighbours."""
    opts = sorted(options)
    if width <= opts[0]:
        return 0.0
    for i in range(1, len(opts)):
        if width <= opts[i]:
            return i - 1 + (width - opts[i - 1]) / (opts[i] - opts[i - 1])
    return float(len(opts) - 1)


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches(loader):
            empty = False
            yield batch
        if empty:
            raise ConfigError("the architecture loader is empty: a search needs training data")
