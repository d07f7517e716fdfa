"""The HTTP service under load, on 127.0.0.1: throughput, latency, memory, losses, start-up.

    python bench/service.py load [--clients 16 --seconds 60]        recognize + enroll: req/s, p50/p99, errors, lost
    python bench/service.py memory [--requests 10000]               server RSS after 10% and 100% of the requests
    python bench/service.py throughput [--images 200 --workers 2 --clients 8 --seconds 20 --batch-images 8]
                                       [--rate R]                   HTTP recognize vs `faceprint identify` on the
                                                                    same faces-dev images; p99/p50 at 80% load
                                                                    (--rate R: only the paced load, at R req/s)
    python bench/service.py ratelimit [--requests 5000]             the shared rate limit's cost per request
    python bench/service.py startup [--templates 50000 --runs 1 --data DIR] [--phases]
                                                                    process start -> first recognize answer

Every run starts its own `faceprint serve` on a free port of 127.0.0.1 with a fresh data directory, and
stops it. The machine is shared: compare figures within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.service_server import free_port, start_server, stop_server  # noqa: E402

import faceprint  # noqa: E402
from faceprint.apikeys import KeyStore  # noqa: E402
from faceprint.gallery.records import NewTemplate  # noqa: E402
from faceprint.tenancy import Tenancy  # noqa: E402

HIRES = ROOT / "tests" / "data" / "faces-hires"
GROUP = HIRES / "multi" / "kit_harington_and_rose_leslie.jpg"
FAST = ["--rate-limit", "1000000", "--rate-burst", "1000000"]


class Server:
    """A fresh data directory with a key and a collection ``bench``, and `faceprint serve` on it."""

    def __init__(self, *args: str, data: Path | None = None, poll: float = 0.2) -> None:
        self.owns_data = data is None  # a data directory of its own is removed when the server stops
        self.data = data or Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
        _, token = KeyStore(self.data).create("bench", ["read", "enroll", "recognize", "admin"])
        self.headers = {"Authorization": f"Bearer {token}"}
        if not Tenancy(self.data).exists("bench", "bench"):
            Tenancy(self.data).create("bench", "bench").close()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.process = start_server(self.data, self.port, *FAST, *args, poll=poll)
        self.health = time.perf_counter() - self.started

    def rss_mib(self) -> float:
        """Resident memory of the server process and its children (uvicorn's workers), in MiB."""
        pids = [self.process.pid, *_children(self.process.pid)]
        return sum(_rss_kib(pid) for pid in pids) / 1024

    def cpu_seconds(self, children: bool = True) -> float:
        """CPU time (user + system) the server process (and its children) have used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [self.process.pid, *(_children(self.process.pid) if children else [])]
        return sum(_cpu_ticks(pid) for pid in pids) / ticks

    def enroll(self, client: httpx.Client, name: str, photo: bytes) -> tuple[int, list[int]]:
        person = client.post(f"{self.base}/v1/collections/bench/people", json={"name": name}, headers=self.headers)
        person.raise_for_status()
        added = client.post(
            f"{self.base}/v1/collections/bench/people/{person.json()['id']}/faces?largest=true",
            files={"images": ("p.jpg", photo, "image/jpeg")},
            headers=self.headers,
        )
        added.raise_for_status()
        return person.json()["id"], added.json()["added"]

    def recognize(self, client: httpx.Client, photo: bytes) -> httpx.Response:
        return client.post(
            f"{self.base}/v1/collections/bench/recognize",
            files={"image": ("p.jpg", photo, "image/jpeg")},
            headers=self.headers,
        )

    def stop(self) -> None:
        stop_server(self.process)
        if self.owns_data:
            shutil.rmtree(self.data, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in found]


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def drive(
    clients: int, seconds: float, request: Callable[[httpx.Client, int, int], None]
) -> tuple[list[float], list[str]]:
    """``clients`` threads calling ``request(client, thread, turn)`` back to back for ``seconds``: latencies, errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop(number: int) -> None:
        with httpx.Client(timeout=120) as client:
            turn = 0
            while time.perf_counter() < deadline:
                turn += 1
                start = time.perf_counter()
                try:
                    request(client, number, turn)
                except (httpx.HTTPError, AssertionError) as error:
                    with lock:
                        errors.append(repr(error)[:200])
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    return latencies, errors


def percentiles(latencies: list[float]) -> str:
    values = np.array(latencies) * 1000
    return f"p50 {np.percentile(values, 50):.0f} ms, p99 {np.percentile(values, 99):.0f} ms"


def load(args: argparse.Namespace) -> None:
    photos = [p.read_bytes() for p in sorted(HIRES.glob("*/*.jpg")) if p.parent.name != "multi"]
    group = GROUP.read_bytes()
    server = Server()
    acknowledged: list[tuple[int, list[int]]] = []
    try:
        with httpx.Client(timeout=120) as client:
            server.enroll(client, "Kit Harington", (HIRES / "Kit_Harington" / "Kit_Harington_0001.jpg").read_bytes())

        def request(client: httpx.Client, number: int, turn: int) -> None:
            if turn % 2:
                answer = server.recognize(client, group)
                assert answer.status_code == 200, answer.text
            else:
                acknowledged.append(server.enroll(client, f"p{number}-{turn}", photos[turn % len(photos)]))

        latencies, errors = drive(args.clients, args.seconds, request)
        with httpx.Client(timeout=120) as client:
            lost = sum(
                not set(faces)
                <= {
                    f["id"]
                    for f in client.get(
                        f"{server.base}/v1/collections/bench/people/{person}/faces?limit=500", headers=server.headers
                    ).json()["items"]
                }
                for person, faces in acknowledged
            )
    finally:
        server.stop()
    print(
        f"load: {args.clients} clients x {args.seconds:.0f} s: {len(latencies)} requests, "
        f"{len(latencies) / args.seconds:.1f} req/s, {percentiles(latencies)}, errors {len(errors)}, "
        f"enrollments acknowledged {len(acknowledged)}, lost {lost}"
    )
    for error in errors[:5]:
        print("  error:", error)


def memory(args: argparse.Namespace) -> None:
    probes = [(common.faces_dev() / p).read_bytes() for p in common.read_images(common.faces_dev())[0][:200]]
    server = Server()
    done = 0
    checkpoints = {args.requests // 10: 0.0, args.requests: 0.0}
    try:
        with httpx.Client(timeout=120) as client:
            server.enroll(client, "Kit Harington", (HIRES / "Kit_Harington" / "Kit_Harington_0001.jpg").read_bytes())
        lock = threading.Lock()

        def work(number: int) -> None:
            nonlocal done
            with httpx.Client(timeout=120) as client:
                while True:
                    with lock:
                        if done >= args.requests:
                            return
                        done += 1
                        index = done
                    assert server.recognize(client, probes[index % len(probes)]).status_code == 200
                    if index in checkpoints:
                        checkpoints[index] = server.rss_mib()

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(work, range(args.clients)))
    finally:
        server.stop()
    first, last = checkpoints.values()
    print(
        f"memory: server RSS after {args.requests // 10} requests {first:.0f} MiB, after {args.requests} "
        f"{last:.0f} MiB ({(last / first - 1) * 100:+.1f}%)"
    )


def throughput(args: argparse.Namespace) -> None:
    paths = [common.faces_dev() / p for p in common.read_images(common.faces_dev())[0][: args.images]]
    probes = [p.read_bytes() for p in paths]
    server = Server("--workers", str(args.workers), "--batch-images", str(args.batch_images))
    try:
        with httpx.Client(timeout=120) as client:
            server.enroll(client, "Kit Harington", (HIRES / "Kit_Harington" / "Kit_Harington_0001.jpg").read_bytes())
            while client.get(f"{server.base}/ready").status_code != 200:  # every worker warms up at its start
                time.sleep(0.1)
        if args.rate is None:
            cli_rate = _cli_rate(server, paths, args.workers)

            def request(client: httpx.Client, number: int, turn: int) -> None:
                answer = server.recognize(client, probes[(number * 997 + turn) % len(probes)])
                assert answer.status_code == 200, answer.text

            latencies, errors = drive(args.clients, args.seconds, request)
            http_rate = len(latencies) / args.seconds
            print(
                f"throughput: `faceprint identify` {cli_rate:.1f} images/s (whole command, {args.workers} workers); "
                f"HTTP recognize {http_rate:.1f} images/s ({args.workers} server workers, {args.clients} clients, "
                f"{percentiles(latencies)}, errors {len(errors)}) = {http_rate / cli_rate * 100:.0f}% of the CLI"
            )
        rate = args.rate or 0.8 * http_rate
        cpu, load = server.cpu_seconds(), os.getloadavg()[0]
        answers = _paced(server, probes, rate, args.seconds)
        cpu = (server.cpu_seconds() - cpu) / args.seconds
    finally:
        server.stop()
    latencies = [a.latency for a in answers if a.status == 200]
    ratio = np.percentile(latencies, 99) / np.percentile(latencies, 50)
    server_times = [a.phases.get("total", 0.0) for a in answers if a.status == 200]
    print(
        f"  paced at {rate:.1f} req/s{'' if args.rate else ' (80% of that load)'}, batches of up to "
        f"{args.batch_images}: {percentiles(latencies)}, p99/p50 {ratio:.2f}, errors "
        f"{sum(a.status != 200 for a in answers)}; in the server: {percentiles(server_times)}; server CPU "
        f"{cpu:.2f} cores, machine load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(_tail_report(answers))


def _cli_rate(server: Server, paths: list[Path], workers: int) -> float:
    """Images per second of `faceprint identify` over ``paths`` against the server's collection (whole command)."""
    folder = Path(tempfile.mkdtemp(prefix="faceprint-bench-images-"))
    try:
        for path in paths:
            (folder / path.name).write_bytes(path.read_bytes())
        gallery = Tenancy(server.data).collection_dir("bench", "bench") / "gallery.db"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "faceprint", "identify", str(folder), "--db", str(gallery), "--json",
             "--workers", str(workers)],
            capture_output=True, check=False,
        )  # fmt: skip
        return len(paths) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Answer:
    """One paced request: its latency counted from when it was due to leave, how late the generator sent it,
    and the server's own timings of it (``Server-Timing``: phase -> seconds, and the answering process)."""

    latency: float
    late: float
    status: int
    phases: dict[str, float]
    process: str
    batch: str


