"""The built layer's compiled extensions are for the deployed architecture (arm64), read from
their ELF headers: an x86_64 wheel must never slip into the layer. `make test` runs this after
`make build`; without a build it is skipped."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from tandem.local.artefact import compiled_architectures, elf_machine

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / ".aws-sam" / "build" / "CommonLayer"


def _elf(tmp_path: Path, name: str, machine: int, little: bool = True) -> Path:
    order = "<" if little else ">"
    header = b"\x7fELF" + bytes([2, 1 if little else 2, 1]) + bytes(9)
    header += struct.pack(order + "HH", 3, machine)  # e_type ET_DYN, e_machine
    path = tmp_path / name
    path.write_bytes(header + bytes(44))
    return path


def test_elf_machine_reads_the_header(tmp_path: Path) -> None:
    assert elf_machine(_elf(tmp_path, "a.so", 183)) == "arm64"
    assert elf_machine(_elf(tmp_path, "b.so", 62)) == "x86_64"
    assert elf_machine(_elf(tmp_path, "c.so", 183, little=False)) == "arm64"
    assert elf_machine(_elf(tmp_path, "d.so", 40)) == "unknown(40)"
    (tmp_path / "e.so").write_bytes(b"MZ not an elf file at all.")
    with pytest.raises(ValueError):
        elf_machine(tmp_path / "e.so")


@pytest.mark.skipif(not LAYER.is_dir(), reason="no .aws-sam/build: run `make build` first")
def test_built_layer_extensions_are_all_for_the_template_architecture() -> None:
    default = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]["Architecture"]
    found = compiled_architectures(LAYER)
    # msgspec at least is compiled: an empty list would mean the check checks nothing
    assert any("msgspec" in p.parts for p in found), sorted(found)
    wrong = {str(p.relative_to(LAYER)): a for p, a in found.items() if a != default["Default"]}
    assert not wrong, f"not {default['Default']}: {wrong}"
