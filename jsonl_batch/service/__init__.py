"""The Batch service client: connections and crash-safe jobs, for Azure OpenAI, OpenAI, a
LiteLLM proxy or any OpenAI-compatible server alike.

    from jsonl_batch.service import Job, connect

    connection = connect("https://NAME.openai.azure.com")  # key from AZURE_OPENAI_API_KEY
    job = Job.submit("data.jsonl", connection, deployments=["gpt-4o-batch"])
    job.wait(poll_interval=60)      # downloads land in data.downloads/ next to data.job.json

``Job.submit("data.jsonl", AzureOpenAI(...))`` uses a client you already have.
"""

from .connection import (
    Connection,
    ConnectionSettings,
    build_client,
    connect,
    resolve_connection,
)
from .job import CRASH_ENV, CRASH_STEPS, Job

__all__ = [
    "CRASH_ENV",
    "CRASH_STEPS",
    "Connection",
    "ConnectionSettings",
    "Job",
    "build_client",
    "connect",
    "resolve_connection",
]