def _paced(server: Server, probes: list[bytes], rate: float, seconds: float) -> list[Answer]:
    """Requests sent at a fixed rate whatever the answers take (an open loop: a slow answer does not hold the
    next request back), from one asyncio loop over kept-alive connections. Each latency counts from when the
    request was due, so a generator late to send adds to it instead of hiding it."""
    return asyncio.run(_open_loop(server, probes, rate, seconds))


async def _open_loop(server: Server, probes: list[bytes], rate: float, seconds: float) -> list[Answer]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(index: int, due: float) -> Answer:
            sent = time.perf_counter()
            try:
                answer = await client.post(
                    f"{server.base}/v1/collections/bench/recognize",
                    files={"image": ("p.jpg", probes[index % len(probes)], "image/jpeg")},
                    headers=server.headers,
                )
            except httpx.HTTPError as error:  # an error, counted as one: the run goes on
                print("  error:", repr(error)[:200])
                return Answer(time.perf_counter() - due, sent - due, 0, {}, "?", "?")
            phases, notes = _server_timing(answer.headers.get("server-timing", ""))
            return Answer(
                time.perf_counter() - due, sent - due, answer.status_code, phases,
                notes.get("process", "?"), notes.get("pipeline", "?"),
            )  # fmt: skip

        begin, tasks = time.perf_counter() + 0.05, []
        for index in range(int(rate * seconds)):
            due = begin + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(index, due)))
        return list(await asyncio.gather(*tasks))


