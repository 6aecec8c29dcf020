"""The formula language: what it computes, and what it refuses to compile."""
import datetime as dt
from decimal import Decimal

import pytest

from leadhub.expressions import EvaluationError, ExpressionError, compile_expression

FIELDS = {"a", "b", "s", "d", "d2", "n"}


def ev(src, **values):
    return compile_expression(src, FIELDS).evaluate(values, now=dt.datetime(2026, 11, 23, 8, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("src, values, expected", [
    ("a + b * 2", {"a": 1, "b": Decimal("2.5")}, Decimal("6.0")),
    ("a / b", {"a": 1, "b": 0}, None),                         # division by zero: null
    ("a + b", {"a": 1, "b": None}, None),                      # null in, null out
    ("s + '-' + a", {"s": "x", "a": None}, "x-"),              # text concatenation treats null as empty
    ("'big' if a > 10 else 'small'", {"a": 11}, "big"),
    ("IF(a > 10, 'big', 'small')", {"a": None}, "small"),
    ("IF(isblank(s), 'none', upper(s))", {"s": ""}, "none"),
    ("d + 30", {"d": dt.date(2026, 1, 15)}, dt.date(2026, 2, 14)),
    ("d2 - d", {"d": dt.date(2026, 1, 1), "d2": dt.date(2026, 3, 1)}, Decimal(59)),
    ("days_between(d, today())", {"d": dt.date(2026, 11, 1)}, Decimal(22)),
    ("add_months(d, 1)", {"d": dt.date(2026, 1, 31)}, dt.date(2026, 2, 28)),
    ("round(a / 3, 2)", {"a": 10}, Decimal("3.33")),
    ("concat(s, ' ', a)", {"s": "n", "a": Decimal("2.50")}, "n 2.50"),
    ("a in [1, 2] and not b", {"a": 2, "b": False}, True),
    ("coalesce(n, s, 'x')", {"n": None, "s": None}, "x"),
    ("left(s, 2) + right(s, 1)", {"s": "线索管理"}, "线索理"),
    ("max(a, b, 3)", {"a": 1, "b": None}, Decimal(3)),
    ("year(d) * 100 + month(d)", {"d": dt.date(2026, 5, 2)}, Decimal(202605)),
])
def test_evaluates(src, values, expected):
    assert ev(src, **values) == expected


@pytest.mark.parametrize("src, message", [
    ("s.__class__", "Attribute"),
    ("s[0]", "Subscript"),
    ("__import__('os')", "Unknown function '__import__'"),
    ("__builtins__", "Unknown field '__builtins__'"),
    ("open('/etc/passwd')", "Unknown function 'open'"),
    ("(lambda: 1)()", "Only the built-in functions"),
    ("[x for x in s]", "ListComp"),
    ("a ** 99999999", "Pow"),
    ("nope + 1", "Unknown field 'nope'"),
    ("round(a, b=1)", "positional"),
    ("upper()", "takes 1 argument"),
    ("a +", "Syntax error"),
    ("", "empty"),
    ("x" * 5000, "longer than"),
    ("f'{s}'", "JoinedStr"),
    ("(a := 1)", "NamedExpr"),
])
def test_refuses(src, message):
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace("*", r"\*")):
        compile_expression(src, FIELDS)


def test_runtime_errors_are_evaluation_errors():
    with pytest.raises(EvaluationError):
        ev("a < s", a=1, s="x")
    with pytest.raises(EvaluationError):
        ev("concat(s, s, s, s, s)", s="x" * 30000)     # result size is bounded
