"""Loading the runbooks' severity scales and playbooks (incidents/presets.py, playbooks.py)."""

from dataclasses import asdict, dataclass

from django.db import transaction

from .models import BusinessCalendar, ChecklistTemplateItem, IncidentType, SeverityLevel
from .playbooks import INCIDENT_TYPES
from .presets import DEFAULT_BUSINESS_CALENDAR, PRESETS
from .signals import severity_scale_loaded


class UnknownPreset(ValueError):
    pass


@dataclass(frozen=True)
class PolicyLoad:
    preset: str
    created: list[str]
    updated: list[str]
    deactivated: list[str]
    skipped: bool = False


@transaction.atomic
def load_policy(name: str, *, only_if_empty: bool = False) -> PolicyLoad:
    """Make the named preset the active severity scale.

    Levels are matched by code and overwritten with the preset's values (loading is how an
    operator resets a scale). Levels of other scales become inactive, never deleted: old
    incidents keep their severity and the deadlines computed when it was set.
    ``only_if_empty`` loads nothing when any level exists (what `make run` wants).
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise UnknownPreset(
            f"Unknown policy {name!r}; choose one of: {', '.join(sorted(PRESETS))}."
        ) from None
    ensure_business_calendar()
    if only_if_empty and SeverityLevel.objects.exists():
        return PolicyLoad(name, [], [], [], skipped=True)
    created, updated = [], []
    for level in preset.levels:
        values = asdict(level)
        code = values.pop("code")
        values["examples"] = "\n".join(values["examples"])
        _, was_created = SeverityLevel.objects.update_or_create(
            code=code, defaults={**values, "preset": preset.name, "is_active": True}
        )
        (created if was_created else updated).append(code)
    codes = [level.code for level in preset.levels]
    stale = SeverityLevel.objects.filter(is_active=True).exclude(code__in=codes)
    deactivated = list(stale.values_list("code", flat=True))
    stale.update(is_active=False)
    _link_default_severities()
    severity_scale_loaded.send(SeverityLevel, preset=preset.name, codes=codes)
    return PolicyLoad(name, created, updated, deactivated)


def ensure_business_calendar() -> BusinessCalendar:
    calendar = BusinessCalendar.objects.order_by("pk").first()
    if calendar is None:
        calendar = BusinessCalendar.objects.create(
            name="Default",
            timezone=DEFAULT_BUSINESS_CALENDAR.timezone,
            workdays=list(DEFAULT_BUSINESS_CALENDAR.workdays),
            day_starts_at=DEFAULT_BUSINESS_CALENDAR.start,
            day_ends_at=DEFAULT_BUSINESS_CALENDAR.end,
        )
    return calendar


@transaction.atomic
def load_playbooks() -> list[str]:
    """Create the runbooks' incident types that do not exist yet.

    A type that exists is left alone: operators edit types and checklists in the admin, and
    `make run` must not undo their edits.
    """
    created = []
    for preset in INCIDENT_TYPES:
        incident_type, was_created = IncidentType.objects.get_or_create(
            slug=preset.slug,
            defaults={
                "name": preset.name,
                "description": preset.description,
                "implies_security": preset.implies_security,
                "implies_data_loss": preset.implies_data_loss,
                "source": preset.source[:200],
            },
        )
        if not was_created:
            continue
        ChecklistTemplateItem.objects.bulk_create(
            ChecklistTemplateItem(
                incident_type=incident_type, position=index, phase=item.phase, text=item.text
            )
            for index, item in enumerate(preset.checklist)
        )
        created.append(preset.slug)
    # Only the new types: an operator may have cleared a suggested severity on purpose.
    _link_default_severities(created)
    return created


def _link_default_severities(slugs: list[str] | None = None) -> None:
    """Point each runbook type (or those of ``slugs``) at its suggested severity, if active."""
    active = {level.code: level for level in SeverityLevel.objects.filter(is_active=True)}
    for preset in INCIDENT_TYPES:
        if slugs is not None and preset.slug not in slugs:
            continue
        if preset.default_severity and preset.default_severity in active:
            IncidentType.objects.filter(slug=preset.slug, default_severity__isnull=True).update(
                default_severity=active[preset.default_severity]
            )
