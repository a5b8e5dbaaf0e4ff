"""Stand-ins for the native fine-tuning APIs of Bedrock, Vertex AI, Fireworks and Azure OpenAI.

The real Portkey gateway (tests/gateway.py) calls these instead of the providers: each fake answers the
exact upstream list and single-job URLs the gateway 1.15.2 builds (read in its src/providers/<provider>/
api.ts, listFinetunes.ts, utils.ts), in the provider's own JSON shape, pages for real, checks the
credentials the gateway forwards and records every request. `serve_native` runs one on 127.0.0.1.
"""

import random
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from tests.fake_api import Reply, json_reply, serve

PROVIDERS = ("bedrock", "vertex-ai", "fireworks-ai", "azure-openai")

AWS_ACCESS_KEY_ID = "AKIAARCHIVERTEST0001"
AWS_SECRET_ACCESS_KEY = "archiver-test-secret-key-0001"
AWS_REGION = "us-east-1"
AWS_ACCOUNT = "123456789012"
VERTEX_PROJECT_ID = "archiver-test-project"
VERTEX_PROJECT_NUMBER = "123456789012"
VERTEX_REGION = "us-central1"
VERTEX_TOKEN = "ya29.archiver-test-token"
FIREWORKS_ACCOUNT = "acct-1"
FIREWORKS_API_KEY = "fw-archiver-test-key"
AZURE_API_KEY = "azure-archiver-test-key"
AZURE_API_VERSION = "2024-10-21"

