"""``Authorization: Bearer <key>``: an API key acting as its user. Keys never travel in a query
string; a key there is refused with a message saying so."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiKey


class BearerApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        if "key" in request.query_params or "api_key" in request.query_params:
            raise exceptions.AuthenticationFailed(
                "API keys go in the Authorization header (Bearer), never in the URL."
            )
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <key>'.")
        try:
            key = ApiKey.objects.get_from_key(parts[1])
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown API key.") from None
        if key.has_expired or key.revoked:
            raise exceptions.AuthenticationFailed("This API key was revoked or has expired.")
        if not key.user.is_active:
            raise exceptions.AuthenticationFailed("This API key's user is disabled.")
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key.user, key

    def authenticate_header(self, request):
        return self.keyword
