"""The admin groups and what they may do, granted by each app's data migration.

Viewer reads; Responder works incidents; Incident Commander also changes severity and closes;
Admin configures the portal. Security Team carries no permission of its own: membership makes
security incidents visible (incidents.models.IncidentQuerySet.visible_to).
"""

VIEWER, RESPONDER, COMMANDER, ADMIN, SECURITY_TEAM = (
    "Viewer",
    "Responder",
    "Incident Commander",
    "Admin",
    "Security Team",
)
ALL_GROUPS = (VIEWER, RESPONDER, COMMANDER, ADMIN, SECURITY_TEAM)


def ensure_permissions(apps, app_label: str) -> None:
    """Create an app's permissions now; Django would only create them after all migrations."""
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None


def grant(apps, app_label: str, grants: dict[str, list[str]]) -> None:
    """Give each group (by name) the app's permissions with the listed codenames."""
    ensure_permissions(apps, app_label)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name in ALL_GROUPS:
        Group.objects.get_or_create(name=name)
    for name, codenames in grants.items():
        group = Group.objects.get(name=name)
        perms = Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        found = set(perms.values_list("codename", flat=True))
        missing = set(codenames) - found
        if missing:
            raise RuntimeError(f"{app_label} has no permissions {sorted(missing)}")
        group.permissions.add(*perms)
