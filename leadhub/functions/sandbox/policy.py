"""Compile an admin-written function: the BODY of
`def function(record, old, params, api)`, so `return` gives the result.

RestrictedPython's transformer rewrites the tree (attribute reads become
`_getattr_(obj, name)`, subscripts `_getitem_`, loops `_getiter_`, writes
`_write_`, augmented assignment `_inplacevar_`, print the `_print_`
collector); `SandboxPolicy` tightens it: our own name rules, an import
allow-list, no classes, decorators, `with` or attribute assignment, size
guards on `*`, `**` and `<<`, and a `_caught_()` call at the top of every
except clause so a limit error cannot be swallowed. Every problem is
reported with line and column.

The parser already folds identifiers with NFKC (`ｅｖａｌ` is `eval`); the
checks fold again anyway, so a tree built by hand cannot slip past them."""
from __future__ import annotations

import ast
import datetime
import decimal
import functools
import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from types import CodeType
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

FILENAME = "<function>"                    # marks the admin's frames in tracebacks
FUNCTION_NAME = "__leadhub_function__"     # unreachable from the code: it starts with "_"
PARAMETERS = ("record", "old", "params", "api")
MAX_SOURCE = 64 * 1024
MAX_NODES = 20_000

# What each allowed module offers; anything else (submodules, DefaultContext,
# which is shared by every run, file-based json.load/dump) is not there.
EXPORTS: dict[str, frozenset[str]] = {
    "math": frozenset(n for n in dir(math) if not n.startswith("_")),
    "decimal": frozenset(n for n in dir(decimal) if not n.startswith("_")) - {
        "DefaultContext", "BasicContext", "ExtendedContext", "HAVE_CONTEXTVAR", "HAVE_THREADS"},
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone", "tzinfo",
                           "MINYEAR", "MAXYEAR", "UTC"} & set(dir(datetime))),
    "json": frozenset({"dumps", "loads", "JSONDecodeError"}),
    "re": frozenset({"compile", "search", "match", "fullmatch", "split", "findall", "finditer",
                     "sub", "subn", "escape", "error", "Pattern", "Match", "A", "ASCII", "I",
                     "IGNORECASE", "M", "MULTILINE", "S", "DOTALL", "U", "UNICODE", "X", "VERBOSE",
                     "NOFLAG"} & set(dir(re))),
}
ALLOWED_MODULES = frozenset(EXPORTS)

# Names refused outright, with or without a builtin behind them: they reach
# types, namespaces, code or I/O.
FORBIDDEN_NAMES = frozenset({
    "type", "vars", "dir", "globals", "locals", "eval", "exec", "compile", "open", "breakpoint",
    "help", "input", "super", "object", "setattr", "delattr", "memoryview", "bytearray",
    "classmethod", "staticmethod", "property", "exit", "quit", "copyright", "credits", "license",
    "print", "printed", "builtins",
})

# Attribute families that lead to frames, code, tracebacks and generator state.
INTERNAL_PREFIXES = ("f_", "co_", "gi_", "cr_", "ag_", "tb_")
FORBIDDEN_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {"mro"}

# Binary operators that can build a huge object from a short expression.
GUARDED_OPERATORS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_"}


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def unsafe_name(name: str) -> str | None:
    """Why `name` may not be used as a variable, function or parameter name."""
    folded = _fold(name)
    if folded.startswith("_") and folded != "_":
        return f'"{name}" is not allowed: names may not start with "_".'
    if folded in FORBIDDEN_NAMES:
        return f'"{name}" is not available in functions.'
    return None


def unsafe_attribute(name: str) -> str | None:
    """Why attribute `name` may not be read (shared by compile and run time)."""
    folded = _fold(name)
    if folded.startswith("_"):
        return f'"{name}" is not allowed: attributes may not start with "_".'
    if folded in FORBIDDEN_ATTRIBUTES or folded.startswith(INTERNAL_PREFIXES):
        return f'"{name}" is not available: it reaches interpreter internals.'
    return None


@dataclass(frozen=True)
class Problem:
    """One compile-time error, positioned in the admin's source (1-based)."""
    message: str
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "compile", "message": self.message, "line": self.line, "column": self.column}


