"""A sandbox worker process. The pool starts it with an empty environment
in isolated mode; it opens no database and knows no secret, and talks to
the pool only over stdin/stdout (see protocol.py).

Limits live outside the admin's code:
  - RLIMIT_AS caps the address space (per run: what the worker had plus the
    run's memory figure; for life: the pool's maximum);
  - an ITIMER_PROF timer raises the CPU limit error in the admin's code,
    with its line; RLIMIT_CPU, set a little later, kills the process if the
    time goes by in C code that never returns to the interpreter;
  - the recursion limit is set to the current depth plus the run's figure;
  - the pool's watchdog kills the process when the wall time runs out.
"""
from __future__ import annotations

import datetime
import gc
import math
import os
import resource
import signal
import sys
import time
from typing import Any

from leadhub.functions.sandbox import protocol
from leadhub.functions.sandbox.api import Api
from leadhub.functions.sandbox.guards import Guards, reset_module_state
from leadhub.functions.sandbox.limits import MB, Limits, limit_error
from leadhub.functions.sandbox.policy import FILENAME, FUNCTION_NAME, CompileError, compile_function
from leadhub.functions.sandbox.runstate import ApiError, FieldError, LimitExceeded, RunClosed, RunState

CPU_BACKSTOP = 0.25      # seconds past the CPU figure before RLIMIT_CPU kills (C-level loops)
RECURSION_SLACK = 10     # room for guards and library calls (json, re) at the deepest level
SLACK_MB = 64            # room above the pool's maximum for the worker's own work

_current: RunState | None = None      # the run the CPU timer belongs to
_as_hard: int | None = None           # lifetime address-space cap, None where unsupported


def main(argv: list[str]) -> int:
    try:
        return _serve(argv)
    except (BrokenPipeError, ConnectionError):      # the pool went away
        return 0


def _serve(argv: list[str]) -> int:
    max_memory_mb = int(argv[1]) if len(argv) > 1 else 1024
    channel = protocol.Channel(0, _protocol_fd())
    _set_process_limits(max_memory_mb)
    _reset_peak_memory()
    _peak_memory_kb()                                 # open the /proc files once, before any run
    _address_space()
    _preload()
    _drop_privileges(argv[2] if len(argv) > 2 else "nobody")
    signal.signal(signal.SIGPROF, _on_cpu_timer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the pool decides when we stop
    sys.unraisablehook = lambda unraisable: None      # left-over generators failing in finalizers
    # Objects alive now (modules, the policy, caches) are never garbage: the
    # per-run gc.collect() then walks only what a run made (ms -> µs).
    gc.collect()
    gc.freeze()
    channel.send({"op": "ready", "cpu_ms": _process_cpu_ms()})
    while True:
        message = channel.receive()
        if message is None:                              # the pool closed the pipe
            return 0
        try:
            reply = _run(channel, message)
        except BaseException as exc:                     # our own failure: report it and step aside
            reply = {"op": "done", "value": None, "log": "", "usage": {}, "retire": True, "last": True,
                     "error": {"type": "internal", "line": None,
                               "message": f"The sandbox worker failed ({type(exc).__name__})."}}
        channel.send(reply)
        if reply.get("retire"):
            return 3


def _protocol_fd() -> int:
    """Keep the real stdout for frames; anything else printing to fd 1 (C
    code, a stray print) goes to /dev/null instead of into the protocol."""
    fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return fd


def _set_process_limits(max_memory_mb: int) -> None:
    global _as_hard
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))       # SIGXCPU must not dump memory to disk
    for limit, value in ((resource.RLIMIT_NPROC, 0), (resource.RLIMIT_NOFILE, 32)):
        try:   # no new processes or many files, should anything ever get out
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass
    size = _address_space()
    if size:
        _as_hard = size + (max_memory_mb + SLACK_MB) * MB
        resource.setrlimit(resource.RLIMIT_AS, (_as_hard, _as_hard))


# Modules the allowed ones import on first use, and the text encodings a
# function may name: loaded now, because the unprivileged user cannot read
# the Python installation (under /root, say) once the worker has dropped.
_LAZY_MODULES = ("_strptime", "unicodedata", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
                 "encodings.utf_16", "encodings.utf_32", "encodings.gbk", "encodings.gb2312",
                 "encodings.gb18030", "encodings.big5", "encodings.cp1252", "encodings.idna",
                 "encodings.punycode", "encodings.unicode_escape", "encodings.raw_unicode_escape")


