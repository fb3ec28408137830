"""The TDS wire protocol ([MS-TDS]): framing, messages, tokens and data types. No SQL here."""
