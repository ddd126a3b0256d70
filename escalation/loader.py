"""Load the runbooks' escalation matrix (``escalation.policies``) into editable policy rows.

Loading a severity preset (``manage.py load_policy``) resets the policies of its levels, as it
resets the levels themselves; ``ensure_policies`` only fills in what is missing (``make run``
must never undo an operator's edits).
"""

from django.db import transaction
from django.dispatch import receiver

from incidents.models import SeverityLevel
from incidents.signals import severity_scale_loaded

from .models import EscalationPolicy, EscalationStep
from .planner import Step
from .policies import DEFAULT_POLICIES, FLAG_POLICY_NAMES, FLAG_RULES, PRESET_POLICIES

DEFAULT_CHANNELS = ["email", "webhook"]


def _write_steps(policy: EscalationPolicy, steps: tuple[Step, ...]) -> None:
    policy.steps.all().delete()
    EscalationStep.objects.bulk_create(
        EscalationStep(
            policy=policy,
            position=position,
            key=step.key,
            label=step.label,
            delay=step.delay,
            condition=step.condition,
            targets=list(step.targets),
            channels=DEFAULT_CHANNELS,
            repeat_every=step.repeat_every,
            repeat_times=step.repeat_times,
        )
        for position, step in enumerate(steps, start=1)
    )


def _severity_policy(level: SeverityLevel, preset: str, steps, *, reset: bool) -> bool:
    policy = EscalationPolicy.objects.filter(severity=level).first()
    if policy is not None and not reset:
        return False
    name = f"{level.code} {level.name}"
    if policy is None:
        policy = EscalationPolicy(severity=level)
    elif EscalationPolicy.objects.filter(name=name).exclude(pk=policy.pk).exists():
        name = policy.name
    policy.name = name
    policy.preset = preset
    policy.description = level.definition[:500]
    policy.save()
    _write_steps(policy, steps)
    return True


def _flag_policies(*, reset: bool) -> list[str]:
    loaded = []
    for flag, steps in FLAG_RULES.items():
        policy = EscalationPolicy.objects.filter(flag=flag).first()
        if policy is not None and not reset:
            continue
        if policy is None:
            policy = EscalationPolicy.objects.create(
                name=FLAG_POLICY_NAMES[flag], flag=flag, preset="default"
            )
        _write_steps(policy, steps)
        loaded.append(policy.name)
    return loaded


@transaction.atomic
def load_preset_policies(preset: str, codes: list[str], *, reset: bool = True) -> list[str]:
    table = PRESET_POLICIES.get(preset, {})
    loaded = []
    for level in SeverityLevel.objects.filter(code__in=codes):
        if _severity_policy(level, preset, table.get(level.code, ()), reset=reset):
            loaded.append(level.code)
    return loaded + _flag_policies(reset=reset)


@transaction.atomic
def ensure_policies() -> list[str]:
    """Give each active level without a policy its preset's default, and create missing flag
    rules; everything that exists is left as it is."""
    loaded = []
    for level in SeverityLevel.objects.filter(is_active=True, escalation_policy__isnull=True):
        table = PRESET_POLICIES.get(level.preset, DEFAULT_POLICIES)
        _severity_policy(level, level.preset, table.get(level.code, ()), reset=False)
        loaded.append(level.code)
    return loaded + _flag_policies(reset=False)


@receiver(severity_scale_loaded, dispatch_uid="escalation.load_preset_policies")
def _on_scale_loaded(sender, *, preset, codes, **kwargs) -> None:
    load_preset_policies(preset, codes)
