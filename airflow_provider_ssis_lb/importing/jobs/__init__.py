"""``ssis-lb import-jobs``: existing SQL Server Agent jobs into a manifest (docs/manifest.md, "Importing
existing jobs").

``dtexec`` parses a step's dtexec command line, ``secrets`` finds sensitive values in step commands,
``convert`` turns one server's job into a manifest child, ``merge`` joins the same job over several servers and
names their differences, ``report`` prints the result, and ``run`` reads the servers and writes the manifest.
"""
