"""Bringing existing SSIS work in (docs/migration.md).

``ssis-lb import-parent``: an SSIS parent package into a manifest and a load-balanced DAG (``dtsx`` reads the
package, ``graph`` keeps its precedence constraints, ``parent`` maps its tasks, ``render`` writes the files,
``command`` is the subcommand). ``ssis-lb import-jobs``: existing Agent jobs into a manifest (``jobs``).
"""