# The page size each API uses when the request names none (only Bedrock's is ever used: the gateway
# sends no maxResults). Bedrock's matches the page the captured sample shows.
DEFAULT_PAGE_SIZE = {"bedrock": 100, "vertex-ai": 20, "fireworks-ai": 50, "azure-openai": 20}


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def rfc3339(epoch_ms: int, micros: int = 0) -> str:
    """Google/AWS-style UTC timestamp; Google adds microseconds, which the gateway truncates to ms."""
    stamp = datetime.fromtimestamp(epoch_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if micros:
        return f"{stamp}.{(epoch_ms % 1000) * 1000 + micros:06d}Z"
    return f"{stamp}.{epoch_ms % 1000:03d}Z" if epoch_ms % 1000 else f"{stamp}Z"


def gateway_id(provider: str, job: dict[str, Any]) -> str:
    """The `id` the gateway turns this native job into (what `after` and the retrieve URL carry)."""
    if provider == "bedrock":
        return quote(job["jobArn"], safe="!~*'()")  # JavaScript's encodeURIComponent
    if provider == "azure-openai":
        return str(job["id"])
    return str(job["name"]).rsplit("/", 1)[-1]


def native_error(provider: str, status: int, message: str) -> Reply:
    """The error body each provider really sends (Google: google.rpc.Status; AWS: message + header)."""
    if provider == "bedrock":
        kind = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException"}
        return json_reply(status, {"message": message}, **{"x-amzn-ErrorType": kind.get(status, "Error")})
    if provider == "vertex-ai":
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
        code = (names | {500: "INTERNAL", 503: "UNAVAILABLE"}).get(status, "UNKNOWN")
        return json_reply(status, {"error": {"code": status, "message": message, "status": code}})
    if provider == "fireworks-ai":  # grpc-gateway's shape: a numeric google.rpc.Code
        number = {400: 3, 401: 16, 404: 5, 429: 8, 500: 13, 503: 14}.get(status, 2)
        return json_reply(status, {"code": number, "message": message})
    return json_reply(status, {"error": {"code": str(status), "message": message}})


class NativeFake:
    """One provider's fine-tuning API; `jobs` are native records, newest first, as the APIs list them.

    accept_job_id_as_token: False is the real behaviour (a page token the fake did not issue gets HTTP 400,
    so the gateway's `after=<job id>` fails); True treats a job id as "the jobs after this one", so
    full paging through the gateway works.
    """

    def __init__(
        self, provider: str, jobs: list[dict[str, Any]] | None = None, *, accept_job_id_as_token: bool = False
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"no native fake for {provider!r}; one of {PROVIDERS}")
        self.provider = provider
        self.jobs = list(make_native_jobs(provider, 30) if jobs is None else jobs)
        self.accept_job_id_as_token = accept_job_id_as_token
        self.default_page_size = DEFAULT_PAGE_SIZE[provider]
        self.requests: list[Seen] = []
        self.tokens: dict[str, int] = {}  # page token issued -> index of the first job of that page
        self.faults: deque[Reply] = deque()  # answered instead, one per request, before anything else
        self.rng = random.Random(provider)
        self.lock = threading.Lock()

    # -- the HTTP surface (tests.fake_api.serve calls respond) --
    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append(Seen(path, dict(params), dict(headers)))
            if self.faults:
                return self.faults.popleft()
            denied = self.check_auth(headers)
            if denied is not None:
                return denied
            route = ROUTES[self.provider](self, path)
            if route is None:
                return native_error(self.provider, 404, f"no such resource: {path}")
            kind, job_id = route
            if self.provider == "azure-openai" and "api-version" not in params:
                return native_error(self.provider, 404, "Resource not found")
            if kind == "list":
                return self.list_page(params)
            return self.one_job(unquote(job_id))

    def check_auth(self, headers: dict[str, str]) -> Reply | None:
        auth = headers.get("authorization", "")
        ok = {
            "bedrock": auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/")
            and f"/{AWS_REGION}/bedrock/aws4_request" in auth,
            "vertex-ai": auth == f"Bearer {VERTEX_TOKEN}",
            "fireworks-ai": auth == f"Bearer {FIREWORKS_API_KEY}",
            "azure-openai": headers.get("api-key") == AZURE_API_KEY,
        }[self.provider]
        if ok:
            return None
        if self.provider == "bedrock":
            return native_error("bedrock", 403, "The security token included in the request is invalid.")
        return native_error(self.provider, 401, "Request had invalid authentication credentials.")

    def list_page(self, params: dict[str, str]) -> Reply:
        size_param, token_param = LIST_PARAMS[self.provider]
        try:
            size = int(params.get(size_param) or self.default_page_size)
        except ValueError:
            return native_error(self.provider, 400, f"Invalid value for {size_param}")
        start = self.page_start(params.get(token_param, ""))
        if start is None:
            return native_error(self.provider, 400, "Invalid page token.")
        page = self.jobs[start : start + size]
        more = start + size < len(self.jobs)
        return json_reply(200, self.envelope(page, self.issue(start + size) if more else None, more))

    def page_start(self, token: str) -> int | None:
        """Index of the first job of the page a token names; None for a token this API would refuse."""
        first_page = ("", "1") if self.provider == "fireworks-ai" else ("",)  # the gateway sends "1"
        if token in first_page:
            return 0
        if token in self.tokens:
            return self.tokens[token]
        if self.provider == "azure-openai" or self.accept_job_id_as_token:
            ids = [gateway_id(self.provider, j) for j in self.jobs]
            for candidate in (token, quote(token, safe="!~*'()")):
                if candidate in ids:
                    return ids.index(candidate) + 1
        return None

    def issue(self, start: int) -> str:
        token = "".join(
            self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789_-") for _ in range(24)
        )
        self.tokens[token] = start
        return token

    def envelope(self, page: list[dict[str, Any]], token: str | None, more: bool) -> dict[str, Any]:
        if self.provider == "bedrock":
            body: dict[str, Any] = {"modelCustomizationJobSummaries": [bedrock_summary(j) for j in page]}
            return body | ({"nextToken": token} if token else {})
        if self.provider == "azure-openai":
            return {"data": page, "has_more": more, "object": "list"}
        key = "tuningJobs" if self.provider == "vertex-ai" else "supervisedFineTuningJobs"
        body = {key: page} | ({"nextPageToken": token} if token else {})
        return body | ({"totalSize": len(self.jobs)} if self.provider == "fireworks-ai" else {})

    def one_job(self, job_id: str) -> Reply:
        for job in self.jobs:
            native = job.get("jobArn") or job.get("name") or job.get("id")
            if job_id in (gateway_id(self.provider, job), native, job.get("jobName")):
                return json_reply(200, job)
        return native_error(self.provider, 404, f"Fine-tuning job {job_id} not found.")

    def list_requests(self) -> list[Seen]:
        return [r for r in self.requests if ROUTES[self.provider](self, r.path) == ("list", "")]


@contextmanager
def serve_native(fake: NativeFake) -> Iterator[str]:
    """Serve the fake on 127.0.0.1:0 in a thread, as tests.fake_api.serve does; yields its root URL."""
    with serve(fake) as base_url:  # type: ignore[arg-type]  # any object with respond() will do
        yield base_url.removesuffix("/v1")


BEDROCK_SUMMARY_KEYS = (
    "jobArn",
    "baseModelArn",
    "jobName",
    "status",
    "lastModifiedTime",
    "creationTime",
    "endTime",
    "customModelArn",
    "customModelName",
    "customizationType",
)


def bedrock_summary(job: dict[str, Any]) -> dict[str, Any]:
    """ListModelCustomizationJobs returns summaries: no failureMessage, data configs or hyperparameters."""
    return {k: job[k] for k in BEDROCK_SUMMARY_KEYS if k in job}


def _segments(path: str, prefix: list[str]) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    if parts[: len(prefix)] != prefix or len(parts) > len(prefix) + 1:
        return None
    return ("list", "") if len(parts) == len(prefix) else ("get", parts[-1])


ROUTES: dict[str, Callable[[NativeFake, str], tuple[str, str] | None]] = {
    "bedrock": lambda f, p: _segments(p, ["model-customization-jobs"]),
    "vertex-ai": lambda f, p: _segments(
        p, ["v1", "projects", VERTEX_PROJECT_ID, "locations", VERTEX_REGION, "tuningJobs"]
    ),
    "fireworks-ai": lambda f, p: _segments(
        p, ["v1", "accounts", FIREWORKS_ACCOUNT, "supervisedFineTuningJobs"]
    ),
    "azure-openai": lambda f, p: _segments(p, ["openai", "fine_tuning", "jobs"]),
}
LIST_PARAMS = {
    "bedrock": ("maxResults", "nextToken"),
    "vertex-ai": ("pageSize", "pageToken"),
    "fireworks-ai": ("pageSize", "pageToken"),
    "azure-openai": ("limit", "after"),
}


# -- realistic native jobs, newest first; `i` is the age rank (0 = newest) --
NOW_MS = 1_748_779_200_000  # 2025-06-01T12:00:00Z, as in the captured samples
STEP_MS = 10_817_000


def _status(i: int, rng: random.Random, in_flight: tuple[str, ...], ended: tuple[str, str, str]) -> str:
    """The newest jobs are still in flight, older ones succeeded (mostly), failed or were cancelled."""
    if i < 4:
        return in_flight[i % len(in_flight)]
    return rng.choices(ended, weights=[7, 2, 1])[0]


def bedrock_job(i: int, rng: random.Random) -> dict[str, Any]:
    """A GetModelCustomizationJob record; the list serves its summary fields only."""
    base = ("amazon.titan-text-express-v1:0:8k", "meta.llama3-1-8b-instruct-v1:0:128k")[i % 2]
    status = _status(
        i, rng, ("InProgress", "InProgress", "Stopping", "InProgress"), ("Completed", "Failed", "Stopped")
    )
    suffix, created = f"{rng.randrange(16**12):012x}", NOW_MS - STEP_MS * i - (i % 3) * 123
    job: dict[str, Any] = {
        "jobArn": f"arn:aws:bedrock:{AWS_REGION}:{AWS_ACCOUNT}:model-customization-job/{base}/{suffix}",
        "jobName": f"job-{i:04d}",
        "outputModelName": f"custom-{i:04d}",
        "roleArn": f"arn:aws:iam::{AWS_ACCOUNT}:role/BedrockFineTuning",
        "status": status,
        "creationTime": rfc3339(created),
        "lastModifiedTime": rfc3339(created + 60_000),
        "baseModelArn": f"arn:aws:bedrock:{AWS_REGION}::foundation-model/{base}",
        "hyperParameters": {"epochCount": str(1 + i % 3), "batchSize": "1", "learningRate": "0.00001"},
        "trainingDataConfig": {"s3Uri": f"s3://ft-bucket/job-{i:04d}/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": f"s3://ft-bucket/job-{i:04d}/val.jsonl"}]},
        "outputDataConfig": {"s3Uri": f"s3://ft-bucket/job-{i:04d}/output/"},
        "customModelName": f"custom-{i:04d}",
        "customizationType": "FINE_TUNING",
    }
    if status in ("Completed", "Failed", "Stopped"):
        job["endTime"] = rfc3339(created + 2_340_000 + 20_000 * i)
    if status == "Completed":
        arn = f"arn:aws:bedrock:{AWS_REGION}:{AWS_ACCOUNT}:custom-model/{base}/{suffix}m"
        job |= {"outputModelArn": arn, "customModelArn": arn, "trainingMetrics": {"trainingLoss": 0.42}}
    if status == "Failed":
        job["failureMessage"] = "Training data validation failed: row 12 is not valid JSON."
    return job


