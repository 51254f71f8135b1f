"""``nas sweep``: many searches as one Optuna study, and the accuracy/MAC Pareto front.

From Python (the same as the command line, with the same files)::

    import nas

    metrics = nas.run_sweep(
        nas.RunOptions(out_dir="runs/sweep", dataset="digits", baseline_epochs=30),
        nas.SearchConfig(warmup_epochs=10, search_epochs=20, finetune_epochs=30, seed=0),
        nas.SweepConfig(trials=6, budgets=(0.25, 0.5, 0.75)),
    )
    print(metrics["pareto_points"], metrics["hypervolume"])

**Trials.** Each trial picks a MAC target (from ``macs_range`` or from the list of ``budgets``;
the first trials of a study take the listed budgets in order) and the search hyper-parameters
named in ``tune`` (budget-loss weight, initial temperature, architecture learning rate), runs
:func:`nas.width_search.run_search` into ``DIR/trials/trial-NNNN`` and reports two objectives:
the validation accuracy of the delivered (fine-tuned) network, maximised, and its MACs,
minimised. The validation split trained neither the weights nor the architecture parameters;
the test split chooses nothing: its accuracy is only reported (``trials.csv``, ``pareto.csv``,
the figure and the hypervolume are the test accuracies of the trials chosen on validation).

**Sampling.** The sampler is passed explicitly (NSGA-II by default, TPE with ``sampler="tpe"``).
Each trial is drawn, under the sweep lock, by a sampler seeded with (the search's ``seed``, the
number of trials drawn before it): processes working on one study never draw the same knobs from
the same random state, and a sweep run by one process is reproducible from its seed. NSGA-II and
TPE keep nothing between trials but their random state (in Optuna 5.0 their populations,
generations and observations are read back from the storage), so a fresh sampler per trial
changes nothing else.

**Shared work.** The full baseline is trained once per sweep (``DIR/baseline``), and so is the
supernet's warm-up (``DIR/warmup.pt``, :func:`nas.width_search.warm_up`); every trial starts from
both. A trial whose parameters equal those of a finished trial of the same sweep options
(device included) reuses its result (``same_as``): the seeded search would repeat it. It is
listed in ``trials.csv`` but not again in ``pareto.csv`` (one row per distinct result).

**Uniform-width curve.** At each listed budget (with ``macs_range``: at each Pareto target,
rounded to 0.01) a network of uniform width and the same MACs is trained the same way as the
searched network there: it inherits from the same supernet (the search checkpoint of the
completed trial with the best validation accuracy at that target: baseline, then the warm-up
and search epochs), its BN statistics are recalibrated for its widths on training batches
(:func:`nas.supernet.extract_at`), and it is fine-tuned with that trial's options and the
baseline as teacher. Cached in ``DIR/uniform``.

**Failures.** Optuna's pruners raise ``NotImplementedError`` in multi-objective studies, so no
trial is pruned. A trial that fails or is interrupted is marked FAIL (one left RUNNING by a
process that died is marked FAIL, and queued again, by the next process that asks for a trial:
on its machine when the process is gone, on any machine once it missed 4 heartbeats, see
:mod:`nas.sweep.lock`);
FAIL trials do not count towards ``trials``. The process whose trial failed stops with its error
(one line for bad input); with ``workers > 1`` the other processes it started finish their
current trial and stop as well, while processes started separately go on and replace it.
Running the same sweep again replaces every failed or interrupted trial.

**Latency budgets.** With ``SearchConfig(cost="latency", latency_table=...)`` the budgets are
ratios of the full network's predicted latency (trial parameter ``target_latency``) and the
second objective is the predicted latency (:data:`nas.sweep.config.AXES`).

**Storage and several processes.** By default a journal file ``DIR/journal.log``; ``storage``
takes an Optuna RDB URL (PostgreSQL/MySQL; SQLite for one process at a time). Running the same
sweep again resumes it: finished trials are kept and only the missing ones run. Processes
cooperate through a file lock in the sweep directory (``DIR/.sweep.lock``): trials are created
under it, so together they run exactly ``trials`` trials. **Every process, on any machine, must
use the same sweep directory** (on a shared filesystem whose file locks work across machines,
e.g. NFSv4) as well as the same storage and study: the lock, the baseline, the warm-up and the
trial directories live there. A study records the options of its sweep (space, data, seed,
search and sweep options) and its directory when it is created; a process with other options,
or with another directory, is refused. SQLite allows one writer at a time: joining a SQLite
study while another live process runs one of its trials is refused (use the journal file or
PostgreSQL/MySQL for several processes).

Modules: ``config`` (:class:`SweepConfig`), ``study`` (storage, sampler, recorded options,
drawing trials), ``lock`` (the directory lock, heartbeats, dead workers), ``pareto`` (tables, front,
hypervolume), ``uniform`` (the uniform-width curve), ``workers`` (the processes that run trials),
``points`` (the sweep's files read back), ``run`` (:func:`run_sweep`, the ``nas sweep`` job) and
``plot`` (the ``nas plot`` job). The package sits above :mod:`nas.jobs` (its two commands are
jobs); every trial is a search run.
"""

from nas.sweep.config import SAMPLERS, TUNABLE, SweepConfig
from nas.sweep.pareto import hypervolume, pareto_rows
from nas.sweep.run import run_sweep
from nas.sweep.study import OBJECTIVES, make_sampler
from nas.sweep.workers import sweep_worker

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "TUNABLE",
    "SweepConfig",
    "hypervolume",
    "make_sampler",
    "pareto_rows",
    "run_sweep",
    "sweep_worker",
]