def _server_timing(header: str) -> tuple[dict[str, float], dict[str, str]]:
    """``Server-Timing`` as (phase -> seconds, phase -> description)."""
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in header.split(","))):
        name, *params = entry.split(";")
        for param in params:
            field, _, value = param.partition("=")
            if field == "dur":
                seconds[name] = float(value) / 1000
            elif field == "desc":
                notes[name] = value.strip('"')
    return seconds, notes


def _tail_report(answers: list[Answer]) -> str:
    """Where the time of the median request and of the slowest 1% went: each server phase's mean, the server's
    total, what the client and the network added, and which process and batch sizes served the slowest."""
    ok = [a for a in answers if a.status == 200]
    p99 = np.percentile([a.latency for a in ok], 99)
    slow = [a for a in ok if a.latency >= p99]
    phases = sorted({phase for a in ok for phase in a.phases} - {"total"})

    def row(group: list[Answer]) -> str:
        def mean(values: list[float]) -> str:
            return f"{np.mean(values) * 1000:.0f}"

        parts = [f"{phase} {mean([a.phases.get(phase, 0.0) for a in group])}" for phase in phases]
        parts.append(f"server total {mean([a.phases.get('total', 0.0) for a in group])}")
        parts.append(f"client+network {mean([a.latency - a.phases.get('total', 0.0) for a in group])}")
        parts.append(f"of which sent late {mean([a.late for a in group])}")
        return ", ".join(parts) + " ms"

    middle = sorted(ok, key=lambda a: a.latency)[len(ok) // 4 : 3 * len(ok) // 4]
    processes = Counter(a.process for a in ok)
    return (
        f"    the middle half (means): {row(middle)}\n"
        f"    the slowest 1% ({len(slow)}): {row(slow)}; batches {dict(Counter(a.batch for a in slow))}, served by "
        f"processes that served {sorted(processes[a.process] for a in slow)} requests in all\n"
        f"    requests per server process: {sorted(processes.values(), reverse=True)}; batches of all: "
        f"{dict(sorted(Counter(a.batch for a in ok).items()))}"
    )


def startup(args: argparse.Namespace) -> None:
    # The server reads faceprint's compiled bytecode, as `pip install` leaves it: where PYTHONDONTWRITEBYTECODE is set
    # (this sandbox), every start compiled ~60 modules from source instead (0.13 s of CPU; BENCHMARKS.md).
    compileall.compile_dir(Path(faceprint.__file__).parent, quiet=1)
    data = args.data or Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
    try:
        if not Tenancy(data).exists("bench", "bench"):
            _random_collection(data, args.templates)
        with Tenancy(data).open("bench", "bench") as gallery:
            templates = gallery.template_count()
            if gallery.stale_measurement():  # as a collection in service has it: else each start measures anew
                seconds = gallery.measure_identification().seconds
                print(f"startup: the collection measured itself once ({seconds:.0f} s)")
        group = GROUP.read_bytes()
        for _ in range(args.runs):
            # The first recognize request is sent as soon as /health answers (asked every 10 ms): it waits in the
            # server for whatever of the start-up is left (the models' warm-up), as a client's first request would.
            server = Server(data=data, poll=0.01)
            try:
                with httpx.Client(timeout=120) as client:
                    answer = server.recognize(client, group)
                    first = time.perf_counter() - server.started
                    cpu, own_cpu = server.cpu_seconds(), server.cpu_seconds(children=False)
                    assert answer.status_code == 200, answer.text
                    again = time.perf_counter()
                    server.recognize(client, group)
                    warm = time.perf_counter() - again
            finally:
                server.stop()
            print(
                f"startup: {templates} templates: process start -> /health {server.health:.2f} s, "
                f"-> first recognize answer {first:.2f} s, server CPU time by then {cpu:.2f} s, of which the server "
                f"process {own_cpu:.2f} s and its start-up helper {cpu - own_cpu:.2f} s (the request sent at "
                f"/health; the next one {warm:.2f} s)"
            )
        if args.phases:  # the same start-up step by step, in a fresh interpreter over the same collection
            subprocess.run([sys.executable, str(Path(__file__).with_name("startup_phases.py")), str(data)], check=True)
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)


