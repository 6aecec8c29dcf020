"""The expression language of formula fields: Python expression syntax,
restricted by an AST allow-list and compiled into closures.

Nothing is passed to eval(): every node kind is translated by hand, so there
is no attribute access, subscript, comprehension, lambda or name outside the
record's fields and the functions below. Arithmetic follows spreadsheet
habits: null in, null out; text + anything concatenates; date +/- a number
moves by days; division by zero gives null.
"""
from __future__ import annotations

import ast
import datetime as dt
import decimal
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

MAX_SOURCE = 4000
MAX_TEXT = 100_000
D = decimal.Decimal
Env = dict[str, Any]
Node = Callable[[Env], Any]


class ExpressionError(ValueError):
    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        where = f" (line {line}, column {column})" if line else ""
        super().__init__(message + where)
        self.line, self.column = line, column


class EvaluationError(ValueError):
    pass


# --- values ----------------------------------------------------------------

def _num(x):
    if isinstance(x, bool):
        return D(int(x))
    if isinstance(x, int):
        return D(x)
    if isinstance(x, float):
        return D(repr(x))
    if isinstance(x, D):
        return x
    raise EvaluationError(f"{_kind(x)} is not a number")


def _kind(x) -> str:
    return {str: "text", D: "number", int: "number", bool: "boolean", dt.date: "date",
            dt.datetime: "datetime", list: "list"}.get(type(x), type(x).__name__)


def _text(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, D):
        return format(x.normalize(), "f") if x == x.to_integral() else format(x, "f")
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    if isinstance(x, list):
        return ";".join(_text(v) for v in x)
    return str(x)


def _limit(s: str) -> str:
    if len(s) > MAX_TEXT:
        raise EvaluationError(f"text result longer than {MAX_TEXT} characters")
    return s