class CompileError(ValueError):
    """The source was refused; `problems` lists every reason, the first also
    as `message`, `line` and `column`."""

    def __init__(self, problems: list[Problem]):
        first = problems[0]
        where = f" (line {first.line}, column {first.column})" if first.line else ""
        super().__init__(first.message + where)
        self.problems = problems
        self.message, self.line, self.column = first.message, first.line, first.column

    def to_dict(self) -> dict[str, Any]:
        return {**self.problems[0].to_dict(), "problems": [p.to_dict() for p in self.problems]}


@dataclass(frozen=True)
class CompiledFunction:
    source: str
    code: CodeType          # a module that defines FUNCTION_NAME
    digest: str


def _position(node: ast.AST, lines: list[str] | None = None) -> tuple[int | None, int | None]:
    """1-based line and column; the tree counts columns in UTF-8 bytes, the
    admin counts characters (a line of Chinese text differs)."""
    line, col = getattr(node, "lineno", None), getattr(node, "col_offset", None)
    if isinstance(node, ast.Attribute) and node.end_lineno == line:
        col = node.end_col_offset - len(node.attr.encode("utf-8"))   # the attribute, not the object
    if col is None:
        return line, None
    if lines and line and line <= len(lines):
        col = len(lines[line - 1].encode("utf-8")[:col].decode("utf-8", "ignore"))
    return line, col + 1


