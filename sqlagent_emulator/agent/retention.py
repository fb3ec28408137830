"""Agent's job history limits: the two settings and how Agent trims msdb.dbo.sysjobhistory with them.

Microsoft's "Resize the Job History Log" page names the two settings (Maximum job history log size, Maximum
job history rows per job; https://learn.microsoft.com/en-us/sql/ssms/agent/resize-the-job-history-log);
message 14207 documents their range as "-1 [no maximum], 0..n". The defaults (1,000 and 100) and the
trimming below are what msdb's own procedures do, readable on any server with sp_helptext [observed]:

- sp_sqlagent_log_jobhistory, through which Agent writes every history row, calls sp_jobhistory_row_limiter
  only for the job outcome row (step_id 0: "only check once per job execution"); step rows are never
  trimmed on their own.
- sp_jobhistory_row_limiter: a total of -1 turns both limits off. A total below 2 is reset to 1,000, and a
  per-job limit above the total or below 1 is reset to the total (msdb writes the corrected values back).
  Then it deletes the job's oldest rows (lowest instance_id) beyond the per-job limit, and after that the
  oldest rows of all jobs beyond the total.

The settings live in the registry on a real server, so they outlive a service restart; the emulator keeps
them on the server object for the same reason (``EmulatedServer``), starting from the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_ROWS_PER_JOB = 100
NO_MAXIMUM = -1


@dataclass
class HistoryLimits:
    """The JobHistoryMaxRows / JobHistoryMaxRowsPerJob values of one server, as msdb stores them."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_rows_per_job: int = DEFAULT_MAX_ROWS_PER_JOB

    def for_limiter(self) -> tuple[int, int] | None:
        """(total, per job) as sp_jobhistory_row_limiter applies them, fixing bad values as it does;
        None when the log is unlimited."""
        if self.max_rows == NO_MAXIMUM:
            return None
        if self.max_rows < 2:
            self.max_rows = DEFAULT_MAX_ROWS
        if not 1 <= self.max_rows_per_job <= self.max_rows:
            self.max_rows_per_job = self.max_rows
        return self.max_rows, self.max_rows_per_job


def limits_problem(max_rows: int, max_rows_per_job: int | None) -> tuple[str, str] | None:
    """What sp_set_sqlagent_properties refuses, as (parameter, valid values) for error 14266; None if fine.

    msdb names '@jobhistory_max_rows' for a bad per-job value too, and accepts any per-job value with
    a total of -1 (it then stores 0)."""
    if max_rows < NO_MAXIMUM or max_rows == 0:
        return "@jobhistory_max_rows", "-1 [no maximum], 0..n"  # message 14207
    if max_rows_per_job is not None and max_rows != NO_MAXIMUM and not 1 <= max_rows_per_job <= max_rows:
        return "@jobhistory_max_rows", f"1..{max_rows}"
    return None
