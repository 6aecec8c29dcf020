"""A pool of pre-started worker processes and the watchdog that drives one
run: send the function and its inputs, execute the API calls the worker
sends back, collect the log, and kill and replace a worker that overruns
its wall time, dies or speaks out of turn. Other runs go on in the other
workers meanwhile.

    pool = WorkerPool(size=4)
    result = pool.run(source, record=..., old=..., params=..., handler=..., limits={"cpu_seconds": 1})
"""
from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from leadhub.functions.sandbox import protocol
from leadhub.functions.sandbox.broker import ApiHandler, CallBroker
from leadhub.functions.sandbox.limits import DEFAULTS, MAXIMA, Limits, limit_error, resolve
from leadhub.functions.sandbox.policy import CompiledFunction, CompileError, compile_function
from leadhub.functions.sandbox.result import Result

# The worker finds leadhub through this directory, not through the caller's
# environment: -I ignores PYTHON* variables, the user site and the cwd.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from leadhub.functions.sandbox.worker import main; sys.exit(main(sys.argv[1:]))")
_ENV = {"LC_ALL": "C.UTF-8"}    # nothing of ours: no database URL, no secret key
CPU_POLL = 0.1                 # seconds between looks at a busy worker's CPU time
CPU_GRACE_MS = 150             # the worker's own timer reports first, with the line


class SandboxUnavailable(RuntimeError):
    """No worker could be had (the pool is closed, busy, or workers fail to start)."""


class _Timeout(Exception):
    pass


class _Gone(Exception):
    pass


class _Garbled(Exception):
    pass


class _CpuExceeded(Exception):
    pass


