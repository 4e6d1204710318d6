"""A real Prefect server for the flow tests: Prefect's own server app on the sandbox's PostgreSQL."""

from __future__ import annotations

import pytest

#: pids of long-lived children that session fixtures start on purpose (the Prefect server, `golive serve`): tests
#: that look for leaked processes leave these and their descendants alone
FIXTURE_CHILDREN: set[int] = set()


@pytest.fixture(scope="session")
def prefect_api(sandbox, tmp_path_factory):
    from golive.deployments.prefect_server import PrefectServer

    server = PrefectServer(sandbox.prefect_database_url(), tmp_path_factory.mktemp("prefect-home"), ui=True).start()
    FIXTURE_CHILDREN.add(server.proc.pid)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        from golive.deployments.cli import _drain_prefect

        _drain_prefect()
        server.stop()
