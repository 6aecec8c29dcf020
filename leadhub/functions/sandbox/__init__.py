"""The sandbox for admin-written functions.

    from leadhub.functions.sandbox import WorkerPool, compile_function, CompileError
    from leadhub.functions.sandbox.handlers import RecordServiceHandler

    compile_function(source)              # CompileError(message, line, column, problems)
    with WorkerPool(size=2) as pool:
        result = pool.run(source, record={...}, old={...}, params={...},
                          handler=RecordServiceHandler(runtime.records, actor),
                          limits={"cpu_seconds": 1})
        result.value, result.log, result.error, result.usage

Modules: policy (compile-time rules), guards and runstate and api (what
runs inside a worker), worker (the worker process and its OS limits),
protocol (the pipe), pool (workers and the watchdog), broker (API calls in
the parent), handlers (the RecordService-backed handler), limits, result.
The worker imports only the first group; nothing here imports the database
layer except handlers."""
from leadhub.functions.sandbox.limits import DEFAULTS, MAXIMA, Limits
from leadhub.functions.sandbox.policy import (ALLOWED_MODULES, CompiledFunction, CompileError, Problem,
                                              check_function, compile_function)
from leadhub.functions.sandbox.pool import SandboxUnavailable, WorkerPool
from leadhub.functions.sandbox.result import Result

__all__ = ["ALLOWED_MODULES", "DEFAULTS", "MAXIMA", "CompileError", "CompiledFunction", "Limits",
           "Problem", "Result", "SandboxUnavailable", "WorkerPool", "check_function", "compile_function"]
