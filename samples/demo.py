"""The README's first command (`make demo`): the whole trip on the samples.

Builds a request file with the library, validates it (and a broken file, to show the
report), and runs each later step with the real `jsonl-batch` CLI, as a user would.
Everything it writes goes to samples/out/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from jsonl_batch.build import RequestFileBuilder

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CLI = str(Path(sys.executable).parent / "jsonl-batch")

QUESTIONS = [
    "When was Microsoft founded?",
    "When was the first XBOX released?",
    "What is Altair Basic?",
    "Who wrote the first version of MS-DOS?",
    "Summarise the history of Windows in three sentences.",
    "What does the Batch API cost compared to the standard API?",
]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*args: str, ok_codes: tuple[int, ...] = (0,)) -> None:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ jsonl-batch {shown}", flush=True)
    code = subprocess.call([CLI, *args], cwd=HERE)
    if code not in ok_codes:
        sys.exit(f"demo: `jsonl-batch {shown}` exited {code}")


def build(path: Path) -> None:
    with RequestFileBuilder(path, model="gpt-4o-batch", id_prefix="question-") as requests:
        for question in QUESTIONS:
            requests.add_chat(
                [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": question},
                ],
                max_tokens=200,
            )
    print(f"wrote {path.relative_to(HERE)}: {requests.count} requests")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    requests = OUT / "questions.jsonl"

    step("1. build a request file with the library")
    build(requests)

    step("2. validate it")
    run("validate", "out/questions.jsonl")

    step("2b. validate a broken file: every line shows one problem")
    run("validate", "broken.jsonl", ok_codes=(1,))

    print("\ndemo finished: see samples/out/")


if __name__ == "__main__":
    main()
