"""nas.sweep.pareto: the Pareto front and the hypervolume."""

from __future__ import annotations

from typing import Any

import pytest

from nas.sweep import hypervolume, pareto_rows


def test_hypervolume_by_hand() -> None:
    # (MAC ratio, accuracy %): the area of [0.25, 1] x [0, 0.8] and [0.5, 1] x [0, 0.9]
    two = [(0.5, 90.0), (0.25, 80.0)]
    assert hypervolume(two) == pytest.approx(0.75 * 0.8 + 0.5 * (0.9 - 0.8))
    # a dominated point adds nothing; a point above the reference MACs is left out
    assert hypervolume([*two, (0.6, 70.0), (1.2, 99.0)]) == pytest.approx(0.65)
    # a cheaper, better point covers a dearer one
    assert hypervolume([(0.25, 95.0), (0.5, 90.0)]) == pytest.approx(0.75 * 0.95)
    assert hypervolume([(1.0, 100.0)]) == 0.0
    assert hypervolume([]) == 0.0
    assert hypervolume([(0.0, 100.0)]) == pytest.approx(1.0)
    assert hypervolume([(0.5, 50.0)], ref_ratio=2.0) == pytest.approx(1.5 * 0.5)


def test_pareto_rows_by_hand() -> None:
    def row(number: int, acc: float, macs: int, state: str = "COMPLETE") -> dict[str, Any]:
        # the front is chosen on the validation accuracy; the test accuracy plays no part
        return {
            "number": number,
            "state": state,
            "searched_val_acc": acc,
            "searched_acc": -1.0 if acc is None else 100.0 - acc,
            "macs": macs,
        }

    rows = [
        row(0, 80.0, 500),  # on the front
        row(1, 70.0, 600),  # dominated by 0
        row(2, 90.0, 900),  # on the front
        row(3, 60.0, 200),  # on the front (cheapest)
        row(4, 80.0, 500),  # equal to 0: neither dominates
        row(5, 80.0, 550),  # dominated by 0 (same accuracy, more MACs)
        row(6, 99.0, 100, state="FAIL"),  # would dominate everything: not complete
        row(7, None, None, state="RUNNING"),  # type: ignore[arg-type]
    ]
    front = pareto_rows(rows)
    assert [r["number"] for r in front] in ([3, 0, 4, 2], [3, 4, 0, 2])
    assert pareto_rows([]) == []
    assert pareto_rows([row(0, 50.0, 100, state="FAIL")]) == []
