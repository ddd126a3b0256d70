import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def run_bootstrap(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


def test_it_creates_an_admin_with_a_generated_password_that_logs_in(client):
    output = run_bootstrap()

    line = next(line for line in output.splitlines() if line.startswith("Created admin user"))
    username, password = line.split("Login: ")[1].split(" / ")
    assert username == "admin"
    assert len(password) >= 12
    assert client.login(username="admin", password=password)
    assert client.get("/admin/").status_code == 200


def test_it_uses_the_login_it_is_given():
    run_bootstrap("--username", "ops", "--password", "correct-horse-battery")

    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff
    assert user.check_password("correct-horse-battery")


def test_running_it_again_creates_no_second_admin_and_keeps_the_password():
    run_bootstrap("--password", "first-password-123")

    output = run_bootstrap("--password", "other-password-456")

    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert get_user_model().objects.get(username="admin").check_password("first-password-123")
    assert "Admin user exists. Login: admin" in output
