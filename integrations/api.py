"""Alert ingestion endpoints: ``POST /api/v1/events/`` (PagerDuty Events API v2 shape) and the
Alertmanager and Grafana webhook receivers. The views check size, key and rate, validate the
body and hand it to ``integrations.ingest``; every refusal is the portal's JSON error shape.

They authenticate by the integration's key (the routing key, the URL, or ``Authorization:
Bearer``), not by a user's API key: monitoring systems act as their integration.
"""

import json
import math
import re

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import get_authorization_header
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ErrorSerializer

from . import ingest
from .models import Integration
from .services import endpoint

MAX_BODY_BYTES = 512 * 1024  # the Events API v2 limit, for every receiver
MAX_DEPTH = 32  # JSON nesting; deeper is refused before anything is stored
AUTH_CHALLENGE = 'Bearer realm="integrations"'
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
SEVERITIES = ["critical", "error", "warning", "info"]
# The Events API's limits, read by the serializers and by quick_trigger alike.
KEY_MAX = Integration._meta.get_field("key").max_length
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The body is larger than {MAX_BODY_BYTES // 1024} KB."
    default_code = "too_large"


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


class UnknownKey(exceptions.ValidationError):
    """A 401 that names its field, in the portal's error shape (a ValidationError is the one
    the exception handler renders with ``errors``)."""

    status_code = status.HTTP_401_UNAUTHORIZED


# --- Reading the body ------------------------------------------------------------------------


def _check_length(request) -> None:
    """Refuse from the header, before the body is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise PayloadTooLarge()


def _reject(value) -> None:
    raise exceptions.ParseError(f"The body is not valid JSON: {value} is not a number JSON allows.")


def _clean(value, path: str = "", depth: int = 0):
    """What PostgreSQL cannot store, made storable or refused, never a 500: a NUL or a lone
    surrogate in text becomes U+FFFD (valid JSON; an alert is not lost over one odd
    character); a non-finite number, or nesting too deep to be an alert, is a 400 naming where."""

    def refuse(message: str):
        raise serializers.ValidationError({path or "body": [message]})

    if depth > MAX_DEPTH:
        refuse(f"Nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        refuse("Numbers must be finite.")
    if isinstance(value, dict):
        return {
            _clean(key, path, depth + 1): _clean(item, f"{path}.{key}" if path else key, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_clean(item, f"{path or 'body'}[{i}]", depth + 1) for i, item in enumerate(value)]
    return value


def read_json(request):
    _check_length(request)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    if not body.strip():
        raise exceptions.ParseError("The body is empty: send a JSON object.")
    try:
        data = json.loads(body, parse_constant=_reject)
    except json.JSONDecodeError as exc:
        raise exceptions.ParseError(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, an integer too long, too deep
        raise exceptions.ParseError(f"The body is not valid JSON: {exc}.") from None
    return _clean(data)


class SafeDateTimeField(serializers.DateTimeField):
    """RFC 3339 / ISO 8601; a date outside what a datetime can hold is a 400, not a 500."""

    def to_internal_value(self, value):
        try:
            return super().to_internal_value(value)
        except (OverflowError, ValueError):
            self.fail("invalid", format="ISO 8601 (e.g. 2026-01-31T12:00:00Z)")


# Strict types: a number where the schema says text is a 400 naming the field (DRF would
# quietly turn 5 into "5"), as the original API refuses wrong types.


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {"type": "string", "pattern": "^(firing|resolved)$", "description": "firing or resolved"}
)
class AlertStatusField(StrictChoiceField):
    """Described by a pattern, not an enum: Alertmanager's and Grafana's four components share
    this field name, and the schema's enum naming would warn about the collision."""

    def __init__(self, **kwargs):
        super().__init__(["firing", "resolved"], **kwargs)


def _required_text(**kwargs):
    """At least one character, taken as sent: trimming would refuse "  " although the schema
    (minLength 1) allows it."""
    return StrictCharField(min_length=1, trim_whitespace=False, **kwargs)


def _text(**kwargs):
    return StrictCharField(required=False, allow_blank=True, **kwargs)


def _string_map(help_text: str):
    return serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False),
        required=False,
        default=dict,
        help_text=help_text,
    )


