"""REST API v1 for incidents: thin views over ``incidents.services`` (the same rules and
timeline entries as the admin). Incidents are addressed by their ``INC-YYYYMMDD-NNN`` id."""

import django_filters
from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import filters, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from config.api import ErrorSerializer, UtcDateTimeFilter
from ops.people import display_name

from . import services
from .models import (
    OPEN_STATUSES,
    ActionItem,
    ChecklistItem,
    DetectionSource,
    Incident,
    IncidentRole,
    IncidentType,
    Service,
    SeverityLevel,
    Status,
    TimelineEntry,
)

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input or refused by the rules"),
    401: OpenApiResponse(ErrorSerializer, description="Missing or unknown API key"),
    403: OpenApiResponse(ErrorSerializer, description="The key's user may not do this"),
    404: OpenApiResponse(
        ErrorSerializer, description="No such incident (or one you may not see), or page"
    ),
}


class GroupPermissions(permissions.BasePermission):
    """What the admin groups allow: reading needs view, writing needs change (add to declare)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = getattr(view, "required_permissions", {})
        if request.method in permissions.SAFE_METHODS:
            perm = needed.get("read", "incidents.view_incident")
        elif getattr(view, "action", None) == "create":
            perm = needed.get("create", "incidents.add_incident")
        else:
            perm = needed.get("write", "incidents.change_incident")
        return user.has_perm(perm)


# --- Serializers ------------------------------------------------------------------------------


class PersonField(serializers.SlugRelatedField):
    """A user named by username (shown with their name on reads)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "username")
        kwargs.setdefault("queryset", get_user_model().objects.filter(is_active=True))
        super().__init__(**kwargs)


class RoleSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()

    class Meta:
        model = IncidentRole
        fields = ["role", "user", "name", "assigned_at"]

    def get_name(self, obj) -> str:
        return display_name(obj.user)


class IncidentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    severity = serializers.CharField(source="severity.code")
    incident_type = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    services = serializers.SlugRelatedField(
        source="affected_services", slug_field="name", many=True, read_only=True
    )
    security = serializers.BooleanField(source="is_security")
    data_loss = serializers.BooleanField(source="is_data_loss")
    declared_by = serializers.CharField(source="declared_by.username", allow_null=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True)
    roles = serializers.SerializerMethodField()
    is_open = serializers.BooleanField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "summary",
            "severity",
            "status",
            "is_open",
            "incident_type",
            "services",
            "security",
            "data_loss",
            "detection_source",
            "users_affected",
            "impact_scope",
            "declared_at",
            "declared_by",
            "detected_at",
            "acknowledged_at",
            "acknowledged_by",
            "investigation_started_at",
            "root_cause_identified_at",
            "fix_applied_at",
            "service_restored_at",
            "verification_completed_at",
            "resolved_at",
            "closed_at",
            "ack_due_at",
            "resolution_due_at",
            "time_to_acknowledge",
            "time_to_resolve",
            "roles",
        ]
        read_only_fields = fields

    def get_roles(self, obj) -> list[dict]:
        active = [r for r in obj.roles.all() if r.unassigned_at is None]
        return RoleSerializer(active, many=True).data


def _severity_field(**kwargs):
    return serializers.SlugRelatedField(
        slug_field="code", queryset=SeverityLevel.objects.filter(is_active=True), **kwargs
    )


def _type_field(**kwargs):
    return serializers.SlugRelatedField(
        slug_field="slug", queryset=IncidentType.objects.all(), **kwargs
    )


def _services_field(**kwargs):
    return serializers.SlugRelatedField(
        slug_field="name", queryset=Service.objects.all(), many=True, **kwargs
    )


class DeclareSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    severity = _severity_field()
    summary = serializers.CharField(required=False, allow_blank=True, default="")
    incident_type = _type_field(required=False, allow_null=True, default=None)
    services = _services_field(required=False, default=list)
    security = serializers.BooleanField(required=False, default=False)
    data_loss = serializers.BooleanField(required=False, default=False)
    detection_source = serializers.ChoiceField(
        DetectionSource.choices, required=False, default=DetectionSource.MANUAL
    )
    detected_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    users_affected = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2_000_000_000, default=None
    )
    impact_scope = serializers.CharField(required=False, allow_blank=True, default="")


class UpdateSerializer(serializers.Serializer):
    """PATCH: each changed field goes to the service that owns it."""

    title = serializers.CharField(max_length=200, required=False)
    summary = serializers.CharField(required=False, allow_blank=True)
    users_affected = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2_000_000_000
    )
    impact_scope = serializers.CharField(required=False, allow_blank=True)
    detection_source = serializers.ChoiceField(DetectionSource.choices, required=False)
    services = _services_field(required=False)
    severity = _severity_field(required=False)
    severity_reason = serializers.CharField(required=False, allow_blank=True, default="")
    incident_type = _type_field(required=False, allow_null=True)
    security = serializers.BooleanField(required=False)
    data_loss = serializers.BooleanField(required=False)


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(Status.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class NoteSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10_000)
    kind = serializers.ChoiceField(
        TimelineEntry.NoteKind.choices, required=False, default=TimelineEntry.NoteKind.UPDATE
    )


class RoleAssignSerializer(serializers.Serializer):
    role = serializers.ChoiceField(IncidentRole.Role.choices)
    user = PersonField()


class ResolveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class TimelineEntrySerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", allow_null=True, default=None)

    class Meta:
        model = TimelineEntry
        fields = ["id", "at", "kind", "note_kind", "author", "body", "data"]


class ChecklistItemSerializer(serializers.ModelSerializer):
    done = serializers.SerializerMethodField()
    done_by = serializers.CharField(source="done_by.username", allow_null=True, default=None)

    class Meta:
        model = ChecklistItem
        fields = ["id", "position", "phase", "text", "done", "done_at", "done_by"]

    def get_done(self, obj) -> bool:
        return obj.done_at is not None


class ChecklistTickSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=2_147_483_647)
    done = serializers.BooleanField()


class SeverityLevelSerializer(serializers.ModelSerializer):
    class Meta:
        model = SeverityLevel
        fields = [
            "code",
            "name",
            "rank",
            "is_active",
            "definition",
            "response_time",
            "resolution_target",
            "internal_update_every",
            "external_update_every",
            "war_room_required",
            "review_required",
        ]


class ActionItemSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="review.incident.public_id", read_only=True)
    owner = PersonField()

    class Meta:
        model = ActionItem
        fields = ["id", "incident", "action", "owner", "due_date", "priority", "status"]
        read_only_fields = ["id", "incident"]


# --- Filters ----------------------------------------------------------------------------------


