"""iCalendar feeds of on-call shifts, fetched by calendar clients.

No login: calendar clients cannot log in, so the secret token in the URL is the credential
(revoked with ``escalation.calendar.regenerate_token``). A GET only reads.
"""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import calendar
from .models import ContactProfile, Rotation


@never_cache
@require_GET
def rotation_calendar(request, token: str):
    rotation = get_object_or_404(Rotation, calendar_token=token)
    body = calendar.rotation_feed(rotation, timezone.now())
    return _ics(body, f"oncall-{slugify(rotation.name) or rotation.pk}.ics")


@never_cache
@require_GET
def person_calendar(request, token: str):
    # A deactivated account's feed goes dark with the account.
    profile = get_object_or_404(
        ContactProfile.objects.select_related("user"), calendar_token=token, user__is_active=True
    )
    body = calendar.person_feed(profile.user, timezone.now())
    return _ics(body, f"oncall-{slugify(profile.user.get_username()) or profile.user.pk}.ics")


def _ics(body: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(False, filename)
    # The URL is a secret: keep it out of search indexes and out of Referer headers.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response
