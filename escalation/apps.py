from django.apps import AppConfig


class EscalationConfig(AppConfig):
    name = "escalation"
    verbose_name = "On call and escalation"

    def ready(self) -> None:
        # Connects the receivers: the engine follows incidents, the loader follows presets.
        from . import engine, loader  # noqa: F401
