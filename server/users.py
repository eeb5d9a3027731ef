"""Accounts, password hashes (argon2id), API tokens (stored as SHA-256), and what each role may see."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update

from server import audit
from server.i18n import N_
from server.inventory import Inventory
from server.store import api_tokens, users

ROLES = {
    "county_admin": N_("县级管理员"),
    "county_reviewer": N_("县级督查（只读）"),
    "township_duty": N_("乡镇值班人员"),
    "village_viewer": N_("村级查看"),
}
SCOPED_ROLES = {"township_duty": "township", "village_viewer": "village"}
WRITE_ROLES = {"county_admin", "township_duty"}
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verifying against this when a user does not exist keeps login time the same either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    scope: str | None
    epoch: int = 0  # bumped by a password change: sessions from before it end

    @property
    def can_act(self) -> bool:
        return self.role in WRITE_ROLES


def visible_venues(user: User, inventory: Inventory) -> frozenset[str] | None:
    """Venue ids this user may see; None means all of them."""
    if user.role in ("county_admin", "county_reviewer"):
        return None
    if user.role == "township_duty":
        return frozenset(v.id for v in inventory.venues.values() if v.township_id == user.scope)
    if user.role == "village_viewer":
        return frozenset(v.id for v in inventory.venues.values() if v.village_id == user.scope)
    return frozenset()


def has_users(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(users.c.id).limit(1)).first() is not None


def check_new_user(name: str, role: str, scope: str | None, inventory: Inventory) -> None:
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError(f"user name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not known; use one of {', '.join(ROLES)}")
    level = SCOPED_ROLES.get(role)
    if level is None:
        if scope:
            raise UserError(f"role {role} covers the whole county; drop --scope")
        return
    ids = ({v.township_id for v in inventory.venues.values()} if level == "township"
           else {v.village_id for v in inventory.venues.values()})
    if not scope:
        raise UserError(f"role {role} needs --scope with a {level} id (one of: {', '.join(sorted(ids))})")
    if scope not in ids:
        raise UserError(f"--scope {scope!r} is not a {level} in the inventory (one of: {', '.join(sorted(ids))})")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password is too short: use at least {MIN_PASSWORD} characters")


def add_user(engine: Engine, inventory: Inventory, name: str, role: str, scope: str | None, password: str,
             actor: str = "cli") -> User:
    check_new_user(name, role, scope, inventory)
    check_password(password)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.name == name)).first():
            raise UserError(f"user {name!r} already exists")
        user_id = conn.execute(insert(users).values(
            name=name, password_hash=_hasher.hash(password), role=role, scope=scope, created_at=now,
            disabled=False)).inserted_primary_key[0]
        audit.record(conn, at=now, actor=actor, action="user_add", target=name,
                     detail={"role": role, "scope": scope})
    return User(user_id, name, role, scope)


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
    try:
        if row is None or row.disabled:
            _hasher.verify(_DUMMY_HASH, password)
            return None
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password)))
    return User(row.id, row.name, row.role, row.scope, row.epoch)


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return None if row is None or row.disabled else User(row.id, row.name, row.role, row.scope, row.epoch)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(engine: Engine, name: str, label: str = "cli") -> str:
    """Create an API token for a user; the token is shown once and only its hash is stored."""
    token = "vw_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(users.c.id).where(users.c.name == name)).first()
        if row is None:
            raise UserError(f"user {name!r} does not exist; create it with `venuewatch user add`")
        conn.execute(insert(api_tokens).values(user_id=row.id, token_hash=_token_hash(token), label=label,
                                               created_at=now))
        audit.record(conn, at=now, actor=label, action="token_add", target=name)
    return token


def user_for_token(engine: Engine, token: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users).join(api_tokens, api_tokens.c.user_id == users.c.id).where(
                api_tokens.c.token_hash == _token_hash(token), api_tokens.c.revoked_at.is_(None))
        ).first()
    return None if row is None or row.disabled else User(row.id, row.name, row.role, row.scope)


def change_password(engine: Engine, user: User, current: str, new: str) -> User:
    """Set a new password after checking the current one; every other session of the user ends."""
    if authenticate(engine, user.name, current) is None:
        raise UserError("the current password is wrong")
    check_password(new)
    if new == current:
        raise UserError("the new password is the same as the current one")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(
            password_hash=_hasher.hash(new), epoch=users.c.epoch + 1))
        audit.record(conn, now, user.name, "password_change", user.name)
        epoch = conn.execute(select(users.c.epoch).where(users.c.id == user.id)).scalar_one()
    return User(user.id, user.name, user.role, user.scope, epoch)


def list_tokens(engine: Engine, name: str) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_tokens).join(users, users.c.id == api_tokens.c.user_id).where(
            users.c.name == name).order_by(api_tokens.c.id)).all()
    return [{"id": r.id, "label": r.label, "created_at": r.created_at.isoformat(),
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]


def revoke_tokens(engine: Engine, name: str, actor: str, token_id: int | None = None) -> int:
    """Revoke one token of a user (or all of them when `token_id` is None); returns how many were live."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        if user_id is None:
            raise UserError(f"user {name!r} does not exist")
        where = (api_tokens.c.user_id == user_id) & api_tokens.c.revoked_at.is_(None)
        if token_id is not None:
            where &= api_tokens.c.id == token_id
        revoked = conn.execute(update(api_tokens).where(where).values(revoked_at=now)).rowcount
        if revoked:
            audit.record(conn, now, actor, "token_revoke", name, {"token": token_id, "count": revoked})
    return revoked


def set_disabled(engine: Engine, name: str, disabled: bool, actor: str) -> None:
    """Disable (or enable again) a user: their sessions and tokens stop working at once."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        changed = conn.execute(update(users).where(users.c.name == name).values(
            disabled=disabled, epoch=users.c.epoch + 1)).rowcount
        if not changed:
            raise UserError(f"user {name!r} does not exist")
        audit.record(conn, now, actor, "user_disable" if disabled else "user_enable", name)
