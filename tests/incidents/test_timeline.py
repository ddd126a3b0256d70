"""The timeline is append-only: in the model and, for any client, in the database (0002)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from incidents import services
from incidents.models import TimelineEntry

from .factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    # These users never log in; the default hasher's rounds would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner():
    return UserFactory(username="olivia", first_name="Olivia", last_name="Owner")


@pytest.fixture
def note(owner):
    with time_machine.travel(T0, tick=False):
        incident = declare(by=owner)
        return services.add_note(incident, "Restarted the web pods", by=owner)


def test_it_refuses_to_save_an_existing_entry_again(note):
    note.body = "Nothing happened"

    with pytest.raises(ValueError, match="append-only"):
        note.save()

    note.refresh_from_db()
    assert note.body == "Restarted the web pods"


def test_it_refuses_to_save_an_entry_fetched_from_the_database(note):
    entry = TimelineEntry.objects.get(pk=note.pk)
    entry.at = T0 - timedelta(hours=1)

    with pytest.raises(ValueError, match="append-only"):
        entry.save(update_fields=["at"])

    entry.refresh_from_db()
    assert entry.at == T0


@pytest.mark.parametrize(
    "change",
    [
        {"body": "Nothing happened"},
        {"at": T0 - timedelta(hours=1)},
        {"kind": TimelineEntry.Kind.ACKNOWLEDGED},
        {"note_kind": TimelineEntry.NoteKind.COMMAND},
        {"data": {"forged": True}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_the_database_rejects_a_queryset_update(note, change):
    with (
        pytest.raises(DatabaseError, match="timeline entries are append-only"),
        transaction.atomic(),
    ):
        TimelineEntry.objects.filter(pk=note.pk).update(**change)

    note.refresh_from_db()
    assert (note.body, note.at, note.kind, note.note_kind, note.data) == (
        "Restarted the web pods",
        T0,
        TimelineEntry.Kind.NOTE,
        TimelineEntry.NoteKind.UPDATE,
        {},
    )


def test_the_database_rejects_raw_sql_updates(note):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE incidents_timelineentry SET body = 'rewritten' WHERE id = %s", [note.pk]
        )

    note.refresh_from_db()
    assert note.body == "Restarted the web pods"


def test_deleting_an_author_keeps_their_entries_without_an_author(note, owner):
    incident = note.incident
    kept = list(incident.timeline.order_by("pk").values_list("pk", "kind", "body"))

    get_user_model().objects.filter(pk=owner.pk).delete()

    assert list(incident.timeline.order_by("pk").values_list("pk", "kind", "body")) == kept
    assert list(incident.timeline.values_list("author", flat=True)) == [None, None]
    incident.refresh_from_db()
    assert incident.declared_by is None


def test_deleting_an_incident_deletes_its_timeline(note):
    note.incident.delete()

    assert TimelineEntry.objects.count() == 0
