"""The README's first command (`make demo`): the whole trip on the samples.

Builds a request file with the library, then runs every step with the real `jsonl-batch`
CLI, as a user would: validate (and a broken file, to show the report), estimate, split,
submit to the project's local Azure OpenAI emulator, wait, merge the results back in input
order with a retry file, and write the job's HTML report. No cloud account, no network
beyond 127.0.0.1. Everything it writes goes to samples/out/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from jsonl_batch.build import RequestFileBuilder
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.emulator.config import Faults

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
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}== {title}{plain}", flush=True)


def run(*args: str, ok_codes: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> None:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ jsonl-batch {shown}", flush=True)
    code = subprocess.call([CLI, *args], cwd=HERE, env={**os.environ, **(env or {})})
    if code not in ok_codes:
        sys.exit(f"demo: `jsonl-batch {shown}` exited {code}")


MAP_FLAGS = ["--deployment-map", "gpt-4o-batch=gpt-4o"]  # the Azure deployment's model


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
        # Two long requests (this very script, whole and in part, as the document): the
        # report shows them as the costliest, the outliers to see before paying for them.
        script = Path(__file__).read_text("utf-8")
        for number, document in enumerate((script, script[: len(script) // 3]), 1):
            requests.add_chat(
                [
                    {
                        "role": "user",
                        "content": f"Review this script; list three fixes.\n\n{document}",
                    }
                ],
                custom_id=f"review-{number}",
                max_tokens=800,
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

    step("3. estimate tokens and cost (gpt-4o-batch is an Azure deployment of gpt-4o)")
    run(
        "estimate", "out/questions.jsonl", *MAP_FLAGS, "--output-ratio", "0.5"
    )  # warnings (a retired model, say) print but exit 0; --strict would make them exit 1

    step("4. split into shards of at most 4 requests, with a manifest")
    run("split", "out/questions.jsonl", "-o", "out/shards", "--max-requests", "4")

    # One request in five fails inside the batch (seeded, so always the same ones): the
    # merge below then has something to put in the retry file.
    config = EmulatorConfig(
        speed=50,  # a batch takes ~3 s: the report's timeline shows each of its phases
        deployments={"gpt-4o-batch": "gpt-4o-2024-08-06"},
        faults=Faults(request_failure_rate=0.2, request_failure_statuses=[429]),
    )
    with Emulator(config).start() as emulator:
        # The same variables a real Azure OpenAI resource is configured with.
        azure = {"AZURE_OPENAI_ENDPOINT": emulator.base_url, "AZURE_OPENAI_API_KEY": config.api_key}
        step(f"5. submit the shards to the local Azure OpenAI emulator at {emulator.base_url}")
        run("submit", "out/shards/questions.manifest.json", env=azure)
        step("6. wait for the batches and download their output and error files")
        run("wait", "out/shards/questions.job.json", "--poll-interval", "0.2", env=azure)

    step("7. merge outputs and errors back to the requests, in input order")
    run("merge", "out/shards/questions.job.json", "--estimate", ok_codes=(0, 1))

    step("8. write the job's report: one HTML file, charts and tables, opens offline")
    report = OUT / "questions.report.html"
    run(
        "report",
        "out/shards/questions.job.json",
        *MAP_FLAGS,
        "--output-ratio",
        "0.5",
        "-o",
        str(report.relative_to(HERE)),
    )

    print("\ndemo finished: see samples/out/ (results, retry file, job file, shards)")
    print(f"report: {report} (open it in a browser)")


if __name__ == "__main__":
    main()
