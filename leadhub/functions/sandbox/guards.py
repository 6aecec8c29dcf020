"""The run-time half of the policy: the hooks RestrictedPython's rewritten
code calls (`_getattr_`, `_getitem_`, `_write_`, ...), our builtins, the
allowed modules as fresh read-only proxies, a safe `str.format`, and print
capture. One `Guards` per run builds that run's globals, so nothing a run
stores is seen by the next."""
from __future__ import annotations

import _string
import builtins
import decimal
import importlib
import operator
import re
import string
import sys
import unicodedata
from types import CodeType, FrameType, ModuleType, TracebackType
from typing import Any

from RestrictedPython.Guards import guarded_unpack_sequence

from leadhub.functions.sandbox.policy import EXPORTS, unsafe_attribute
from leadhub.functions.sandbox.runstate import ApiError, FieldError, LimitExceeded, RunClosed, RunState

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "callable", "chr", "dict", "divmod", "enumerate",
    "filter", "float", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter", "len",
    "list", "map", "max", "min", "next", "oct", "ord", "range", "repr", "reversed", "round", "set",
    "slice", "sorted", "str", "sum", "tuple", "zip",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "NameError", "NotImplementedError", "OverflowError", "RuntimeError",
    "StopIteration", "TypeError", "UnicodeError", "ValueError", "ZeroDivisionError",
)
_MISSING = object()
_UNSAFE_VALUES = (ModuleType, FrameType, CodeType, TracebackType)
_MODULES = {name: importlib.import_module(name) for name in EXPORTS}
_EXPORTED = {name: {attr: getattr(_MODULES[name], attr) for attr in attrs}
             for name, attrs in EXPORTS.items()}
# exceptions a function's except clause must not keep: they end the run
_FATAL = (LimitExceeded, FieldError, RunClosed, RecursionError, MemoryError)
_INPLACE = {"+=": operator.iadd, "-=": operator.isub, "/=": operator.itruediv,
            "%=": operator.imod, ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor,
            "&=": operator.iand, "//=": operator.ifloordiv, "@=": operator.imatmul}


def reset_module_state() -> None:
    """The allowed modules' own process-wide state, reset before every run:
    decimal's context (setcontext, traps, precision) and re's cache."""
    decimal.setcontext(decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999,
                                       Emax=999999, capitals=1, clamp=0, flags=[],
                                       traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                              decimal.Overflow]))
    re.purge()


class ModuleProxy:
    """An allowed module as a function sees it: the exported names only,
    read-only, new for every run."""
    __slots__ = ("_name", "_attrs")

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_attrs", dict(_EXPORTED[name]))

    def __getattr__(self, attr: str) -> Any:
        # "__name__" fails too, so `from m import x` cannot fall back to sys.modules
        try:
            return self._attrs[attr]
        except KeyError:
            raise AttributeError(f"module '{self._name}' has no attribute '{attr}' here") from None

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"module '{self._name}' is read-only")

    __delattr__ = __setattr__

    def __repr__(self) -> str:
        return f"<module '{self._name}'>"


class SafeFormatter(string.Formatter):
    """str.format and format_map whose fields walk attributes and items
    through the guards: '{0.__class__}' and '{0[_x]}' are refused."""

    def __init__(self, guards: "Guards"):
        self.guards = guards

    def get_value(self, key, args, kwargs):
        if isinstance(key, str):
            self.guards.check_key(key)
        return super().get_value(key, args, kwargs)

    def get_field(self, field_name, args, kwargs):
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            if is_attr:
                obj = self.guards.getattr(obj, key)
            else:
                self.guards.check_key(key)
                obj = self.guards.getitem(obj, key)
        return obj, first


class Printer:
    """print() as rewritten by RestrictedPython: `_print._call_print(...)`."""

    def __init__(self, state: RunState):
        self._state = state

    def _call_print(self, *objects, sep=" ", end="\n", file=None, flush=False):
        if file is not None:
            raise TypeError("print() writes to the function's log only")
        sep, end = " " if sep is None else sep, "\n" if end is None else end
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("sep and end must be text")
        self._state.write_log(sep.join(str(o) for o in objects) + end)


