import pytest

pytest_plugins = ["tests.fixtures_prefect", "tests.fixtures_golive"]


@pytest.fixture(scope="session")
def sandbox():
    """The local production-like stack (real processes), started once per test session.

    Its secrets are exported while it runs (as `python -m sandbox up` tells a shell to), so its config loads the way
    production loads its own: `${VAR}` from the environment.
    """
    from sandbox import Sandbox

    sb = Sandbox.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in sb.env.items():
                env.setenv(name, value)
            yield sb
    finally:
        sb.stop()
