"""One rule for money shown to a person (mitmweb comments, CLI tables, cache stats): `money.format_usd`."""

from decimal import Decimal

import pytest
from llmtap.money import exact_decimal_text, format_usd


@pytest.mark.parametrize(("amount", "shown"), [
    ("0", "$0"),
    ("0E-10", "$0"),  # DuckDB's DECIMAL(18, 10) zero
    ("0.000115", "$0.000115"),  # not the misleading $0.0001
    ("0.0001152", "$0.000115"),
    ("0.0001155", "$0.000116"),  # half rounds up, as a person expects
    ("0.0001150000", "$0.000115"),  # no trailing zeros from the column's scale
    ("0.00041", "$0.00041"),
    ("0.0123", "$0.0123"),
    ("0.5", "$0.5"),
    ("0.0000000015", "$0.0000000015"),  # no exponent
    ("0.9996", "$1.00"),  # rounds up to a dollar: shown as dollars and cents
    ("1.2345", "$1.23"),
    ("1234.555", "$1,234.56"),
    ("1234567.891", "$1,234,567.89"),
    ("-0.0012", "-$0.0012"),
])
def test_money_reads_with_three_significant_digits_under_a_dollar_and_cents_above(amount, shown):
    assert format_usd(Decimal(amount)) == shown


def test_an_unknown_amount_reads_as_unknown_not_as_free():
    assert format_usd(None) == "$?"


@pytest.mark.parametrize(("amount", "text"), [
    ("0.0001150000", "0.000115"), ("1E+2", "100"), ("0E-10", "0"), ("12.5000", "12.5"), ("-0.00", "0"),
])
def test_machine_formats_keep_the_exact_decimal_without_exponent_or_padding(amount, text):
    assert exact_decimal_text(Decimal(amount)) == text
