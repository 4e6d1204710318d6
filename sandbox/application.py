"""Checklist sections 4 (application) and 5 (security) of the sandbox: the app's lock file and its files in the app's
git repository, the faults of the app's facts (its data, repository, scheduler, exposure), and the golive config
sections (`app`, `workers`, `security`) that point at all of it. The processes are parts: the web process and its
environment in sandbox/parts/web_app.py, the scheduler in sandbox/parts/scheduler.py.
"""

from __future__ import annotations

import importlib.metadata
import secrets
from typing import Any

from . import dr, procs
from .part import Stack
from .parts.web_app import REQUIRED_ENV

LOCK_NAME = "requirements.lock"
SELF = {"golive"}  # the project itself (an editable install) is not a pinned dependency
WATCHED = ["starlette", "uvicorn", "SQLAlchemy", "psycopg", "httpx"]  # seed 5.4: "FastAPI, SQLAlchemy latest stable"
SECRET_FILE = ".env.production"
#: the `secrets-committed` fault's file: a production env file with an AWS-style key (a fake one, made at apply time)
ENV_PRODUCTION = (
    "APP_ENV=production\nDATABASE_URL=postgresql://app_user@db.internal:5432/merchants_prod\n"
    "AWS_ACCESS_KEY_ID=AKIA{key}\nAWS_SECRET_ACCESS_KEY={secret}\n"
)

SETTINGS_PY = '''"""SwipeSavvy settings: every value comes from the environment (seed 5.2: no hardcoded secrets)."""
import os

APP_ENV = os.environ["APP_ENV"]
DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]
SECRET_KEY = os.environ["SECRET_KEY"]
SMTP_URL = os.environ["SMTP_URL"]
RATE_LIMIT_PER_MINUTE = int(os.environ.get("RATE_LIMIT_PER_MINUTE", "600"))
'''
ENV_EXAMPLE = "".join(f"{name}=\n" for name in REQUIRED_ENV)


def lock_lines() -> list[str]:
    """`name==version` of every distribution of this environment (what the API process runs with), sorted."""
    pins: dict[str, str] = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and name.lower() not in SELF:
            pins[name] = d.version
    return [f"{n}=={v}" for n, v in sorted(pins.items(), key=lambda kv: kv[0].lower())]


def repo_files() -> dict[str, str]:
    """The app's own files in its release commit: the lock file, settings from the environment, .env.example,
    .gitignore (the sandbox's app repository is made by dr.make_repo)."""
    return {
        LOCK_NAME: "# pinned by `pip freeze` at build time; the deploy installs exactly these\n"
        + "\n".join(lock_lines())
        + "\n",
        "swipesavvy/settings.py": SETTINGS_PY,
        ".env.example": ENV_EXAMPLE,
        ".gitignore": ".env\n.env.*\n!.env.example\n__pycache__/\n",
    }


# --------------------------------------------------------------------------- faults


def commit_secrets(sb: Stack) -> None:
    body = ENV_PRODUCTION.format(key=secrets.token_hex(8).upper(), secret=secrets.token_urlsafe(30))
    (sb.repo / SECRET_FILE).write_text(body)
    dr.git(sb.repo, "add", "-f", SECRET_FILE)
    dr.git(sb.repo, "commit", "--quiet", "-m", "Add production settings")


def uncommit_secrets(sb: Stack) -> None:
    dr.git(sb.repo, "reset", "--quiet", "--hard", "HEAD~1")


PLAINTEXT_USER_ID = 42
PLAINTEXT_PASSWORD = "Summer2025!"  # what a broken import leaves in password_hash


def plaintext_password(sb: Stack) -> None:
    with sb.admin_db() as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (PLAINTEXT_USER_ID,)).fetchone()
        sb.saved_password_hash = row[0]
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (PLAINTEXT_PASSWORD, PLAINTEXT_USER_ID))


def hashed_password(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (sb.saved_password_hash, PLAINTEXT_USER_ID))


