"""Start `make run` in a fresh clone with no services configured, wait until /api/health says the
database, worker and beat are healthy, press Ctrl-C, and check every process it started is gone."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT = 420  # a fresh clone installs its own .venv first
STOP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)
    except (OSError, ValueError):
        return None


def main(clone: Path) -> int:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(PORT=str(port), ADMIN_PASSWORD="smoke-test-password")
    log_path = clone.parent / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    output = lambda: log_path.read_text(errors="replace")  # noqa: E731

    deadline, body, pids = time.monotonic() + START_TIMEOUT, None, set()
    while time.monotonic() < deadline and make.poll() is None:
        body = health(port)
        pids |= descendants(make.pid)
        checks = (body or {}).get("checks", {})
        if all(
            checks.get(name, {}).get("status") == "ok" for name in ("database", "worker", "beat")
        ):
            break
        time.sleep(1)
    else:
        print(output()[-5000:])
        print(f"FAIL: portal not healthy within {START_TIMEOUT}s; last health: {body}")
        os.killpg(make.pid, signal.SIGKILL)
        return 1
    print(f"healthy: {json.dumps(body)}")
    warnings = [line for line in output().splitlines() if "REDIS_URL is not set" in line]
    if len(warnings) != 1:
        print(f"FAIL: expected one embedded-broker warning line, found {len(warnings)}")
        return 1
    if f"http://127.0.0.1:{port}/admin/" not in output():
        print("FAIL: the admin URL was not printed")
        return 1

    pids |= descendants(make.pid) | {make.pid}
    os.killpg(make.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    with contextlib.suppress(subprocess.TimeoutExpired):
        make.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.5)
    left = sorted(pid for pid in pids if alive(pid))
    if left:
        print(output()[-3000:])
        print(f"FAIL: processes still running after Ctrl-C: {left}")
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return 1
    print(f"stopped: all {len(pids)} processes of make run are gone")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
