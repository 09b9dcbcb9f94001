"""Prometheus metrics: what an operator graphs and alerts on (README: Operations).

Every process counts into prometheus-client's registry. With `PROMETHEUS_MULTIPROC_DIR`
set (`wxcrm serve --workers N` sets one when the operator has not), each process writes its
values to files in that directory and any API process's `/metrics` adds up every process
of the machine that uses the directory, `wxcrm worker` processes included. The directory
must be chosen before prometheus-client is imported: the library reads it then.

Figures read from the database (the outbox backlog) are not counted here: the process
that answers the scrape reads them (`ops.metrics`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client goes multi-process when either spelling is merely present, an empty one
# too (it would then write into the working directory): only a named directory counts.
for _spelling in (MULTIPROCESS_DIR_VARIABLE, MULTIPROCESS_DIR_VARIABLE.lower()):
    if not os.environ.get(_spelling, "x").strip():
        del os.environ[_spelling]
# Read once, as prometheus-client reads it: what it was when the library was imported
# decides for the life of the process.
_MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or os.environ.get(
    MULTIPROCESS_DIR_VARIABLE.lower()
)
# prometheus-client opens its files in that directory as soon as the metrics below are
# declared: one named but not made yet (a fresh /run after a boot) is made first.
if _MULTIPROCESS_DIR:
    try:
        Path(_MULTIPROCESS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as refused:  # one line, not a traceback from an import
        raise SystemExit(
            f"error: {MULTIPROCESS_DIR_VARIABLE}={_MULTIPROCESS_DIR} cannot be made"
            f" ({refused.strerror}); create it for this user (README: Deployment) or unset it"
        ) from None

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from wxcrm.core.aftercommit import when_committed  # noqa: E402

CONTENT_TYPE = CONTENT_TYPE_LATEST
if _MULTIPROCESS_DIR:
    # A live gauge's file is named by pid: one left by an earlier process that had this pid
    # would be carried on as this one's value.
    multiprocess.mark_process_dead(os.getpid(), _MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
# No `_created` series beside each counter: Prometheus needs none, and they double the lines.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds; the API answers in milliseconds, a slow list or an import in seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "wxcrm_http_requests",
    "HTTP requests answered, by route template, method and status; unmatched: answered"
    " before or without a route (404, a body too large, a NUL refused, a CORS preflight).",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "wxcrm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)

DELIVERIES = Counter(
    "wxcrm_notification_deliveries",
    "Delivery attempts of outbox messages by outcome (sent, retry: to be tried again, failed:"
    " given up, skipped: nothing could be sent, when queued or when claimed) and WeChat"
    " errcode (none when it gave none). Counted when WeChat answers: a worker that dies before"
    " recording a send has it counted, and sent again by another.",
    ["outcome", "errcode"],
)

TOKEN_FETCHES = Counter(
    "wxcrm_wechat_token_fetches",
    "Calls to WeChat for an access token, by forced (force_refresh) and outcome (ok, error).",
    ["forced", "outcome"],
)

RATE_LIMIT_REFUSALS = Counter(
    "wxcrm_rate_limit_refusals",
    "Requests refused (429) by a rate limit, by rule.",
    ["rule"],
)

POOL_CLAIMS = Counter(
    "wxcrm_public_pool_claims",
    "Customers advisors took from the public pool (公海) themselves.",
)
POOL_RECYCLES = Counter(
    "wxcrm_public_pool_recycles",
    "Customers returned to the public pool by the recycling job (not followed up in time).",
)

# A gauge summed over the live processes; a dead process's share leaves with it.
DB_CONNECTIONS_IN_USE = Gauge(
    "wxcrm_db_pool_connections_in_use",
    "Pooled database connections checked out now, over every live process.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITS = Histogram(
    "wxcrm_db_pool_wait_seconds",
    "Time a checkout waited for a pooled connection, for checkouts that had to wait.",
    buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0),
)
DB_POOL_TIMEOUTS = Counter(
    "wxcrm_db_pool_timeouts",
    "Checkouts that gave up waiting for a pooled connection (a request answers 503 then).",
)


def multiprocess_dir() -> Path | None:
    """The directory this process counts into, if it counts with others."""
    return Path(_MULTIPROCESS_DIR) if _MULTIPROCESS_DIR else None


_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live gauges of processes that are gone (killed, or ended without a word)."""
    for path in directory.glob("gauge_live*.db"):
        match = _PID_IN_NAME.search(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            # Another scrape may be removing the same files at the same moment.
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:
            continue  # alive, another user's


def exposition() -> bytes:
    """This machine's counters in Prometheus' text format: every process's that writes to
    the multi-process directory, or this process's alone."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    _forget_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def count_on_commit(session: AsyncSession, counter: Counter, amount: float = 1) -> None:
    """Count `amount` when the session's transaction commits; nothing if it rolls back."""
    if amount:
        when_committed(session, lambda: counter.inc(amount))


def errcode_label(errcode: int | None) -> str:
    return "none" if errcode is None else str(errcode)
