"""The built artefact (`sam build`'s output) as `tandem local invoke` runs it, and what it is
built for.

`make build` builds for the template's `Architecture` (arm64 by default) into `.aws-sam/build`;
`make build-local` builds the same template for this machine's architecture into
`.aws-sam/<arch>/build`, next to `.aws-sam/<arch>/runtime`: the SDK the Lambda runtime ships and
the layer leaves out (boto3, botocore, ...; `runtime/python`) and the path of the python3.13 that
runs them (`runtime/python3.13`).

The architecture of compiled code is read from the ELF header of each `.so`: `e_machine`, two
bytes at offset 18 (System V ABI). Ten lines of `struct` instead of a dependency (pyelftools)
for one field.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ELF_MAGIC = b"\x7fELF"
# e_machine values (System V ABI) and the names Lambda uses for them
MACHINES = {62: "x86_64", 183: "arm64"}


class ArtefactError(Exception):
    """The built artefact is missing or not fit to run here (the message says what to do)."""


def elf_machine(path: Path) -> str:
    """`x86_64`, `arm64`, or `unknown(<e_machine>)` for an ELF file; ValueError if not ELF."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        raise ValueError(f"{path} is not an ELF file")
    order = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
    (machine,) = struct.unpack(order + "H", header[18:20])
    return MACHINES.get(machine, f"unknown({machine})")


def compiled_architectures(folder: Path) -> dict[Path, str]:
    """The architecture of every compiled extension (`*.so`) under `folder`."""
    return {p: elf_machine(p) for p in sorted(folder.rglob("*.so")) if p.is_file()}


def host_architecture() -> str:
    """This machine's architecture in Lambda's names (`x86_64` or `arm64`)."""
    machine = platform.machine().lower()
    return {"aarch64": "arm64", "arm64": "arm64", "amd64": "x86_64"}.get(machine, machine)


@dataclass(frozen=True)
class LocalBuild:
    """`make build-local`'s output for one architecture."""

    root: Path  # .aws-sam/<arch>

    @classmethod
    def for_host(cls, repo: Path = REPO_ROOT) -> LocalBuild:
        return cls(repo / ".aws-sam" / host_architecture())

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def template(self) -> Path:
        return self.build_dir / "template.yaml"

    @property
    def runtime_sdk(self) -> Path:
        return self.root / "runtime" / "python"

    def python(self) -> str:
        """The python3.13 recorded by `make build-local`."""
        recorded = self.root / "runtime" / "python3.13"
        python = recorded.read_text().strip() if recorded.is_file() else ""
        if not python or not Path(python).is_file():
            raise ArtefactError(f"no python3.13 recorded in {recorded}: run `make build-local`")
        return python


def check_runnable(build_dir: Path, layer_dirs: list[Path]) -> None:
    """Refuse, with the fix, an artefact whose compiled code is not for this machine."""
    if not (build_dir / "template.yaml").is_file():
        raise ArtefactError(f"no built template in {build_dir}: run `make build-local`")
    host = host_architecture()
    for layer in layer_dirs:
        if not layer.is_dir():
            raise ArtefactError(f"the built layer {layer} is missing: run `make build-local`")
        wrong = {p: a for p, a in compiled_architectures(layer).items() if a != host}
        if wrong:
            path, arch = next(iter(wrong.items()))
            raise ArtefactError(
                f"{path.relative_to(layer)} in {layer} is built for {arch}, this machine is "
                f"{host}: run `make build-local` (builds .aws-sam/{host}/build) or pass "
                "--build-dir"
            )
