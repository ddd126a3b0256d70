"""Benchmark of alert ingestion: ``POST /api/v1/events/`` served by gunicorn on PostgreSQL,
against a baseline endpoint that does one INSERT and nothing else.

Run from the project root:

    .venv/bin/python bench/ingest.py                          # 20 s per endpoint (~2 min)
    .venv/bin/python bench/ingest.py --duration 5 --warmup 1  # a quick try
    .venv/bin/python bench/ingest.py --worker-class gthread --threads 4

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_ingest), creates it if missing and migrates it,
loads the default severity scale and escalation policies (as ``manage.py bootstrap`` does) and
empties its incident tables (alerts go with them) and its ``bench_ping`` table at the start, so
it refuses a database whose name does not contain "bench". The on-commit Celery wake-ups of the
incidents it opens go to Redis (REDIS_URL, default redis://127.0.0.1:6379/13, flushed at the
start and the end); no worker runs. Not database 14: the escalation benchmarks' worker would
consume these wake-ups (thousands of ticks) in the middle of their measurement.

1. It creates the Events API integration "bench" (``integrations.services.create_integration``;
   its rate limit set to 1,000,000,000 a minute, so the per-request counting upsert still runs
   but never answers 429), and the table ``bench_ping (id bigserial, at timestamptz, body
   jsonb)`` with raw SQL: the baseline's "one-table model", which exists only here.
2. It starts gunicorn as the Procfile does (2 workers, sync worker class by default, access log
   and the portal's INFO log to ``--log``) on a free loopback port, serving
   bench/ingest_wsgi.py: the portal, plus ``POST /bench/baseline/`` (parse the JSON body, one
   INSERT into bench_ping, answer 202: the WSGI application itself, no framework) and the
   same as a plain Django view and as a DRF APIView, to tell framework from logic.
3. From threads of this process (``--concurrency``, default 8), each with one keep-alive
   ``http.client`` connection (a sync worker closes it after each answer, so then each request
   connects again, as a client of the portal would), it drives for ``--duration`` seconds each,
   after ``--warmup`` seconds of the same traffic that are not counted:
   - the baseline, with the same body as an event; then the Django and DRF views;
   - events with distinct dedup keys: each trigger opens an incident (severity "warning",
     which the default map makes P2);
   - events with repeated dedup keys: triggers spread over ``--keys`` (default 32) keys whose
     alerts were opened beforehand, so each one is appended to an open alert;
   - the baseline again (the machine may change under a long run: the ratio uses the mean).
   For each: requests, errors (anything but 202, or no answer), events (requests) per second,
   p50 and p99 latency, the CPU gunicorn's processes used per request, the CPU of the client
   threads (share of one core: they run on the same machine), and the ratio of events per
   second to the baseline's.
4. In process (django.test.Client, no HTTP), one opening and one appending trigger under
   CaptureQueriesContext: the SQL per event grouped by normalized statement, and the median
   time and SQL time of 30 of each (``--profile`` adds a cProfile of 200 openings).

The aim (docs/benchmarks.md): a ratio of at least 0.7, p99 under 50 ms, no errors. The exit
status is 1 when a run had errors.
"""

import argparse
import http.client
import json
import os
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import empty_incident_tables, ensure_database, setup_django  # noqa: E402
from harness import Proc, flush_redis, free_port  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["DEBUG"] = "true"
os.environ["HTTPS"] = "false"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_ingest")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
REDIS_DB = 13
# django.test.Client (the in-process part) talks to the host "testserver".
os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
# This process's own log lines ("declared ... by bench") would only clutter the report; the
# server logs at INFO, as in production (below).
os.environ["LOG_LEVEL"] = "WARNING"

INTEGRATION = "bench"
RATE_LIMIT = 1_000_000_000  # counted on every request, never reached
EVENTS_PATH = "/api/v1/events/"
BASELINE_PATH = "/bench/baseline/"  # bench/ingest_wsgi.py
AIM_RATIO, AIM_P99_MS = 0.7, 50.0


