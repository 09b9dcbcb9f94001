"""A small HTTP/1.1 load generator for the benchmarks (a benchmark tool, not product code).

Why not httpx: on this 2-core machine httpx costs about 1 ms of client CPU per request
(measured), so a client driving a few thousand requests per second would use a whole core
by itself and measure its own limit, not the server's. This one writes prebuilt request
bytes on plain `asyncio.open_connection` streams and reads back only the status line, the
header block and a `Content-Length` body: a few tens of microseconds per request.

What it does: `connections` keep-alive connections, each sending one request at a time
(closed loop) for `warmup` seconds, whose requests are not counted, then for `seconds`
seconds, whose requests are timed with `time.perf_counter` from the write of the request to
the last byte of its body. Every response's status is counted, so an endpoint that fails
fast cannot pass for a fast one. No chunked bodies (the server sends `Content-Length` for
its JSON answers; a response without one is counted as a protocol error).

It runs in a process of its own (`measure`), sharing no interpreter with the caller, and
samples the CPU time of the processes it is told to watch (by pid, or all of one name, such
as PostgreSQL's backends) and the machine's over the timed window only.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# The i-th request's bytes, for i = 0, 1, 2, ... across all connections (warm-up included).
# It must pickle: the generator runs in a spawned process (a module-level class or function).
Requests = Callable[[int], bytes]

CONNECT_TIMEOUT_S = 10.0
# A request that has not been answered by then counts as failed (and its connection is
# reopened): a stuck server must not hang the benchmark.
RESPONSE_TIMEOUT_S = 60.0


def request_bytes(
    method: str,
    path: str,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One HTTP/1.1 keep-alive request, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


@dataclass(frozen=True)
class Same:
    """The same request every time."""

    data: bytes

    def __call__(self, _index: int) -> bytes:
        return self.data


@dataclass
class Result:
    connections: int
    seconds: float  # the timed window, as measured
    latencies: list[float]  # seconds, one per request timed in the window
    statuses: Counter[int]  # in the window; 0 = transport or protocol error
    totals: Counter[int]  # every request, warm-up included
    tallies: Counter[bytes]  # per `tally` substring: 200 bodies containing it, all requests
    cpu: dict[int, float]  # CPU seconds of each watched pid over the window
    named_cpu: dict[str, float]  # CPU seconds of all processes of each watched name
    client_cpu: float  # this generator's CPU seconds over the window
    machine_busy: float  # the machine's busy fraction (all cores) over the window
    errors: list[str] = field(default_factory=list)  # the first few error descriptions

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    def failures(self, expected: int = 200) -> int:
        return sum(n for status, n in self.statuses.items() if status != expected)

    def other_cores(self) -> float:
        """Cores busy, on average, with anything but the watched processes and this client:
        well above 0, the machine was shared and the figures are not this code's alone."""
        ours = sum(self.cpu.values()) + sum(self.named_cpu.values()) + self.client_cpu
        return max(0.0, self.machine_busy * (os.cpu_count() or 1) - ours / self.seconds)

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


class _ProtocolError(Exception):
    pass


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_by_name(name: str) -> dict[int, float]:
    """CPU seconds of every process whose command name is `name` (e.g. PostgreSQL's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found[int(entry.name)] = _process_cpu(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class _Run:
    def __init__(
        self,
        host: str,
        port: int,
        requests: Requests,
        connections: int,
        warmup: float,
        seconds: float,
        tally: tuple[bytes, ...],
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.connections = connections
        self.tally = tally
        now = time.perf_counter()
        self.window_start = now + warmup
        self.window_end = self.window_start + seconds
        self.index = itertools.count()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.totals: Counter[int] = Counter()
        self.tallies: Counter[bytes] = Counter()
        self.errors: list[str] = []

    async def connection(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while time.perf_counter() < self.window_end:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
                    )
                assert reader is not None
                data = self.requests(next(self.index))
                started = time.perf_counter()
                try:
                    writer.write(data)
                    status, body, close = await asyncio.wait_for(
                        self._response(reader), RESPONSE_TIMEOUT_S
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError, _ProtocolError) as e:
                    status, body, close = 0, b"", True
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(e).__name__}: {e}")
                finished = time.perf_counter()
                self.totals[status] += 1
                if status == 200:
                    for needle in self.tally:
                        if needle in body:
                            self.tallies[needle] += 1
                if self.window_start <= started and finished <= self.window_end:
                    self.latencies.append(finished - started)
                    self.statuses[status] += 1
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise _ProtocolError(f"bad status line {lines[0]!r}") from None
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise _ProtocolError("chunked responses are not supported")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise _ProtocolError(f"a {status} response without Content-Length")
        return status, await reader.readexactly(length), close


async def _drive(
    host: str,
    port: int,
    requests: Requests,
    *,
    connections: int,
    warmup: float,
    seconds: float,
    watch: tuple[int, ...],
    watch_names: tuple[str, ...],
    tally: tuple[bytes, ...],
) -> Result:
    run = _Run(host, port, requests, connections, warmup, seconds, tally)

    def sample() -> tuple[dict[int, float], dict[str, dict[int, float]], float, tuple[int, int]]:
        cpu = {pid: _process_cpu(pid) for pid in watch}
        named = {name: _cpu_by_name(name) for name in watch_names}
        return cpu, named, time.process_time(), _machine_ticks()

    async def sampler() -> tuple[dict[int, float], dict[str, float], float, tuple[int, int]]:
        await asyncio.sleep(max(0.0, run.window_start - time.perf_counter()))
        before = sample()
        await asyncio.sleep(max(0.0, run.window_end - time.perf_counter()))
        after = sample()
        cpu = {pid: after[0][pid] - before[0][pid] for pid in watch}
        named = {
            # A process started inside the window counts from zero.
            name: sum(t - before[1][name].get(pid, 0.0) for pid, t in after[1][name].items())
            for name in watch_names
        }
        busy = after[3][0] - before[3][0]
        total = after[3][1] - before[3][1]
        return cpu, named, after[2] - before[2], (busy, total)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(run.connection() for _ in range(connections)))
    cpu, named_cpu, client_cpu, (busy, total) = await sampling
    return Result(
        connections=connections,
        seconds=run.window_end - run.window_start,
        latencies=run.latencies,
        statuses=run.statuses,
        totals=run.totals,
        tallies=run.tallies,
        cpu=cpu,
        named_cpu=named_cpu,
        client_cpu=client_cpu,
        machine_busy=busy / total if total else 0.0,
        errors=run.errors,
    )


def _in_child(
    host: str,
    port: int,
    requests: Requests,
    connections: int,
    warmup: float,
    seconds: float,
    watch: tuple[int, ...],
    watch_names: tuple[str, ...],
    tally: tuple[bytes, ...],
) -> Result:
    return asyncio.run(
        _drive(
            host,
            port,
            requests,
            connections=connections,
            warmup=warmup,
            seconds=seconds,
            watch=watch,
            watch_names=watch_names,
            tally=tally,
        )
    )


def measure(
    host: str,
    port: int,
    requests: Requests,
    *,
    connections: int = 64,
    warmup: float = 2.0,
    seconds: float = 10.0,
    watch: tuple[int, ...] = (),
    watch_names: tuple[str, ...] = (),
    tally: tuple[bytes, ...] = (),
) -> Result:
    """Drive `requests` at host:port from a process of its own and return what it saw."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(
            _in_child,
            host,
            port,
            requests,
            connections,
            warmup,
            seconds,
            watch,
            watch_names,
            tally,
        ).result()
