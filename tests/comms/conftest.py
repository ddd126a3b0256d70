# The roster every escalation test uses: people, rotations and org roles.
from tests.escalation.conftest import organisation  # noqa: F401
