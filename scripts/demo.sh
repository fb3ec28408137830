#!/usr/bin/env bash
# The main job: set up .venv if needed, start three emulated SQL Servers and a real Airflow (API
# server, scheduler, DAG processor, triggerer), run the load-balanced parent DAG with a progress bar,
# print its summary, the UI's address and login. Ctrl-C stops everything it started.
#
#   bash scripts/demo.sh                 # stop when the run ends
#   bash scripts/demo.sh --keep-running  # leave the UI up until Ctrl-C
#   bash scripts/demo.sh --encrypt       # servers force encryption; every session is TLS, certificates verified
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m devstack.demo "$@"