# --- Serializers: Events API v2 ---------------------------------------------------------------


class EventsV2PayloadSerializer(serializers.Serializer):
    summary = _required_text(max_length=SUMMARY_MAX, help_text="The incident's title (200 shown).")
    source = _required_text(help_text="Where the problem is: a host, a service, a URL.")
    severity = StrictChoiceField(
        SEVERITIES, help_text="Mapped to a portal severity by the integration's severity map."
    )
    timestamp = SafeDateTimeField(required=False, allow_null=True)
    component = _text()
    group = _text()
    custom_details = serializers.JSONField(required=False, default=dict)

    def get_fields(self):
        # ``class`` is a Python keyword: it cannot be declared as an attribute.
        fields = super().get_fields()
        fields["class"] = _text(help_text="The kind of event, e.g. 'high CPU'.")
        return fields


class EventsV2LinkSerializer(serializers.Serializer):
    href = _required_text()
    text = _text()


class EventsV2ImageSerializer(serializers.Serializer):
    src = _required_text()
    href = _text()
    alt = _text()


class EventsV2CommonSerializer(serializers.Serializer):
    routing_key = _required_text(
        max_length=KEY_MAX, help_text="The key of an Events API integration, from the admin."
    )
    client = _text()
    client_url = _text()
    links = EventsV2LinkSerializer(many=True, required=False)
    images = EventsV2ImageSerializer(many=True, required=False)


def _optional_dedup_key(help_text: str):
    return StrictCharField(
        max_length=DEDUP_KEY_MAX,
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        help_text=help_text,
    )


