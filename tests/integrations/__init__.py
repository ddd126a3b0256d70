"""Alert ingestion: the Events API v2 endpoint, the Alertmanager and Grafana receivers, limits.

Shared helpers (not fixtures, so any test module may import them).
"""

import itertools
from datetime import timedelta

from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from integrations.models import Integration
from integrations.services import create_integration
from integrations.tasks import declare_alerts
from ops.groups import RESPONDER
from tests.incidents.factories import severity

_names = itertools.count(1)


def make_integration(kind: str = Integration.Kind.EVENTS, **fields) -> Integration:
    severity("P1")  # the default P0-P3 scale and its business calendar
    # Its user joins this group, which a transactional test's flush may have removed.
    Group.objects.get_or_create(name=RESPONDER)
    return create_integration(f"{kind} {next(_names)}", kind, **fields)


def event(key: str, action: str = "trigger", dedup_key: str | None = None, **payload) -> dict:
    body = {"routing_key": key, "event_action": action}
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    if action == "trigger":
        body["payload"] = {
            "summary": "Checkout error rate above 5%",
            "source": "checkout-api.prod",
            "severity": "critical",
            **payload,
        }
    return body


def send(body, client: APIClient | None = None, *, declare: bool = True, **headers):
    """POST an event; then, unless ``declare`` is false, do what the worker the request woke
    does moments later: declare the incidents of alerts answered before them."""
    response = (client or APIClient()).post("/api/v1/events/", body, format="json", **headers)
    if declare:
        declare_alerts()
    return response


def listed_alerts(user) -> str:
    """The admin's alert list as this user sees it."""
    client = Client()
    client.force_login(user)
    response = client.get("/admin/integrations/alert/")
    assert response.status_code == 200
    return response.content.decode()


def ago(minutes: float = 5) -> str:
    return (timezone.now() - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def am_alert(
    fingerprint: str,
    status: str = "firing",
    *,
    starts: str | None = None,
    alertname: str = "HighLatency",
    **labels,
) -> dict:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "critical", **labels},
        "annotations": {"summary": f"{alertname} on {fingerprint}", "description": "p99 > 2s"},
        "startsAt": starts or ago(5),
        "endsAt": ago(0) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
        "fingerprint": fingerprint,
    }


def am_payload(alerts: list[dict], group_key: str = '{}:{alertname="HighLatency"}', **extra):
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "portal",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
        **extra,
    }


def grafana_payload(alerts: list[dict], group_key: str = '{}:{alertname="HighCPU"}', **extra):
    for alert in alerts:
        alert.update(
            silenceURL="http://grafana:3000/alerting/silence/new",
            dashboardURL="http://grafana:3000/d/abc",
            panelURL="http://grafana:3000/d/abc?viewPanel=2",
            values={"B": 97.5},
            valueString="[ var='B' labels={} value=97.5 ]",
        )
    return am_payload(
        alerts,
        group_key,
        version="1",
        orgId=1,
        title="[FIRING:1] HighCPU",
        state="alerting",
        message="**Firing**\n\nValue: B=97.5",
        **extra,
    )


def post_webhook(kind: str, key: str, body, client: APIClient | None = None, **headers):
    return (client or APIClient()).post(
        f"/api/v1/integrations/{key}/{kind}/", body, format="json", **headers
    )
