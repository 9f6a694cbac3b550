"""The real endpoint server (`python -m tandem_endpoint`) as a child process of the local cloud."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from tandem.local import LOCAL_CREDENTIALS
from tandem.local.http_server import reachable_host


class EndpointProcess:
    """Starts the server on `port`, waits for `/ping` 200, kills and restarts it on request.

    It reaches S3 (claim-check bodies) through `moto_url`; `args` are extra server flags.
    Starting and stopping hold one lock, so the async front's scale-out (`ensure_started`) waits
    for a restart in progress instead of racing it for the port.
    """

    def __init__(
        self,
        port: int,
        moto_url: str,
        region: str,
        log_path: Path,
        args: list[str] | None = None,
        ready_timeout: float = 300.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.host = host  # bind address; `url` is how this machine reaches it
        self.url = f"http://{reachable_host(host)}:{port}"
        self.moto_url = moto_url
        self.region = region
        self.log_path = log_path
        self.args = list(args or [])
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()

    def _env(self) -> dict[str, str]:
        env = {
            k: os.environ[k]
            for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
            if k in os.environ
        }
        env.update(LOCAL_CREDENTIALS)
        env.update(
            {
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self.moto_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self) -> None:
        with self._lock:
            self._start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_started(self) -> bool:
        """Start the server unless it runs (a dead one is replaced, as SageMaker replaces an
        unhealthy instance); True when this call started it."""
        with self._lock:
            if self.running:
                return False
            self._stop(signal.SIGKILL)
            self._start()
            return True

    def _start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [
            sys.executable,
            "-m",
            "tandem_endpoint",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--enable-fault-injection",
            *self.args,
        ]
        self.process = subprocess.Popen(
            cmd,
            env=self._env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"endpoint exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"endpoint not ready after {self.ready_timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        with self._lock:
            self._stop(sig)

    def _stop(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, down_s: float = 2.0) -> None:
        """Kill the server (SIGKILL, like its instance dying), stay down `down_s`, then start a
        new one on the same port with the same args and wait for /ping 200. Requests in flight
        lose their connection; the fault plan (in the old process) is gone."""
        with self._lock:
            self._stop(signal.SIGKILL)
            time.sleep(down_s)
            self._start()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return dict(json.loads(r.read()))