class EventsV2EventSerializer(EventsV2CommonSerializer):
    """Validates every event in one pass (so a 400 names every fault); the schema describes
    the three actions separately (below)."""

    event_action = StrictChoiceField(["trigger", "acknowledge", "resolve"])
    dedup_key = _optional_dedup_key("Required to acknowledge or resolve.")
    payload = EventsV2PayloadSerializer(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and data.get("event_action") in ("acknowledge", "resolve"):
            # As in the original API, only a trigger's payload matters.
            data = {name: value for name, value in data.items() if name != "payload"}
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs["event_action"] == "trigger":
            if "payload" not in attrs:
                raise serializers.ValidationError({"payload": ["A trigger needs a payload."]})
        elif not attrs.get("dedup_key"):
            raise serializers.ValidationError(
                {"dedup_key": [f"Needed to {attrs['event_action']}: the key of the alert."]}
            )
        return attrs


# What EventsV2EventSerializer makes of a trigger, computed without it for the common case
# (EventsView.quick: a third of an append's CPU was DRF's, docs/benchmarks.md).
# tests/integrations/test_quick.py holds the two to the same answers.
_TIMESTAMP = EventsV2PayloadSerializer().fields["timestamp"]
_OPTIONAL_TEXT = ("component", "group", "class")
_LISTS = {"links": ("href", ("text",)), "images": ("src", ("href", "alt"))}


def _text_of(value, low: int = 0, high: int | None = None) -> bool:
    return isinstance(value, str) and low <= len(value) and (high is None or len(value) <= high)


def _optional_texts(source: dict, names, into: dict) -> bool:
    """As ``_text()`` fields: stripped; False when one is not text."""
    for name in names:
        if name in source:
            value = source[name]
            if not isinstance(value, str):
                return False
            into[name] = value.strip()
    return True


def quick_trigger(body) -> dict | None:
    """The validated data of a valid trigger, as EventsV2EventSerializer gives it; None when
    the body is anything else or anything unusual, and the serializer must decide (and name
    what is wrong)."""
    if not isinstance(body, dict) or body.get("event_action") != "trigger":
        return None
    payload = body.get("payload")
    if not isinstance(payload, dict) or not _text_of(body.get("routing_key"), 1, KEY_MAX):
        return None
    summary, source = payload.get("summary"), payload.get("source")
    severity = payload.get("severity")
    if not (
        _text_of(summary, 1, SUMMARY_MAX)
        and _text_of(source, 1)
        and isinstance(severity, str)
        and severity in SEVERITIES
    ):
        return None
    out = {"summary": summary, "source": source, "severity": severity}
    if "timestamp" in payload:
        try:
            out["timestamp"] = _TIMESTAMP.run_validation(payload["timestamp"])
        except serializers.ValidationError:
            return None
    if not _optional_texts(payload, _OPTIONAL_TEXT, out):
        return None
    details = payload.get("custom_details", {})
    if details is None:
        return None
    out["custom_details"] = details
    data = {"routing_key": body["routing_key"], "event_action": "trigger", "payload": out}
    if "dedup_key" in body:
        dedup_key = body["dedup_key"]
        if dedup_key is not None and not _text_of(dedup_key, 0, DEDUP_KEY_MAX):
            return None
        data["dedup_key"] = dedup_key
    if not _optional_texts(body, ("client", "client_url"), data):
        return None
    for name, (required, optional) in _LISTS.items():
        if name not in body:
            continue
        if not isinstance(body[name], list):
            return None
        items = []
        for item in body[name]:
            if not isinstance(item, dict) or not _text_of(item.get(required), 1):
                return None
            entry = {required: item[required]}
            if not _optional_texts(item, optional, entry):
                return None
            items.append(entry)
        data[name] = items
    return data


class EventsV2TriggerSerializer(EventsV2CommonSerializer):
    event_action = StrictChoiceField(["trigger"])
    dedup_key = _optional_dedup_key(
        "The alert's key: a trigger for the key of an open alert adds to its incident. "
        "Without one, a key is generated and returned."
    )
    payload = EventsV2PayloadSerializer()


class EventsV2AcknowledgeSerializer(EventsV2CommonSerializer):
    event_action = StrictChoiceField(["acknowledge"])
    dedup_key = _required_text(
        max_length=DEDUP_KEY_MAX, help_text="The key of the alert to acknowledge."
    )


class EventsV2ResolveSerializer(EventsV2CommonSerializer):
    event_action = StrictChoiceField(["resolve"])
    dedup_key = _required_text(
        max_length=DEDUP_KEY_MAX, help_text="The key of the alert to resolve."
    )


EVENT_REQUEST = PolymorphicProxySerializer(
    component_name="EventsV2Event",
    serializers={
        "trigger": EventsV2TriggerSerializer,
        "acknowledge": EventsV2AcknowledgeSerializer,
        "resolve": EventsV2ResolveSerializer,
    },
    resource_type_field_name="event_action",
)


# --- Serializers: Alertmanager and Grafana ----------------------------------------------------


class AlertmanagerAlertSerializer(serializers.Serializer):
    status = AlertStatusField()
    labels = _string_map("Identify the alert; `alertname` and `severity` are read.")
    annotations = _string_map("`summary` and `description` are read.")
    startsAt = SafeDateTimeField()  # noqa: N815 - the sender's field names
    endsAt = SafeDateTimeField(required=False, allow_null=True)  # noqa: N815
    generatorURL = _text()  # noqa: N815
    fingerprint = _required_text(
        max_length=255, help_text="Identifies the alert within its group (never its summary)."
    )


def _version(expected: str, sender: str, hint: str):
    return StrictChoiceField(
        [expected],
        error_messages={
            "invalid_choice": f"This receiver reads {sender}'s webhook version {expected}, "
            f'not "{{input}}". {hint}'
        },
    )


class AlertmanagerWebhookSerializer(serializers.Serializer):
    version = _version("4", "Alertmanager", "Grafana's (version 1) goes to .../grafana/.")
    groupKey = _required_text(help_text="The group: one incident per open group.")  # noqa: N815
    truncatedAlerts = StrictIntegerField(  # noqa: N815
        required=False, default=0, min_value=0, max_value=2_147_483_647
    )
    status = AlertStatusField(required=False)
    receiver = _text()
    groupLabels = _string_map("")  # noqa: N815
    commonLabels = _string_map("`severity` here sets the incident's severity.")  # noqa: N815
    commonAnnotations = _string_map("`summary` here is the incident's title.")  # noqa: N815
    externalURL = _text()  # noqa: N815
    alerts = AlertmanagerAlertSerializer(many=True)


class GrafanaAlertSerializer(AlertmanagerAlertSerializer):
    silenceURL = _text()  # noqa: N815
    dashboardURL = _text()  # noqa: N815
    panelURL = _text()  # noqa: N815
    imageURL = _text()  # noqa: N815
    values = serializers.JSONField(required=False, allow_null=True)
    valueString = _text()  # noqa: N815


class GrafanaWebhookSerializer(AlertmanagerWebhookSerializer):
    version = _version("1", "Grafana", "Alertmanager's (version 4) goes to .../alertmanager/.")
    orgId = StrictIntegerField(required=False, allow_null=True)  # noqa: N815
    title = _text()
    state = _text()
    message = _text()
    alerts = GrafanaAlertSerializer(many=True)


# --- Serializers: answers -----------------------------------------------------------------------


class IngestResultSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='"success", as the Events API answers.')
    message = serializers.CharField()
    dedup_key = serializers.CharField()
    incident = serializers.CharField(
        allow_null=True, help_text="The incident's id (INC-YYYYMMDD-NNN), or null."
    )
    result = serializers.ChoiceField(
        [a.value for a in ingest.Action],
        help_text="opened: a new incident; appended: added to the open one; acknowledged; "
        "resolved; matched_nothing: no open alert has the key; unchanged: a repeat.",
    )