def admin_without_2fa(on: bool):
    def act(sb: Stack) -> None:
        with sb.admin_db() as conn:
            conn.execute("UPDATE users SET totp_enabled = %s WHERE id = 2", (not on,))

    return act


def audit_short(sb: Stack) -> None:
    """Keep only the last 30 days (what a 30-day log retention leaves)."""
    with sb.admin_db() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS audit_log_fault_saved AS SELECT * FROM audit_log WHERE false")
        conn.execute(
            "WITH gone AS (DELETE FROM audit_log WHERE occurred_at < now() - interval '30 days' RETURNING *) "
            "INSERT INTO audit_log_fault_saved SELECT * FROM gone"
        )


def audit_full(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute("INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * FROM audit_log_fault_saved")
        conn.execute("DROP TABLE audit_log_fault_saved")


MISSING_JOB = "weekly_model_retraining"


def delete_job(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute("DELETE FROM apscheduler_jobs WHERE id = %s", (MISSING_JOB,))


def restore_job(sb: Stack) -> None:
    sb.restart_service("scheduler")  # the scheduler re-registers its jobs when it starts (replace_existing)


def stop_scheduler(sb: Stack) -> None:
    """The scheduler died an hour ago: stopped, its last heartbeat an hour old (what golive would find then)."""
    sb.stop_service("scheduler")
    with sb.admin_db() as conn:
        conn.execute("UPDATE scheduler_heartbeat SET beat_at = now() - interval '1 hour'")


def start_scheduler(sb: Stack) -> None:
    sb.start_service("scheduler", wait=True)
    procs.wait_until("scheduler heartbeat", lambda: heartbeat_age(sb) < 30, 15)


def heartbeat_age(sb: Stack) -> float:
    with sb.admin_db() as conn:
        return conn.execute("SELECT extract(epoch FROM now() - max(beat_at)) FROM scheduler_heartbeat").fetchone()[0]


def expose_db(sb: Stack) -> None:
    """The database port also answers on another address (127.0.0.2: "the public interface")."""
    from .tcpproxy import Forwarder

    sb.db_exposure = Forwarder(("127.0.0.1", sb.ports["postgres"]), listen=("127.0.0.2", sb.ports["postgres"])).start()


def unexpose_db(sb: Stack) -> None:
    fwd = getattr(sb, "db_exposure", None)
    if fwd is not None:
        fwd.stop()
        sb.db_exposure = None


# --------------------------------------------------------------------------- the golive config sections


def config(sb: Stack) -> dict[str, Any]:
    """The `app`, `workers` and `security` sections of the sandbox's golive config (data, dumped by configfile)."""
    from .parts.scheduler import JOBS

    adv = f"http://127.0.0.1:{sb.ports['advisories']}"
    cron = {
        "daily_analytics_aggregation": "0 2 * * *",
        "weekly_model_retraining": "0 3 * * mon",
        "merchant_affinity_update": "0 */6 * * *",
        "optimal_send_time_calculation": "0 4 * * *",
        "campaign_optimization_generation": "0 5 * * *",
    }
    assert set(cron) == set(JOBS)
    return {
        "app": {
            "required_env": list(REQUIRED_ENV),
            "expected_environment": "production",
            "lock_file": str(sb.app_lock),
            "min_packages": 50,
        },
        "workers": {"jobs": cron},
        "security": {
            "users_table": "users",
            "password_column": "password_hash",
            "sensitive_columns": ["users.totp_secret"],
            "mfa_column": "totp_enabled",
            "role_column": "role",
            "admin_roles": ["admin"],
            "app_repo": str(sb.repo),
            "must_refuse": [f"127.0.0.2:{sb.ports['postgres']}"],
            "audit_table": "audit_log",
            "audit_time_column": "occurred_at",
            "rate_limit_probe": True,
            "dependencies": {
                "lock_file": str(sb.app_lock),
                "osv_url": f"{adv}/v1/query",
                "index_url": f"{adv}/simple/",
                "watch": list(WATCHED),
            },
        },
    }
