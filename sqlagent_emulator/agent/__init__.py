"""SQL Server Agent as Microsoft documents it: msdb's job tables and procedures, a job runner with
the CmdExec, TSQL and SSIS subsystems, Agent sessions, and the SSIS catalog rows a package run
writes. See docs/emulator.md for the fidelity table and docs/agent-reference.md for the sources."""
