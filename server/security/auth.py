"""API keys: who is calling, in which role. Keys are only ever held as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from graph.context import Role
from graph.settings import Settings
from tools.sqlite import now_iso

ROLES: tuple[Role, ...] = ("read", "write", "admin")
LOCAL_USER = "local"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: str
    role: Role
    key_id: str  # first characters of the key's digest: safe to log, useless to an attacker
    local: bool = False


@dataclass(frozen=True)
class KeyEntry:
    """One configured key, by digest."""

    digest: bytes
    user_id: str
    role: Role


class KeyError_(ValueError):
    """A malformed key configuration, explained."""


def digest(key: str) -> bytes:
    """Return the SHA-256 digest of a presented key."""
    return hashlib.sha256(key.encode()).digest()


def parse_env_keys(raw: str) -> list[KeyEntry]:
    """Parse `TASKAGENT_API_KEYS="<key>:<user>:<role>,…"`."""
    entries: list[KeyEntry] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, _, rest = item.partition(":")
        user, _, role = rest.partition(":")
        if not key or not user or role not in ROLES:
            raise KeyError_(
                "TASKAGENT_API_KEYS entries look like <key>:<user>:<role> with role "
                f"read, write or admin; one entry (user {user or '?'!r}) is not."
            )
        entries.append(KeyEntry(digest(key), user, role))
    return entries


def load_key_file(path: Path) -> list[KeyEntry]:
    """Read the hashed keys written by `taskagent keys add` (missing file: no keys)."""
    if not path.exists():
        return []
    rows = json.loads(path.read_text())
    return [KeyEntry(bytes.fromhex(r["sha256"]), r["user"], cast(Role, r["role"])) for r in rows]


def add_key(path: Path, user: str, role: Role, label: str = "") -> str:
    """Create a new key for `user`, store only its digest in `path`, and return the key."""
    if role not in ROLES:
        raise KeyError_(f"role must be one of {', '.join(ROLES)}")
    key = "tak_" + secrets.token_urlsafe(32)
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append(
        {
            "sha256": digest(key).hex(),
            "user": user,
            "role": role,
            "label": label,
            "created_at": now_iso(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


class KeyRing:
    """The configured keys; empty means single-user local mode."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = entries

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Load keys from `TASKAGENT_API_KEYS` and the keys file."""
        raw = settings.api_keys.get_secret_value() if settings.api_keys else ""
        return cls(parse_env_keys(raw) + load_key_file(settings.keys_path))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (otherwise everyone is the local admin)."""
        return bool(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """Return the principal for a presented key, or None; time does not depend on which."""
        if not presented:
            return None
        candidate = digest(presented)
        found: KeyEntry | None = None
        for entry in self._entries:
            # Compare against every entry, so timing does not reveal where a match was.
            if hmac.compare_digest(candidate, entry.digest):
                found = entry
        if found is None:
            return None
        return Principal(found.user_id, found.role, candidate.hex()[:8])


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """Return the key from `X-Api-Key` or `Authorization: Bearer …`."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def local_principal() -> Principal:
    """The single local admin of a server without keys (loopback only)."""
    return Principal(LOCAL_USER, "admin", "local", local=True)


AuthMode = Literal["keys", "local"]
