#!/usr/bin/env bash
# The demo: set up .venv if needed, start the emulated SQL Servers from demo/servers.toml, visit each
# one with each client stack (demo/client_tour.py), then stop the emulator. Leaves no process
# behind, also on Ctrl-C.
#
# Environment: DEMO_READY_TIMEOUT (seconds to wait for the emulator's READY lines, default 60).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh

CONFIG=demo/servers.toml
READY_TIMEOUT="${DEMO_READY_TIMEOUT:-60}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ssis-lb-demo.XXXXXX")"
EMU_LOG="$WORK/emulator.log"
EMU_PID=""

stop_emulator() {
    [[ -n "$EMU_PID" ]] || return 0
    if kill -0 "$EMU_PID" 2>/dev/null; then
        # The emulator runs in its own process group (setsid): signal the whole group so any
        # helper processes it started go too.
        kill -TERM -- "-$EMU_PID" 2>/dev/null || kill -TERM "$EMU_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$EMU_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$EMU_PID" 2>/dev/null; then
            echo "demo: emulator did not stop after SIGTERM within 5 s; sending SIGKILL" >&2
            kill -KILL -- "-$EMU_PID" 2>/dev/null || kill -KILL "$EMU_PID" 2>/dev/null || true
        fi
    fi
    # Any straggler left in the group (e.g. a child that ignored SIGTERM).
    kill -KILL -- "-$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
    EMU_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_emulator
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

expected="$(grep -cE '^[[:space:]]*\[\[servers\]\][[:space:]]*(#.*)?$' "$CONFIG" || true)"
[[ "$expected" -gt 0 ]] || { echo "demo: no [[servers]] in $CONFIG" >&2; exit 1; }

echo "demo: starting $expected emulated SQL Servers from $CONFIG"
# setsid: own process group, so Ctrl-C reaches only this script, which then stops the emulator.
PYTHONUNBUFFERED=1 setsid .venv/bin/python -m sqlagent_emulator --config "$CONFIG" >"$EMU_LOG" 2>&1 &
EMU_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
while :; do
    ready="$(grep -cE '^READY name=[^ ]+ host=[^ ]+ port=[0-9]+' "$EMU_LOG" || true)"
    [[ "$ready" -ge "$expected" ]] && break
    if ! kill -0 "$EMU_PID" 2>/dev/null; then
        echo "demo: the emulator exited before it was ready; its output:" >&2
        sed 's/^/    /' "$EMU_LOG" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "demo: no READY from all $expected servers within ${READY_TIMEOUT}s; emulator output:" >&2
        sed 's/^/    /' "$EMU_LOG" >&2
        exit 1
    fi
    sleep 0.2
done

server_args=()
while read -r _ name host port _; do
    name="${name#name=}"
    host="${host#host=}"
    port="${port#port=}"
    echo "demo:   $name listening on $host:$port"
    server_args+=(--server "$name=$host:$port")
done < <(grep -E '^READY name=[^ ]+ host=[^ ]+ port=[0-9]+' "$EMU_LOG")

echo
.venv/bin/python demo/client_tour.py --config "$CONFIG" "${server_args[@]}"
echo
echo "demo: stopping the emulator"