def _preload() -> None:
    import importlib
    for name in _LAZY_MODULES:
        importlib.import_module(name)
    datetime.datetime.strptime("2026-01-01", "%Y-%m-%d")   # builds _strptime's locale tables


def _drop_privileges(user: str) -> None:
    """Started as root (a container, CI): become `user` (nobody by default)
    before any run, so RLIMIT_NPROC holds and a function that got out could
    read or write nothing of the server's. Its /proc files are already open."""
    if os.geteuid() != 0 or not user or user == "-":
        return
    import pwd
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SystemExit(f"sandbox user {user!r} does not exist (LEADHUB_SANDBOX_USER)") from None
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def _run(channel: protocol.Channel, message: dict) -> dict:
    """One run message: the function over each of its inputs (one record of
    a bulk save each), every run with fresh globals under its own limits.
    Each run's reply is sent as it finishes; the last (marked "last", also
    sent early when a run retires the worker) is returned."""
    if message.get("op") != "run":
        raise ValueError("expected a run message")
    limits = Limits(**message["limits"])
    try:
        function = compile_function(message["source"])
    except CompileError as exc:
        return {**_done(None, exc.to_dict(), RunState(limits, channel.send_bytes, channel.receive), {}),
                "last": True}
    batch = protocol.decode(message["inputs"])
    for position, inputs in enumerate(batch):
        state = RunState(limits, channel.send_bytes, channel.receive)
        inputs["api"] = Api(state)
        namespace = Guards(state).namespace()
        exec(function.code, namespace)          # runs only the def of FUNCTION_NAME
        reset_module_state()
        _reset_peak_memory()
        state.cpu_start = time.process_time()
        value, error = _call_limited(state, namespace, inputs)
        usage = {"cpu_ms": round((time.process_time() - state.cpu_start) * 1000),
                 "peak_memory_kb": _peak_memory_kb()}
        reply = _done(value, error, state, usage)
        if position == len(batch) - 1 or reply.get("retire"):
            return {**reply, "last": True}
        channel.send(reply)
    raise ValueError("a run message without inputs")


def _call_limited(state: RunState, namespace: dict, inputs: dict) -> tuple[Any, dict | None]:
    """Call the function under the run's limits; returns (encoded value, error).
    Everything the run made is released before the limits come off, so code
    left in a generator's finally still runs limited, and can no longer act."""
    entry = namespace.pop(FUNCTION_NAME)
    saved_recursion = sys.getrecursionlimit()
    _arm(state)
    try:
        try:
            value = entry(inputs["record"], inputs["old"], inputs["params"], inputs["api"])
            error = None
        except BaseException as exc:
            line, depth = _traceback_position(exc.__traceback__)
            exc.__traceback__ = None        # let go of the function's frames (and memory) first
            value, error = None, describe(exc, state, line, depth)
        sys.setrecursionlimit(saved_recursion)
        encoded = None
        if error is None:
            encoded, error = _encode_result(value, state)
        state.closed = True
        value = entry = None
        namespace.clear()
        inputs.clear()
        gc.collect()
        gc.freeze()                         # what survived (compile caches) is the worker's, not the run's
        if state.doom is not None:          # a limit hit by left-over code, or swallowed by C code
            error = state.doom
        return (None if error else encoded), error
    finally:
        _disarm(saved_recursion)


def _arm(state: RunState) -> None:
    global _current
    limits = state.limits
    if _as_hard:
        resource.setrlimit(resource.RLIMIT_AS,
                           (min(_as_hard, _address_space() + limits.memory_mb * MB), _as_hard))
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    backstop = math.ceil(time.process_time() + limits.cpu_seconds + CPU_BACKSTOP)
    resource.setrlimit(resource.RLIMIT_CPU, (backstop, cpu_hard))
    caller_depth = _depth() - 2          # the frames below _call_limited's call of the function
    sys.setrecursionlimit(caller_depth + limits.recursion + RECURSION_SLACK)
    _current = state
    signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)