# --- the database --------------------------------------------------------------------------


def prepare_database() -> str:
    """Default data, empty incident and ping tables, a fresh integration; its key."""
    from django.core.management import call_command
    from django.db import connection

    from integrations.models import Integration
    from integrations.services import create_integration

    call_command("load_policy", "default", "--if-empty", verbosity=0)
    call_command("load_escalation_policies", "--missing", verbosity=0)
    empty_incident_tables()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_ping "
            "(id bigserial PRIMARY KEY, at timestamptz NOT NULL, body jsonb NOT NULL)"
        )
        cursor.execute("TRUNCATE bench_ping RESTART IDENTITY")
    Integration.objects.filter(name=INTEGRATION).delete()
    integration = create_integration(INTEGRATION, "events", rate_limit_per_minute=RATE_LIMIT)
    return integration.key


def counts() -> dict[str, int]:
    from incidents.models import Incident
    from integrations.models import Alert

    return {"incidents": Incident.objects.count(), "alerts": Alert.objects.count()}


# --- the server ----------------------------------------------------------------------------


class Server:
    """gunicorn serving bench/ingest_wsgi.py, in a process group of its own."""

    def __init__(self, args, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "ingest_wsgi:application",
            "--pythonpath",
            f"{ROOT},{ROOT / 'bench'}",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--access-logfile",
            "-",
            "--log-level",
            "info",
        ]
        if args.worker_class == "gthread":
            command += ["--threads", str(args.threads)]
        self.description = f"gunicorn {args.workers} {args.worker_class} workers" + (
            f" x {args.threads} threads" if args.worker_class == "gthread" else ""
        )
        # Production mode, as the Procfile's web process runs: DEBUG=true would record every
        # SQL statement of every request, taxing the paths with more statements.
        env = {
            **os.environ,
            "DEBUG": "false",
            "SECRET_KEY": "bench-ingest-" + "x" * 50,
            "EMAIL_URL": "consolemail://",
            "HTTPS": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
        }
        self.process = Proc("gunicorn", command, env, log_path)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/health")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer in {timeout:.0f} s")

    def stop(self) -> None:
        self.process.stop()


# --- the load ------------------------------------------------------------------------------


def event(key: str, dedup_key: str, n: int) -> bytes:
    return json.dumps(
        {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": "Checkout p99 latency above 2 s for 5 minutes",
                "source": "checkout-api-7f9c.prod",
                "severity": "warning",
                "component": "checkout-api",
                "group": "payments",
                "class": "latency",
                "custom_details": {"p99_ms": 2140 + n % 100, "region": "eu-west-1"},
            },
        }
    ).encode()


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, of answered 202s
    errors: int = 0
    statuses: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # a few error answers
    server_cpu: float = 0.0  # seconds, gunicorn's processes
    client_cpu: float = 0.0  # seconds, this process (the client threads)

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def server_ms(self) -> float:
        return self.server_cpu / self.requests * 1000 if self.requests else float("nan")

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(server, path: str, body, seconds: float, concurrency: int, name: str) -> Run:
    """``concurrency`` threads, each sending ``body(thread, n)`` back to back for ``seconds``."""
    port = server.port
    run = Run(name)
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(thread: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, errors, statuses, samples = [], 0, Counter(), []
        n = 0
        start.wait()
        while time.perf_counter() < stop_at[0]:
            data = body(thread, n)
            n += 1
            began = time.perf_counter()
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status, answer = 0, repr(exc).encode()
            took = time.perf_counter() - began
            statuses[status] += 1
            if status == 202:
                latencies.append(took)
            else:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{status}: {answer[:300].decode(errors='replace')}")
        conn.close()
        with lock:
            run.latencies += latencies
            run.errors += errors
            run.statuses.update(statuses)
            run.samples += samples[: max(0, 5 - len(run.samples))]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    server_cpu, client_cpu = server.process.cpu(), time.process_time()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    run.server_cpu = server.process.cpu() - server_cpu
    run.client_cpu = time.process_time() - client_cpu
    return run


def scenarios(key: str, keys: int, run_id: str):
    """Body makers: baseline, distinct keys, repeated keys (the pool of open alerts)."""
    pool = [f"bench-{run_id}-repeat-{k}" for k in range(keys)]

    def distinct(thread: int, n: int) -> bytes:
        return event(key, f"bench-{run_id}-{thread}-{n}-{uuid.uuid4().hex[:8]}", n)

    choosers: dict[int, random.Random] = {}

    def repeated(thread: int, n: int) -> bytes:
        chooser = choosers.setdefault(thread, random.Random(thread))
        return event(key, chooser.choice(pool), n)

    return distinct, repeated, pool


# --- in process: what one event costs ------------------------------------------------------


def normalize(sql: str) -> str:
    sql = re.sub(r'SAVEPOINT "[^"]+"', "SAVEPOINT ?", sql)
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"\((\?(, )?)+\)", "(...)", sql)
    return re.sub(r"\s+", " ", sql)[:150]


