import json
import random
from pathlib import Path

R = random.Random(20261127)
S = Path(__file__).resolve().parent  # python samples/generate.py regenerates them
subjects = [
    "The river delta",
    "A small bakery",
    "The orbital telescope",
    "Our distributed database",
    "The village council",
    "A migrating flock of geese",
    "The night-shift nurse",
    "An old lighthouse",
    "The compiler",
    "A mountain railway",
    "The public library",
    "A coral reef",
    "The weather station",
    "An apprentice carpenter",
    "The tidal power plant",
]
verbs = [
    "records",
    "reshapes",
    "depends on",
    "quietly documents",
    "struggles with",
    "celebrates",
    "measures",
    "protects",
    "reorganises",
    "remembers",
    "questions",
    "translates",
    "balances",
    "repairs",
    "feeds",
]
objects = [
    "the seasonal floods",
    "every loaf sold before dawn",
    "faint signals from distant galaxies",
    "conflicting writes across regions",
    "the budget for the new footbridge",
    "the magnetic field of the planet",
    "patients who cannot sleep",
    "ships passing in the fog",
    "loops that never terminate",
    "snow on the northern pass",
    "the archive of local newspapers",
    "the temperature of the sea",
    "rain gauges on the hillside",
    "joints that must hold for a century",
    "the grid during the evening peak",
]
tails = [
    "while the town sleeps.",
    "with surprising patience.",
    "because nobody else will.",
    "and the results are published every spring.",
    "despite a shrinking budget.",
    "as it has done for decades.",
    "so that mistakes are caught early.",
    "under the watch of volunteers.",
    "in ways that surprise even the experts.",
    "long after the founders have gone.",
]


def sentence():
    return f"{R.choice(subjects)} {R.choice(verbs)} {R.choice(objects)} {R.choice(tails)}"


def para(n=5):
    return " ".join(sentence() for _ in range(n))


def text(nbytes):
    out = []
    size = 0
    while size < nbytes:
        p = para(R.randint(3, 8))
        out.append(p)
        size += len(p) + 2
    return "\n\n".join(out)


def md(nbytes, title):
    body = text(nbytes)
    return f"# {title}\n\n## Overview\n\n{body}\n\n- point one: {sentence()}\n- point two: {sentence()}\n"


for d in ("api", "s3", "sqs"):
    for f in (S / d).glob("*"):
        f.unlink()
# API: 16 good files -> inline documents (one job per file)
for i in range(8):
    (S / "api" / f"note-{i:02d}.txt").write_text(text(R.choice([80, 400, 1500, 4000])) + "\n")
for i in range(4):
    (S / "api" / f"guide-{i:02d}.md").write_text(md(R.choice([2000, 6000]), f"Guide {i}"))
(S / "api" / "tiny.txt").write_text("Hi.\n")
(S / "api" / "long-report.txt").write_text(text(200_000) + "\n")
(S / "api" / "batch-a.jsonl").write_text(
    "".join(
        json.dumps({"id": f"a-{k}", "text": text(R.choice([200, 900]))}) + "\n" for k in range(6)
    )
)
(S / "api" / "batch-b.json").write_text(
    json.dumps({"documents": [{"id": f"b-{k}", "text": text(500)} for k in range(4)]})
)
# S3: good + bad
for i in range(8):
    (S / "s3" / f"article-{i:02d}.txt").write_text(text(R.choice([300, 1200, 5000])) + "\n")
(S / "s3" / "handbook.md").write_text(md(100_000, "Handbook"))
(S / "s3" / "records.jsonl").write_text(
    "".join(json.dumps({"id": f"r-{k}", "text": text(400)}) + "\n" for k in range(5))
    + json.dumps({"id": "r-missing-text", "title": "no text here"})
    + "\n"
)
(S / "s3" / "bad-invalid-utf8.txt").write_bytes(
    b"Valid start, then invalid bytes: \xff\xfe\xc3\x28 end.\n"
)
(S / "s3" / "bad-nul-binary.txt").write_bytes(
    b"PK\x03\x04\x00\x00binary\x00\x00data" + bytes(range(0, 64))
)
(S / "s3" / "bad-empty.txt").write_bytes(b"")
# SQS: good + bad
for i in range(6):
    (S / "sqs" / f"memo-{i:02d}.txt").write_text(text(R.choice([250, 1000, 3000])) + "\n")
(S / "sqs" / "faq.md").write_text(md(3000, "FAQ"))
(S / "sqs" / "catalogue.json").write_text(
    json.dumps(
        {
            "documents": [{"id": f"c-{k}", "text": text(300)} for k in range(3)]
            + [{"id": "c-no-text"}]
        }
    )
)
(S / "sqs" / "bad-missing-text.json").write_text(
    json.dumps({"documents": [{"id": "m-1", "body": "the field is called body, not text"}]})
)
expected = {
    "s3/records.jsonl": ["r-missing-text"],
    "s3/bad-invalid-utf8.txt": ["bad-invalid-utf8.txt"],
    "s3/bad-nul-binary.txt": ["bad-nul-binary.txt"],
    "s3/bad-empty.txt": ["bad-empty.txt"],
    "sqs/catalogue.json": ["c-no-text"],
    "sqs/bad-missing-text.json": ["m-1"],
}
(S / "expected_failures.json").write_text(json.dumps(expected, indent=2) + "\n")
