"""Demo on-call data for `manage.py seed_demo`: the runbook's primary + backup rotations, the
org roles' holders and contact details. Idempotent: keyed on names, rosters set only once."""

from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import services
from .models import ContactProfile, OrgRole, Override, Rotation

PRIMARY = "Primary on-call"
BACKUP = "Backup on-call"
PRIMARY_MEMBERS = ("demo.rosa", "demo.ravi", "demo.rachel", "demo.carmen")
BACKUP_MEMBERS = ("demo.colin", "demo.sam")
ROLE_HOLDERS = {
    "devops-lead": ("demo.carmen",),
    "backend-lead": ("demo.colin",),
    "frontend-lead": ("demo.rachel",),
    "security-team": ("demo.sam", "demo.sofia"),
    "database-admin": ("demo.ravi",),
    "engineering-manager": ("demo.arjun",),
    "cto": ("demo.adele",),
}


@transaction.atomic
def seed_oncall_demo(now: datetime | None = None) -> list[str]:
    """Create the demo rotations, role holders and contacts; returns what was created."""
    now = now or timezone.now()
    users = {u.username: u for u in get_user_model().objects.filter(username__startswith="demo.")}
    created = []
    for index, user in enumerate(sorted(users.values(), key=lambda u: u.username)):
        _, made = ContactProfile.objects.get_or_create(
            user=user,
            defaults={
                "phone": f"+44 20 7946 0{index:03d}",
                "chat_handle": "@" + user.username.removeprefix("demo."),
            },
        )
        if made:
            created.append(f"contact {user.username}")
    # Weekly, Monday 00:00 UTC (incident-escalation-flow.md "On-Call Rotation"), started four
    # weeks ago so the coverage pages have a past as well as a future.
    monday = (now - timedelta(days=now.weekday() + 28)).date()
    backup, made = Rotation.objects.get_or_create(
        name=BACKUP,
        defaults={
            "description": "Second line when the primary does not answer.",
            "starts_on": monday,
        },
    )
    if made:
        created.append(BACKUP)
    primary, made = Rotation.objects.get_or_create(
        name=PRIMARY,
        defaults={
            "description": "First responder for every page (runbook: primary on-call).",
            "starts_on": monday,
            "backup": backup,
            "owner": users.get("demo.carmen"),
        },
    )
    if made:
        created.append(PRIMARY)
    for rotation, names in ((primary, PRIMARY_MEMBERS), (backup, BACKUP_MEMBERS)):
        if not rotation.members.exists():
            start = datetime.combine(monday, time(0), tzinfo=now.tzinfo)
            services.set_rotation_members(
                rotation, [users[n] for n in names if n in users], effective_at=start
            )
    if not primary.overrides.exists() and "demo.colin" in users:
        # Someone swaps a day next week: the admin shows an override and the feeds carry it.
        start = datetime.combine(date.fromordinal(now.date().toordinal() + 8), time(9), now.tzinfo)
        Override.objects.create(
            rotation=primary,
            user=users["demo.colin"],
            starts_at=start,
            ends_at=start + timedelta(hours=10),
            reason="Swap: dentist appointment",
        )
    OrgRole.objects.filter(slug="on-call-engineer", rotation__isnull=True).update(rotation=primary)
    for slug, names in ROLE_HOLDERS.items():
        role = OrgRole.objects.filter(slug=slug).first()
        if role is not None and not role.holders.exists() and role.rotation_id is None:
            role.holders.set([users[n] for n in names if n in users])
    return created
