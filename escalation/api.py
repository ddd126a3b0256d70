"""REST API v1 for on call: who is on call, rotations and their rosters, overrides, and the
escalation policies (read only).

Thin views over ``escalation.services``, the functions the admin calls, so a roster change or
an override made by a script follows the same rules as one made by hand (docs/oncall.md).
Rotation fields are checked by the model's ``full_clean()``, as the admin's form does.
"""

from copy import copy
from datetime import UTC, date, datetime, timedelta

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.duration import duration_iso_string
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ErrorSerializer
from incidents.api import GroupPermissions, PersonField
from ops.people import display_name

from . import services
from .engine import policy_steps
from .models import Condition, EscalationPolicy, Override, Rotation, RotationMember
from .preview import simulate

# The instants the API accepts. The resolver's date arithmetic overflows near year 1 and 9999
# (a shift end past datetime.max is a 500), and nobody schedules on call outside these.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Longest range of shifts in one answer: a year of hourly shifts is under 9,000 spans.
MAX_SHIFT_RANGE = timedelta(days=366)


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input or refused by on-call rules"),
    401: OpenApiResponse(ErrorSerializer, description="Missing or unknown API key"),
    403: OpenApiResponse(ErrorSerializer, description="The key's user may not do this"),
    404: OpenApiResponse(ErrorSerializer, description="No such object (or page)"),
}


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Serializers ------------------------------------------------------------------------------


class InstantField(serializers.DateTimeField):
    """An ISO 8601 instant within the range the resolver computes (EARLIEST..LATEST)."""

    def to_internal_value(self, value):
        instant = super().to_internal_value(value)
        if not EARLIEST <= instant < LATEST:
            raise serializers.ValidationError(
                f"Give an instant from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}."
            )
        return instant


class Username(PersonField):
    """A user by username. A NUL byte is refused before the lookup: PostgreSQL cannot even
    compare one (a DataError, so a 500)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


class PersonSerializer(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.SerializerMethodField()
    email = serializers.EmailField()

    def get_name(self, user) -> str:
        return display_name(user)


class SpanSerializer(serializers.Serializer):
    """A span of a rotation: one person (or nobody) from ``start`` to ``end``."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    user = PersonSerializer(allow_null=True, help_text="Null for a gap: nobody is on call.")
    is_gap = serializers.BooleanField()
    is_override = serializers.BooleanField(help_text="An override put this person on call.")


class OnCallSerializer(serializers.Serializer):
    rotation = serializers.IntegerField(source="rotation.pk")
    rotation_name = serializers.CharField(source="rotation.name")
    user = PersonSerializer(allow_null=True, help_text="Null for a gap: nobody is on call.")
    is_gap = serializers.BooleanField()
    is_override = serializers.BooleanField(help_text="An override put this person on call.")
    start = serializers.DateTimeField(
        source="since", help_text="Start of this person's span (a handoff or an override's edge)."
    )
    end = serializers.DateTimeField(source="until", help_text="When the span ends.")


class OnCallListSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    results = OnCallSerializer(many=True)


class ShiftListSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    results = SpanSerializer(many=True)


class AtQuerySerializer(serializers.Serializer):
    at = InstantField(
        required=False, help_text="ISO 8601 instant, e.g. 2026-11-23T03:00:00Z (default: now)."
    )


class RangeQuerySerializer(serializers.Serializer):
    start = InstantField(help_text="ISO 8601 instant: the range's start.")
    end = InstantField(
        help_text=f"ISO 8601 instant: its end, at most {MAX_SHIFT_RANGE.days} days on."
    )

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["The end must be after the start."]})
        if attrs["end"] - attrs["start"] > MAX_SHIFT_RANGE:
            raise serializers.ValidationError(
                {"end": [f"Ask for at most {MAX_SHIFT_RANGE.days} days at a time."]}
            )
        return attrs


@extend_schema_field(
    {"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$", "example": "00:00:00"}
)
class ClockTimeField(serializers.TimeField):
    """A wall-clock time in the rotation's zone. OpenAPI's ``format: time`` demands an offset,
    which a handoff time in a named zone does not have."""


