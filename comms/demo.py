"""Demo data for the status page (called by ``manage.py seed_demo`` after the incidents' demo).

Keyed on names, so seeding twice creates nothing new, and an admin's later edits (positions,
mappings, a state set by hand) are kept: rows that exist are left alone.
"""

from datetime import UTC, datetime, time, timedelta

from django.db import transaction

from incidents.models import Service

from .models import Maintenance, Stakeholder, StakeholderList, StatusPageService

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


# --- Communications of the demo incidents -----------------------------------------------------

DEMO_LISTS = {
    # name: (severity ranks, addresses)
    "Executives": ((0, 1), ("ceo@example.com", "cfo@example.com", "coo@example.com")),
    "Customer support": ((0, 1, 2), ("support-lead@example.com", "support-oncall@example.com")),
}
P0_TITLE = "Checkout API returns 502 for all customers"
P0_UPDATES = (
    # minutes after declaration, progress, next steps, public text
    (
        25,
        "Load balancer shows every checkout pod failing health checks.",
        "Find what changed at 13:05; roll back if it is the config push.",
        "We are aware that checkout is failing for all customers and are investigating.",
    ),
    (
        75,
        "Bad connection-pool setting in the 13:05 config push; rolled back.",
        "Restart the pods with the previous config; watch error rates.",
        "We have identified the cause of the checkout failures and are rolling out a fix.",
    ),
)


@transaction.atomic
def seed_comms_demo(now: datetime) -> list[str]:
    """Stakeholder lists, the demo P0 on the status page with two updates, template rows.
    Idempotent: a list or update that exists is left alone."""
    from incidents.models import Incident, SeverityLevel

    from .cadence import commander_of
    from .rendering import ensure_templates
    from .services import UpdateInput, post_update, set_public_face

    created = []
    ensure_templates()
    for name, (ranks, addresses) in DEMO_LISTS.items():
        listing, made = StakeholderList.objects.get_or_create(name=name)
        if made:
            listing.severities.set(SeverityLevel.objects.filter(rank__in=ranks, is_active=True))
            for address in addresses:
                Stakeholder.objects.get_or_create(stakeholder_list=listing, email=address)
            created.append(f"stakeholder list {name}")
    incident = Incident.objects.filter(title=P0_TITLE).first()
    if incident is None or incident.updates.exists() or not incident.is_open:
        return created
    author = commander_of(incident)
    set_public_face(
        incident,
        is_public=True,
        title="Checkout unavailable",
        impact="",
        by=author,
        now=incident.declared_at + timedelta(minutes=10),
    )
    for minutes, progress, next_steps, public_text in P0_UPDATES:
        at = incident.declared_at + timedelta(minutes=minutes)
        if at >= now:
            break
        post_update(
            incident,
            UpdateInput(
                progress=progress,
                next_steps=next_steps,
                eta="30 minutes",
                impact="All customers; no orders can be placed.",
                public_text=public_text,
            ),
            by=author,
            now=at,
        )
    created.append(f"updates on {incident.public_id}")
    return created
