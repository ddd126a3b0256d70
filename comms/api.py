"""REST API v1 for an incident's communications: post an update (sent to its audiences by
``comms.services.post_update``), read the updates and the communication log, and log a message
sent by hand. Incidents are found and guarded as ``incidents.api`` does: the same group
permissions, and a security incident is a 404 to a key whose user may not see it."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.fields import empty
from rest_framework.response import Response

from incidents.api import ERRORS, GroupPermissions, IncidentViewSet
from incidents.models import Incident, Status

from . import services
from .models import Audience, Communication, IncidentUpdate

# A message sent by hand goes by one of these; email, webhooks and the status page are the
# portal's own channels and are logged when it sends.
MANUAL_CHANNELS = [
    (c.value, c.label)
    for c in Communication.Channel
    if c not in (Communication.Channel.WEBHOOK, Communication.Channel.STATUS_PAGE)
]
TEXT_LIMIT = 10_000


# --- Serializers --------------------------------------------------------------------------------


def _text(help_text: str, max_length: int = TEXT_LIMIT) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, default="", max_length=max_length, help_text=help_text
    )


class AudiencesField(serializers.MultipleChoiceField):
    """Omitted means "what the severity calls for", in a form post too (where DRF would read
    an absent list as an empty one)."""

    def get_value(self, dictionary):
        if self.field_name not in dictionary:
            return empty
        return super().get_value(dictionary)


class PostUpdateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        Status.choices,
        required=False,
        allow_null=True,
        default=None,
        help_text="Move the incident to this open status, or `resolved` (the update is then "
        "the resolution notice). Omitted: the status stays.",
    )
    progress = _text("What we have found and done.")
    next_steps = _text("What we are doing next.")
    eta = _text("Expected resolution.", max_length=IncidentUpdate._meta.get_field("eta").max_length)
    impact = _text("Current user impact.")
    public_text = _text(
        "For the status page and stakeholders: no internal detail. Required to post to `public`."
    )
    audiences = AudiencesField(
        choices=Audience.choices,
        required=False,
        allow_empty=False,
        help_text="Who hears it. Omitted: what the severity calls for now (responders always; "
        "stakeholders once their email is due within the next cycle or they have heard; the "
        "status page when the incident is public).",
    )
    text = _text("Deprecated: used as `progress` when that is empty.")

    def validate(self, data):
        # As the admin's form: the status page shows only the public text, so posting there
        # needs it (a resolution without it posts the runbook's "resolved" words).
        if (
            Audience.PUBLIC in (data.get("audiences") or ())
            and data["status"] != Status.RESOLVED
            and not data["public_text"]
        ):
            raise serializers.ValidationError(
                {"public_text": ["The status page shows only the public text: write it."]}
            )
        return data


class SentSerializer(serializers.Serializer):
    responders = serializers.IntegerField(help_text="People emailed (roles and those paged).")
    webhooks = serializers.IntegerField(help_text="Chat webhooks posted to.")
    stakeholders = serializers.IntegerField(help_text="Stakeholders emailed.")
    status_page = serializers.BooleanField(help_text="Posted on the public status page.")


class IncidentUpdateSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(Status.choices, read_only=True)
    audiences = serializers.ListField(
        child=serializers.ChoiceField(Audience.choices), read_only=True
    )
    author = serializers.CharField(source="author.username", allow_null=True, default=None)

    class Meta:
        model = IncidentUpdate
        fields = [
            "id",
            "posted_at",
            "kind",
            "status",
            "progress",
            "next_steps",
            "eta",
            "impact",
            "public_text",
            "audiences",
            "author",
        ]
        read_only_fields = fields


class PostedUpdateSerializer(IncidentUpdateSerializer):
    sent = SentSerializer(read_only=True, help_text="Whom it reached (queued to send).")

    class Meta(IncidentUpdateSerializer.Meta):
        fields = [*IncidentUpdateSerializer.Meta.fields, "sent"]
        read_only_fields = fields


class CommunicationSerializer(serializers.ModelSerializer):
    update = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    delivery = serializers.SerializerMethodField(
        help_text="Outbox rows by state (`pending`, `sending`, `sent`, `failed`); empty for the "
        "status page and messages sent by hand."
    )

    class Meta:
        model = Communication
        fields = [
            "id",
            "at",
            "audience",
            "channel",
            "template",
            "manual",
            "subject",
            "body",
            "recipient_count",
            "author",
            "update",
            "delivery",
        ]
        read_only_fields = fields

    def get_delivery(self, obj) -> dict[str, int]:
        return obj.delivery


class ManualCommunicationSerializer(serializers.Serializer):
    audience = serializers.ChoiceField(Audience.choices)
    channel = serializers.ChoiceField(MANUAL_CHANNELS)
    subject = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    body = serializers.CharField(max_length=TEXT_LIMIT, help_text="What was said.")
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=254),
        required=False,
        default=list,
        max_length=500,
        help_text="Who it went to (names, addresses, channels).",
    )


# --- Views ------------------------------------------------------------------------------------


class IncidentScopedView(generics.GenericAPIView):
    # An incident's sub-resource: the incident found as ``IncidentViewSet`` finds it (visible
    # to the key's user, by its public id) and guarded by the same group permissions.

    permission_classes = [GroupPermissions]
    lookup_field = IncidentViewSet.lookup_field
    filter_backends = []

    def get_queryset(self):
        return Incident.objects.visible_to(self.request.user).select_related("severity")

    def valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class IncidentUpdatesView(IncidentScopedView):
    """Updates are what the commander tells each audience: responders (email, chat webhooks),
    stakeholders (email) and the status page (the public text only)."""

    required_permissions = {
        "read": "comms.view_incidentupdate",
        "write": "incidents.change_incident",
    }
    serializer_class = IncidentUpdateSerializer

    @extend_schema(
        summary="The incident's updates, newest first",
        responses={200: IncidentUpdateSerializer(many=True), **ERRORS},
    )
    def get(self, request, public_id=None):
        updates = self.get_object().updates.select_related("author").order_by("-posted_at", "-pk")
        page = self.paginate_queryset(updates)
        return self.get_paginated_response(IncidentUpdateSerializer(page, many=True).data)

    @extend_schema(
        summary="Post an update: record it, move the status, send it to its audiences",
        request=PostUpdateSerializer,
        responses={201: PostedUpdateSerializer, **ERRORS},
    )
    def post(self, request, public_id=None):
        incident = self.get_object()
        data = self.valid(PostUpdateSerializer)
        audiences = data.get("audiences")
        update, sent = services.post_update(
            incident,
            services.UpdateInput(
                status=data["status"] or "",
                # ``text`` is the endpoint's first shape (one free text): kept as progress.
                progress=data["progress"] or data["text"],
                next_steps=data["next_steps"],
                eta=data["eta"],
                impact=data["impact"],
                public_text=data["public_text"],
                audiences=tuple(audiences) if audiences is not None else None,
            ),
            by=request.user,
        )
        update.sent = sent
        return Response(PostedUpdateSerializer(update).data, status=status.HTTP_201_CREATED)


class IncidentCommunicationsView(IncidentScopedView):
    """Every message about the incident, sent by the portal or logged by hand."""

    required_permissions = {
        "read": "comms.view_communication",
        "write": "incidents.change_incident",
    }
    serializer_class = CommunicationSerializer

    @extend_schema(
        summary="The communication log of the incident, newest first",
        responses={200: CommunicationSerializer(many=True), **ERRORS},
    )
    def get(self, request, public_id=None):
        log = (
            self.get_object()
            .communications.with_delivery()
            .select_related("author")
            .order_by("-at", "-pk")
        )
        page = self.paginate_queryset(log)
        return self.get_paginated_response(CommunicationSerializer(page, many=True).data)

    @extend_schema(
        summary="Log a message sent by hand (a call, a chat message, an email from a client)",
        request=ManualCommunicationSerializer,
        responses={201: CommunicationSerializer, **ERRORS},
    )
    def post(self, request, public_id=None):
        incident = self.get_object()
        data = self.valid(ManualCommunicationSerializer)
        communication = services.log_manual(
            incident,
            audience=data["audience"],
            channel=data["channel"],
            subject=data["subject"],
            body=data["body"],
            recipients=data["recipients"],
            by=request.user,
        )
        return Response(CommunicationSerializer(communication).data, status=status.HTTP_201_CREATED)


def urls() -> list:
    """Before the router's incident routes in ``config.api.v1_urls``: these paths win."""
    from django.urls import re_path

    incident = rf"^incidents/(?P<public_id>{IncidentViewSet.lookup_value_regex})"
    return [
        re_path(rf"{incident}/updates/$", IncidentUpdatesView.as_view(), name="incident-updates"),
        re_path(
            rf"{incident}/communications/$",
            IncidentCommunicationsView.as_view(),
            name="incident-communications",
        ),
    ]
