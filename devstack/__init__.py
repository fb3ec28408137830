"""The local stack behind the demo, the benchmarks and the system tests.

Emulated SQL Servers (``python -m sqlagent_emulator``) and a real Airflow deployment (API server,
scheduler, DAG processor, triggerer; LocalExecutor), each component a process of its own that can
be stopped, killed or restarted, plus a REST client that drives Airflow as its UI does. Not part of
the provider distribution: it is the repo's tooling, used from the repo root.
"""