def in_process(key: str, run_id: str, profile: bool) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    sql_seconds = [0.0]

    def timer(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - began

    def post(dedup_key: str, n: int = 0) -> tuple[int, float, float]:
        sql_seconds[0] = 0.0
        began = time.perf_counter()
        with connection.execute_wrapper(timer):
            response = client.post(
                EVENTS_PATH, event(key, dedup_key, n), content_type="application/json"
            )
        assert response.status_code == 202, response.content
        return response.status_code, time.perf_counter() - began, sql_seconds[0]

    post(f"inproc-{run_id}-warm")  # URLconf, first connection
    repeat_key = f"inproc-{run_id}-repeat"
    post(repeat_key)
    print("\nIn process (django.test.Client, no HTTP): SQL of one event")
    for label, dedup_key in (
        ("opening (distinct key)", f"inproc-{run_id}-open"),
        ("appending (repeated key)", repeat_key),
    ):
        with CaptureQueriesContext(connection) as captured:
            post(dedup_key)
        statements = Counter(normalize(q["sql"]) for q in captured.captured_queries)
        print(f"\n  {label}: {len(captured.captured_queries)} queries")
        for sql, count in statements.most_common():
            print(f"    {count:>3}  {sql}")
    print()
    for label, make_key in (
        ("opening", lambda i: f"inproc-{run_id}-open-{i}"),
        ("appending", lambda i: repeat_key),
    ):
        timings = [post(make_key(i), i) for i in range(30)]
        wall = statistics.median(t[1] for t in timings) * 1000
        sql = statistics.median(t[2] for t in timings) * 1000
        print(f"  {label}: median {wall:.1f} ms per event, of which SQL {sql:.1f} ms (30 events)")
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(200):
            post(f"inproc-{run_id}-profile-{i}", i)
        profiler.disable()
        print("\n  cProfile of 200 openings, top 25 by cumulative time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


# --- the report ----------------------------------------------------------------------------


def report(runs: list[Run], baseline_rate: float) -> bool:
    print(
        "\n| endpoint | requests | errors | events/s | p50 ms | p99 ms | server CPU ms/req "
        "| client CPU | ratio to baseline |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for run in runs:
        ratio = run.rate / baseline_rate if baseline_rate else float("nan")
        print(
            f"| {run.name} | {run.requests:,} | {run.errors} | {run.rate:,.1f} | "
            f"{run.percentile(0.50):.1f} | {run.percentile(0.99):.1f} | {run.server_ms:.2f} | "
            f"{run.client_cpu / run.seconds:.0%} | {ratio:.2f} |"
        )
    ok = True
    for run in runs:
        if run.errors:
            ok = False
            print(f"\n{run.name}: {run.errors} errors; statuses {dict(run.statuses)}")
            for sample in run.samples:
                print(f"  {sample}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each run")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="per gthread worker")
    parser.add_argument("--keys", type=int, default=32, help="dedup keys of the repeated run")
    parser.add_argument("--profile", action="store_true", help="cProfile 200 openings")
    parser.add_argument("--log", default="/tmp/bench-ingest-gunicorn.log", help="server log")
    args = parser.parse_args()

    name = ensure_database(os.environ["DATABASE_URL"], "incident, alert and bench_ping tables")
    setup_django()
    key = prepare_database()
    flush_redis(
        REDIS_DB,
        whose="this benchmark's own",
        needed=False,
        unreachable="wake-ups will fail fast and be skipped.",
    )
    run_id = uuid.uuid4().hex[:6]
    distinct, repeated, pool = scenarios(key, args.keys, run_id)

    server = Server(args, Path(args.log))
    try:
        server.wait_ready()
        print(
            f"Database {name}; {server.description} on 127.0.0.1:{server.port} (log {args.log}); "
            f"{args.concurrency} client threads with keep-alive connections; "
            f"{args.duration:g} s per run after {args.warmup:g} s of warm-up; "
            f"nproc {os.cpu_count()}; load average before {os.getloadavg()[0]:.2f}.",
            flush=True,
        )
        plan = [
            ("baseline: WSGI, 1 INSERT", BASELINE_PATH, distinct),
            ("Django view, 1 INSERT", "/bench/baseline-django/", distinct),
            ("DRF view, 1 INSERT", "/bench/baseline-drf/", distinct),
            ("events, distinct keys (each opens an incident)", EVENTS_PATH, distinct),
            (f"events, {args.keys} repeated keys (each appends)", EVENTS_PATH, repeated),
            ("baseline again", BASELINE_PATH, distinct),
        ]
        runs = []
        for label, path, body in plan:
            if body is repeated:  # open the pool's alerts: every measured trigger appends
                for dedup_key in pool:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                    conn.request("POST", path, event(key, dedup_key, 0))
                    response = conn.getresponse()
                    assert response.status == 202, response.read()
                    conn.close()
            drive(server, path, body, args.warmup, args.concurrency, "warm-up")
            run = drive(server, path, body, args.duration, args.concurrency, label)
            runs.append(run)
            print(
                f"  {label}: {run.rate:,.1f}/s, p50 {run.percentile(0.5):.1f} ms, "
                f"p99 {run.percentile(0.99):.1f} ms, errors {run.errors}",
                flush=True,
            )
        load_after = os.getloadavg()[0]
    finally:
        server.stop()

    baseline_rate = statistics.mean([runs[0].rate, runs[-1].rate])
    ok = report(runs, baseline_rate)
    drf_run, distinct_run, repeated_run = runs[2], runs[3], runs[4]
    ratios = [run.rate / baseline_rate for run in (distinct_run, repeated_run)]
    p99s = [run.percentile(0.99) for run in (distinct_run, repeated_run)]
    met = ok and min(ratios) >= AIM_RATIO and max(p99s) < AIM_P99_MS
    print(
        f"\nratio ours/baseline (baseline {baseline_rate:,.1f}/s, the mean of its two runs): "
        f"distinct {ratios[0]:.2f}, repeated {ratios[1]:.2f}; p99 distinct {p99s[0]:.1f} ms, "
        f"repeated {p99s[1]:.1f} ms; errors {sum(run.errors for run in runs)}; "
        f"load average after {load_after:.2f}. Against the DRF view: distinct "
        f"{distinct_run.rate / drf_run.rate:.2f}, repeated {repeated_run.rate / drf_run.rate:.2f}. "
        f"Aim (ratio >= {AIM_RATIO}, p99 < {AIM_P99_MS:g} ms, no errors): "
        f"{'met' if met else 'missed'}."
    )
    print(f"Database now: {counts()}")
    in_process(key, run_id, args.profile)
    flush_redis(
        REDIS_DB,
        whose="this benchmark's own",
        needed=False,
        unreachable="wake-ups will fail fast and be skipped.",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