class IncidentFilter(django_filters.FilterSet):
    severity = django_filters.CharFilter(field_name="severity__code")
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    open = django_filters.BooleanFilter(method="filter_open", label="Not resolved or closed")
    security = django_filters.BooleanFilter(field_name="is_security")
    data_loss = django_filters.BooleanFilter(field_name="is_data_loss")
    type = django_filters.CharFilter(field_name="incident_type__slug")
    service = django_filters.CharFilter(field_name="affected_services__name")
    declared_after = UtcDateTimeFilter(field_name="declared_at", lookup_expr="gte")
    declared_before = UtcDateTimeFilter(field_name="declared_at", lookup_expr="lt")

    class Meta:
        model = Incident
        fields = []

    def filter_open(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.open() if value else queryset.exclude(status__in=OPEN_STATUSES)


# --- Views --------------------------------------------------------------------------------------


def _refresh(incident: Incident) -> Incident:
    return (
        Incident.objects.select_related(
            "severity", "incident_type", "declared_by", "acknowledged_by"
        )
        .prefetch_related("affected_services", "roles__user")
        .get(pk=incident.pk)
    )


@extend_schema_view(
    list=extend_schema(summary="List incidents", responses={200: IncidentSerializer, **ERRORS}),
    retrieve=extend_schema(summary="One incident", responses={200: IncidentSerializer, **ERRORS}),
)
class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = IncidentSerializer
    permission_classes = [GroupPermissions]
    lookup_field = "public_id"
    lookup_value_regex = r"INC-\d{8}-\d{3,}"
    filterset_class = IncidentFilter
    filter_backends = [
        django_filters.rest_framework.DjangoFilterBackend,
        filters.SearchFilter,
        filters.OrderingFilter,
    ]
    search_fields = ["title", "summary", "public_id"]
    ordering_fields = ["declared_at", "severity__rank", "status"]
    ordering = ["-declared_at", "-pk"]

    def get_queryset(self):
        return (
            Incident.objects.visible_to(self.request.user)
            .select_related("severity", "incident_type", "declared_by", "acknowledged_by")
            .prefetch_related("affected_services", "roles__user")
            .distinct()
        )

    def _respond(self, incident: Incident, code=status.HTTP_200_OK) -> Response:
        return Response(IncidentSerializer(_refresh(incident)).data, status=code)

    @extend_schema(
        summary="Declare an incident",
        request=DeclareSerializer,
        responses={201: IncidentSerializer, **ERRORS},
    )
    def create(self, request):
        data = self._valid(DeclareSerializer, request)
        incident = services.declare_incident(
            title=data["title"],
            severity=data["severity"],
            by=request.user,
            summary=data["summary"],
            incident_type=data["incident_type"],
            is_security=data["security"],
            is_data_loss=data["data_loss"],
            detection_source=data["detection_source"],
            detected_at=data["detected_at"],
            users_affected=data["users_affected"],
            impact_scope=data["impact_scope"],
            affected_services=data["services"],
        )
        return self._respond(incident, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an incident's details, severity, type or flags",
        request=UpdateSerializer,
        responses={200: IncidentSerializer, **ERRORS},
    )
    @transaction.atomic
    def partial_update(self, request, public_id=None):
        incident = self.get_object()
        data = self._valid(UpdateSerializer, request)
        by = request.user
        if "severity" in data and data["severity"].pk != incident.severity_id:
            if not by.has_perm("incidents.change_incident_severity"):
                raise PermissionDenied("Changing severity needs the Incident Commander group.")
            incident = services.change_severity(
                incident, data["severity"], by=by, reason=data["severity_reason"]
            )
        if "incident_type" in data:
            incident = services.set_incident_type(incident, data["incident_type"], by=by)
        if "security" in data or "data_loss" in data:
            incident = services.set_flags(
                incident,
                by=by,
                is_security=data.get("security"),
                is_data_loss=data.get("data_loss"),
            )
        details = {name: data[name] for name in services.EDITABLE_DETAILS if name in data}
        if details or "services" in data:
            services.update_details(
                incident, by=by, affected_services=data.get("services"), **details
            )
        return self._respond(incident)

    def _valid(self, serializer_class, request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(
        summary="Acknowledge", request=None, responses={200: IncidentSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, public_id=None):
        incident = services.acknowledge_incident(self.get_object(), by=request.user)
        return self._respond(incident)

    @extend_schema(
        summary="Change status",
        request=StatusSerializer,
        responses={200: IncidentSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def status(self, request, public_id=None):
        data = self._valid(StatusSerializer, request)
        if data["status"] == Status.CLOSED and not request.user.has_perm(
            "incidents.close_incident"
        ):
            raise PermissionDenied("Closing needs the Incident Commander group.")
        incident = services.change_status(
            self.get_object(), data["status"], by=request.user, note=data["note"]
        )
        return self._respond(incident)

    @extend_schema(
        summary="Resolve", request=ResolveSerializer, responses={200: IncidentSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, public_id=None):
        data = self._valid(ResolveSerializer, request)
        incident = services.resolve_incident(self.get_object(), by=request.user, note=data["note"])
        return self._respond(incident)

    @extend_schema(
        summary="Add a timeline note",
        request=NoteSerializer,
        responses={201: TimelineEntrySerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def notes(self, request, public_id=None):
        data = self._valid(NoteSerializer, request)
        entry = services.add_note(
            self.get_object(), data["body"], by=request.user, kind=data["kind"]
        )
        return Response(TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Assign a role",
        request=RoleAssignSerializer,
        responses={200: IncidentSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def roles(self, request, public_id=None):
        data = self._valid(RoleAssignSerializer, request)
        incident = self.get_object()
        services.assign_role(incident, data["role"], data["user"], by=request.user)
        return self._respond(incident)

    @extend_schema(
        summary="The timeline, newest first",
        responses={200: TimelineEntrySerializer(many=True), **ERRORS},
    )
    # The list filters are about incidents, not this incident's entries (nor its checklist).
    @action(detail=True, methods=["get"], filter_backends=[])
    def timeline(self, request, public_id=None):
        entries = self.get_object().timeline.select_related("author").order_by("-at", "-pk")
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(TimelineEntrySerializer(page, many=True).data)

    @extend_schema(
        methods=["GET"],
        summary="The checklist",
        responses={200: ChecklistItemSerializer(many=True), **ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Tick or untick a checklist item",
        request=ChecklistTickSerializer,
        responses={200: ChecklistItemSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def checklist(self, request, public_id=None):
        incident = self.get_object()
        if request.method == "GET":
            items = incident.checklist.select_related("done_by").order_by("position", "pk")
            return Response(ChecklistItemSerializer(items, many=True).data)
        data = self._valid(ChecklistTickSerializer, request)
        item = incident.checklist.filter(pk=data["item"]).first()
        if item is None:
            raise serializers.ValidationError(
                {"item": ["No such checklist item on this incident."]}
            )
        item = services.set_checklist_item(item, done=data["done"], by=request.user)
        return Response(ChecklistItemSerializer(item).data)


@extend_schema_view(
    list=extend_schema(
        summary="Severity levels", responses={200: SeverityLevelSerializer, **ERRORS}
    ),
    retrieve=extend_schema(
        summary="One severity level", responses={200: SeverityLevelSerializer, **ERRORS}
    ),
)
class SeverityLevelViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SeverityLevelSerializer
    permission_classes = [GroupPermissions]
    required_permissions = {"read": "incidents.view_severitylevel"}
    queryset = SeverityLevel.objects.order_by("rank", "code")
    lookup_field = "code"
    lookup_value_regex = r"[A-Za-z0-9-]+"


class ActionItemFilter(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__username")
    status = django_filters.MultipleChoiceFilter(choices=ActionItem.State.choices)
    incident = django_filters.CharFilter(field_name="review__incident__public_id")

    class Meta:
        model = ActionItem
        fields = []


@extend_schema_view(
    list=extend_schema(summary="Action items", responses={200: ActionItemSerializer, **ERRORS}),
    retrieve=extend_schema(
        summary="One action item", responses={200: ActionItemSerializer, **ERRORS}
    ),
    partial_update=extend_schema(
        summary="Change an action item (owner, due date, priority, status)",
        responses={200: ActionItemSerializer, **ERRORS},
    ),
)
class ActionItemViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ActionItemSerializer
    permission_classes = [GroupPermissions]
    required_permissions = {
        "read": "incidents.view_actionitem",
        "write": "incidents.change_actionitem",
    }
    filterset_class = ActionItemFilter
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        visible = Incident.objects.visible_to(self.request.user).values("pk")
        return (
            ActionItem.objects.filter(review__incident__in=visible)
            .select_related("owner", "review__incident")
            .order_by("due_date", "pk")
        )
