"""`python -m golive.sandbox up [--fault NAME ...]`: start the stack, print the config path and the env, wait, stop cleanly."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time

from .faults import FAULTS
from .stack import Sandbox


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox", description="golive's local production-like stack")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and wait until Ctrl-C / SIGTERM")
    up.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=sorted(FAULTS),
        metavar="NAME",
        help="start with this fault (repeatable; see `python -m golive.sandbox faults`)",
    )
    up.add_argument("--base-dir", help="an empty directory for the stack's files (default: a new one under /tmp)")
    up.add_argument("--keep", action="store_true", help="keep the base directory after stopping")
    sub.add_parser("faults", help="list the fault switches")
    args = p.parse_args(argv)

    if args.command == "faults":
        width = max(map(len, FAULTS))
        for name, description in FAULTS.items():
            print(f"{name:<{width}}  {description}")
        return 0

    stop = False

    def on_signal(signum, frame) -> None:
        nonlocal stop
        stop = True

    started = time.monotonic()
    sb = Sandbox.start(faults=args.fault, base_dir=args.base_dir, keep=args.keep)  # Ctrl-C here cleans up too
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print(f"# golive sandbox up in {time.monotonic() - started:.1f} s; base dir {sb.base_dir}")
        print(f"# config: {sb.config_path}")
        for key, value in sb.env.items():
            print(f"export {key}={shlex.quote(value)}")
        print(f"export GOLIVE_SANDBOX_CONFIG={shlex.quote(str(sb.config_path))}")
        for name, url in sb.urls.items():
            print(f"# {name:<14} {url}")
        if sb.faults:
            print(f"# faults: {', '.join(sorted(sb.faults))}")
        print("# Ctrl-C or SIGTERM stops it.", flush=True)
        while not stop:
            time.sleep(0.2)
    finally:
        sb.stop()
        print("# golive sandbox stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
