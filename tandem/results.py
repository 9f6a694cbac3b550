"""A job's result files on disk: merging downloaded shards into one JSONL and one `.npy`.

`tandem results` downloads the manifest, the document and failure lists, the shard index and
every shard (`shards/vectors-NNNNN.jsonl|.npy`); with `--merge` it also writes `vectors.jsonl`
and `vectors.npy` of the whole job, in shard order, streaming one shard at a time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tandem_common.text.npy import header_f32, shape_and_offset


def merge_shards(out: Path) -> tuple[Path, Path, int]:
    """Concatenate `out/shards/*` (in `out/shards.jsonl` order) into `out/vectors.jsonl` and
    `out/vectors.npy`; returns (jsonl, npy, rows)."""
    index = [json.loads(line) for line in (out / "shards.jsonl").read_text().splitlines() if line]
    names = [f"vectors-{int(s['index']):05d}" for s in index]
    rows = sum(int(s["rows"]) for s in index)
    dims = 0
    for name in names:
        with open(out / "shards" / f"{name}.npy", "rb") as f:
            dims = shape_and_offset(f.read(256))[1]
        break
    jsonl, npy = out / "vectors.jsonl", out / "vectors.npy"
    with open(jsonl, "wb") as j, open(npy, "wb") as n:
        n.write(header_f32(rows, dims))
        for name in names:
            with open(out / "shards" / f"{name}.jsonl", "rb") as src:
                shutil.copyfileobj(src, j)
            with open(out / "shards" / f"{name}.npy", "rb") as src:
                head = src.read(256)
                _, cols, descr, offset = shape_and_offset(head)
                if cols != dims or descr != "<f4":
                    raise ValueError(
                        f"shard {name} is {descr} with {cols} columns, not <f4 x {dims}"
                    )
                src.seek(offset)
                shutil.copyfileobj(src, n)
    return jsonl, npy, rows
