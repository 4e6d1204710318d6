"""The tests' shared helpers (no tests in here): a test module imports what it shares from here, never from another
test module. One module per kind of thing:

- checks: running checks (`run_one`, `run_ids`, `run_dag`), a config with one section changed (`with_`), the
  sandbox's config, the assertions on results (`as_json`, `assert_no_secrets`);
- servers: small in-process servers for the failure modes the sandbox has no switch for (refused / hung ports, a
  web app whose behaviour a test sets, a webhook receiver, a Prometheus-API stub, redis-server, a proxy that goes
  silent);
- servers_debian: Debian's Prometheus, Alertmanager and PgBouncer, each on its own port (and where redis-server 7 is);
- probes_application, probes_infrastructure, probes_dependencies: the sandbox facts each fault breaks, read
  straight from the services (tests/test_sandbox.py's fault table);
- restore: the backup / restore tests' leak guard and database probes;
- job_store: a real APScheduler job store in a PostgreSQL of its own;
- flows: the readiness flow run in-process on the session's Prefect server, its artifacts and logs read back;
- cli: `golive` run as a user runs it, and the forms a leaked secret takes;
- deploy_auth: a small Prefect + `golive serve` stack for the deploy authorization tests;
- fixtures_prefect, fixtures_golive: session fixtures (a Prefect server; `golive serve` on the sandbox), registered
  in tests/conftest.py's `pytest_plugins`.
"""
