"""Known outcomes from a CSV, and precision and recall of "converted by leadflow" against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.exceptions import BacktestError
from worker.tools.backtest import confusion, load_outcomes, parse_outcomes


@pytest.mark.parametrize(
    ("text", "id_column", "outcome_column"),
    [
        ("lead_id,converted\nL1,yes\nL2,no\nL3,YES\n", "lead_id", "converted"),
        ("Lead ID;Won\nL1;true\nL2;false\nL3;True\n", "Lead ID", "Won"),
        ("id\toutcome\tamount\nL1\t1\t10\nL2\t0\t\nL3\t1\t5\n", "id", "outcome"),
        ("email,Is-Won,Lead\na@x,won,L1\nb@x,lost,L2\nc@x,y,L3\n", "Lead", "Is-Won"),
    ],
)
def test_common_headers_delimiters_and_values_are_understood(text: str, id_column: str, outcome_column: str) -> None:
    outcomes = parse_outcomes(text, "o.csv")
    assert (outcomes.id_column, outcomes.outcome_column) == (id_column, outcome_column)
    assert dict(outcomes.converted) == {"L1": True, "L2": False, "L3": True}


def test_blank_outcomes_are_unknown_and_a_lead_won_on_any_row_converted() -> None:
    outcomes = parse_outcomes("lead_id,won\nL1,no\nL1,yes\nL2,\nL3,no\n\n", "o.csv")
    assert dict(outcomes.converted) == {"L1": True, "L3": False}
    assert outcomes.blank == 1


def test_a_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes("lead_id,converted\r\nL1,1\r\n".encode("utf-8-sig"))
    assert dict(load_outcomes(path).converted) == {"L1": True}


def test_unknown_columns_are_an_error_naming_the_columns_found() -> None:
    with pytest.raises(BacktestError) as caught:
        parse_outcomes("lead_id,stage\nL1,Closed Won\n", "crm.csv")
    message = str(caught.value)
    assert "'crm.csv'" in message
    assert "cannot tell which column is the outcome" in message
    assert "found columns 'lead_id', 'stage'" in message
    assert "converted" in message
    assert "won" in message
    assert caught.value.source == "crm.csv"


def test_a_missing_lead_id_column_is_named_as_such() -> None:
    with pytest.raises(BacktestError, match=r"cannot tell which column is the lead id; found columns 'email', 'won'"):
        parse_outcomes("email,won\na@x,yes\n", "crm.csv")


def test_a_value_that_is_not_yes_or_no_names_its_line() -> None:
    with pytest.raises(BacktestError, match=r"'crm.csv' line 3: 'won' is 'maybe'; expected yes/no"):
        parse_outcomes("lead_id,won\nL1,yes\nL2,maybe\n", "crm.csv")


def test_an_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="is empty"):
        parse_outcomes("", "empty.csv")
    with pytest.raises(BacktestError, match=r"outcomes file '.*nope.csv' does not exist"):
        load_outcomes(tmp_path / "nope.csv")


def test_precision_and_recall_on_a_hand_checked_example() -> None:
    predicted = {"A": True, "B": True, "C": True, "D": False, "E": False, "F": False, "G": True, "X": True}
    actual = {"A": True, "B": True, "C": False, "D": True, "E": False, "F": False, "G": False, "Z": True}
    # A, B: TP; C, G: FP; D: FN; E, F: TN; X has no known outcome, Z was never seen: both left out
    matrix = confusion(predicted, actual)
    assert (matrix.tp, matrix.fp, matrix.fn, matrix.tn) == (2, 2, 1, 2)
    assert matrix.precision == pytest.approx(2 / 4)
    assert matrix.recall == pytest.approx(2 / 3)


def test_precision_and_recall_are_undefined_rather_than_zero_when_nothing_counts() -> None:
    matrix = confusion({"A": False}, {"A": False})
    assert (matrix.precision, matrix.recall) == (None, None)
