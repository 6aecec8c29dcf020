"""One run's state inside a worker: its limits, the limit error once one is
hit, the log, and the round trip to the pool for API calls. Guards and the
`api` object share it; a new one is made for every run.

A limit error is raised as `LimitExceeded`, a BaseException the function
cannot name; every except clause re-raises it (policy `_caught_`), and once
`doom` is set every guard, API call and print raises it again, so a run
that hit a limit ends with that limit error whatever the function does."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from leadhub.functions.sandbox import protocol
from leadhub.functions.sandbox.limits import MB, Limits, limit_error
from leadhub.functions.sandbox.policy import FILENAME

LOG_FLUSH_BYTES = 4096
MAX_CALL_BYTES = 1024 * 1024


class LimitExceeded(BaseException):
    def __init__(self, info: dict[str, Any]):
        super().__init__(info["message"])
        self.info = info


class RunClosed(BaseException):
    """Code left behind by a finished run (a generator's finally collected
    later) tried to act."""


class ApiError(Exception):
    """An API call the platform refused: not found, forbidden, invalid values.
    The function may catch it (`except ApiError as e: e.code, e.fields`)."""

    def __init__(self, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or {}


class FieldError(BaseException):
    """api.error(field, message): ends the run with a validation error."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def guest_line(frame=None) -> int | None:
    """The line the admin's code is on, from the innermost of its frames."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == FILENAME:
            return frame.f_lineno
        frame = frame.f_back
    return None


class RunState:
    def __init__(self, limits: Limits, send: Callable[[bytes], None], receive: Callable[[], Any]):
        self.limits = limits
        self._send, self._receive = send, receive
        self.doom: dict[str, Any] | None = None
        self.closed = False
        self.cpu_start = time.process_time()
        self.log_bytes = 0
        self._log: list[str] = []
        self._log_pending = 0

    # --- limits --------------------------------------------------------------------
    def fail(self, limit: str, figure, maximum) -> LimitExceeded:
        """Record the first limit hit (with the admin's line) and return the
        exception to raise; later hits repeat the first."""
        if self.doom is None:
            self.doom = limit_error(limit, figure, maximum, guest_line(sys._getframe(1)))
        return LimitExceeded(self.doom)

    def fail_cpu(self) -> LimitExceeded:
        # the timer fires when the kernel's count reaches the limit; ours may lag a tick
        maximum = round(self.limits.cpu_seconds * 1000)
        used = max(maximum, round((time.process_time() - self.cpu_start) * 1000))
        return self.fail("cpu", used, maximum)

    def fail_memory(self, nbytes: int) -> LimitExceeded:
        return self.fail("memory", round(nbytes / MB), self.limits.memory_mb)

    def check(self) -> None:
        """Called by every guard: keeps a doomed run failing."""
        if self.doom is not None:
            raise LimitExceeded(self.doom)
        if self.closed:
            raise RunClosed("this function run has ended")

    # --- log -----------------------------------------------------------------------
    def write_log(self, text: str) -> None:
        self.check()
        size = len(text.encode("utf-8", "replace"))
        if self.log_bytes + size > self.limits.log_bytes:
            raise self.fail("log", self.log_bytes + size, self.limits.log_bytes)
        self.log_bytes += size
        self._log.append(text)
        self._log_pending += size
        if self._log_pending >= LOG_FLUSH_BYTES:
            self.flush_log()

    def flush_log(self) -> None:
        """Send buffered log text now, so a worker killed later loses little."""
        if self._log:
            text = self.take_log()
            self._send(protocol.frame({"op": "log", "text": text}))

    def take_log(self) -> str:
        text = "".join(self._log)
        self._log.clear()
        self._log_pending = 0
        return text

    # --- API calls -------------------------------------------------------------------
    def call(self, method: str, args: list) -> Any:
        """One API call, executed by the pool in the parent process."""
        self.check()
        try:
            data = protocol.frame({"op": "call", "method": method, "args": protocol.encode(args)})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"api {method}: {exc}") from None
        if len(data) > MAX_CALL_BYTES:
            raise ApiError("too_large", f"api {method}: the values are larger than {MAX_CALL_BYTES} bytes.")
        self.flush_log()
        self._send(data)
        reply = self._receive()
        self.check()   # a CPU limit reached while we waited is raised here
        if not isinstance(reply, dict) or reply.get("op") != "reply":
            raise RunClosed("the pool stopped answering")
        error = reply.get("error")
        if error:
            if error.get("type") == "limit":
                raise self.fail(error["limit"], error.get("figure"), error.get("maximum"))
            raise ApiError(str(error.get("code", "error")), str(error.get("message", "")),
                           protocol.decode(error.get("fields") or {}))
        return protocol.decode(reply.get("value"))