class RotationSerializer(serializers.ModelSerializer):
    """A rotation's settings. Writes are checked by ``Rotation.full_clean()``, as in the admin."""

    handoff_time = ClockTimeField(required=False, help_text="Local time of the handoff, HH:MM:SS.")

    owner = Username(required=False, allow_null=True, help_text="Username, or null.")
    backup = serializers.PrimaryKeyRelatedField(
        queryset=Rotation.objects.all(),
        required=False,
        allow_null=True,
        help_text="Id of the rotation escalations reach as 'backup on call', or null.",
    )
    # Declared so a bad value is an error on the field, not a violated table constraint.
    shift_length = serializers.IntegerField(min_value=1, max_value=32767, required=False)
    handoff_reminder_before = serializers.DurationField(format="iso-8601", read_only=True)
    handoff_ack_within = serializers.DurationField(format="iso-8601", read_only=True)
    members = serializers.SerializerMethodField(
        help_text="Usernames on the roster now, in order of turn (see the members endpoint)."
    )

    class Meta:
        model = Rotation
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "backup",
            "shift_unit",
            "shift_length",
            "handoff_weekday",
            "handoff_time",
            "timezone",
            "starts_on",
            "handoff_reminder_before",
            "handoff_ack_within",
            "members",
        ]
        read_only_fields = ["id"]

    def get_members(self, rotation) -> list[str]:
        current = services.current_members(rotation.members.all(), timezone.now())
        return [m.user.username for m in current]

    def validate_starts_on(self, value: date) -> date:
        if not EARLIEST.date() <= value < LATEST.date():
            raise serializers.ValidationError(
                f"Give a date from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}."
            )
        return value

    def validate(self, attrs):
        # The model's own rules (known time zone, not its own backup, unique name), run on a
        # copy with the changes applied, exactly as the admin's ModelForm runs them.
        rotation = copy(self.instance) if self.instance is not None else Rotation()
        for name, value in attrs.items():
            setattr(rotation, name, value)
        try:
            rotation.full_clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_by_field(exc)) from exc
        return attrs


def _by_field(exc: DjangoValidationError) -> dict[str, list[str]]:
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    return {
        ("non_field_errors" if field == "__all__" else field): messages
        for field, messages in exc.message_dict.items()
    }


class RosterEntrySerializer(serializers.Serializer):
    position = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()
    email = serializers.EmailField(source="user.email")
    since = serializers.DateTimeField(allow_null=True)

    def get_name(self, member) -> str:
        return display_name(member.user)


class RosterSerializer(serializers.Serializer):
    members = RosterEntrySerializer(
        many=True, help_text="The latest roster, in order of turn (it may start in the future)."
    )
    effective_at = serializers.DateTimeField(
        allow_null=True, help_text="When the latest roster was or will be set."
    )
    applies_from = serializers.DateTimeField(
        allow_null=True,
        help_text="The first handoff at or after effective_at: the roster rules shifts from then.",
    )
    current = RosterEntrySerializer(many=True, help_text="Who is on the roster now.")


class RosterChangeSerializer(serializers.Serializer):
    members = Username(many=True, help_text="Usernames in order of turn; [] empties the roster.")
    effective_at = InstantField(
        required=False,
        allow_null=True,
        help_text="When the change is made (default now, never in the past: past shifts keep "
        "their people). It rules shifts from the first handoff at or after it.",
    )

    def validate_effective_at(self, value):
        if value is not None and value < timezone.now():
            raise serializers.ValidationError(
                "Past shifts keep the roster they had: omit effective_at for now, or give a "
                "future instant."
            )
        return value


