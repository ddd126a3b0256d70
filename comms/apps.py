from django.apps import AppConfig


class CommsConfig(AppConfig):
    name = "comms"
    verbose_name = "Communications"

    def ready(self) -> None:
        # Connects the receiver that follows incidents (war room, cadence, resolution notice).
        from . import receivers  # noqa: F401