def _disarm(saved_recursion: int) -> None:
    global _current
    _current = None
    signal.setitimer(signal.ITIMER_PROF, 0)
    sys.setrecursionlimit(saved_recursion)
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))
    if _as_hard:
        resource.setrlimit(resource.RLIMIT_AS, (_as_hard, _as_hard))


def _on_cpu_timer(signum, frame) -> None:
    """Raise the CPU limit error, but only into the admin's own frames: our
    guards and pipe I/O are never interrupted mid-way; they raise it at
    their next check. Re-armed so code that catches it keeps failing."""
    state = _current
    if state is None:
        return
    exc = state.fail_cpu()
    signal.setitimer(signal.ITIMER_PROF, 0.05)
    if frame is not None and frame.f_code.co_filename == FILENAME:
        raise exc


def describe(exc: BaseException, state: RunState, line: int | None, depth: int) -> dict[str, Any]:
    """The run's error for the exception that ended the function at `line`,
    `depth` calls deep in the admin's code."""
    if state.doom is not None:
        return state.doom
    if isinstance(exc, LimitExceeded):
        return exc.info
    if isinstance(exc, FieldError):
        return {"type": "validation", "field": exc.field, "message": exc.message, "line": line}
    if isinstance(exc, RecursionError):
        return limit_error("recursion", depth, state.limits.recursion, line)
    if isinstance(exc, MemoryError):
        return limit_error("memory", None, state.limits.memory_mb, line)
    if isinstance(exc, ApiError):
        return {"type": "api", "code": exc.code, "message": exc.message, "fields": exc.fields, "line": line}
    if isinstance(exc, RunClosed):
        return {"type": "internal", "message": str(exc), "line": line}
    name = type(exc).__name__
    try:
        text = str(exc)[:1000]
    except Exception:
        text = ""
    return {"type": "exception", "exception": name, "message": f"{name}: {text}" if text else name,
            "line": line}


def _traceback_position(tb) -> tuple[int | None, int]:
    """The line of the innermost of the admin's frames, and how many there are."""
    line, depth = None, 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line, depth = tb.tb_lineno, depth + 1
        tb = tb.tb_next
    return line, depth


def _encode_result(value: Any, state: RunState) -> tuple[Any, dict | None]:
    try:
        encoded = protocol.encode(value)
        size = len(protocol.dumps(encoded))
    except MemoryError:
        return None, limit_error("memory", None, state.limits.memory_mb)
    except (TypeError, ValueError, RecursionError) as exc:
        return None, {"type": "result", "message": f"The function's result is not data: {exc}.", "line": None}
    if size > state.limits.result_bytes:
        return None, limit_error("result", size, state.limits.result_bytes)
    return encoded, None


def _done(value: Any, error: dict | None, state: RunState, usage: dict) -> dict:
    return {"op": "done", "value": value, "error": error, "log": state.take_log(), "usage": usage,
            "cpu_total_ms": _process_cpu_ms()}


# --- process figures (Linux /proc; elsewhere the getrusage fallbacks) ---------------
def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def _address_space() -> int:
    fd = _proc_fd("statm", os.O_RDONLY)
    try:
        return int(os.pread(fd, 256, 0).split()[0]) * resource.getpagesize() if fd is not None else 0
    except (OSError, ValueError, IndexError):
        return 0


_proc_fds: dict[str, int] = {}     # /proc/self files kept open: an open() per run costs more than the run


def _proc_fd(name: str, flags: int) -> int | None:
    fd = _proc_fds.get(name)
    if fd is None:
        try:
            fd = _proc_fds[name] = os.open(f"/proc/self/{name}", flags)
        except OSError:
            return None
    return fd


def _reset_peak_memory() -> None:
    fd = _proc_fd("clear_refs", os.O_WRONLY)
    if fd is not None:
        try:
            os.write(fd, b"5")                  # resets VmHWM, so the peak is this run's
        except OSError:
            pass


def _peak_memory_kb() -> int:
    fd = _proc_fd("status", os.O_RDONLY)
    if fd is not None:
        try:
            status = os.pread(fd, 8192, 0)
            start = status.index(b"VmHWM:") + 6
            return int(status[start:status.index(b"kB", start)])
        except (OSError, ValueError):
            pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _process_cpu_ms() -> int:
    return round(time.process_time() * 1000)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
