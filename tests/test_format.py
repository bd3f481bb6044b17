"""Units as people read them: times, and the ones that round up into the next unit."""

from __future__ import annotations

import math

import pytest

from suite.format import csv_cell, format_p, format_ratio, format_seconds, markdown_table

# -- format_seconds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.5e-6, "1.5 us"),
        (0.0123, "12.3 ms"),
        (2.0, "2 s"),
        (5e-9, "5 ns"),
        (math.nan, "-"),
        (None, "-"),
        (1e-3, "1 ms"),
        (1e-6, "1 us"),
        (999e-9, "999 ns"),
        (123.4e-6, "123 us"),
        (12.34, "12.3 s"),
        (0.0, "0 ns"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.0009996, "1 ms"), (999.7e-9, "1 us")])
def test_format_seconds_rounding_up_to_the_next_unit(seconds, text):
    assert format_seconds(seconds) == text


# -- ratios, p-values, table cells ------------------------------------------------------------


def test_ratio_and_p_value_text():
    assert format_ratio(1.23456) == "1.235"
    assert format_ratio(1.23456, (1.1, 1.4)) == "1.235 [1.100, 1.400]"
    assert format_ratio(1.2, (math.nan, math.nan)) == "1.200"
    assert format_ratio(math.nan, (1.0, 2.0)) == "-"
    assert format_p(0.012345) == "0.012"
    assert format_p(math.nan) == "-"


def test_markdown_table_folds_whitespace_and_escapes_pipes():
    table = markdown_table(["a", "b"], [["x | y", "two\nlines  here"], ["", "z"]])
    assert table == ["| a | b |", "|---|---|", "| x \\| y | two lines here |", "|  | z |"]


def test_csv_cell_writes_floats_exactly_and_nan_empty():
    assert csv_cell(0.1 + 0.2) == "0.30000000000000004"
    assert csv_cell(math.nan) == ""
    assert csv_cell(3) == "3"
    assert csv_cell("ok") == "ok"
