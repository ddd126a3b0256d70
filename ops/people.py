"""How the portal names a person in text it writes (timeline, emails, calendar, admin)."""


def display_name(user, *, nobody: str = "nobody") -> str:
    """Full name, else username; ``nobody`` when there is no user (a gap, the portal itself)."""
    if user is None:
        return nobody
    return user.get_full_name() or user.get_username()