def vertex_job(i: int, rng: random.Random) -> dict[str, Any]:
    """A TuningJob resource (v1), as tuningJobs.list and .get return it."""
    job_id = str(4_000_000_000_000_000_000 + 7919 * i)
    state = _status(
        i,
        rng,
        ("JOB_STATE_RUNNING", "JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING"),
        ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"),
    )
    created = NOW_MS - STEP_MS * i - 124
    parent = f"projects/{VERTEX_PROJECT_NUMBER}/locations/{VERTEX_REGION}"
    spec: dict[str, Any] = {
        "trainingDatasetUri": f"gs://ft-bucket/job{i:04d}/train.jsonl",
        "hyperParameters": {
            "epochCount": str(3 + i % 3),
            "learningRateMultiplier": 1,
            "adapterSize": "ADAPTER_SIZE_FOUR",
        },
    }
    if i % 4 != 0:
        spec["validationDatasetUri"] = f"gs://ft-bucket/job{i:04d}/val.jsonl"
    job: dict[str, Any] = {
        "name": f"{parent}/tuningJobs/{job_id}",
        "tunedModelDisplayName": f"tuned-{i:04d}",
        "baseModel": ("gemini-1.5-pro-002", "gemini-1.5-flash-002", "gemini-2.0-flash-001")[i % 3],
        "supervisedTuningSpec": spec,
        "state": state,
        "createTime": rfc3339(created, micros=543),
        "updateTime": rfc3339(created + 90_000, micros=210),
    }
    if state not in ("JOB_STATE_PENDING", "JOB_STATE_QUEUED"):
        job["startTime"] = rfc3339(created + 30_000, micros=101)
        count = str(500 + i)
        job["tuningDataStats"] = {
            "supervisedTuningDataStats": {
                "tuningDatasetExampleCount": count,
                "totalTuningCharacterCount": str(240_000 + 10 * i),
                "totalBillableTokenCount": str(60_000 + 10 * i),  # int64: a JSON string
                "tuningStepCount": str(3 * (500 + i)),
            }
        }
    if state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        job["endTime"] = rfc3339(created + 3_420_000 + 20_000 * i, micros=7)
    if state == "JOB_STATE_SUCCEEDED":
        model = f"{parent}/models/{int(job_id) + 1}@1"
        job["tunedModel"] = {"model": model, "endpoint": f"{parent}/endpoints/{int(job_id) + 2}"}
    if state == "JOB_STATE_FAILED":
        job["error"] = {
            "code": 3,
            "message": "Dataset validation failed: 12 examples exceed the token limit.",
        }
    if state == "JOB_STATE_CANCELLED" and i % 2:
        job["error"] = {"code": 1, "message": "CANCELED"}
    return job


