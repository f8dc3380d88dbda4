"""Submitting and following batch jobs on Azure OpenAI, a LiteLLM proxy or any
OpenAI-compatible service.

    from jsonl_batch.azure import Connection, Job, resolve_connection

    connection = Connection(resolve_connection(endpoint="https://NAME.openai.azure.com"))
    job = Job.submit("data.jsonl", connection, deployments=["gpt-4o-batch"])
    job.wait(poll_interval=60)      # downloads land in data.downloads/ next to data.job.json
"""

from .connection import Connection, ConnectionSettings, build_client, resolve_connection
from .job import CRASH_ENV, CRASH_STEPS, Job, job_path_for
from .jobfile import JOB_SUFFIX, JobFile, ShardState, read_job_file

__all__ = [
    "CRASH_ENV",
    "CRASH_STEPS",
    "JOB_SUFFIX",
    "Connection",
    "ConnectionSettings",
    "Job",
    "JobFile",
    "ShardState",
    "build_client",
    "job_path_for",
    "read_job_file",
    "resolve_connection",
]
