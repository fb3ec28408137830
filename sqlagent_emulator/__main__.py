"""``python -m sqlagent_emulator --config FILE``: start every server in the file until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .config import ConfigError, load_config
from .server import HOST, EmulatedServer


async def serve(config_path: str) -> None:
    servers = [EmulatedServer(c) for c in load_config(config_path)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[EmulatedServer] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
            print(f"READY name={server.name} host={HOST} port={server.port}", flush=True)
        await stop.wait()
    finally:
        for server in started:
            await server.stop()
        print("STOPPED", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqlagent-emulator", description=__doc__)
    parser.add_argument("--config", required=True, help="TOML file with one [[servers]] table per server")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args.config))
    except ConfigError as exc:
        print(f"sqlagent-emulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sqlagent-emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
