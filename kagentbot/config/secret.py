"""Reading secret settings (tokens, signing secrets) in one way everywhere."""

from __future__ import annotations

from pydantic import SecretStr


def secret_text(value: SecretStr | None) -> str:
    """The secret's text without surrounding blanks; "" when it is not set."""
    return value.get_secret_value().strip() if value is not None else ""


def is_set(value: SecretStr | None) -> bool:
    """Whether a secret setting holds more than blanks: what makes a platform configured."""
    return bool(secret_text(value))
