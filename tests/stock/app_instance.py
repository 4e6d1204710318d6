"""One instance of the product API (sandbox/app.py's Starlette app) on plain HTTP behind the load balancer, as a
deploy runs it: `python -m tests.stock.app_instance --port P --name api-1`. TLS ends at nginx."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from golive.sandbox.parts.web_app import PASSWORD_ENV, create_app
from golive.sandbox.runtime import FaultFile


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.stock.app_instance")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    app = create_app(os.environ[PASSWORD_ENV], FaultFile(Path("/nonexistent/faults.json")))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=a.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