def result_body(result: ingest.Result) -> dict:
    return {
        "status": "success",
        "message": result.message,
        "dedup_key": result.dedup_key,
        "incident": result.incident,
        "result": result.action.value,
    }


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


ACCEPTED = OpenApiResponse(
    IngestResultSerializer,
    description="Accepted and processed; says what happened and which incident it concerns.",
)
LIMITS = {
    413: _error(f"Body larger than {MAX_BODY_BYTES // 1024} KB"),
    429: _error(
        "Over the integration's requests per minute; `Retry-After` says when to send again "
        "(seconds)."
    ),
    503: _error("The portal cannot open an incident now (its severity policy needs fixing)"),
}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until the next minute, when the key may send again.",
)


# --- Views -------------------------------------------------------------------------------------


class IngestView(APIView):
    """Keyed by an integration, never by a user: no user authentication, no session, no CSRF."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
    # For the schema only: the body is read (and size-checked) by read_json, whatever the
    # Content-Type, since some senders leave it out.
    parser_classes = [JSONParser]
    kind = Integration.Kind.EVENTS

    def get_authenticate_header(self, request):
        return AUTH_CHALLENGE

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = AUTH_CHALLENGE
        return response

    def admit(self, request, key: str, unknown, now, check=None) -> Integration:
        """The active integration of this endpoint's kind with the key, the request counted
        against its rate limit. ``unknown`` builds the refusal (a 401 or a 404, as the key
        came); ``check`` may refuse the integration for another reason before it is counted."""
        counted = getattr(request, "ingest_counted", None)  # by EventsView.quick
        if counted is not None:
            integration, wait = counted
        else:
            integration, wait = self.admit_by_key(key, unknown, now, check)
        if wait is not None:
            raise exceptions.Throttled(
                wait=wait,
                detail=f"{integration.name} may send {integration.rate_limit_per_minute} "
                "requests a minute.",
            )
        return integration

    def remembered(self, key: str, now, check=None) -> tuple[Integration, int | None] | None:
        """The integration this process remembers for the key, counted against its rate limit
        (the seconds to wait, or None); None when it is not remembered or changed since it was
        read, and must be decided on the row as it is now."""
        integration = ingest.cached_integration(key, self.kind)
        if integration is None:
            return None
        if check is not None:
            check(integration)
        try:
            return integration, ingest.over_rate_limit(integration, now, verify=True)
        except ingest.StaleIntegration:
            return None

    def admit_by_key(self, key: str, unknown, now, check) -> tuple[Integration, int | None]:
        counted = self.remembered(key, now, check)
        if counted is not None:
            return counted
        integration = ingest.load_integration(key)
        if integration is None:
            raise unknown("No integration has this key.")
        if not integration.is_active:
            raise unknown(f"The integration {integration.name} is disabled.")
        if integration.kind != self.kind:
            raise unknown(
                f"This key belongs to a {integration.get_kind_display()} integration: "
                f"send to {endpoint(integration.kind)}."
            )
        if check is not None:
            check(integration)
        return integration, ingest.over_rate_limit(integration, now)

    @staticmethod
    def run(call, *args, **kwargs) -> Response:
        try:
            result = call(*args, **kwargs)
        except ingest.IngestUnavailable as exc:
            raise Unavailable(exc.message) from exc
        return Response(result_body(result), status=status.HTTP_202_ACCEPTED)


def _field_401(field: str):
    return lambda message: UnknownKey({field: [message]})


EVENT_EXAMPLE = {
    "routing_key": "<the integration's key>",
    "event_action": "trigger",
    "dedup_key": "checkout/high-error-rate",
    "payload": {
        "summary": "Checkout error rate above 5% for 5 minutes",
        "source": "checkout-api.prod",
        "severity": "critical",
        "component": "checkout-api",
        "group": "payments",
        "class": "error rate",
        "custom_details": {"error_rate": 0.07},
    },
}


class EventsView(IngestView):
    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            response = self.quick(request)
            if response is not None:
                return response
        return super().dispatch(request, *args, **kwargs)

    def quick(self, request) -> HttpResponse | None:
        """A valid trigger from an integration this process knows, counted and stored in one
        database call and answered without DRF's request, serializer and response machinery
        (docs/benchmarks.md). Anything else returns None and post() answers it as it always
        has; a request already counted says so (``ingest_counted``), so it is counted once."""
        now = timezone.now()
        try:
            data = quick_trigger(read_json(request))
        except Exception:  # whatever it is, post() meets it again and answers it
            return None
        if data is None:
            return None
        integration = ingest.cached_integration(data["routing_key"], self.kind)
        if integration is None:
            return None
        try:
            outcome = ingest.counted_trigger(integration, data, now)
        except ingest.StaleIntegration:
            return None  # nothing was counted: post() reads the integration again
        except ingest.IngestUnavailable:
            # Counted; nothing was stored. post() runs it again and answers 503.
            request.ingest_counted = (integration, None)
            return None
        if isinstance(outcome, int):
            request.ingest_counted = (integration, outcome)  # post() answers 429
            return None
        response = HttpResponse(
            JSONRenderer().render(result_body(outcome)),
            status=status.HTTP_202_ACCEPTED,
            content_type="application/json",
        )
        # As DRF's answer has them.
        response["Allow"] = ", ".join(self.allowed_methods)
        response["Vary"] = "Accept"
        return response

    @extend_schema(
        summary="Send an alert event (PagerDuty Events API v2 shape)",
        description="trigger opens an incident, or adds to the open incident of the same "
        "dedup_key; acknowledge and resolve act on it. Body at most 512 KB; `summary` at most "
        "1,024 characters, `dedup_key` 255. See docs/integrations.md.",
        request=EVENT_REQUEST,
        responses={
            202: ACCEPTED,
            400: _error("Malformed JSON or invalid fields (a message per field)"),
            401: _error("Unknown or disabled routing key, or not an Events API integration"),
            **LIMITS,
        },
        examples=[OpenApiExample("trigger", value=EVENT_EXAMPLE, request_only=True)],
        parameters=[RETRY_AFTER],
        auth=[],
        tags=["integrations"],
    )
    def post(self, request):
        now = timezone.now()
        body = read_json(request)
        serializer = EventsV2EventSerializer(data=body)
        key = body.get("routing_key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            serializer.is_valid(raise_exception=True)  # reports routing_key with the rest
            raise serializers.ValidationError({"routing_key": ["Not a valid string."]})
        # The key before the rest of the body: an unknown sender learns nothing more, and a
        # storm is limited before it is validated.
        integration = self.admit(request, key, _field_401("routing_key"), now)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["event_action"] == "trigger":
            return self.run(ingest.trigger, integration, data, now)
        call = ingest.acknowledge if data["event_action"] == "acknowledge" else ingest.resolve
        return self.run(call, integration, data["dedup_key"], now)


class WebhookView(IngestView):
    serializer_class = AlertmanagerWebhookSerializer
    sender = "Alertmanager"

    def webhook_integration(self, request, path_key: str, now) -> Integration:
        """The key from ``Authorization: Bearer`` if sent (the URL's segment is then only a
        label), else from the URL; counted against its rate limit."""
        header = get_authorization_header(request).decode("latin-1").split()
        if not header:
            return self.admit(request, path_key, exceptions.NotFound, now)
        if len(header) != 2 or header[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed(
                "Send 'Authorization: Bearer <integration key>', or no Authorization header "
                "and the key in the URL."
            )

        def same_as_url(integration: Integration) -> None:
            if ingest.names_another_integration(path_key, integration):
                raise exceptions.AuthenticationFailed(
                    "The URL and the Authorization header name different integrations."
                )

        return self.admit(request, header[1], exceptions.AuthenticationFailed, now, same_as_url)

    def post(self, request, key: str):
        now = timezone.now()
        _check_length(request)
        integration = self.webhook_integration(request, key, now)
        serializer = self.serializer_class(data=read_json(request))
        serializer.is_valid(raise_exception=True)
        return self.run(
            ingest.alertmanager, integration, serializer.validated_data, now, sender=self.sender
        )


WEBHOOK_ERRORS = {
    202: ACCEPTED,
    400: _error("Malformed JSON, invalid fields, or another webhook version"),
    401: _error("Unknown or disabled key in the Authorization header"),
    404: _error("No active integration of this kind has the key in the URL"),
    **LIMITS,
}


class AlertmanagerView(WebhookView):
    kind = Integration.Kind.ALERTMANAGER

    @extend_schema(
        summary="Prometheus Alertmanager webhook receiver (payload version 4)",
        description="One incident per alert group (`groupKey`); each alert is identified by its "
        "`fingerprint`. Resolves the incident when every alert of the group has resolved. A "
        "repeated delivery changes nothing. The key is in the URL, or in `Authorization: "
        "Bearer` (then the URL's key segment is only a label).",
        request=AlertmanagerWebhookSerializer,
        responses=WEBHOOK_ERRORS,
        parameters=[RETRY_AFTER],
        auth=[],
        tags=["integrations"],
    )
    def post(self, request, key: str):
        return super().post(request, key)


class GrafanaView(WebhookView):
    kind = Integration.Kind.GRAFANA
    serializer_class = GrafanaWebhookSerializer
    sender = "Grafana"

    @extend_schema(
        summary="Grafana alerting webhook receiver (payload version 1)",
        description="As the Alertmanager receiver, with Grafana's extra fields (title, message, "
        "dashboard and panel links, values).",
        request=GrafanaWebhookSerializer,
        responses=WEBHOOK_ERRORS,
        parameters=[RETRY_AFTER],
        auth=[],
        tags=["integrations"],
    )
    def post(self, request, key: str):
        return super().post(request, key)
