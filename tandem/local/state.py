"""What a running `tandem local up` tells other commands: one JSON file, `.tandem/local-cloud.json`.

`tandem local up` writes it once everything is up and removes it when it stops; `tandem local
invoke` and `tandem local seed` read it to find the local cloud (its URLs, stack name and
template parameters). A file left by a local cloud that died (its pid is gone) is refused as
stale rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = Path(__file__).resolve().parents[2] / ".tandem" / "local-cloud.json"


class NoLocalCloud(Exception):
    """No running local cloud described by the state file (the message says what to do)."""


@dataclass(frozen=True)
class LocalCloudState:
    pid: int
    stack_name: str
    region: str
    moto_url: str
    endpoint_url: str
    lambda_url: str = ""
    api_url: str = ""
    host: str = "127.0.0.1"
    log_dir: str = ""
    parameter_overrides: dict[str, str] = field(default_factory=dict)


def write_state(path: Path, state: LocalCloudState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def remove_state(path: Path) -> None:
    """Remove the file if this process wrote it (another local cloud may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path) -> LocalCloudState:
    if not path.is_file():
        raise NoLocalCloud(
            f"no running local cloud ({path} not found): start `tandem local up` "
            "or pass --moto-url and --endpoint-url"
        )
    try:
        state = LocalCloudState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise NoLocalCloud(f"{path} is not a local cloud state file: {exc}") from None
    if not _alive(state.pid):
        raise NoLocalCloud(
            f"{path} is stale: the local cloud (pid {state.pid}) is gone; start `tandem local up`"
        )
    return state


def find_local_cloud(
    state_file: str | Path | None,
    moto_url: str | None = None,
    endpoint_url: str | None = None,
    lambda_url: str | None = None,
    parameter_overrides: dict[str, str] | None = None,
    default_parameters: dict[str, str] | None = None,
) -> LocalCloudState:
    """The local cloud to work against: the URLs given (stack `tandem`, `default_parameters`
    plus `parameter_overrides`), or else the state file of the running `tandem local up`."""
    if moto_url or endpoint_url:
        if not (moto_url and endpoint_url):
            raise NoLocalCloud("give both --moto-url and --endpoint-url (or neither)")
        return LocalCloudState(
            pid=os.getpid(),
            stack_name="tandem",
            region="us-east-1",
            moto_url=moto_url,
            endpoint_url=endpoint_url,
            lambda_url=lambda_url or "",
            parameter_overrides={**(default_parameters or {}), **(parameter_overrides or {})},
        )
    state = read_state(Path(state_file) if state_file else STATE_FILE)
    if parameter_overrides:
        merged = {**state.parameter_overrides, **parameter_overrides}
        state = LocalCloudState(**{**asdict(state), "parameter_overrides": merged})
    return state