class Guards:
    def __init__(self, state: RunState):
        self.state = state
        self.modules = {name: ModuleProxy(name) for name in EXPORTS}
        self.formatter = SafeFormatter(self)

    def namespace(self) -> dict[str, Any]:
        """Fresh globals (and builtins) for one run."""
        safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
        safe.update(getattr=self.getattr, hasattr=self.hasattr, pow=self.pow, ApiError=ApiError,
                    __import__=self.import_)
        return {
            "__builtins__": safe, "__name__": "function",
            "_getattr_": self.getattr, "_getitem_": self.getitem, "_getiter_": self.getiter,
            "_iter_unpack_sequence_": iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": self.write, "_inplacevar_": self.inplacevar, "_apply_": self.apply,
            "_print_": self.printer, "_caught_": self.caught,
            "_mul_": self.mul, "_pow_": self.pow, "_lshift_": self.lshift,
        }

    # --- reading -------------------------------------------------------------------
    def getattr(self, obj, name, default=_MISSING):
        self.state.check()
        if type(name) is not str:
            raise TypeError("an attribute name must be text")
        why = unsafe_attribute(name)   # also for names built at run time: getattr(x, "_" + "_class__")
        if why:
            raise AttributeError(why)
        if name in ("format", "format_map") and (
                isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))):
            return self._format_method(obj, name)
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default is _MISSING:
                raise
            return default
        if isinstance(value, _UNSAFE_VALUES):
            raise AttributeError(f'"{name}" is not available in functions.')
        return value

    def hasattr(self, obj, name) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def _format_method(self, obj, name):
        fmt = self.formatter
        if isinstance(obj, str):
            if name == "format":
                return lambda *args, **kwargs: fmt.vformat(obj, args, kwargs)
            return lambda mapping: fmt.vformat(obj, (), mapping)

        def unbound(template, *args, **kwargs):   # str.format(template, ...)
            if not isinstance(template, str):
                raise TypeError("str.format needs a text template")
            if name == "format":
                return fmt.vformat(template, args, kwargs)
            (mapping,) = args
            return fmt.vformat(template, (), mapping)
        return unbound

    def check_key(self, key) -> None:
        if isinstance(key, str) and unicodedata.normalize("NFKC", key).startswith("_"):
            raise KeyError(f'format fields may not start with "_": {key!r}')

    # The hottest guards check the run's state inline: they run once per item
    # access in a loop, and a method call more doubles their cost.
    def getitem(self, obj, key):
        state = self.state
        if state.doom is not None or state.closed:
            state.check()
        return obj[key]

    def getiter(self, obj):
        state = self.state
        if state.doom is not None or state.closed:
            state.check()
        return iter(obj)

    def apply(self, func, *args, **kwargs):
        self.state.check()
        return func(*args, **kwargs)

    def import_(self, name, globals=None, locals=None, fromlist=(), level=0):
        self.state.check()
        if level != 0 or name not in self.modules:
            raise ImportError(f'Importing "{name}" is not allowed.')
        return self.modules[name]

    # --- writing -------------------------------------------------------------------
    def write(self, obj):
        """`x[k] = v` and `del x[k]`: only on the function's own lists and dicts."""
        self.state.check()
        if type(obj) in (dict, list):
            return obj
        raise TypeError(f"a {type(obj).__name__} cannot be changed in functions")

    def inplacevar(self, op, x, y):
        state = self.state
        if state.doom is not None or state.closed:
            state.check()
        if op in _INPLACE:
            return _INPLACE[op](x, y)
        if op == "*=":
            self._check_product(x, y)
            return operator.imul(x, y)
        if op == "**=":
            return self.pow(x, y)
        if op == "<<=":
            return self.lshift(x, y)
        return _INPLACE[op](x, y)

    # --- size guards: refuse before allocating what the memory limit cannot hold ------
    def _need(self, nbytes: int) -> None:
        if nbytes > self.state.limits.memory_mb * 1024 * 1024:
            raise self.state.fail_memory(nbytes)

    def _check_product(self, a, b) -> None:
        if isinstance(a, int) and isinstance(b, int):
            self._need((a.bit_length() + b.bit_length()) // 8)
        elif isinstance(b, int) and isinstance(a, (str, bytes, list, tuple)):
            self._need(_item_bytes(a) * max(b, 0))
        elif isinstance(a, int) and isinstance(b, (str, bytes, list, tuple)):
            self._need(_item_bytes(b) * max(a, 0))

    def mul(self, a, b):
        self.state.check()
        self._check_product(a, b)
        return a * b

    def pow(self, a, b, mod=None):
        self.state.check()
        if mod is None and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
            self._need(b * a.bit_length() // 8)   # 10 ** 10 ** 10 is refused here, not computed
        return pow(a, b) if mod is None else pow(a, b, mod)

    def lshift(self, a, b):
        self.state.check()
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:
            self._need((a.bit_length() + b) // 8)
        return a << b

    # --- print and except --------------------------------------------------------------
    def printer(self, _getattr_=None) -> Printer:
        return Printer(self.state)

    def caught(self) -> None:
        """First statement of every except clause: a limit error, api.error,
        recursion or memory exhaustion goes on up instead of being handled."""
        self.state.check()
        exc = sys.exc_info()[1]
        if isinstance(exc, _FATAL):
            raise exc


def iter_unpack_sequence(it, spec, _getiter_):
    """`for a, b in pairs`: a flat target unpacking a plain tuple or list
    (what dict.items() and zip() yield) takes the item as it is, since
    iterating those runs no code of the function's; nested targets and other
    items take RestrictedPython's guarded path."""
    flat = not spec["childs"]
    for item in _getiter_(it):
        if flat and type(item) in (tuple, list):
            yield item
        else:
            yield guarded_unpack_sequence(item, spec, _getiter_)


def _item_bytes(seq) -> int:
    return len(seq) * (8 if isinstance(seq, (list, tuple)) else 1)