class OverrideSerializer(serializers.ModelSerializer):
    rotation_name = serializers.CharField(source="rotation.name", read_only=True)
    user = PersonSerializer()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Override
        fields = [
            "id",
            "rotation",
            "rotation_name",
            "user",
            "starts_at",
            "ends_at",
            "reason",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class OverrideCreateSerializer(serializers.Serializer):
    rotation = serializers.PrimaryKeyRelatedField(
        queryset=Rotation.objects.all(), help_text="Id of the rotation."
    )
    user = Username(help_text="Username of who covers.")
    starts_at = InstantField()
    ends_at = InstantField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


def _iso(value: timedelta | None) -> str | None:
    return duration_iso_string(value) if value is not None else None


class StepSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    key = serializers.CharField()
    label = serializers.CharField()
    delay_seconds = serializers.SerializerMethodField(help_text="After declaration, in seconds.")
    delay = serializers.SerializerMethodField(help_text="The same as an ISO 8601 duration.")
    condition = serializers.ChoiceField(choices=Condition.choices)
    targets = serializers.ListField(
        child=serializers.CharField(),
        help_text="role:<slug>, backup:<role slug>, rotation:<id>, rotation-backup:<id>, "
        "user:<id>, email:<address>",
    )
    channels = serializers.ListField(child=serializers.CharField(), help_text='"email", "webhook"')
    repeat_every_seconds = serializers.SerializerMethodField()
    repeat_every = serializers.SerializerMethodField(help_text="ISO 8601 duration, or null.")
    repeat_times = serializers.IntegerField()

    def get_delay_seconds(self, step) -> float:
        return step.delay.total_seconds()

    def get_delay(self, step) -> str:
        return _iso(step.delay)

    def get_repeat_every_seconds(self, step) -> float | None:
        return step.repeat_every.total_seconds() if step.repeat_every is not None else None

    def get_repeat_every(self, step) -> str | None:
        return _iso(step.repeat_every)


class PreviewRowSerializer(serializers.Serializer):
    offset_seconds = serializers.SerializerMethodField(help_text="After declaration.")
    offset = serializers.SerializerMethodField(help_text="The same as an ISO 8601 duration.")
    step = serializers.CharField()
    targets = serializers.ListField(child=serializers.CharField())
    recipients = serializers.ListField(
        child=serializers.CharField(), help_text="Email addresses, or webhook names."
    )
    channel = serializers.CharField()
    gaps = serializers.ListField(
        child=serializers.CharField(), help_text="Targets that would reach nobody."
    )

    def get_offset_seconds(self, row) -> float:
        return row.offset.total_seconds()

    def get_offset(self, row) -> str:
        return _iso(row.offset)


class EscalationPolicySerializer(serializers.ModelSerializer):
    severity = serializers.CharField(
        source="severity.code", allow_null=True, default=None, help_text="Severity code, or null."
    )
    repeat_gap_seconds = serializers.SerializerMethodField()
    repeat_gap = serializers.SerializerMethodField(help_text="ISO 8601 duration.")
    steps = StepSerializer(many=True)
    flag = serializers.CharField(
        read_only=True, help_text='"security", "data_loss", or "" for a severity\'s policy.'
    )
    preview = serializers.SerializerMethodField(
        help_text="With ?preview=true on one policy: what would fire for an incident declared "
        "now if nobody acknowledges or resolves (7 days). Null otherwise."
    )

    class Meta:
        model = EscalationPolicy
        fields = [
            "id",
            "name",
            "description",
            "severity",
            "flag",
            "repeat_from",
            "repeat_cycles",
            "repeat_gap_seconds",
            "repeat_gap",
            "preset",
            "updated_at",
            "steps",
            "preview",
        ]
        read_only_fields = fields

    def get_repeat_gap_seconds(self, policy) -> float:
        return policy.repeat_gap.total_seconds()

    def get_repeat_gap(self, policy) -> str:
        return _iso(policy.repeat_gap)

    @extend_schema_field(PreviewRowSerializer(many=True, allow_null=True))
    def get_preview(self, policy):
        if not self.context.get("preview"):
            return None
        rows = simulate(policy_steps(policy), timezone.now())
        return PreviewRowSerializer(rows, many=True).data


class PreviewQuerySerializer(serializers.Serializer):
    preview = serializers.BooleanField(
        required=False, default=False, help_text="Add the simulated firings (one policy only)."
    )


# --- Filters ----------------------------------------------------------------------------------


class InstantFormField(django_filters.fields.IsoDateTimeField):
    """Read in UTC and bounded like InstantField: PostgreSQL refuses offsets beyond 15:59
    (a DataError, so a 500) and Python cannot shift an instant near year 1 or 9999."""

    def to_python(self, value):
        instant = super().to_python(value)
        if instant is None:
            return None
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:
            instant = None
        if instant is None or not EARLIEST <= instant < LATEST:
            raise DjangoValidationError(
                f"Give an instant from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}."
            )
        return instant


class InstantFilter(django_filters.IsoDateTimeFilter):
    field_class = InstantFormField


class OverrideFilter(django_filters.FilterSet):
    rotation = django_filters.ModelChoiceFilter(
        queryset=Rotation.objects.all(), help_text="Rotation id."
    )
    user = django_filters.CharFilter(field_name="user__username", help_text="Username.")
    # Together: the overrides overlapping [ends_after, starts_before).
    ends_after = InstantFilter(
        field_name="ends_at", lookup_expr="gt", help_text="Overrides still running after this."
    )
    starts_before = InstantFilter(
        field_name="starts_at", lookup_expr="lt", help_text="Overrides starting before this."
    )

    class Meta:
        model = Override
        fields = []


# --- Views --------------------------------------------------------------------------------------

ROTATION_PERMISSIONS = {
    "read": "escalation.view_rotation",
    "write": "escalation.change_rotation",
    "create": "escalation.add_rotation",
}


class OnCallView(APIView):
    """Not a viewset's list: the answer is one object (the instant and every rotation)."""

    permission_classes = [GroupPermissions]
    required_permissions = {"read": "escalation.view_rotation"}

    @extend_schema(
        summary="Who is on call in every rotation",
        parameters=[AtQuerySerializer],
        responses={200: OnCallListSerializer, **ERRORS},
    )
    def get(self, request):
        at = _valid(AtQuerySerializer, request.query_params).get("at") or timezone.now()
        answers = services.on_call(Rotation.objects.order_by("name", "pk"), at)
        return Response(OnCallListSerializer({"at": at, "results": answers}).data)


@extend_schema_view(
    list=extend_schema(summary="Rotations", responses={200: RotationSerializer, **ERRORS}),
    retrieve=extend_schema(summary="One rotation", responses={200: RotationSerializer, **ERRORS}),
    create=extend_schema(
        summary="Create a rotation (then set its members)",
        request=RotationSerializer,
        responses={201: RotationSerializer, **ERRORS},
    ),
    partial_update=extend_schema(
        summary="Change a rotation's settings",
        request=RotationSerializer,
        responses={200: RotationSerializer, **ERRORS},
    ),
)
class RotationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = RotationSerializer
    permission_classes = [GroupPermissions]
    required_permissions = ROTATION_PERMISSIONS
    filter_backends = [filters.SearchFilter]
    search_fields = ["name"]

    def get_queryset(self):
        return Rotation.objects.select_related("owner", "backup").prefetch_related(
            Prefetch(
                "members",
                queryset=RotationMember.objects.select_related("user").order_by("position", "pk"),
            )
        )

    # PATCH only: a PUT of the rotation would reset every field left out to its default.
    def partial_update(self, request, pk=None):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(self.get_serializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(
        summary="Who is on call in this rotation",
        parameters=[AtQuerySerializer],
        responses={200: OnCallSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="on-call")
    def on_call(self, request, pk=None):
        rotation = self.get_object()
        at = _valid(AtQuerySerializer, request.query_params).get("at") or timezone.now()
        [answer] = services.on_call(Rotation.objects.filter(pk=rotation.pk), at)
        return Response(OnCallSerializer(answer).data)

    @extend_schema(
        summary="The spans of a range: shifts, overrides and gaps",
        parameters=[RangeQuerySerializer],
        responses={200: ShiftListSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def shifts(self, request, pk=None):
        rotation = self.get_object()
        asked = _valid(RangeQuerySerializer, request.query_params)
        spans = services.shifts(rotation.pk, asked["start"], asked["end"])
        return Response(ShiftListSerializer({**asked, "results": spans}).data)

    @extend_schema(
        methods=["GET"], summary="The roster", responses={200: RosterSerializer, **ERRORS}
    )
    @extend_schema(
        methods=["PUT"],
        summary="Set the roster (it rules shifts from the next handoff, as in the admin)",
        request=RosterChangeSerializer,
        responses={200: RosterSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "put"])
    def members(self, request, pk=None):
        rotation = self.get_object()
        if request.method == "PUT":
            change = _valid(RosterChangeSerializer, request.data)
            services.set_rotation_members(
                rotation, change["members"], effective_at=change.get("effective_at")
            )
        # Read afresh, not from get_object()'s prefetch: a PUT has just changed them.
        return Response(RosterSerializer(services.roster(rotation, timezone.now())).data)


@extend_schema_view(
    list=extend_schema(summary="Overrides", responses={200: OverrideSerializer, **ERRORS}),
    retrieve=extend_schema(summary="One override", responses={200: OverrideSerializer, **ERRORS}),
    create=extend_schema(
        summary="Put someone on call for a span (an override)",
        request=OverrideCreateSerializer,
        responses={201: OverrideSerializer, **ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete an override",
        responses={204: OpenApiResponse(description="Deleted"), **ERRORS},
    ),
)
class OverrideViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = OverrideSerializer
    permission_classes = [GroupPermissions]
    # Responders cover for each other: they hold add/delete override (migration 0002).
    required_permissions = {
        "read": "escalation.view_override",
        "create": "escalation.add_override",
        "write": "escalation.delete_override",
    }
    filterset_class = OverrideFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]

    def get_queryset(self):
        return Override.objects.select_related("rotation", "user", "created_by").order_by(
            "starts_at", "pk"
        )

    def create(self, request):
        data = _valid(OverrideCreateSerializer, request.data)
        override = services.create_override(
            data["rotation"],
            data["user"],
            data["starts_at"],
            data["ends_at"],
            by=request.user,
            reason=data["reason"],
        )
        return Response(
            OverrideSerializer(self.get_queryset().get(pk=override.pk)).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema_view(
    list=extend_schema(
        summary="Escalation policies with their steps",
        responses={200: EscalationPolicySerializer, **ERRORS},
    ),
    retrieve=extend_schema(
        summary="One escalation policy, optionally with its preview",
        parameters=[PreviewQuerySerializer],
        responses={200: EscalationPolicySerializer, **ERRORS},
    ),
)
class EscalationPolicyViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EscalationPolicySerializer
    permission_classes = [GroupPermissions]
    required_permissions = {"read": "escalation.view_escalationpolicy"}
    filter_backends = []

    def get_queryset(self):
        return (
            EscalationPolicy.objects.select_related("severity")
            .prefetch_related("steps")
            .order_by("severity__rank", "flag", "name", "pk")
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        # The preview resolves every firing against the roster: one policy at a time.
        if getattr(self, "action", None) == "retrieve" and self.request is not None:
            context["preview"] = _valid(PreviewQuerySerializer, self.request.query_params)[
                "preview"
            ]
        return context
