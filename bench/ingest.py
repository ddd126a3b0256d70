"""Benchmark of alert ingestion: ``POST /api/v1/events/`` served by gunicorn on PostgreSQL,
against a baseline endpoint that does one INSERT and nothing else, then how fast a Celery
worker declares the incidents of the alerts it answered.

Run from the project root:

    .venv/bin/python bench/ingest.py                          # 20 s per endpoint (~3-4 min)
    .venv/bin/python bench/ingest.py --duration 5 --warmup 1  # a quick try
    .venv/bin/python bench/ingest.py --worker-class gthread --threads 4

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_ingest), creates it if missing and migrates it,
loads the default severity scale and escalation policies (as ``manage.py bootstrap`` does) and
empties its incident tables and its ``bench_ping`` table at the start, so it refuses a database
whose name does not contain "bench". Alerts go with the incident tables: TRUNCATE ... CASCADE
empties every table that references them, whole, so also the alerts still awaiting their
incident (``incident`` NULL); any row left is deleted all the same. The requests' on-commit
Celery wake-ups go to Redis (REDIS_URL, default redis://127.0.0.1:6379/13, flushed at the
start, before the worker starts and at the end); no worker runs during the HTTP runs. Not
database 14: the escalation benchmarks' worker would consume these wake-ups (thousands of
ticks) in the middle of their measurement.

A trigger is one PostgreSQL function call in the request (``integrations_trigger``, migration
integrations/0005): it counts the rate limit and appends to the key's open alert, or stores a
new alert with its incident's id (INC-YYYYMMDD-NNN) reserved and answers 202 with that id; the
incident is declared moments later by the Celery task ``integrations.tasks.declare_alerts``.

1. It creates the Events API integration "bench" (``integrations.services.create_integration``;
   its rate limit set to 1,000,000,000 a minute, so the per-request counting still runs but
   never answers 429), and the table ``bench_ping (id bigserial, at timestamptz, body jsonb)``
   with raw SQL: the baseline's "one-table model", which exists only here.
2. It starts gunicorn as the Procfile does (2 workers, sync worker class by default, access log
   and the portal's INFO log to ``--log``) on a free loopback port, serving
   bench/ingest_wsgi.py: the portal, plus three endpoints that parse the JSON body, do one
   INSERT into bench_ping and answer 202:
   - ``POST /bench/baseline-django/``, a plain Django view: **the baseline**. It is the issue's
     "baseline endpoint that does one insert into a one-table model with no logic" inside the
     framework the events endpoint runs in (a Django view whose quick path skips DRF), so the
     ratio measures ingestion's own logic and SQL, not Django's request handling, which every
     endpoint of the portal pays;
   - ``POST /bench/baseline/``, the WSGI application itself, before Django, and
     ``POST /bench/baseline-drf/``, a DRF APIView: reference rows, to tell the framework's
     cost from the endpoint's; the summary prints the ratios against them too.
3. From threads of this process (``--concurrency``, default 8), each with one keep-alive
   ``http.client`` connection (a sync worker closes it after each answer, so then each request
   connects again, as a client of the portal would), it drives for ``--duration`` seconds each,
   after ``--warmup`` seconds of the same traffic that are not counted:
   - the baseline (the Django view), with the same body as an event; then the WSGI and DRF
     references;
   - events with distinct dedup keys: each trigger stores an alert awaiting its incident
     (severity "warning", which the default map makes P2);
   - events with repeated dedup keys: triggers spread over ``--keys`` (default 32) keys whose
     alerts were opened beforehand, so each one is appended to an open alert;
   - the baseline again (the machine may change under a long run: the ratio uses the mean).
   For each: requests, errors (anything but 202, or no answer), events (requests) per second,
   p50 and p99 latency, the CPU gunicorn's processes used per request, the CPU of the client
   threads (share of one core: they run on the same machine), and the ratio of events per
   second to the baseline's. The 202 answers of the events runs are kept (dedup key and
   incident id) for step 4.
4. The declaration of the backlog: gunicorn stopped, it counts the alerts awaiting their
   incident, flushes Redis database 13 (the requests' queued wake-ups), starts a Celery worker
   as the Procfile's ``worker`` (``celery -A config worker --queues default --concurrency 2``,
   production settings as gunicorn's, same DATABASE_URL and REDIS_URL, log to
   ``--worker-log``), publishes ``integrations.tasks.declare_alerts`` enough times for the
   backlog (each task declares up to ``declare_pending``'s limit; at least twice, so both
   processes drain in parallel, skipping each other's locked rows) and times until no alert
   awaits (polled every 0.2 s, up to ``--declare-timeout`` seconds): alerts declared, seconds,
   incidents declared per second. Then it checks every alert: it has an incident, whose
   public_id equals the alert's ``incident_public_id``, the id reserved before the worker ran
   and the id every 202 for its dedup key answered; a mismatch or an alert still awaiting is
   an error. The declared incidents queue escalation ticks on the same queue, behind the
   declare_alerts tasks, so they run only at the end; they are not this benchmark's: Redis
   database 13 is flushed once nothing awaits, then the worker is stopped cleanly (SIGTERM to
   its main process only, Celery's warm shutdown: the tasks running, a tick or two, finish;
   after ``--stop-timeout`` seconds its process group is killed and the stop reported as not
   clean).
5. In process (django.test.Client, no HTTP), one opening and one appending trigger under
   CaptureQueriesContext: the SQL per event grouped by normalized statement, and the median
   time and SQL time of 30 of each; then the SQL of declaring one awaiting alert (an opening,
   then ``integrations.ingest.declare_pending(limit=1)``) and its median over 30
   (``--profile`` adds a cProfile of 200 openings).

The aim (docs/benchmarks.md): a ratio of at least 0.7, p99 under 50 ms, no errors. The exit
status is 1 when a run had errors or the declaration check found one.
"""

