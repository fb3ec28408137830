"""A TDS server that imitates SQL Server Agent, msdb and the SSIS catalog, for tests and demos.

It never imports Airflow or the provider: the two meet only over TCP, as the provider and a
real SQL Server do.
"""