def _add(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return _limit(_text(a) + _text(b))
    if a is None or b is None:
        return None
    if isinstance(a, (dt.date, dt.datetime)) and not isinstance(b, (dt.date, dt.datetime)):
        return a + dt.timedelta(days=float(_num(b)))
    if isinstance(b, (dt.date, dt.datetime)) and not isinstance(a, (dt.date, dt.datetime)):
        return b + dt.timedelta(days=float(_num(a)))
    return _num(a) + _num(b)


def _sub(a, b):
    if a is None or b is None:
        return None
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return D((a - b).total_seconds()) / D(86400)
    if isinstance(a, dt.date) and isinstance(b, dt.date):
        return D((_as_date(a) - _as_date(b)).days)
    if isinstance(a, (dt.date, dt.datetime)):
        return a - dt.timedelta(days=float(_num(b)))
    return _num(a) - _num(b)


def _arith(fn):
    def apply(a, b):
        if a is None or b is None:
            return None
        return fn(_num(a), _num(b))
    return apply


def _div(a, b):
    if a is None or b is None or _num(b) == 0:
        return None
    return _num(a) / _num(b)


def _mod(a, b):
    if a is None or b is None or _num(b) == 0:
        return None
    return _num(a) % _num(b)


def _as_date(x):
    return x.date() if isinstance(x, dt.datetime) else x


def _comparable(a, b):
    if isinstance(a, (int, float, D)) and not isinstance(a, bool):
        a = _num(a)
    if isinstance(b, (int, float, D)) and not isinstance(b, bool):
        b = _num(b)
    if isinstance(a, dt.datetime) != isinstance(b, dt.datetime) and isinstance(a, dt.date) and isinstance(b, dt.date):
        a, b = _as_date(a), _as_date(b)
    return a, b


def _ordered(fn):
    def compare(a, b):
        if a is None or b is None:
            return False
        a, b = _comparable(a, b)
        try:
            return fn(a, b)
        except TypeError:
            raise EvaluationError(f"cannot compare {_kind(a)} with {_kind(b)}") from None
    return compare


def _eq(a, b):
    a, b = _comparable(a, b)
    return a == b


def _contains(container, item):
    if container is None:
        return False
    if isinstance(container, str):
        return _text(item) in container
    return any(_eq(item, c) for c in container)


BINARY = {ast.Add: _add, ast.Sub: _sub, ast.Mult: _arith(operator.mul), ast.Div: _div,
          ast.Mod: _mod}
COMPARE = {ast.Eq: _eq, ast.NotEq: lambda a, b: not _eq(a, b), ast.Lt: _ordered(operator.lt),
           ast.LtE: _ordered(operator.le), ast.Gt: _ordered(operator.gt),
           ast.GtE: _ordered(operator.ge), ast.In: lambda a, b: _contains(b, a),
           ast.NotIn: lambda a, b: not _contains(b, a),
           ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b}


# --- functions ---------------------------------------------------------------

def _round(x, places=0):
    if x is None:
        return None
    return _num(x).quantize(D(1).scaleb(-int(_num(places))), rounding=decimal.ROUND_HALF_UP)


def _add_months(d, n):
    if d is None or n is None:
        return None
    month0 = d.month - 1 + int(_num(n))
    year, month = d.year + month0 // 12, month0 % 12 + 1
    last = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
            31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return d.replace(year=year, month=month, day=min(d.day, last))


def _null_safe(fn):
    def call(*args):
        if any(a is None for a in args):
            return None
        return fn(*args)
    return call


def _value(s):
    if s is None or s == "":
        return None
    try:
        return D(str(s).strip())
    except decimal.InvalidOperation:
        raise EvaluationError(f"'{s}' is not a number") from None


def _min_max(fn):
    def call(*args):
        vals = [_comparable(a, a)[0] for a in args if a is not None]
        return fn(vals) if vals else None
    return call


# name: (callable, min args, max args or None for any); calls see the env's clock via _CLOCK
FUNCTIONS: dict[str, tuple[Callable, int, int | None]] = {
    "isblank": (lambda x: x is None or x == "" or x == [], 1, 1),
    "coalesce": (lambda *a: next((x for x in a if x is not None and x != ""), None), 1, None),
    "len": (lambda s: 0 if s is None else len(_text(s)), 1, 1),
    "upper": (_null_safe(lambda s: _text(s).upper()), 1, 1),
    "lower": (_null_safe(lambda s: _text(s).lower()), 1, 1),
    "trim": (_null_safe(lambda s: _text(s).strip()), 1, 1),
    "left": (_null_safe(lambda s, n: _text(s)[:max(0, int(_num(n)))]), 2, 2),
    "right": (_null_safe(lambda s, n: _text(s)[-int(_num(n)):] if int(_num(n)) > 0 else ""), 2, 2),
    "contains": (lambda s, sub: _contains(s, sub), 2, 2),
    "begins": (lambda s, p: s is not None and _text(s).startswith(_text(p)), 2, 2),
    "concat": (lambda *a: _limit("".join(_text(x) for x in a)), 1, None),
    "text": (lambda x: None if x is None else _text(x), 1, 1),
    "value": (_value, 1, 1),
    "round": (_round, 1, 2),
    "abs": (_null_safe(lambda x: abs(_num(x))), 1, 1),
    "floor": (_null_safe(lambda x: D(math.floor(_num(x)))), 1, 1),
    "ceiling": (_null_safe(lambda x: D(math.ceil(_num(x)))), 1, 1),
    "min": (_min_max(min), 1, None),
    "max": (_min_max(max), 1, None),
    "date": (_null_safe(lambda y, m, d: dt.date(int(_num(y)), int(_num(m)), int(_num(d)))), 3, 3),
    "year": (_null_safe(lambda d: d.year), 1, 1),
    "month": (_null_safe(lambda d: d.month), 1, 1),
    "day": (_null_safe(lambda d: d.day), 1, 1),
    "add_days": (_null_safe(lambda d, n: d + dt.timedelta(days=float(_num(n)))), 2, 2),
    "add_months": (_add_months, 2, 2),
    "days_between": (_null_safe(lambda a, b: D((_as_date(b) - _as_date(a)).days)), 2, 2),
}
CLOCK_FUNCTIONS = {"today": lambda env: env["$now"].date(), "now": lambda env: env["$now"]}


# --- compiler ----------------------------------------------------------------

@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]
    _root: Node

    def evaluate(self, values: dict[str, Any], now: dt.datetime | None = None) -> Any:
        env = dict(values)
        env["$now"] = now or dt.datetime.now(dt.timezone.utc)
        try:
            return self._root(env)
        except EvaluationError:
            raise
        except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
            raise EvaluationError(str(exc)) from None


