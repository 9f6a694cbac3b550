"""A warm Lambda worker process: `python -m tandem.local.lambda_worker HANDLER`.

Protocol on the pipes the local Lambda service gave it: once the handler is imported (the init
phase, successful or not), one `{"initialised": true}` line; then one JSON line per request on stdin
(`{"event", "request_id", "deadline_ms", "function_name", "function_arn", "memory", "log_group"}`)
and one JSON line per reply on the original stdout fd (`{"ok": true, "result"}` or
`{"ok": false, "errorType", "errorMessage", "stackTrace"}`).  The handler's own stdout/stderr go
to stderr, which the service sends to the function's log file.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    def __init__(self, req: dict[str, Any]) -> None:
        self.function_name = req["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = req["function_arn"]
        self.memory_limit_in_mb = int(req["memory"])
        self.aws_request_id = req["request_id"]
        self.log_group_name = req.get("log_group", f"/aws/lambda/{self.function_name}")
        self.log_stream_name = "local"
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(req["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def peak_rss_kb() -> int:
    """This process's peak resident memory (KiB), like the Max Memory Used of Lambda's REPORT
    line. /proc's VmHWM belongs to this program alone; `ru_maxrss` would also count the memory
    of the parent it was forked from (it survives exec), the whole local cloud here."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _load(handler: str) -> Any:
    module_name, func_name = handler.rsplit(".", 1)
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, func_name)


def main() -> None:
    handler_spec = sys.argv[1]
    # keep the protocol channel private: fd 1 becomes stderr for everything the handler prints
    proto_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    # the repo root (for `-m tandem.local...`) must not leak into the function's import path
    root = os.environ.pop("TANDEM_WORKER_ROOT", None)
    if root:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.abspath(root)]
    sys.path.insert(0, os.getcwd())
    init_error: dict[str, Any] | None = None
    fn = None
    try:
        fn = _load(handler_spec)
    except Exception as e:
        init_error = {
            "ok": False,
            "errorType": "Runtime.ImportModuleError"
            if isinstance(e, ImportError)
            else type(e).__name__,
            "errorMessage": f"Unable to import module '{handler_spec}': {e}",
            "stackTrace": traceback.format_exception(e),
        }
        traceback.print_exc()
    proto_out.write(json.dumps({"initialised": True}) + "\n")
    proto_out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        fault = req.get("fault")  # injected by the local Lambda service's fault plan
        if fault == "crash":
            os._exit(137)
        if fault == "hang":
            time.sleep(24 * 3600)  # the service kills the worker at the function's Timeout
        if init_error is not None:
            reply = init_error
        else:
            try:
                result = fn(req["event"], LambdaContext(req))  # type: ignore[misc]
                json.dumps(result)  # must be serialisable, like the real runtime
                reply = {"ok": True, "result": result}
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)
                reply = {
                    "ok": False,
                    "errorType": type(e).__name__,
                    "errorMessage": str(e),
                    "stackTrace": [
                        f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in tb
                    ],
                }
                print(
                    json.dumps(
                        {
                            "level": "ERROR",
                            "requestId": req["request_id"],
                            "errorType": type(e).__name__,
                            "stackTrace": reply["stackTrace"],
                        }
                    ),
                    file=sys.stderr,
                )
        sys.stdout.flush()
        sys.stderr.flush()
        if fault == "crash_after":
            os._exit(137)  # the handler ran (side effects done); its reply is lost
        reply["max_rss_kb"] = peak_rss_kb()
        proto_out.write(json.dumps(reply) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    main()
