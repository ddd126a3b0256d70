"""Public ids under concurrency: INC-YYYYMMDD-NNN without duplicates or gaps (next_public_id).

These tests commit for real (transaction=True) so that each thread's declaration runs in its
own PostgreSQL transaction and queues on the day's counter row like concurrent requests do.
"""

import threading
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import connection, transaction

from incidents import services
from incidents.models import DailySequence, Incident, TimelineEntry

from .factories import UserFactory, declare, severity

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
THREADS = 50


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    # These users never log in; the default hasher's rounds would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def day_ids() -> list[str]:
    return sorted(Incident.objects.values_list("public_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_it_numbers_50_concurrent_declarations_without_duplicates_or_gaps(clock):
    p1 = severity("P1")
    owner = UserFactory(username="olivia")
    barrier = threading.Barrier(THREADS)
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def declare_one(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            incident = services.declare_incident(
                title=f"Concurrent {number}", severity=p1, by=owner
            )
            with lock:
                ids.append(incident.public_id)
        except BaseException as exc:  # reported below, with the thread's own traceback
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=declare_one, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    expected = [f"INC-20260310-{n:03d}" for n in range(1, THREADS + 1)]
    assert sorted(ids) == expected
    assert day_ids() == expected
    assert sorted(Incident.objects.values_list("sequence", flat=True)) == list(
        range(1, THREADS + 1)
    )
    assert list(DailySequence.objects.values_list("day", "last")) == [(date(2026, 3, 10), THREADS)]
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.DECLARED).count() == THREADS


@pytest.mark.django_db(transaction=True)
def test_a_declaration_that_rolls_back_leaves_no_gap(clock):
    owner = UserFactory(username="olivia")
    declare("First", by=owner)

    with pytest.raises(RuntimeError), transaction.atomic():
        declare("Rolled back", by=owner)
        raise RuntimeError("the request failed after declaring")

    declare("Second", by=owner)

    assert list(Incident.objects.order_by("sequence").values_list("public_id", "title")) == [
        ("INC-20260310-001", "First"),
        ("INC-20260310-002", "Second"),
    ]
    assert DailySequence.objects.get(day=date(2026, 3, 10)).last == 2


@pytest.mark.django_db(transaction=True)
def test_the_first_declaration_of_a_day_that_rolls_back_leaves_no_gap(clock):
    owner = UserFactory(username="olivia")
    severity("P1")

    with pytest.raises(RuntimeError), transaction.atomic():
        declare("Rolled back", by=owner)
        raise RuntimeError("the request failed after declaring")

    assert DailySequence.objects.count() == 0
    assert declare("First", by=owner).public_id == "INC-20260310-001"
