"""Secrets in target URLs, kept encrypted at rest and only until the job ends.

A target may carry a password (``amqp://user:pass@host/``) or, for NATS, a
token in the user slot. The job row keeps the URL masked (``user:****``) for
every page, log and API answer, and the full URL only as a Fernet token in
``ProbeJob.secret_url``, erased when the job ends. The Fernet key is derived
from ``DJANGO_SECRET_KEY`` with HKDF under a label of its own, so it is not the
key Django signs cookies with, and rotating the secret key makes old tokens
unreadable (a job still queued then fails instead of probing without its
password).
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from probes.guard import mask_url

_INFO = b"switchboard probe target credentials v1"


class CredentialsLost(Exception):
    """The stored secret cannot be decrypted (the secret key changed)."""


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def carries_secret(url: str) -> bool:
    """True when the URL holds something masking hides (a password or a token)."""
    return mask_url(url) != url


def seal(url: str) -> str:
    """The URL encrypted for the job row; "" when it carries no secret."""
    if not carries_secret(url):
        return ""
    return _fernet(settings.SECRET_KEY).encrypt(url.encode("utf-8")).decode("ascii")


def unseal(token: str, *, ttl: int | None = None) -> str:
    """The URL back; ``ttl`` (seconds) refuses a token older than that (the page's form)."""
    try:
        raw = _fernet(settings.SECRET_KEY).decrypt(token.encode("ascii"), ttl=ttl)
        return raw.decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise CredentialsLost(
            "the target's password can no longer be decrypted (the secret key changed)"
        ) from exc
