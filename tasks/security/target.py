"""The `security` section's model (seed 5.1-5.4) and what its checks share."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field, field_validator

from ..models import Target
from .supplychain import DependencyAudit

FORBIDDEN_FILES = [
    ".env",
    ".env.production",
    ".env.prod",
    ".env.*.local",
    "*.pem",
    "*.key",
    "id_rsa",
    "id_ed25519",
    "*.p12",
    "*.pfx",
    ".pgpass",
    ".netrc",
    "credentials.json",
]
ALLOWED_FILES = [".env.example", ".env.sample", ".env.template"]

#: (rule, regex): a small, high-signal set (gitleaks-style); matches are reported as file:line + rule, never the text
SECRET_RULES: list[tuple[str, str]] = [
    ("aws-access-key-id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("aws-secret-access-key", r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=_-]{30,}"),
    ("private-key", r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    ("slack-token", r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    ("github-token", r"\bgh[pousr]_[0-9A-Za-z]{36,}\b"),
    ("stripe-live-key", r"\b[sr]k_live_[0-9A-Za-z]{20,}\b"),
    ("url-with-password", r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:[^\s@/'\"$<{]{6,}@[^\s'\"]+"),
    (
        "generic-secret-assignment",
        r"(?i)\b(?:secret|password|passwd|api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key)\b\s*[:=]\s*"
        r"['\"][^'\"\s$<{]{12,}['\"]",
    ),
]


class SecurityTarget(Target):
    # 5.1 sessions
    session_cookie: str | None = Field(
        None, description="the session cookie's name (None: every cookie the login sets)"
    )
    max_session_hours: float = Field(24.0, gt=0, description="seed 5.1: sessions expire after 24 hours")
    samesite: list[str] = Field(
        default_factory=lambda: ["lax", "strict"], description="accepted SameSite values (None is refused)"
    )
    # 5.2 data
    users_table: str = Field("users", description="seed 5.2: the table holding password hashes")
    password_column: str = "password_hash"
    id_column: str = Field(
        "id", description="the primary key reported for offending rows (users and sensitive columns' tables)"
    )
    hash_schemes: list[str] = Field(
        default_factory=lambda: ["bcrypt", "argon2"],
        description="accepted password hash schemes (bcrypt, argon2, scrypt, pbkdf2)",
    )
    min_bcrypt_cost: int = Field(10, ge=4, le=31)
    sensitive_columns: list[str] = Field(
        default_factory=list,
        description="seed 5.2: table.column values that must be stored encrypted (ciphertext), never plaintext",
    )
    ciphertext_pattern: str | None = Field(
        None,
        description="a regex every encrypted value matches (e.g. the "
        "envelope prefix); otherwise a base64/hex + entropy heuristic",
    )
    sample_rows: int = Field(1000, ge=1, le=100000, description="rows sampled per sensitive column")
    # 5.2 secrets
    app_repo: Path | None = Field(None, description="seed 5.2: the app's git work tree: tracked files are scanned")
    forbidden_files: list[str] = Field(
        default_factory=lambda: list(FORBIDDEN_FILES), description="tracked file names (globs) that must not be in git"
    )
    allowed_files: list[str] = Field(default_factory=lambda: list(ALLOWED_FILES))
    max_scan_bytes: int = Field(1_000_000, gt=0, description="tracked files larger than this are not scanned")
    # 5.3 access control
    admin_paths: list[str] = Field(
        default_factory=lambda: ["/admin", "/api/admin/users"],
        description="seed 5.3: the admin panel; anonymous requests must be refused",
    )
    web_user_is_admin: bool = Field(False, description="false: the `web.auth` user is not an admin and must get 403")
    mfa_column: str | None = Field("totp_enabled", description="seed 5.3: boolean column: 2FA enabled")
    role_column: str = "role"
    admin_roles: list[str] = Field(default_factory=lambda: ["admin"])
    must_refuse: list[str] = Field(
        default_factory=list,
        description="seed 5.3: host:port that must refuse TCP (the database port from where it must not be reachable)",
    )
    rate_limit_probe: bool = Field(
        False,
        description="seed 5.3: send up to rate_limit_per_minute + margin requests "
        "with a fresh session until a 429 (opt-in: it sends load)",
    )
    rate_limit_per_minute: int = Field(600, ge=1, le=5000, description="seed 5.3: 600 requests/minute per key")
    rate_limit_path: str | None = Field(None, description="default: web.protected_path")
    audit_table: str | None = Field(None, description="seed 5.3: the audit log table")
    audit_time_column: str = "occurred_at"
    audit_max_silence_hours: float = Field(24.0, gt=0, description="the newest entry is at most this old")
    audit_retention_days: int = Field(90, ge=1, description="seed 5.3: 90 days of logs kept")
    # 5.4
    dependencies: DependencyAudit | None = None

    @field_validator("sensitive_columns")
    @classmethod
    def _cols(cls, v: list[str]) -> list[str]:
        for c in v:
            if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*){1,2}", c):
                raise ValueError(f"{c!r}: expected table.column (or schema.table.column)")
        return v

    @field_validator("must_refuse")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        for hp in v:
            host, _, port = hp.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{hp!r}: expected host:port")
        return v

    @field_validator("ciphertext_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


def fingerprint(value: str) -> str:
    """A short fingerprint to tell two secrets apart without showing either."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]
