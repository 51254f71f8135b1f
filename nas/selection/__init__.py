"""Choosing the final widths: sampling, supernet scores, the GCN predictor, evidence.

Scoring a sub-network with inherited supernet weights is cheap but noisy; a GCN predictor
(``predictors``) fitted to such scores smooths the noise over the whole space (Chen et al., AAAI
2021). Modules: ``config`` (:class:`RankConfig`), ``sampler`` (distinct widths, uniform or in a
MAC band), ``scoring`` (supernet scores, fitting the GCN), ``proxies`` (synflow),
``predictor`` (:func:`select_with_predictor`), ``evidence`` (rank correlations with stand-alone
training), ``candidates`` (:class:`CandidateScorer`: one-shot validation scores of width
assignments, BN statistics recomputed for each), ``choosers`` (evolution, greedy slimming),
``nao`` (gradient steps in a learned embedding of widths) and ``methods`` (the
:data:`SELECTIONS` registry: ``argmax``, ``evolution``, ``nao``, ``greedy``, ``predictor``;
:func:`choose`).
"""

from nas.selection.candidates import CandidateScorer
from nas.selection.choosers import check_band
from nas.selection.config import MIN_HOLDOUT, MIN_SAMPLES, SAMPLING, RankConfig
from nas.selection.evidence import ranking_evidence, undefined_note
from nas.selection.methods import GRID_CHOOSERS, SELECTIONS, Choice, SelectionRequest, choose
from nas.selection.predictor import (
    Selection,
    cost_fields,
    cost_key,
    delivered_quality,
    select_with_predictor,
)
from nas.selection.proxies import synflow
from nas.selection.sampler import (
    WidthSampler,
    as_dict,
    check_pool_band,
    pool_band,
    sample_pool,
    sample_widths,
    scoring_band,
)
from nas.selection.scoring import fit_on_supernet, score_subnets

__all__ = [
    "GRID_CHOOSERS",
    "MIN_HOLDOUT",
    "MIN_SAMPLES",
    "SAMPLING",
    "SELECTIONS",
    "CandidateScorer",
    "Choice",
    "RankConfig",
    "Selection",
    "SelectionRequest",
    "WidthSampler",
    "as_dict",
    "check_band",
    "check_pool_band",
    "choose",
    "cost_fields",
    "cost_key",
    "delivered_quality",
    "fit_on_supernet",
    "pool_band",
    "ranking_evidence",
    "sample_pool",
    "sample_widths",
    "score_subnets",
    "scoring_band",
    "select_with_predictor",
    "synflow",
    "undefined_note",
]
