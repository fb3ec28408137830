"""Importers: an SSIS parent package (.dtsx) into a manifest and a load-balanced DAG (docs/migration.md)."""