import argparse
import http.client
import inspect
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import empty_incident_tables, ensure_database, setup_django  # noqa: E402
from harness import Proc, flush_redis, free_port, machine_cpu, wait_until  # noqa: E402

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
# bench/ingest_wsgi.py: the baseline (a plain Django view, one INSERT) and the references.
BASELINE_PATH = "/bench/baseline-django/"
WSGI_PATH = "/bench/baseline/"
DRF_PATH = "/bench/baseline-drf/"
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
    # TRUNCATE ... CASCADE empties integrations_alert whole (it references incidents), so the
    # alerts awaiting their incident (incident NULL) go too.
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

    return {
        "incidents": Incident.objects.count(),
        "alerts": Alert.objects.count(),
        "alerts awaiting their incident": Alert.objects.filter(incident__isnull=True).count(),
    }


# --- the server ----------------------------------------------------------------------------


def production_env() -> dict:
    """Production mode, as the Procfile's processes run: DEBUG=true would record every SQL
    statement of every request (and task), taxing the paths with more statements."""
    return {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-ingest-" + "x" * 50,
        "EMAIL_URL": "consolemail://",
        "HTTPS": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "INFO",
    }


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
        self.process = Proc("gunicorn", command, production_env(), log_path)

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


def drive(
    server, path: str, body, seconds: float, concurrency: int, name: str, answers=None
) -> Run:
    """``concurrency`` threads, each sending ``body(thread, n)`` back to back for ``seconds``;
    the bodies of the 202 answers are added to ``answers`` when it is a list."""
    port = server.port
    run = Run(name)
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(thread: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, errors, statuses, samples, kept = [], 0, Counter(), [], []
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
                if answers is not None:
                    kept.append(answer)
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
            if answers is not None:
                answers.extend(kept)

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


# --- the backlog: declaring the incidents of the answered alerts ----------------------------


@dataclass
class Declaration:
    backlog: int = 0  # alerts awaiting their incident when the worker started
    tasks: int = 0  # declare_alerts published
    concurrency: int = 0  # the worker's processes
    seconds: float = 0.0  # from the first publish until none awaited (or the timeout)
    timed_out: bool = False
    left: int = 0  # still awaiting at the end
    worker_cpu: float = 0.0  # seconds, the worker's processes, over ``seconds``
    machine_busy: float = 0.0  # cores busy on the whole machine, over ``seconds``
    worker_exit: int | None = None
    stop_seconds: float = 0.0
    stop_clean: bool = False  # warm shutdown: running tasks finished, no process killed
    check: dict = field(default_factory=dict)

    @property
    def declared(self) -> int:
        return self.backlog - self.left

    @property
    def rate(self) -> float:
        return self.declared / self.seconds if self.seconds else float("nan")

    @property
    def errors(self) -> int:
        return self.left + self.check.get("mismatched", 0) + self.check.get("missing", 0)


def start_worker(args) -> Proc:
    """The Procfile's ``worker``: ``celery -A config worker --queues default --concurrency 2``
    (CELERY_TASK_DEFAULT_QUEUE; declare_alerts has no route of its own), on this benchmark's
    database and Redis database."""
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO"]
    command += ["--queues", "default", "--concurrency", str(args.worker_concurrency)]
    command += ["--hostname", "bench-ingest@%h"]
    return Proc("celery worker", command, production_env(), Path(args.worker_log))


def stop_worker(worker: Proc, timeout: float) -> bool:
    """Celery's warm shutdown: SIGTERM to the main process only (Proc.stop signals the whole
    group, which kills the pool processes in the middle of their tasks), which waits for the
    running tasks; past ``timeout``, Proc.stop. Whether it stopped cleanly."""
    log_at = len(worker.text())
    clean = False
    if worker.popen.poll() is None:
        try:
            os.kill(worker.popen.pid, signal.SIGTERM)
            worker.popen.wait(timeout=timeout)
            clean = worker.popen.returncode == 0
        except subprocess.TimeoutExpired:
            print(f"  The worker did not stop in {timeout:.0f} s: its process group is killed.")
        except ProcessLookupError:
            pass
    worker.stop()  # the group, if anything is left; closes the log
    return clean and "WorkerLostError" not in worker.text()[log_at:]


def awaiting() -> int:
    from integrations.models import Alert

    return Alert.objects.filter(incident__isnull=True).count()


def declare_backlog(args, answers: list[bytes]) -> Declaration:
    """Start a worker, publish declare_alerts, time until no alert awaits its incident; check
    the ids; stop the worker."""
    from django.db import close_old_connections

    from integrations.ingest import declare_pending
    from integrations.models import Alert
    from integrations.tasks import declare_alerts

    result = Declaration(concurrency=args.worker_concurrency)
    reserved = dict(
        Alert.objects.filter(incident__isnull=True).values_list("pk", "incident_public_id")
    )
    result.backlog = len(reserved)
    # The wake-ups the requests published wait in the queue (no worker ran): without them the
    # worker starts idle, and the clock starts with the tasks published below.
    flush_redis(REDIS_DB, whose="this benchmark's own", needed=True)
    per_task = inspect.signature(declare_pending).parameters["limit"].default
    result.tasks = max(2, math.ceil(result.backlog / per_task) + 1)
    worker = start_worker(args)
    try:
        worker.expect(" ready.", 60, "The Celery worker")
        close_old_connections()
        cpu_before, (busy_before, total_before) = worker.cpu(), machine_cpu()
        began = time.perf_counter()
        for _ in range(result.tasks):
            declare_alerts.apply_async()
        done = wait_until(lambda: awaiting() == 0, args.declare_timeout, step=0.2)
        result.seconds = time.perf_counter() - began
        busy_after, total_after = machine_cpu()
        result.worker_cpu = worker.cpu() - cpu_before
        cores = os.cpu_count() or 1
        result.machine_busy = (busy_after - busy_before) / (total_after - total_before) * cores
        result.timed_out = not done
        result.left = awaiting()
    finally:
        # What the worker would run next (the declared incidents' escalation ticks, the task
        # messages a timeout left) is not this benchmark's: gone before it stops.
        flush_redis(REDIS_DB, whose="this benchmark's own", needed=True)
        stopping = time.perf_counter()
        result.stop_clean = stop_worker(worker, args.stop_timeout)
        result.stop_seconds = time.perf_counter() - stopping
        result.worker_exit = worker.popen.returncode
    result.check = check_declarations(answers, reserved)
    return result


def check_declarations(answers: list[bytes], reserved: dict[int, str]) -> dict:
    """Every alert's incident against the id reserved for it and the ids its 202s answered."""
    from incidents.models import Incident
    from integrations.models import Alert

    answered: dict[str, set[str]] = defaultdict(set)
    for raw in answers:
        body = json.loads(raw)
        answered[body["dedup_key"]].add(body["incident"])
    kinds: Counter = Counter()
    mismatched, keys, alerts, declared = set(), set(), 0, 0
    rows = Alert.objects.values_list("pk", "dedup_key", "incident_public_id", "incident__public_id")
    for pk, dedup_key, alert_id, incident_id in rows.iterator():
        alerts += 1
        keys.add(dedup_key)
        if incident_id is None:
            continue  # counted as still awaiting
        declared += 1
        problems = [
            ("alert's incident_public_id", incident_id != alert_id),
            ("reserved before the worker ran", pk in reserved and reserved[pk] != incident_id),
            ("answered by a 202", dedup_key in answered and answered[dedup_key] != {incident_id}),
        ]
        for kind, wrong in problems:
            if wrong:
                kinds[kind] += 1
                mismatched.add(pk)
    return {
        "alerts": alerts,
        "declared": declared,
        "incidents": Incident.objects.count(),
        "answers": len(answers),
        "answered keys": len(answered),
        "missing": len(set(answered) - keys),  # answered 202, no alert
        "mismatched": len(mismatched),
        "kinds": dict(kinds),
    }


def show_declaration(d: Declaration) -> None:
    check = d.check
    print(
        f"\nDeclaring the backlog: a Celery worker (default queue, concurrency "
        f"{d.concurrency}), "
        f"{d.tasks} declare_alerts tasks published at once."
    )
    print(
        f"  {d.declared:,} of {d.backlog:,} alerts declared in {d.seconds:.1f} s: "
        f"{d.rate:,.1f} incidents declared per second"
        + (f"; TIMED OUT, {d.left:,} still awaiting" if d.timed_out else "")
        + f". Worker CPU {d.worker_cpu:.1f} s ({d.worker_cpu / d.seconds:.2f} cores, "
        f"{d.worker_cpu / max(1, d.declared) * 1000:.2f} ms per incident); machine busy "
        f"{d.machine_busy:.2f} of {os.cpu_count()} cores."
    )
    kinds = ", ".join(f"{kind}: {n}" for kind, n in check["kinds"].items()) or "none"
    print(
        f"  Check: {check['alerts']:,} alerts, {check['declared']:,} with an incident, "
        f"{check['alerts'] - check['declared']:,} without; {check['incidents']:,} incidents; "
        f"{check['answers']:,} answers (202) kept for {check['answered keys']:,} dedup keys, "
        f"{check['missing']} without an alert; incident id mismatches {check['mismatched']} "
        f"({kinds}). Errors {d.errors}."
    )
    print(
        f"  Worker stopped (warm shutdown: its running tasks, escalation ticks of the new "
        f"incidents among them, finished first) in {d.stop_seconds:.1f} s, exit status "
        f"{d.worker_exit}" + (", clean." if d.stop_clean else ", NOT clean: see the worker log.")
    )


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

    from integrations.ingest import declare_pending
    from integrations.models import Alert

    client = Client()
    sql_seconds = [0.0]

    def timer(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - began

    def post(dedup_key: str, n: int = 0) -> tuple[str, float, float]:
        """The incident id answered, the time, the SQL time."""
        sql_seconds[0] = 0.0
        began = time.perf_counter()
        with connection.execute_wrapper(timer):
            response = client.post(
                EVENTS_PATH, event(key, dedup_key, n), content_type="application/json"
            )
        assert response.status_code == 202, response.content
        return response.json()["incident"], time.perf_counter() - began, sql_seconds[0]

    def declare_one() -> tuple[float, float]:
        """Declare the one alert awaiting its incident, as the worker's task does."""
        sql_seconds[0] = 0.0
        began = time.perf_counter()
        with connection.execute_wrapper(timer):
            declared = declare_pending(limit=1)
        took = time.perf_counter() - began
        assert declared == {"declared": 1, "waiting": 0}, declared
        return took, sql_seconds[0]

    def check_declared(dedup_key: str, answered: str) -> None:
        alert = Alert.objects.select_related("incident").get(dedup_key=dedup_key)
        assert alert.incident.public_id == alert.incident_public_id == answered, (
            alert.incident.public_id,
            alert.incident_public_id,
            answered,
        )

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

    # Declaring one awaiting alert, as the worker does (declare_pending takes the oldest, so
    # first the ones left above, unmeasured): after each opening, declare_pending(limit=1).
    while declare_pending()["declared"]:
        pass
    dedup_key = f"inproc-{run_id}-declare"
    answered = post(dedup_key)[0]
    with CaptureQueriesContext(connection) as captured:
        declare_one()
    check_declared(dedup_key, answered)
    statements = Counter(normalize(q["sql"]) for q in captured.captured_queries)
    print(
        f"\n  declaring one awaiting alert (declare_pending(limit=1), as the worker's task): "
        f"{len(captured.captured_queries)} queries"
    )
    for sql, count in statements.most_common():
        print(f"    {count:>3}  {sql}")
    timings = []
    for i in range(30):
        dedup_key = f"inproc-{run_id}-declare-{i}"
        answered = post(dedup_key, i)[0]
        timings.append(declare_one())
        check_declared(dedup_key, answered)
    wall = statistics.median(t[0] for t in timings) * 1000
    sql = statistics.median(t[1] for t in timings) * 1000
    print(
        f"\n  declaring: median {wall:.1f} ms per alert, of which SQL {sql:.1f} ms "
        f"(30 alerts, each after its opening; the id answered = the incident's)"
    )
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
    parser.add_argument(
        "--worker-log", default="/tmp/bench-ingest-worker.log", help="the Celery worker's log"
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="the Celery worker's processes"
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the worker's warm shutdown",
    )
    parser.add_argument(
        "--declare-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the backlog to be declared",
    )
    args = parser.parse_args()

    name = ensure_database(os.environ["DATABASE_URL"], "incident, alert and bench_ping tables")
    setup_django()
    key = prepare_database()
    flush_redis(REDIS_DB, whose="this benchmark's own", needed=True)
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
            ("baseline: Django view, 1 INSERT", BASELINE_PATH, distinct),
            ("reference: WSGI app, 1 INSERT", WSGI_PATH, distinct),
            ("reference: DRF view, 1 INSERT", DRF_PATH, distinct),
            ("events, distinct keys (each opens an alert)", EVENTS_PATH, distinct),
            (f"events, {args.keys} repeated keys (each appends)", EVENTS_PATH, repeated),
            ("baseline again: Django view", BASELINE_PATH, distinct),
        ]
        runs = []
        answers: list[bytes] = []  # the events' 202s: their incident ids, checked in step 4
        for label, path, body in plan:
            kept = answers if path == EVENTS_PATH else None
            if body is repeated:  # open the pool's alerts: every measured trigger appends
                for dedup_key in pool:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                    conn.request("POST", path, event(key, dedup_key, 0))
                    response = conn.getresponse()
                    answer = response.read()
                    assert response.status == 202, answer
                    answers.append(answer)
                    conn.close()
            drive(server, path, body, args.warmup, args.concurrency, "warm-up", kept)
            run = drive(server, path, body, args.duration, args.concurrency, label, kept)
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
    wsgi_run, drf_run, distinct_run, repeated_run = runs[1:5]
    ratios = [run.rate / baseline_rate for run in (distinct_run, repeated_run)]
    p99s = [run.percentile(0.99) for run in (distinct_run, repeated_run)]
    met = ok and min(ratios) >= AIM_RATIO and max(p99s) < AIM_P99_MS

    def against(reference: Run) -> str:
        return (
            f"distinct {distinct_run.rate / reference.rate:.2f}, "
            f"repeated {repeated_run.rate / reference.rate:.2f}"
        )

    print(
        f"\nratio ours/baseline (baseline: the Django view, 1 INSERT, {baseline_rate:,.1f}/s, "
        f"the mean of its two runs): distinct {ratios[0]:.2f}, repeated {ratios[1]:.2f}; "
        f"p99 distinct {p99s[0]:.1f} ms, repeated {p99s[1]:.1f} ms; "
        f"errors {sum(run.errors for run in runs)}; load average after {load_after:.2f}. "
        f"Against the raw WSGI app ({wsgi_run.rate:,.1f}/s): {against(wsgi_run)}. "
        f"Against the DRF view ({drf_run.rate:,.1f}/s): {against(drf_run)}. "
        f"Aim (ratio >= {AIM_RATIO}, p99 < {AIM_P99_MS:g} ms, no errors): "
        f"{'met' if met else 'missed'}."
    )
    print(f"Database now: {counts()}", flush=True)
    declaration = declare_backlog(args, answers)
    show_declaration(declaration)
    ok = ok and not declaration.errors
    print(f"Database now: {counts()}", flush=True)
    in_process(key, run_id, args.profile)
    flush_redis(REDIS_DB, whose="this benchmark's own", needed=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