class _Worker:
    """The parent's handle on one worker process, with deadline-bound I/O."""

    def __init__(self, max_memory_mb: int, user: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _PACKAGE_ROOT, str(max_memory_mb), user],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_ENV, cwd="/",
            start_new_session=True, bufsize=0)
        self.write_fd, self.read_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.write_fd, False)
        self.buffer = bytearray()
        self.ready = False
        self.runs = 0
        self.extra = False      # started for a nested call; stopped after it
        self.cpu_ms = 0          # the process's CPU time when its current run began

    def wait_ready(self, deadline: float) -> None:
        if not self.ready:
            message = self.receive(deadline)
            if not isinstance(message, dict) or message.get("op") != "ready":
                raise _Garbled("expected ready")
            self.ready, self.cpu_ms = True, _count(message.get("cpu_ms")) or 0

    def send(self, message: Any, deadline: float) -> None:
        view = memoryview(protocol.frame(message))
        while view:
            self._wait(select.POLLOUT, deadline)
            try:
                view = view[os.write(self.write_fd, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise _Gone() from None

    def receive(self, deadline: float) -> Any:
        """The next message; a _Timeout leaves a partly read frame buffered."""
        self._fill(protocol.HEADER.size, deadline)
        (size,) = protocol.HEADER.unpack_from(self.buffer)
        if size > protocol.MAX_FRAME:
            raise _Garbled(f"frame of {size} bytes")
        end = protocol.HEADER.size + size
        self._fill(end, deadline)
        body = bytes(self.buffer[protocol.HEADER.size:end])
        del self.buffer[:end]
        try:
            return protocol.loads(body)
        except (ValueError, RecursionError) as exc:
            raise _Garbled(str(exc)) from None

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buffer) < n:
            self._wait(select.POLLIN, deadline)
            chunk = os.read(self.read_fd, max(65536, n - len(self.buffer)))
            if not chunk:
                raise _Gone()
            self.buffer += chunk

    def _wait(self, event: int, deadline: float) -> None:
        fd = self.write_fd if event == select.POLLOUT else self.read_fd
        poller = select.poll()
        poller.register(fd, event)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout()
            events = poller.poll(max(1, int(remaining * 1000)))
            if events:
                if events[0][1] & (select.POLLERR | select.POLLNVAL) or (
                        events[0][1] & select.POLLHUP and not events[0][1] & select.POLLIN):
                    raise _Gone()
                return

    def cpu_ms_now(self) -> int | None:
        """The process's CPU time, also of a dead but not yet reaped one."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])          # utime + stime
            return round(ticks * 1000 / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, kill: bool = False) -> int | None:
        """End the process (closing its stdin asks it to leave); its exit status."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if kill:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class _LogCollector:
    def __init__(self, limit: int):
        self.parts: list[str] = []
        self.size, self.limit = 0, limit

    def add(self, text: Any) -> None:
        if isinstance(text, str) and self.size < self.limit:
            data = text.encode("utf-8", "replace")[:self.limit - self.size]
            self.parts.append(data.decode("utf-8", "ignore"))
            self.size += len(data)

    def text(self) -> str:
        return "".join(self.parts)


class WorkerPool:
    def __init__(self, size: int = 2, *, defaults: Limits = DEFAULTS, maxima: Limits = MAXIMA,
                 start_timeout: float = 30.0, max_runs_per_worker: int = 500, user: str = "nobody"):
        """`user`: who the workers become when started as root (so process
        limits hold and the code cannot read the server's files); "" keeps
        root, which is not recommended."""
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.user = user
        self.defaults, self.maxima = defaults, maxima
        self.start_timeout, self.max_runs = start_timeout, max_runs_per_worker
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._idle.put(self._spawn())

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- running ---------------------------------------------------------------------
    def run(self, function: str | CompiledFunction, *, record: Any = None, old: Any = None,
            params: Any = None, handler: ApiHandler | None = None,
            limits: Mapping[str, Any] | None = None, wait: float = 30.0, nested: bool = False) -> Result:
        """Run `function` (source or compiled) with the inputs as data and the
        API calls executed by `handler`. A refused source, a limit, an error
        in the function: all come back in the Result. Bad limits or inputs
        that are not data are the caller's mistake: ValueError/TypeError.
        nested=True (a function calling another) never waits for a worker
        its caller may be holding: with none idle it starts an extra one."""
        return self.run_many(function, [{"record": record, "old": old, "params": params}], handler=handler,
                             limits=limits, wait=wait, nested=nested)[0]

    def run_many(self, function: str | CompiledFunction, inputs: list[Mapping[str, Any]], *,
                 handler: ApiHandler | None = None, limits: Mapping[str, Any] | None = None,
                 wait: float = 30.0, nested: bool = False) -> list[Result]:
        """`function` over each of `inputs` ({"record", "old", "params"}: the
        records of one bulk save) in one worker and one round of messages, a
        Result each. Every run has fresh globals and its own limits (its wall
        time starts when the one before it ends); a run that stops the worker
        leaves the runs after it unrun, with an error saying so."""
        if not inputs:
            return []
        run_limits = resolve(limits, self.defaults, self.maxima)
        encoded = protocol.encode([{"record": i.get("record"), "old": i.get("old"),
                                    "params": i.get("params") if i.get("params") is not None else {}}
                                   for i in inputs])
        if isinstance(function, str):
            try:
                function = compile_function(function)
            except CompileError as exc:
                return [Result(error=exc.to_dict(), usage=_usage(None, 0, None, None)) for _ in inputs]
        worker = self._acquire_extra() if nested else self._acquire(wait)
        execution = _Execution(worker, run_limits, handler, len(inputs))
        try:
            return execution.execute(function.source, encoded)
        finally:
            self._release(worker, reusable=execution.reusable)

    def _acquire(self, wait: float) -> _Worker:
        deadline = time.monotonic() + wait
        for _attempt in range(3):
            if self._closed:
                raise SandboxUnavailable("The sandbox pool is closed.")
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SandboxUnavailable("No sandbox worker became free in time.") from None
            try:
                worker.wait_ready(time.monotonic() + self.start_timeout)
                return worker
            except (_Timeout, _Gone, _Garbled):
                self._release(worker, reusable=False)
        raise SandboxUnavailable("Sandbox workers fail to start.")

    def _acquire_extra(self) -> _Worker:
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            worker = self._spawn()
            worker.extra = True
        try:
            worker.wait_ready(time.monotonic() + self.start_timeout)
        except (_Timeout, _Gone, _Garbled):
            self._release(worker, reusable=False)
            raise SandboxUnavailable("Sandbox workers fail to start.") from None
        return worker

    def _release(self, worker: _Worker, reusable: bool) -> None:
        worker.runs += 1
        if worker.extra:       # an overflow worker for a nested call: not kept
            worker.stop(kill=not reusable)
            with self._lock:
                self._all.discard(worker)
            return
        if reusable and worker.runs < self.max_runs and not self._closed:
            self._idle.put(worker)
            return
        worker.stop(kill=not reusable)
        with self._lock:
            self._all.discard(worker)
        if not self._closed:
            self._idle.put(self._spawn())     # the replacement starts while others run

    def _spawn(self) -> _Worker:
        worker = _Worker(self.maxima.memory_mb, self.user)
        with self._lock:
            self._all.add(worker)
        return worker

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()


class _Execution:
    """One run message in one worker, from the message to a Result per input."""

    def __init__(self, worker: _Worker, limits: Limits, handler: ApiHandler | None, count: int):
        self.worker, self.limits, self.handler, self.count = worker, limits, handler, count
        self.reusable = False
        self._next_run()

    def _next_run(self) -> None:
        """Each run counts its own API calls and log, and has its own wall time."""
        self.broker = CallBroker(self.handler, self.limits)
        self.log = _LogCollector(self.limits.log_bytes)
        self.started = time.monotonic()

    def execute(self, source: str, inputs: Any) -> list[Result]:
        worker, limits = self.worker, self.limits
        results: list[Result] = []
        error: dict | None = None
        cpu_ms = None
        try:
            worker.send({"op": "run", "source": source, "inputs": inputs, "limits": limits.as_dict()},
                        self.started + limits.wall_seconds)
            while len(results) < self.count:
                message = self._receive(self.started + limits.wall_seconds)
                op = message.get("op") if isinstance(message, dict) else None
                if op == "log":
                    self.log.add(message.get("text"))
                elif op == "call":
                    worker.send(self.broker.dispatch(message.get("method"), message.get("args")),
                                self.started + limits.wall_seconds)
                elif op == "done":
                    results.append(self._result(message, None, None, self._wall_ms()))
                    if message.get("last") or not self.reusable:
                        break
                    self._next_run()
                else:
                    raise _Garbled(f"unexpected message {op!r}")
        except _Timeout:
            cpu_ms = self._cpu_since_start()
            worker.stop(kill=True)
            if cpu_ms is not None and cpu_ms >= limits.cpu_seconds * 1000:   # it was busy, not waiting
                error = limit_error("cpu", cpu_ms, round(limits.cpu_seconds * 1000))
            else:
                error = limit_error("wall", self._wall_ms(), round(limits.wall_seconds * 1000))
        except _CpuExceeded:
            cpu_ms = self._cpu_since_start()
            worker.stop(kill=True)
            error = limit_error("cpu", cpu_ms, round(limits.cpu_seconds * 1000))
        except _Gone:
            cpu_ms = self._cpu_since_start()
            status = worker.stop()
            if status == -signal.SIGXCPU:                 # RLIMIT_CPU: the kernel ended it
                error = limit_error("cpu", cpu_ms, round(limits.cpu_seconds * 1000))
            else:
                error = {"type": "internal", "line": None,
                         "message": f"The sandbox worker stopped unexpectedly (status {status})."}
        except _Garbled as exc:
            worker.stop(kill=True)
            error = {"type": "internal", "line": None, "message": f"The sandbox worker misbehaved: {exc}."}
        if error is not None:
            self.reusable = False
            results.append(self._result(None, error, cpu_ms, self._wall_ms()))
        while len(results) < self.count:          # what a stopped worker never ran
            last = results[-1].error or {}
            results.append(Result(error={"type": "internal", "line": None,
                                         "message": "Not run: the run of an earlier record stopped the sandbox "
                                                    f"worker ({last.get('message') or 'no reason given'})."},
                                  usage=_usage(None, 0, None, None)))
        return results

    def _wall_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def _receive(self, deadline: float) -> Any:
        """Wait for the worker's next message, looking at its CPU time now
        and then: code stuck in C (a regex backtracking) never returns to
        the worker's own timer, so the watchdog ends it here."""
        cpu_limit_ms = self.limits.cpu_seconds * 1000
        while True:
            try:
                return self.worker.receive(min(deadline, time.monotonic() + CPU_POLL))
            except _Timeout:
                if time.monotonic() >= deadline:
                    raise
                cpu_ms = self._cpu_since_start()
                if cpu_ms is not None and cpu_ms > cpu_limit_ms + CPU_GRACE_MS:
                    raise _CpuExceeded() from None

    def _cpu_since_start(self) -> int | None:
        now = self.worker.cpu_ms_now()
        return None if now is None else max(0, now - self.worker.cpu_ms)

    def _result(self, done: dict | None, error: dict | None, cpu_ms, wall_ms: int) -> Result:
        value, peak = None, None
        if done is not None:
            self.log.add(done.get("log"))
            usage = done.get("usage") if isinstance(done.get("usage"), dict) else {}
            cpu_ms, peak = _count(usage.get("cpu_ms")), _count(usage.get("peak_memory_kb"))
            self.worker.cpu_ms = _count(done.get("cpu_total_ms")) or 0
            self.reusable = not done.get("retire")
            error = done.get("error") if isinstance(done.get("error"), dict) else None
            if error is None:
                try:
                    value = protocol.decode(done.get("value"))
                except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                    error = {"type": "internal", "line": None, "message": "The sandbox worker sent an unreadable result."}
                    self.reusable = False
        if self.broker.limit_error is not None and (error is None or error.get("type") != "limit"):
            error = self.broker.limit_error     # the parent's count is the one that holds
        if error is not None:
            value = None
        return Result(value=value, log=self.log.text(), error=error,
                      usage=_usage(cpu_ms, wall_ms, peak, self.broker.usage))


def _count(value: Any) -> int | None:
    """A figure the worker reported, if it is one (the worker is not trusted)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(cpu_ms, wall_ms, peak_kb, counts: Mapping[str, int] | None) -> dict[str, Any]:
    counts = counts or {"reads": 0, "writes": 0, "queries": 0}
    return {"cpu_ms": cpu_ms, "wall_ms": wall_ms, "peak_memory_kb": peak_kb, **counts}