def _random_collection(data: Path, count: int) -> None:
    """The collection bench/bench of ``count`` random templates (5 per person) with its saved index."""
    with Tenancy(data).create("bench", "bench") as gallery:
        rng = np.random.default_rng(0)
        per_person, dimension = 5, gallery.options.model.dimension
        for start in range(0, count // per_person, 500):
            with gallery.store.transaction() as db:
                for person in range(start, min(start + 500, count // per_person)):
                    vectors = rng.normal(size=dimension) + 0.4 * rng.normal(size=(per_person, dimension))
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    person_id = gallery.store.ensure_person(db, f"person-{person:05d}", None, None)
                    gallery.store.add_templates(db, person_id, [NewTemplate(v, gallery.model_id) for v in vectors])
        gallery.rebuild_index()  # as a served collection would have it: the saved index on disk


def rate_limit(args: argparse.Namespace) -> None:
    """What the shared rate limit costs a request: one token taken from the key's bucket in limits.db."""
    from faceprint.ratelimit import RateLimits  # here: the other commands also run on checkouts without it

    data = Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
    try:
        limits = RateLimits(data, rate=1e9, burst=10**9)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.requests):
            limits.take("bench")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        limits.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(f"rate limit: {wall / args.requests * 1e6:.0f} us wall, {cpu / args.requests * 1e6:.0f} us CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("load")
    run.add_argument("--clients", type=int, default=16)
    run.add_argument("--seconds", type=float, default=60)
    run = commands.add_parser("memory")
    run.add_argument("--requests", type=int, default=10_000)
    run.add_argument("--clients", type=int, default=4)
    run = commands.add_parser("throughput")
    run.add_argument("--images", type=int, default=200)
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--clients", type=int, default=8)
    run.add_argument("--seconds", type=float, default=20)
    run.add_argument("--batch-images", type=int, default=8, help="1: no batching across requests (A/B)")
    run.add_argument("--rate", type=float, help="only the paced load, at this many requests per second")
    run = commands.add_parser("startup")
    run.add_argument("--templates", type=int, default=50_000)
    run.add_argument("--phases", action="store_true", help="then where the time goes (bench/startup_phases.py)")
    run.add_argument("--runs", type=int, default=1, help="server starts on the same collection, one after another")
    run.add_argument("--data", type=Path, help="a data directory to keep (and reuse) the collection in")
    run = commands.add_parser("ratelimit")
    run.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    handlers = {"load": load, "memory": memory, "throughput": throughput, "startup": startup, "ratelimit": rate_limit}
    handlers[args.command](args)


if __name__ == "__main__":
    main()
