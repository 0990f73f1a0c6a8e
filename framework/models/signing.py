"""Signed model metadata: write access to the models folder alone cannot make a
service load a model.

A model's ``model.json`` records the sha256 of its pickle; both sit in the same
folder, so whoever can write there could replace both. The registry therefore
signs each ``model.json`` (all of it: the checksums of the pickle and of the
reference sample included) with HMAC-SHA256 under a key kept outside ``data/``,
and checks the signature before anything is unpickled. A model whose signature
is missing or wrong is refused with an ``ArtifactError``.

The key, in this order:

- ``LIFECYCLE_MODEL_KEY``: the key itself (production: from a secret store; every
  host that trains or serves the same registry needs the same key);
- ``LIFECYCLE_MODEL_KEY_FILE``: a file holding it;
- otherwise ``~/.config/lifecycle/model.key`` (``$XDG_CONFIG_HOME`` if set), made
  on first use with 32 random bytes and mode 0600: a single machine works with no
  setup, and a copy of ``data/`` alone carries no key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from framework.errors import ArtifactError, ConfigError

__all__ = ["SIGNATURE_FIELD", "key_location", "model_key", "same_content", "sign", "verify"]

SIGNATURE_FIELD = "signature"


def key_location() -> str:
    """Where the key comes from (for messages; never the key itself)."""
    if os.environ.get("LIFECYCLE_MODEL_KEY"):
        return "LIFECYCLE_MODEL_KEY"
    return str(_key_file())


def _key_file() -> Path:
    named = os.environ.get("LIFECYCLE_MODEL_KEY_FILE")
    if named:
        return Path(named)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "lifecycle" / "model.key"


def model_key() -> bytes:
    """The signing key (see the module docstring); made on first use when none is set."""
    given = os.environ.get("LIFECYCLE_MODEL_KEY")
    if given:
        return given.encode()
    path = _key_file()
    if not path.exists():
        if os.environ.get("LIFECYCLE_MODEL_KEY_FILE"):
            raise ConfigError(
                f"LIFECYCLE_MODEL_KEY_FILE names {path}, which does not exist. Create it "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > FILE`) "
                "or unset the variable."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two first uses at once agree on one key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"The model key file {path} is empty.")
    return key.encode()


def _canonical(data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two metadata dicts hold the same JSON (NaN equal to NaN, tuples to lists)."""
    return _canonical(a) == _canonical(b)


def sign(data: dict[str, Any]) -> str:
    """The signature of a model's metadata (as JSON data, without its signature)."""
    return hmac.new(model_key(), _canonical(data), hashlib.sha256).hexdigest()


def verify(data: dict[str, Any], what: str) -> None:
    """Raise ``ArtifactError`` unless ``data`` carries a valid signature under our key."""
    recorded = data.get(SIGNATURE_FIELD)
    if not isinstance(recorded, str) or not recorded:
        raise ArtifactError(
            f"{what} is not signed: refusing to load it (models are signed when registered; "
            "retrain to register a signed version)."
        )
    if not hmac.compare_digest(recorded, sign(data)):
        raise ArtifactError(
            f"{what} does not carry a valid signature under this deployment's model key "
            f"({key_location()}): it was changed, or signed with another key. Refusing to "
            "load it. Retrain, or give every host the same LIFECYCLE_MODEL_KEY."
        )
