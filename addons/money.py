"""How llmtap shows an amount of money to a person: one rule for mitmweb's comments, the CLI's tables and its stats.

The rule: exact zero is `$0`; an amount under a dollar keeps 3 significant digits (`$0.000115`, `$0.0123`, `$0.5`),
so a cheap call never reads as a rounder, wrong `$0.0001`; from a dollar up, cents with thousands separators
(`$1.23`, `$1,234.56`). No exponents, ever. Machine formats (JSON, CSV) keep the exact decimal instead: see
`exact_decimal_text`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SIGNIFICANT_DIGITS = 3
CENT = Decimal("0.01")


def format_usd(amount: Decimal | int | None) -> str:
    """`amount` (USD) as a person reads it: `$0`, `$0.000115`, `$1.23`, `$1,234.56`; `$?` for an unknown amount."""
    if amount is None:
        return "$?"
    amount = Decimal(amount)
    if amount.is_zero():
        return "$0"
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if size < 1:
        # quantize to the 3rd significant digit: 0.000115 has its first at 10^-4, so it is kept to 10^-6.
        size = size.quantize(Decimal(1).scaleb(size.adjusted() - SIGNIFICANT_DIGITS + 1), rounding=ROUND_HALF_UP)
    if size >= 1:  # 0.9996 rounds up to a dollar: shown as one
        return f"{sign}${size.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    return f"{sign}${exact_decimal_text(size)}"


def exact_decimal_text(amount: Decimal) -> str:
    """`amount` written out exactly, without trailing zeros or an exponent: `0.000115`, not `1.15E-4` or
    `0.0001150000`; `100`, not `1E+2`."""
    text = f"{amount.normalize():f}"
    return "0" if text in ("-0", "0") else text
