"""Demo data for the status page (called by ``manage.py seed_demo`` after the incidents' demo).

Keyed on names, so seeding twice creates nothing new, and an admin's later edits (positions,
mappings, a state set by hand) are kept: rows that exist are left alone.
"""

from datetime import UTC, datetime, time, timedelta

from django.db import transaction

from incidents.models import Service

from .models import Maintenance, StatusPageService

# Public name: (description, the internal services of incidents.demo behind it).
STATUS_PAGE_SERVICES = {
    "Website": ("Browsing the shop and your account pages.", ("Web app",)),
    "Checkout and payments": (
        "Placing orders and paying for them.",
        ("Checkout API", "Payments gateway"),
    ),
    "Sign-in": ("Logging in, including single sign-on.", ("Identity",)),
    "Search": ("Finding products.", ("Search",)),
}

MAINTENANCE_TITLE = "Database upgrade"
MAINTENANCE_DESCRIPTION = (
    "We are upgrading our main database to a new version. Checkout may be slow or briefly "
    "unavailable for up to 15 minutes during the window; browsing is not affected."
)


@transaction.atomic
def seed_status_page(now: datetime) -> list[str]:
    """Create the demo's public services and one upcoming maintenance window; return what was
    created.

    1. One StatusPageService per entry of STATUS_PAGE_SERVICES that does not exist yet, mapped
       to the internal services of that name that exist.
    2. The maintenance window, the day after tomorrow 02:00-04:00 UTC, unless one with its
       title is still to come or under way.
    """
    created = []
    internal = {service.name: service for service in Service.objects.all()}
    for position, (name, (description, inner)) in enumerate(STATUS_PAGE_SERVICES.items()):
        service, was_created = StatusPageService.objects.get_or_create(
            name=name, defaults={"description": description, "position": position}
        )
        if was_created:
            service.services.set([internal[n] for n in inner if n in internal])
            created.append(name)
    if not Maintenance.objects.filter(title=MAINTENANCE_TITLE, ends_at__gt=now).exists():
        starts_at = datetime.combine(
            now.astimezone(UTC).date() + timedelta(days=2), time(2, 0), tzinfo=UTC
        )
        window = Maintenance.objects.create(
            title=MAINTENANCE_TITLE,
            description=MAINTENANCE_DESCRIPTION,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
        )
        window.services.set(
            StatusPageService.objects.filter(name__in=["Checkout and payments", "Website"])
        )
        created.append(MAINTENANCE_TITLE)
    return created