def compile_expression(source: str, fields: set[str] | frozenset[str]) -> Expression:
    """Compile `source`, allowing references to `fields`; raises ExpressionError."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("The expression is empty.")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"The expression is longer than {MAX_SOURCE} characters.")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"Syntax error: {exc.msg}", exc.lineno, exc.offset) from None
    names: set[str] = set()
    root = _Compiler(set(fields), names).visit(tree.body)
    return Expression(source, frozenset(names), root)


def names_in(source: str) -> frozenset[str]:
    """The field names an expression reads (none where it does not parse):
    what a rule holding it references."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, AttributeError):
        return frozenset()
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called)


class _Compiler:
    def __init__(self, fields: set[str], names: set[str]):
        self.fields, self.names = fields, names

    def fail(self, node: ast.AST, message: str):
        raise ExpressionError(message, getattr(node, "lineno", None),
                              getattr(node, "col_offset", -1) + 1)

    def visit(self, node: ast.AST) -> Node:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"Not allowed in an expression: {type(node).__name__}.")
        return method(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, float):
            value = D(repr(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            value = D(value)
        elif not isinstance(value, (str, bool, type(None))):
            self.fail(node, "Only text, numbers, true, false and None are allowed as constants.")
        return lambda env: value

    def visit_Name(self, node):
        name = node.id
        if name.startswith("_") or name not in self.fields:
            self.fail(node, f"Unknown field '{name}'.")
        self.names.add(name)
        return lambda env: env.get(name)

    def visit_BinOp(self, node):
        fn = BINARY.get(type(node.op))
        if fn is None:
            self.fail(node, f"Operator {type(node.op).__name__} is not allowed.")
        left, right = self.visit(node.left), self.visit(node.right)
        return lambda env: fn(left(env), right(env))

    def visit_UnaryOp(self, node):
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        if isinstance(node.op, ast.USub):
            return lambda env: None if (v := operand(env)) is None else -_num(v)
        if isinstance(node.op, ast.UAdd):
            return lambda env: None if (v := operand(env)) is None else _num(v)
        self.fail(node, f"Operator {type(node.op).__name__} is not allowed.")

    def visit_BoolOp(self, node):
        parts = [self.visit(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(bool(p(env)) for p in parts)
        return lambda env: any(bool(p(env)) for p in parts)

    def visit_Compare(self, node):
        left = self.visit(node.left)
        steps = []
        for op, comparator in zip(node.ops, node.comparators):
            fn = COMPARE.get(type(op))
            if fn is None:
                self.fail(node, f"Comparison {type(op).__name__} is not allowed.")
            steps.append((fn, self.visit(comparator)))

        def compare(env):
            a = left(env)
            for fn, right in steps:
                b = right(env)
                if not fn(a, b):
                    return False
                a = b
            return True
        return compare

    def visit_IfExp(self, node):
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def visit_List(self, node):
        items = [self.visit(e) for e in node.elts]
        return lambda env: [i(env) for i in items]

    visit_Tuple = visit_List

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name):
            self.fail(node, "Only the built-in functions can be called.")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, "Functions take positional arguments only.")
        name = node.func.id.lower()
        args = [self.visit(a) for a in node.args]
        if name == "if":  # IF(cond, a, b), lazy: only the chosen branch is evaluated
            if len(args) not in (2, 3):
                self.fail(node, "if() takes a condition, a value and an optional else value.")
            test, then = args[0], args[1]
            other = args[2] if len(args) == 3 else (lambda env: None)
            return lambda env: then(env) if test(env) else other(env)
        if name in CLOCK_FUNCTIONS:
            if args:
                self.fail(node, f"{name}() takes no arguments.")
            clock = CLOCK_FUNCTIONS[name]
            return clock
        if name not in FUNCTIONS:
            self.fail(node, f"Unknown function '{node.func.id}'.")
        fn, lo, hi = FUNCTIONS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            expected = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            self.fail(node, f"{name}() takes {expected} argument(s), got {len(args)}.")
        return lambda env: fn(*[a(env) for a in args])
