"""Schemathesis against the live OpenAPI schema: no request may get a 5xx, and every answer must be
one the schema describes (status code, content type, body).

The schema is read from the application itself (``GET /api/schema/`` through ``config.wsgi``, in
process), so what is fuzzed is what is published; each operation is a test of its own. Requests
carry a real API key of a superuser. A few objects exist (the default severity policy, an
incident with a review and an action item, a rotation with a roster and an override, one
integration of each kind), and four requests in five are pointed at them (path parameters,
references in the body such as a severity code, a username or an integration key; a blank title
or name filled in), so the fuzzing gets past "not found" into the views' real work; the fifth
keeps what was generated.

Examples are bounded and derandomized (a fixed seed): a failure reproduces on the next run.
Hypothesis' example database and schemathesis' cache (.schemathesis/) are off; Hypothesis may
still keep its constants cache under .hypothesis/, which ignores itself in git.
"""

import itertools
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.utils import timezone
from hypothesis import HealthCheck, settings

from config.wsgi import application
from escalation import services as oncall
from escalation.models import EscalationPolicy, Rotation
from incidents import reviews
from incidents.models import Service
from integrations.services import create_api_key, create_integration

from .incidents.factories import UserFactory, declare, incident_type, severity

pytestmark = [
    pytest.mark.slow,
    # Declaring and acknowledging publish Celery wake-ups after commit (to the test Redis).
    pytest.mark.needs_redis,
    # Committed for real, as a served request is (on-commit callbacks run); the migrations' data
    # (groups, permissions) is put back first, since an earlier transactional test flushed it.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("migration_data"),
]

# Per operation and generation phase (examples, coverage, fuzzing; positive and negative data).
MAX_EXAMPLES = 25
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261123,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "cache": {"enabled": False},
        # One operation at a time: a sequence of calls would need its own bounds.
        "phases": {"stateful": {"enabled": False}},
    }
)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# Keyed by the integration's own key (in the body, the URL or the Authorization header): a user's
# API key there would only be refused.
INGESTION = ("/api/v1/events/", "/api/v1/integrations/")

schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)
turn = itertools.count()


@pytest.fixture
def world() -> dict:
    """The objects the requests are pointed at, and the key they carry."""
    severity("P1")
    admin = get_user_model().objects.create_superuser("fuzz", "fuzz@example.com", "pw")
    alice = UserFactory(username="alice")
    service = Service.objects.create(name="Checkout API")
    kind = incident_type("complete-outage")
    incident = declare(title="Checkout is down", by=admin, incident_type=kind)
    review = reviews.require_review(incident, by=admin, reason="fuzzing")
    item = reviews.add_action_item(
        review, action="Add an alert", owner=alice, due_date=timezone.localdate()
    )
    rotation = Rotation.objects.create(name="Primary", starts_on=timezone.localdate())
    oncall.set_rotation_members(rotation, [alice, admin])
    now = timezone.now()
    override = oncall.create_override(
        rotation, admin, now + timedelta(days=1), now + timedelta(days=2), by=admin
    )
    integrations = {
        kind: create_integration(f"fuzz {kind}", kind)
        for kind in ("events", "alertmanager", "grafana")
    }
    return {
        "key": create_api_key("fuzz", user=admin).key,
        "path": {"public_id": incident.public_id, "code": "P1"},
        "ids": {
            "/api/v1/action-items/": item.pk,
            "/api/v1/rotations/": rotation.pk,
            "/api/v1/overrides/": override.pk,
            "/api/v1/escalation-policies/": EscalationPolicy.objects.values_list(
                "pk", flat=True
            ).first(),
        },
        "body": {
            "severity": "P2",
            "incident_type": kind.slug,
            "services": [service.name],
            "user": alice.username,
            "owner": alice.username,
            "members": [alice.username, admin.username],
            "rotation": rotation.pk,
            "item": incident.checklist.values_list("pk", flat=True).first(),
        },
        "integrations": integrations,
    }


def aim(case, world: dict) -> None:
    """Point four requests in five at the objects that exist."""
    if next(turn) % 5 == 4:
        return
    params = case.path_parameters or {}
    for name in ("public_id", "code"):
        if name in params:
            params[name] = world["path"][name]
    if "id" in params:
        for prefix, pk in world["ids"].items():
            if case.path.startswith(prefix) and pk is not None:
                params["id"] = pk
    body = case.body if isinstance(case.body, dict) else {}
    if "key" in params:
        kind = case.path.rstrip("/").rsplit("/", 1)[-1]
        params["key"] = world["integrations"][kind].key
        if "version" in body:
            body["version"] = "4" if kind == "alertmanager" else "1"
    elif case.path == "/api/v1/events/":
        if "routing_key" in body:
            body["routing_key"] = world["integrations"]["events"].key
    else:
        for name, value in world["body"].items():
            if name in body:
                body[name] = value
        for name in ("title", "name"):  # blank is refused; a rotation's name is unique
            if body.get(name) == "":
                body[name] = f"Fuzzed {next(turn)}"


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_operation_answers_as_its_schema_says(case, world):
    aim(case, world)
    ingestion = case.path.startswith(INGESTION)
    case.call_and_validate(
        headers={} if ingestion else {"Authorization": f"Bearer {world['key']}"}, checks=CHECKS
    )
