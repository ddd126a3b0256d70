"""The REST API's shared parts: one error shape for every 4xx, and the v1 URL table.

Every error is JSON: ``{"detail": "<one sentence>", "errors": {"<field>": ["<message>"]}}``
(``errors`` only when fields are at fault). A domain refusal from a service (``IncidentError``
and friends) is a 400 naming its field; nothing a client sends becomes a 500.
"""

from datetime import UTC

import django_filters
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ErrorSerializer(serializers.Serializer):
    """The error shape, for the OpenAPI schema (``exception_handler`` builds it)."""

    detail = serializers.CharField(help_text="One sentence saying what is wrong.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Messages per field (`title`, `payload.summary`, `items[0].name`), when fields "
        "are at fault.",
    )

    class Meta:
        ref_name = "Error"


class UtcDateTimeFormField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 filter value, converted to UTC before it reaches the database: PostgreSQL
    refuses an offset beyond 15:59 (a DataError, so a 500), and near year 1 or 9999 an offset
    can carry the instant outside what a datetime holds."""

    def to_python(self, value):
        instant = super().to_python(value)
        if instant is None:
            return None
        try:
            return instant.astimezone(UTC)
        except OverflowError:
            raise DjangoValidationError(
                "Give an instant between years 1 and 9999.", code="invalid"
            ) from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeFormField


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        flat = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _flatten(value).items():
                    flat[f"{key}.{sub}"] = messages
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for index, item in enumerate(value):
                    for sub, messages in _flatten(item).items():
                        flat[f"{key}[{index}].{sub}"] = messages
            else:
                flat[str(key)] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return flat
    return {
        "non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]
    }


def exception_handler(exc, context):
    from escalation.services import OnCallError
    from incidents.reviews import ReviewError
    from incidents.services import IncidentError

    # A service's refusal, whichever app refused, is a 400 naming its field.
    if isinstance(exc, IncidentError | ReviewError | OnCallError):
        exc = DomainError(exc.message, exc.field)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DomainError):
        body = {"detail": str(exc.detail)}
        if exc.field:
            body["errors"] = {exc.field: [str(exc.detail)]}
    elif isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()), ("", ["Invalid input."]))
        body = {
            "detail": f"{first[0]}: {first[1][0]}" if first[0] else first[1][0],
            "errors": errors,
        }
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        body = {"detail": str(detail)}
    return Response(body, status=response.status_code, headers=dict(response.items()))


@csrf_exempt  # it changes nothing; the CSRF check would answer a POST with an HTML 403
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/ (config/urls.py): the API's JSON 404, not Django's HTML page.
    A path parameter the router's pattern refuses, like ``/rotations/1.5/``, lands here too.

    A GET without its trailing slash is redirected, as ``APPEND_SLASH`` did before this route
    matched everything; other methods are told, since a redirect would lose their body.
    """
    if not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            if request.method in ("GET", "HEAD"):
                return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
            return JsonResponse(
                {"detail": f"Not found: API paths end with a slash ({request.path}/)."},
                status=status.HTTP_404_NOT_FOUND,
            )
    return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)


def v1_urls():
    """The /api/v1/ routes of every app (imported lazily: apps import this module's handler)."""
    from django.urls import path
    from rest_framework.routers import DefaultRouter

    from comms import api as comms_api
    from escalation.api import (
        EscalationPolicyViewSet,
        OnCallView,
        OverrideViewSet,
        RotationViewSet,
    )
    from incidents.api import ActionItemViewSet, IncidentViewSet, SeverityLevelViewSet
    from integrations.api import AlertmanagerView, EventsView, GrafanaView

    router = DefaultRouter(trailing_slash=True)
    router.register("incidents", IncidentViewSet, basename="incident")
    router.register("severity-levels", SeverityLevelViewSet, basename="severity-level")
    router.register("action-items", ActionItemViewSet, basename="action-item")
    router.register("rotations", RotationViewSet, basename="rotation")
    router.register("overrides", OverrideViewSet, basename="override")
    router.register("escalation-policies", EscalationPolicyViewSet, basename="escalation-policy")
    return [
        # Alert ingestion first: Django tries the patterns in order, and in an alert storm
        # these are nearly every request (the router's fifty patterns cost 50 us a request).
        path("events/", EventsView.as_view(), name="events"),
        path(
            "integrations/<str:key>/alertmanager/",
            AlertmanagerView.as_view(),
            name="alertmanager-webhook",
        ),
        path("integrations/<str:key>/grafana/", GrafanaView.as_view(), name="grafana-webhook"),
        # An incident's communications (its updates and log) before the router's incident
        # routes: comms owns them, and incidents imports no other app.
        *comms_api.urls(),
        *router.urls,
        path("on-call/", OnCallView.as_view(), name="on-call"),
    ]
