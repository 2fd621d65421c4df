"""``python manage.py create_api_token USERNAME``: a bearer token for the API, printed once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from advisor.apitokens import api_token_create


class Command(BaseCommand):
    help = (
        "Make an API token for USERNAME and print it once. Send it as "
        "'Authorization: Bearer TOKEN'; only its hash is stored, so it cannot be shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        username = str(options["username"])
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"no user named {username!r}; create it first (createsuperuser)", returncode=2
            )
        if not user.is_active:
            raise CommandError(f"the user {username!r} is not active", returncode=2)
        _, token = api_token_create(user=user)
        self.stdout.write(token)
