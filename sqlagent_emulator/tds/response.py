"""Turns the SQL layer's StatementResults into one reply's token stream.

Every statement ends in a DONE-family token carrying DONE_MORE; when the reply is complete,
the last one loses that bit ([MS-TDS] 2.2.7.6). Inside an RPC, statements end in DONEINPROC
(with DONE_MORE: FreeTDS reads the reply as ended otherwise) and the call in DONEPROC.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..sql.results import Column, Message, OutputParam, ResultSet, StatementResult
from . import tokens
from .tokens import DoneStatus, Token
from .types import ColumnCodec, codec_for


class ReplyBuilder:
    def __init__(self, server_name: str, tds_version: int) -> None:
        self.server_name = server_name
        self.tds_version = tds_version
        self.buffer = bytearray()
        self._last_done = -1

    def messages(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            self.buffer += tokens.message(msg, self.server_name)

    def raw(self, data: bytes) -> None:
        self.buffer += data

    def done(self, token: Token, status: DoneStatus, rowcount: int | None = None, curcmd: int = 0) -> None:
        self._last_done = len(self.buffer)
        self.buffer += tokens.done(token, status | DoneStatus.MORE, rowcount, curcmd)

    def result_set(self, result: ResultSet) -> None:
        columns = list(result.columns)
        codecs = [codec_for(col, [row[i] for row in result.rows], self.tds_version) for i, col in enumerate(columns)]
        self.buffer += tokens.col_metadata(columns, codecs)
        for values in result.rows:
            self.buffer += tokens.row(values, codecs)

    def statement(self, result: StatementResult, *, in_rpc: bool) -> None:
        """One statement of a batch, or of the SQL an RPC such as sp_executesql runs."""
        self.messages(result.messages)
        error = DoneStatus.ERROR if result.failed else DoneStatus.FINAL
        statement_done = Token.DONEINPROC if in_rpc or result.is_procedure else Token.DONE
        for index, result_set in enumerate(result.result_sets):
            self.result_set(result_set)
            last = index == len(result.result_sets) - 1
            if not last or result.is_procedure:
                self.done(Token.DONEINPROC, DoneStatus.FINAL, len(result_set.rows), tokens.CURCMD_SELECT)
        if result.is_procedure:
            if not in_rpc:
                if result.return_status is not None:
                    self.buffer += tokens.return_status(result.return_status)
                self.done(Token.DONEPROC, error)
            elif result.failed:
                self.done(Token.DONEINPROC, error)
            return
        if result.result_sets:
            rows = len(result.result_sets[-1].rows)
            self.done(statement_done, error, rows, tokens.CURCMD_SELECT)
        else:
            self.done(statement_done, error, result.rowcount)

    def procedure_end(self, return_status: int, outputs: Sequence[tuple[int, OutputParam]], failed: bool) -> None:
        """RETURNSTATUS, one RETURNVALUE per OUTPUT parameter (by ordinal), then DONEPROC."""
        self.buffer += tokens.return_status(return_status)
        for ordinal, param in outputs:
            codec = codec_for_value(param, self.tds_version)
            self.buffer += tokens.return_value(ordinal, param.name, codec, param.value)
        self.done(Token.DONEPROC, DoneStatus.ERROR if failed else DoneStatus.FINAL)

    def finish(self) -> bytes:
        """The reply's bytes, its last DONE-family token marked final."""
        if self._last_done < 0:
            self.done(Token.DONE, DoneStatus.FINAL)
        status_at = self._last_done + 1
        status = int.from_bytes(self.buffer[status_at : status_at + 2], "little") & ~DoneStatus.MORE
        self.buffer[status_at : status_at + 2] = status.to_bytes(2, "little")
        return bytes(self.buffer)


def codec_for_value(param: OutputParam, tds_version: int) -> ColumnCodec:
    return codec_for(Column(param.name, param.sql_type), [param.value], tds_version)
