"""A real Alertmanager (Debian's `prometheus-alertmanager` package): its config file and argv.

Used by the sandbox (only when the binary is installed: the quick start needs pip only) and by the tests. The
config routes critical alerts to Slack #alerts-production and everything to the on-call email list; the Slack
webhook and the SMTP smarthost point at local addresses (nothing is sent unless an alert fires).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SLACK_CHANNEL = "#alerts-production"
EMAIL_TO = "oncall@swipesavvy.test"


def executable() -> str | None:
    return (
        shutil.which("prometheus-alertmanager")
        or shutil.which("alertmanager")
        or next(
            (p for p in ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager") if os.access(p, os.X_OK)), None
        )
    )


def config_yaml(
    *, slack_webhook: str, smarthost: str, slack_channel: str = SLACK_CHANNEL, email_to: str | None = EMAIL_TO
) -> str:
    """Receivers `slack-critical` (the channel) and `email-oncall` (email_to; omitted when None), routed by severity."""
    email_rx = (
        f"""
- name: email-oncall
  email_configs:
  - to: {email_to}
    send_resolved: true"""
        if email_to
        else ""
    )
    default = "email-oncall" if email_to else "slack-critical"
    return f"""\
global:
  resolve_timeout: 5m
  smtp_smarthost: '{smarthost}'
  smtp_from: 'alertmanager@swipesavvy.test'
  smtp_require_tls: false
  slack_api_url: '{slack_webhook}'
route:
  receiver: {default}
  group_by: [alertname, job]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
  - receiver: slack-critical
    matchers: ['severity="critical"']
    continue: true
  - receiver: {default}
    matchers: ['severity=~"critical|warning"']
receivers:
- name: slack-critical
  slack_configs:
  - channel: '{slack_channel}'
    send_resolved: true
    title: '[{{{{ .Status | toUpper }}}}] {{{{ .CommonLabels.alertname }}}}'{email_rx}
"""


def write_config(directory: Path, **kw: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "alertmanager.yml"
    path.write_text(config_yaml(**kw))  # type: ignore[arg-type]
    return path


def argv(config: Path, port: int, storage: Path) -> list[str]:
    exe = executable()
    if exe is None:
        raise FileNotFoundError("Alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)")
    storage.mkdir(parents=True, exist_ok=True)
    return [
        exe,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
