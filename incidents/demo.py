"""Demo data for a living portal (``manage.py seed_demo``): people in every group, live incidents.

Everything is keyed on stable names, so seeding twice creates nothing new: users on their
username, services on their name, incidents on their title. Incidents are made only through
``incidents.services``, with ``now=`` placing each step in the recent past, so the SLA clocks,
milestones and timelines read as if people had been working them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from ops.groups import ADMIN, ALL_GROUPS, COMMANDER, RESPONDER, SECURITY_TEAM, VIEWER

from . import reviews, services
from .models import Incident, IncidentRole, IncidentType, Service, SeverityLevel, Status
from .models import TimelineEntry as Entry
from .policy import load_playbooks, load_policy

DEFAULT_DEMO_PASSWORD = "demo-password-123"
EMAIL_DOMAIN = "demo.example.com"

Role = IncidentRole.Role
Note = Entry.NoteKind


@dataclass(frozen=True)
class DemoPerson:
    username: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]

    @property
    def email(self) -> str:
        return f"{self.username}@{EMAIL_DOMAIN}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


# Security Team grants no permission of its own (ops/groups.py): its members also work
# incidents as Responders, or they could not open the admin at all.
PEOPLE = (
    DemoPerson("demo.viola", "Viola", "Park", (VIEWER,)),
    DemoPerson("demo.victor", "Victor", "Hale", (VIEWER,)),
    DemoPerson("demo.rosa", "Rosa", "Diaz", (RESPONDER,)),
    DemoPerson("demo.ravi", "Ravi", "Kumar", (RESPONDER,)),
    DemoPerson("demo.rachel", "Rachel", "Okafor", (RESPONDER,)),
    DemoPerson("demo.carmen", "Carmen", "Ortiz", (COMMANDER,)),
    DemoPerson("demo.colin", "Colin", "Webb", (COMMANDER,)),
    DemoPerson("demo.adele", "Adele", "Moss", (ADMIN,)),
    DemoPerson("demo.arjun", "Arjun", "Mehta", (ADMIN,)),
    DemoPerson("demo.sam", "Sam", "Reyes", (SECURITY_TEAM, RESPONDER)),
    DemoPerson("demo.sofia", "Sofia", "Brandt", (SECURITY_TEAM, COMMANDER)),
)

SERVICES = {
    "Checkout API": "Order placement and payment capture.",
    "Web app": "The customer-facing single-page application.",
    "Identity": "Login, sessions and single sign-on.",
    "Primary database": "The PostgreSQL cluster behind every service.",
    "Payments gateway": "Integration with the card payment provider.",
    "Search": "Product search and its index.",
    "Worker fleet": "Background job runners.",
    "Admin console": "The internal back-office application.",
}


@dataclass
class DemoSeed:
    password: str
    people: tuple[DemoPerson, ...]
    created_users: list[str] = field(default_factory=list)
    created_incidents: list[str] = field(default_factory=list)
    existing_incidents: list[str] = field(default_factory=list)


class _Story:
    """What a scenario needs: the people by short name, severities by rank, types, services."""

    def __init__(self, users: dict[str, object], now: datetime):
        self.users = users
        self.now = now
        # The active scale by rank, so the demo also works on the playbook or SEV presets:
        # "P0" is the most severe active level, whatever it is called.
        levels = list(SeverityLevel.objects.filter(is_active=True).order_by("rank", "code"))
        if not levels:
            raise services.IncidentError("No active severity level; load a policy first.")
        self.levels = levels
        self.services = {service.name: service for service in Service.objects.all()}

    def user(self, short: str):
        return self.users[f"demo.{short}"]

    def severity(self, rank: int) -> SeverityLevel:
        return self.levels[min(rank, len(self.levels) - 1)]

    def incident_type(self, slug: str) -> IncidentType | None:
        return IncidentType.objects.filter(slug=slug).first()

    def ago(self, **delta) -> datetime:
        return self.now - timedelta(**delta)

    def services_named(self, *names: str) -> list[Service]:
        return [self.services[name] for name in names if name in self.services]

    def tick(self, incident: Incident, count: int, *, by, at: datetime) -> None:
        """Tick the first ``count`` checklist items, a minute apart from ``at``."""
        items = incident.checklist.filter(done_at__isnull=True).order_by("position", "pk")
        for index, item in enumerate(list(items[:count])):
            services.set_checklist_item(item, done=True, by=by, now=at + timedelta(minutes=index))


def _p0_checkout_outage(story: _Story) -> Incident:
    """P0, open and breached: acknowledged late, still being fixed three hours in."""
    carmen, rosa, ravi = story.user("carmen"), story.user("rosa"), story.user("ravi")
    start = story.ago(hours=3, minutes=10)
    incident = services.declare_incident(
        title="Checkout API returns 502 for all customers",
        severity=story.severity(0),
        by=rosa,
        incident_type=story.incident_type("complete-outage"),
        summary="Every checkout request fails at the load balancer with 502 Bad Gateway.",
        detection_source="monitoring_alert",
        detected_at=start - timedelta(minutes=3),
        users_affected=48000,
        impact_scope="All customers; no orders can be placed.",
        affected_services=story.services_named("Checkout API", "Web app"),
        now=start,
    )
    services.acknowledge_incident(incident, by=carmen, now=start + timedelta(minutes=22))
    services.assign_role(
        incident, Role.COMMANDER, carmen, by=carmen, now=start + timedelta(minutes=23)
    )
    services.assign_role(
        incident, Role.TECHNICAL_LEAD, ravi, by=carmen, now=start + timedelta(minutes=24)
    )
    services.assign_role(
        incident, Role.RESPONDER, rosa, by=carmen, now=start + timedelta(minutes=24)
    )
    story.tick(incident, 3, by=ravi, at=start + timedelta(minutes=30))
    services.add_note(
        incident,
        "Upstream pods are crash-looping since the 13:05 config push.",
        by=ravi,
        kind=Note.HYPOTHESIS,
        now=start + timedelta(minutes=41),
    )
    services.add_note(
        incident,
        "kubectl -n checkout rollout history deploy/checkout-api",
        by=ravi,
        kind=Note.COMMAND,
        now=start + timedelta(minutes=44),
    )
    services.change_status(
        incident,
        Status.IDENTIFIED,
        by=carmen,
        note="bad connection-pool setting in the config push",
        now=start + timedelta(minutes=55),
    )
    services.change_status(incident, Status.FIXING, by=ravi, now=start + timedelta(minutes=70))
    services.add_note(
        incident,
        "Config rolled back; pods restart but the database refuses new connections.",
        by=carmen,
        kind=Note.UPDATE,
        now=start + timedelta(hours=2, minutes=30),
    )
    return incident


def _p1_login_failures(story: _Story) -> Incident:
    """P1 investigating, acknowledged in time, two people on it."""
    colin, rachel = story.user("colin"), story.user("rachel")
    start = story.ago(minutes=42)
    incident = services.declare_incident(
        title="Login fails for SSO users after certificate rotation",
        severity=story.severity(1),
        by=rachel,
        incident_type=story.incident_type("authentication-failure"),
        summary="SAML assertions are rejected with 'signature invalid' since the 09:00 rotation.",
        detection_source="user_report",
        users_affected=1200,
        impact_scope="Customers who log in through single sign-on.",
        affected_services=story.services_named("Identity"),
        now=start,
    )
    services.acknowledge_incident(incident, by=colin, now=start + timedelta(minutes=6))
    services.assign_role(
        incident, Role.COMMANDER, colin, by=colin, now=start + timedelta(minutes=7)
    )
    services.assign_role(
        incident, Role.RESPONDER, rachel, by=colin, now=start + timedelta(minutes=8)
    )
    story.tick(incident, 2, by=rachel, at=start + timedelta(minutes=12))
    services.add_note(
        incident,
        "The identity provider may still sign with the old key; metadata not refreshed.",
        by=rachel,
        kind=Note.HYPOTHESIS,
        now=start + timedelta(minutes=20),
    )
    return incident


def _p1_replication_lag(story: _Story) -> Incident:
    """P1 monitoring after a fix: identified, fixing, monitoring, with a handed-over lead."""
    carmen, ravi, rosa = story.user("carmen"), story.user("ravi"), story.user("rosa")
    start = story.ago(hours=5, minutes=30)
    incident = services.declare_incident(
        title="Primary database replication lag above five minutes",
        severity=story.severity(1),
        by=ravi,
        incident_type=story.incident_type("database-degradation"),
        summary="Read replicas serve stale data; reports show yesterday's orders.",
        detection_source="health_check",
        impact_scope="Dashboards and order history lag behind.",
        affected_services=story.services_named("Primary database"),
        now=start,
    )
    services.acknowledge_incident(incident, by=ravi, now=start + timedelta(minutes=9))
    services.assign_role(
        incident, Role.COMMANDER, carmen, by=ravi, now=start + timedelta(minutes=10)
    )
    services.assign_role(
        incident, Role.TECHNICAL_LEAD, ravi, by=carmen, now=start + timedelta(minutes=11)
    )
    services.assign_role(incident, Role.SCRIBE, rosa, by=carmen, now=start + timedelta(minutes=12))
    story.tick(incident, 4, by=ravi, at=start + timedelta(minutes=15))
    services.change_status(
        incident,
        Status.IDENTIFIED,
        by=carmen,
        note="a long-running analytics query holds the WAL sender",
        now=start + timedelta(minutes=50),
    )
    services.add_note(
        incident,
        "SELECT pg_cancel_backend(48211);",
        by=ravi,
        kind=Note.COMMAND,
        now=start + timedelta(minutes=58),
    )
    services.change_status(incident, Status.FIXING, by=ravi, now=start + timedelta(hours=1))
    services.assign_role(
        incident, Role.TECHNICAL_LEAD, rosa, by=carmen, now=start + timedelta(hours=2)
    )
    services.change_status(
        incident, Status.MONITORING, by=rosa, now=start + timedelta(hours=2, minutes=20)
    )
    services.add_note(
        incident,
        "Lag back under 2 seconds; watching for an hour before resolving.",
        by=carmen,
        kind=Note.UPDATE,
        now=start + timedelta(hours=2, minutes=25),
    )
    return incident


def _p2_webhooks_resolved(story: _Story) -> Incident:
    """P2 resolved yesterday, within its target."""
    colin, rachel = story.user("colin"), story.user("rachel")
    start = story.ago(days=2, hours=3)
    incident = services.declare_incident(
        title="Payment provider webhooks delayed by up to 40 minutes",
        severity=story.severity(2),
        by=rachel,
        incident_type=story.incident_type("integration-failure"),
        summary="Order confirmations wait for the provider's webhook, which arrives late.",
        detection_source="monitoring_alert",
        impact_scope="Customers see 'payment pending' for up to 40 minutes.",
        affected_services=story.services_named("Payments gateway", "Checkout API"),
        now=start,
    )
    services.acknowledge_incident(incident, by=rachel, now=start + timedelta(minutes=35))
    services.assign_role(
        incident, Role.COMMANDER, colin, by=rachel, now=start + timedelta(minutes=40)
    )
    story.tick(incident, 3, by=rachel, at=start + timedelta(minutes=45))
    services.add_note(
        incident,
        "Provider status page confirms a queue backlog on their side.",
        by=rachel,
        kind=Note.UPDATE,
        now=start + timedelta(hours=1),
    )
    services.change_status(
        incident, Status.IDENTIFIED, by=colin, now=start + timedelta(hours=1, minutes=5)
    )
    services.add_note(
        incident,
        "Switched order confirmation to polling the provider's API every minute.",
        by=rachel,
        kind=Note.ACTION,
        now=start + timedelta(hours=2),
    )
    services.change_status(incident, Status.MONITORING, by=rachel, now=start + timedelta(hours=2))
    services.resolve_incident(
        incident,
        by=colin,
        note="provider backlog cleared; polling stays as a fallback",
        now=start + timedelta(hours=20),
    )
    return incident


def _p2_release_closed(story: _Story) -> Incident:
    """P2 resolved and closed last week, by a commander."""
    sofia, rosa, carmen = story.user("sofia"), story.user("rosa"), story.user("carmen")
    start = story.ago(days=6, hours=4)
    incident = services.declare_incident(
        title="Error spike after release 2026.11.2; rolled back",
        severity=story.severity(2),
        by=rosa,
        incident_type=story.incident_type("deployment-failure"),
        summary="5xx rate rose from 0.1% to 6% within ten minutes of the deploy.",
        detection_source="monitoring_alert",
        affected_services=story.services_named("Web app"),
        now=start,
    )
    services.acknowledge_incident(incident, by=rosa, now=start + timedelta(minutes=4))
    services.assign_role(
        incident, Role.COMMANDER, carmen, by=rosa, now=start + timedelta(minutes=5)
    )
    story.tick(incident, 5, by=rosa, at=start + timedelta(minutes=6))
    services.add_note(
        incident,
        "Rolled back to 2026.11.1.",
        by=rosa,
        kind=Note.ACTION,
        now=start + timedelta(minutes=15),
    )
    services.change_status(incident, Status.MONITORING, by=rosa, now=start + timedelta(minutes=16))
    services.resolve_incident(incident, by=carmen, now=start + timedelta(minutes=50))
    services.change_status(
        incident,
        Status.CLOSED,
        by=sofia,
        note="root cause tracked in the release checklist",
        now=start + timedelta(days=2),
    )
    return incident


def _security_suspicious_logins(story: _Story) -> Incident:
    """Security incident: declared and worked only by Security Team members."""
    sam, sofia = story.user("sam"), story.user("sofia")
    start = story.ago(hours=1, minutes=35)
    incident = services.declare_incident(
        title="Admin console logins from an unknown IP range",
        severity=story.severity(1),
        by=sam,
        incident_type=story.incident_type("security-breach"),
        is_security=True,
        summary="Three successful admin logins from 203.0.113.0/24 outside office hours.",
        detection_source="monitoring_alert",
        affected_services=story.services_named("Admin console", "Identity"),
        now=start,
    )
    services.acknowledge_incident(incident, by=sofia, now=start + timedelta(minutes=8))
    services.assign_role(
        incident, Role.COMMANDER, sofia, by=sofia, now=start + timedelta(minutes=9)
    )
    services.assign_role(
        incident, Role.TECHNICAL_LEAD, sam, by=sofia, now=start + timedelta(minutes=10)
    )
    story.tick(incident, 2, by=sam, at=start + timedelta(minutes=14))
    services.add_note(
        incident,
        "Sessions revoked and the three accounts locked.",
        by=sam,
        kind=Note.ACTION,
        now=start + timedelta(minutes=25),
    )
    services.change_status(
        incident,
        Status.IDENTIFIED,
        by=sofia,
        note="credential stuffing with a leaked password list",
        now=start + timedelta(minutes=50),
    )
    return incident


def _p3_disk_filling(story: _Story) -> Incident:
    """Low severity, just declared, nobody has acknowledged it yet."""
    rachel = story.user("rachel")
    start = story.ago(minutes=25)
    return services.declare_incident(
        title="Log volume filling disks on worker nodes",
        severity=story.severity(3),
        by=rachel,
        incident_type=story.incident_type("memory-disk-full"),
        summary="Disk usage on worker-3 and worker-5 at 86% and rising 2% an hour.",
        detection_source="health_check",
        affected_services=story.services_named("Worker fleet"),
        now=start,
    )


def _p2_search_slow(story: _Story) -> Incident:
    """P2 fixing, with a severity downgrade on the record."""
    colin, ravi = story.user("colin"), story.user("ravi")
    start = story.ago(hours=4)
    incident = services.declare_incident(
        title="Search p95 latency at 4 seconds",
        severity=story.severity(1),
        by=ravi,
        incident_type=story.incident_type("performance-degradation"),
        summary="Search responses slowed after the index grew past 40 GB.",
        detection_source="monitoring_alert",
        affected_services=story.services_named("Search"),
        now=start,
    )
    services.acknowledge_incident(incident, by=ravi, now=start + timedelta(minutes=12))
    if story.severity(2) != incident.severity:
        services.change_severity(
            incident,
            story.severity(2),
            by=colin,
            reason="slow but working; checkout unaffected",
            now=start + timedelta(minutes=20),
        )
    services.assign_role(
        incident, Role.COMMANDER, colin, by=colin, now=start + timedelta(minutes=21)
    )
    services.change_status(
        incident, Status.FIXING, by=ravi, note="adding replicas", now=start + timedelta(hours=1)
    )
    return incident


def _p1_cache_outage_reviewed(story: _Story) -> Incident:
    """P1 that lasted five hours, resolved four days ago: its review is required and overdue,
    half written, with two action items."""
    colin, rachel, ravi = story.user("colin"), story.user("rachel"), story.user("ravi")
    start = story.ago(days=4, hours=6)
    incident = services.declare_incident(
        title="Session cache evictions log users out every few minutes",
        severity=story.severity(1),
        by=rachel,
        summary="Redis session cache at its memory limit; sessions evicted under load.",
        detection_source="user_report",
        users_affected=9000,
        impact_scope="Logged-in customers are signed out and lose their carts.",
        affected_services=story.services_named("Identity", "Web app"),
        now=start,
    )
    services.acknowledge_incident(incident, by=rachel, now=start + timedelta(minutes=12))
    services.assign_role(
        incident, Role.COMMANDER, colin, by=colin, now=start + timedelta(minutes=15)
    )
    services.change_status(
        incident,
        Status.IDENTIFIED,
        by=colin,
        note="maxmemory too low",
        now=start + timedelta(hours=2),
    )
    services.change_status(incident, Status.FIXING, by=ravi, now=start + timedelta(hours=3))
    incident = services.resolve_incident(
        incident,
        by=colin,
        note="memory doubled, eviction policy fixed",
        now=start + timedelta(hours=5),
    )
    review = incident.review
    review.primary_cause = "The session cache ran at its 2 GB limit with allkeys-lru eviction."
    review.contributing_factors = "Traffic up 40% after the autumn campaign; no memory alert."
    review.went_well = "Users' reports reached the on-call engineer within minutes."
    review.save()
    for action, owner, days, priority in (
        ("Alert when the session cache passes 80% memory", ravi, 3, "high"),
        ("Move sessions to a volatile-lru cache of their own", rachel, 14, "medium"),
    ):
        reviews.add_action_item(
            review,
            action=action,
            owner=owner,
            due_date=(start + timedelta(days=days)).date(),
            priority=priority,
            now=start + timedelta(hours=30),
        )
    return incident


# Oldest first, so each day's INC-YYYYMMDD-NNN numbers follow the order of declaration.
SCENARIOS: dict[str, Callable[[_Story], Incident]] = {
    "Error spike after release 2026.11.2; rolled back": _p2_release_closed,
    "Session cache evictions log users out every few minutes": _p1_cache_outage_reviewed,
    "Payment provider webhooks delayed by up to 40 minutes": _p2_webhooks_resolved,
    "Primary database replication lag above five minutes": _p1_replication_lag,
    "Search p95 latency at 4 seconds": _p2_search_slow,
    "Checkout API returns 502 for all customers": _p0_checkout_outage,
    "Admin console logins from an unknown IP range": _security_suspicious_logins,
    "Login fails for SSO users after certificate rotation": _p1_login_failures,
    "Log volume filling disks on worker nodes": _p3_disk_filling,
}


def _ensure_people(password: str) -> tuple[dict[str, object], list[str]]:
    """Create or refresh the demo accounts; the shared password is set every run so the
    table the command prints is always true."""
    User = get_user_model()
    groups = {group.name: group for group in Group.objects.filter(name__in=ALL_GROUPS)}
    missing = set(ALL_GROUPS) - set(groups)
    if missing:
        raise RuntimeError(f"Groups {sorted(missing)} are missing; run `manage.py migrate`.")
    users, created = {}, []
    for person in PEOPLE:
        user, was_created = User.objects.get_or_create(
            username=person.username,
            defaults={
                "first_name": person.first_name,
                "last_name": person.last_name,
                "email": person.email,
                "is_staff": True,
            },
        )
        user.first_name, user.last_name, user.email = (
            person.first_name,
            person.last_name,
            person.email,
        )
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.add(*(groups[name] for name in person.groups))
        users[person.username] = user
        if was_created:
            created.append(person.username)
    return users, created


@transaction.atomic
def seed_demo(*, password: str = DEFAULT_DEMO_PASSWORD, now: datetime | None = None) -> DemoSeed:
    """Fill the portal with demo people and incidents; safe to run again.

    1. Load the default severity scale if there is none, and the runbooks' incident types.
    2. Create (or refresh) the demo accounts, each staff, in its groups, with ``password``.
    3. Create the catalogue services the incidents affect.
    4. Play each incident scenario whose title does not exist yet, through the services,
       with every step dated in the recent past relative to ``now``.
    """
    now = now or timezone.now()
    # Two seeds at once would both find a title missing and declare it twice; locking the
    # group rows first makes the second wait for the first and then find everything there.
    list(Group.objects.select_for_update().filter(name__in=ALL_GROUPS).order_by("pk"))
    load_policy("default", only_if_empty=True)
    load_playbooks()
    users, created_users = _ensure_people(password)
    for name, description in SERVICES.items():
        Service.objects.get_or_create(name=name, defaults={"description": description})
    story = _Story(users, now)
    seed = DemoSeed(password=password, people=PEOPLE, created_users=created_users)
    existing = dict(Incident.objects.filter(title__in=SCENARIOS).values_list("title", "public_id"))
    for title, play in SCENARIOS.items():
        if title in existing:
            seed.existing_incidents.append(existing[title])
            continue
        seed.created_incidents.append(play(story).public_id)
    return seed