def vertex_preference_job(i: int) -> dict[str, Any]:
    """A preference-tuning job: no supervisedTuningSpec, which makes the gateway fail the whole page (500)."""
    job = vertex_job(i, random.Random(i))
    spec = job.pop("supervisedTuningSpec")
    job["preferenceOptimizationSpec"] = {"trainingDatasetUri": spec["trainingDatasetUri"]}
    return job


def fireworks_job(i: int, rng: random.Random) -> dict[str, Any]:
    """A SupervisedFineTuningJob resource."""
    job_id = f"{rng.randrange(16**10):010x}"
    state = _status(
        i,
        rng,
        ("JOB_STATE_RUNNING", "JOB_STATE_VALIDATING", "JOB_STATE_CREATING", "JOB_STATE_WRITING_RESULTS"),
        ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"),
    )
    created = NOW_MS - STEP_MS * i - 500
    base = ("llama-v3p1-8b-instruct", "qwen2p5-7b-instruct", "mixtral-8x7b-instruct")[i % 3]
    job: dict[str, Any] = {
        "name": f"accounts/{FIREWORKS_ACCOUNT}/supervisedFineTuningJobs/{job_id}",
        "displayName": f"job-{i:04d}",
        "createTime": rfc3339(created),
        "state": state,
        "status": {"code": "OK", "message": ""},
        "createdBy": "ml-team@example.com",
        "dataset": f"accounts/{FIREWORKS_ACCOUNT}/datasets/ds-{i:04d}",
        "baseModel": f"accounts/fireworks/models/{base}",
        "outputModel": f"accounts/{FIREWORKS_ACCOUNT}/models/ft-{job_id}",
        "epochs": 1 + i % 3,
        "learningRate": 0.0001,
        "loraRank": 8,
        "maxContextLength": 8192,
        "earlyStop": False,
        "isTurbo": False,
        "evalAutoCarveout": i % 2 == 0,
        "jinjaTemplate": "",
        "warmStartFrom": "",
        "wandbConfig": None,
    }
    if i % 2:
        job["evaluationDataset"] = f"accounts/{FIREWORKS_ACCOUNT}/datasets/eval-{i:04d}"
    if state in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        job["completedTime"] = rfc3339(created + 2_220_000 + 20_000 * i)
    if state == "JOB_STATE_FAILED":
        job["status"] = {"code": "INVALID_ARGUMENT", "message": f"dataset row {17 + i}: missing 'messages'"}
    return job


