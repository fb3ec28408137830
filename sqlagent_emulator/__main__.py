"""``python -m sqlagent_emulator --config FILE``: start every server in the file until SIGINT/SIGTERM.

``python -m sqlagent_emulator control --port PORT --token-file PATH COMMAND [SERVER] [VALUE]`` sends a
control command (status, agent-stop, agent-start, agent-restart, offline, online, restart,
drop-connections, and the fault modes hang, stall, slow MS, drop, normal). PORT and PATH are the ones
the CONTROL line printed; ``$SQLAGENT_EMULATOR_TOKEN_FILE`` may stand in for ``--token-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from .config import ConfigError, load_config
from .control import COMMANDS, ControlToken, read_token, send_command, serve_control
from .server import HOST, EmulatedServer


async def serve(config_path: str, control_port: int) -> None:
    servers = [EmulatedServer(c) for c in load_config(config_path)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[EmulatedServer] = []
    control = None
    token = ControlToken()
    try:
        for server in servers:
            await server.start()
            started.append(server)
            print(f"READY name={server.name} host={HOST} port={server.port} {server.tls.ready_fields()}", flush=True)
        control = await serve_control({s.name: s for s in servers}, token, control_port)
        port = control.sockets[0].getsockname()[1]
        print(f"CONTROL host={HOST} port={port} token_file={token.path}", flush=True)
        await stop.wait()
    finally:
        if control is not None:
            control.close()
        for server in started:
            await server.stop()
        token.remove()
        print("STOPPED", flush=True)


def control_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sqlagent-emulator control")
    parser.add_argument("--port", type=int, required=True, help="the port of the CONTROL line")
    parser.add_argument(
        "--token-file",
        default=os.environ.get("SQLAGENT_EMULATOR_TOKEN_FILE"),
        help="the token_file of the CONTROL line (default: $SQLAGENT_EMULATOR_TOKEN_FILE)",
    )
    parser.add_argument("command", choices=["status", *COMMANDS])
    parser.add_argument("server", nargs="?")
    parser.add_argument("value", nargs="?", help="for slow: the delay in milliseconds")
    args = parser.parse_args(argv)
    if not args.token_file:
        parser.error("--token-file is required (the token_file of the CONTROL line)")
    try:
        token = read_token(args.token_file)
    except OSError as exc:
        parser.error(f"cannot read the control token: {exc}")
    reply = send_command(args.port, args.command, args.server, args.value, token=token)
    print(json.dumps(reply, indent=2))
    return 0 if reply.get("ok") else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["control"]:
        return control_main(argv[1:])
    parser = argparse.ArgumentParser(prog="sqlagent-emulator", description=__doc__)
    parser.add_argument("--config", required=True, help="TOML file with one [[servers]] table per server")
    parser.add_argument("--control-port", type=int, default=0, help="loopback port for control commands")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args.config, args.control_port))
    except ConfigError as exc:
        print(f"sqlagent-emulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sqlagent-emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
