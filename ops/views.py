from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .services import DOWN, portal_health


@never_cache
@require_GET
def health(request):
    """Unauthenticated probe for load balancers and monitoring: no secrets, no traces."""
    overall, checks = portal_health()
    body = {
        "status": overall,
        "checked_at": timezone.now(),
        "checks": {name: check.as_dict() for name, check in checks.items()},
    }
    return JsonResponse(body, status=503 if overall == DOWN else 200)