class SandboxPolicy(RestrictingNodeTransformer):
    def __init__(self, errors=None, warnings=None, used_names=None, lines=None):
        super().__init__(errors, warnings, used_names)
        self.problems: list[Problem] = []
        self.lines = lines

    def error(self, node, info):
        self.problems.append(Problem(info, *_position(node, self.lines)))
        super().error(node, info)

    # --- names: one rule for variables, functions, parameters, imports ---------
    def check_name(self, node, name, allow_magic_methods=False):
        # no magic methods either: there are no classes to put them on
        if name is not None and (why := unsafe_name(name)):
            self.error(node, why)

    def check_function_argument_names(self, node):
        a = node.args
        for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
            if arg is not None:   # every parameter kind: a parameter named _getattr_ would shadow the guard
                self.check_name(arg, arg.arg)

    def visit_Name(self, node):
        if _fold(node.id) in ("printed", "print") and not isinstance(node.ctx, ast.Load):
            self.check_name(node, node.id)
            return node
        if _fold(node.id) == "printed":
            self.error(node, '"printed" is not available in functions; print() writes to the log.')
            return node
        return super().visit_Name(node)

    def visit_Global(self, node):
        for name in node.names:
            self.check_name(node, name)
        return super().visit_Global(node)

    def visit_keyword(self, node):
        if node.arg is not None and _fold(node.arg).startswith("_"):
            self.error(node, f'"{node.arg}" is not allowed: names may not start with "_".')
        return super().visit_keyword(node)

    # --- attributes --------------------------------------------------------------
    def visit_Attribute(self, node):
        why = unsafe_attribute(node.attr)
        if why is None and not isinstance(node.ctx, ast.Load):
            why = "Attributes cannot be assigned or deleted in functions; build a dict instead."
        if why:
            self.error(node, why)
            self.node_contents_visit(node)
            return node
        return super().visit_Attribute(node)

    # --- imports -----------------------------------------------------------------
    def visit_Import(self, node):
        for alias in node.names:
            if _fold(alias.name) not in ALLOWED_MODULES:
                self.error(node, _refused_import(alias.name))
        return super().visit_Import(node)

    def visit_ImportFrom(self, node):
        module = _fold(node.module or "")
        if node.level or module not in ALLOWED_MODULES:
            self.error(node, _refused_import("." * node.level + (node.module or "")))
        else:
            for alias in node.names:
                if alias.name != "*" and _fold(alias.name) not in EXPORTS[module]:
                    self.error(node, f'"{alias.name}" cannot be imported from {module}.')
        return super().visit_ImportFrom(node)

    # --- statements we do not offer -------------------------------------------------
    def visit_ClassDef(self, node):
        self.error(node, "Classes are not allowed in functions; use dicts and functions.")
        return node

    def visit_With(self, node):
        self.error(node, "The with statement is not allowed in functions.")
        return node

    def visit_FunctionDef(self, node):
        if node.decorator_list:
            self.error(node.decorator_list[0], "Decorators are not allowed in functions.")
        return super().visit_FunctionDef(node)

    def visit_Try(self, node):
        for stmt in node.finalbody:
            self._no_exit(stmt, in_loop=False)
        return super().visit_Try(node)

    def _no_exit(self, node, in_loop):
        """return/break/continue inside `finally` would discard the exception
        in flight, a limit error included."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        if isinstance(node, ast.Return) or (isinstance(node, (ast.Break, ast.Continue)) and not in_loop):
            self.error(node, f"'{type(node).__name__.lower()}' is not allowed inside 'finally'.")
        if isinstance(node, (ast.For, ast.While)):
            for child in node.body:
                self._no_exit(child, True)
            for child in node.orelse:
                self._no_exit(child, in_loop)
            return
        for child in ast.iter_child_nodes(node):
            self._no_exit(child, in_loop)

    # --- rewrites ------------------------------------------------------------------
    def visit_ExceptHandler(self, node):
        node = super().visit_ExceptHandler(node)
        check = ast.Expr(ast.Call(ast.Name("_caught_", ast.Load()), [], []))
        copy_locations(check, node)
        node.body.insert(0, check)   # re-raises a limit error the clause would otherwise catch
        return node

    def visit_BinOp(self, node):
        node = self.node_contents_visit(node)
        guard = GUARDED_OPERATORS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(ast.Name(guard, ast.Load()), [node.left, node.right], [])
        copy_locations(call, node)
        return call


def _lines(source: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", source)   # as the tokenizer counts lines (not str.splitlines)


def _refused_import(name: str) -> str:
    return f'Importing "{name}" is not allowed; functions may import {", ".join(sorted(ALLOWED_MODULES))}.'


def _top_level_yield(body: list[ast.stmt]) -> ast.AST | None:
    """A yield in the body itself would turn the whole function into a generator."""
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return None


def check_function(source: str) -> list[Problem]:
    """Every problem in `source`, or [] when it compiles."""
    try:
        compile_function(source)
    except CompileError as exc:
        return exc.problems
    return []


@functools.lru_cache(maxsize=256)
def compile_function(source: str) -> CompiledFunction:
    """Compile a function body; CompileError lists what is refused."""
    if not isinstance(source, str):
        raise CompileError([Problem("The function source must be text.")])
    if len(source) > MAX_SOURCE:
        raise CompileError([Problem(f"The function is longer than {MAX_SOURCE} characters.")])
    try:
        tree = ast.parse(source, FILENAME, "exec")
    except SyntaxError as exc:
        raise CompileError([Problem(f"Syntax error: {exc.msg}", exc.lineno, exc.offset)]) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CompileError([Problem(f"The function cannot be parsed: {exc}")]) from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CompileError([Problem(f"The function is too large (more than {MAX_NODES} syntax nodes).")])
    if (node := _top_level_yield(tree.body)) is not None:
        raise CompileError([Problem("'yield' is only allowed inside a nested function.",
                                    *_position(node, _lines(source)))])

    wrapper = ast.parse(f"def function({', '.join(PARAMETERS)}): pass", FILENAME, "exec")
    wrapper.body[0].body = tree.body or [ast.Pass()]
    lines = _lines(source)
    policy = SandboxPolicy(lines=lines)
    try:
        ast.fix_missing_locations(wrapper)
        policy.visit(wrapper)
    except RecursionError:
        raise CompileError([Problem("The function is nested too deeply.")]) from None
    if policy.problems:
        raise CompileError(policy.problems)
    wrapper.body[0].name = FUNCTION_NAME
    try:
        code = compile(wrapper, FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:   # e.g. 'break' outside a loop: found by the compiler, not the parser
        raise CompileError([Problem(f"Syntax error: {exc.msg}", exc.lineno, exc.offset)]) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CompileError([Problem(f"The function cannot be compiled: {exc}")]) from None
    return CompiledFunction(source, code, hashlib.sha256(source.encode("utf-8")).hexdigest())