def azure_job(i: int, rng: random.Random) -> dict[str, Any]:
    """An Azure OpenAI fine-tuning job: OpenAI's shape with Azure's own statuses, times in seconds."""
    status = _status(
        i, rng, ("running", "pending", "notRunning", "created"), ("succeeded", "failed", "cancelled")
    )
    created = (NOW_MS - STEP_MS * i) // 1000
    model = ("gpt-4o-mini-2024-07-18", "gpt-35-turbo-0125")[i % 2]
    job: dict[str, Any] = {
        "id": f"ftjob-{rng.randrange(16**32):032x}",
        "object": "fine_tuning.job",
        "created_at": created,
        "finished_at": None,
        "status": status,
        "model": model,
        "fine_tuned_model": None,
        "training_file": f"file-{rng.randrange(16**32):032x}",
        "validation_file": None,
        "result_files": [],
        "hyperparameters": {"n_epochs": 1 + i % 3, "batch_size": 1, "learning_rate_multiplier": 1},
        "trained_tokens": None,
        "seed": rng.randrange(2**31),
        "suffix": f"nightly-{i:04d}",
        "estimated_finish": created + 3600 if status == "running" else None,
        "error": {},
    }
    if status in ("succeeded", "failed", "cancelled"):
        job["finished_at"] = created + 2340 + 20 * i
    if status == "succeeded":
        job |= {"fine_tuned_model": f"{model}.ft-{job['id'][-32:]}", "trained_tokens": 60_000 + 10 * i}
        job["result_files"] = [f"file-{rng.randrange(16**32):032x}"]
    if status == "failed":
        job["error"] = {"code": "invalidTrainingFile", "message": "The training file has 3 bad lines."}
    return job


MAKERS: dict[str, Callable[[int, random.Random], dict[str, Any]]] = {
    "bedrock": bedrock_job,
    "vertex-ai": vertex_job,
    "fireworks-ai": fireworks_job,
    "azure-openai": azure_job,
}


def make_native_jobs(provider: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n native jobs of `provider`, newest first; the first four are still in flight."""
    rng = random.Random(f"{provider}:{seed}")
    return [MAKERS[provider](i, rng) for i in range(n)]
