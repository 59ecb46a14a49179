"""HL7 v2 over MLLP (TCP): ``<VT> message <FS><CR>`` frames in, ACK frames out.

Each message is journalled durably before its ACK is written. Runs on the gateway's event
loop (``yaolian serve --mllp-port 2575``); conversion and storage run in the thread pool.
With several workers each binds the port with SO_REUSEPORT and the kernel spreads
connections, so no process holds state the others need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.hooks import RequestContext
from gateway.ingest.pipeline import IngestPipeline, IngestResult

log = logging.getLogger("yaolian.mllp")

START, END = b"\x0b", b"\x1c\r"
MAX_MESSAGE = 8 * 1024 * 1024
ADAPTER = "hl7v2"


def hl7_reply(raw: bytes, result: IngestResult) -> bytes:
    """The ACK for a processed message: AA, or AE/AR with ERR segments naming the place."""
    from adapters.hl7v2 import build_ack

    return build_ack(raw, result.status == "accepted", result.issues)


class MllpServer:
    def __init__(self, pipeline: IngestPipeline, base_url: str, adapter: str = ADAPTER) -> None:
        self.pipeline = pipeline
        self.base_url = base_url
        self.adapter = adapter
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._connection, host, port, reuse_port=True, limit=MAX_MESSAGE)
        log.info("MLLP listening on %s:%s", host, port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def handle_message(self, raw: bytes) -> bytes:
        ctx = RequestContext(base_url=self.base_url, interaction="mllp")
        result = self.pipeline.ingest(self.adapter, raw, channel="mllp", ctx=ctx, reply=hl7_reply)
        return result.reply or b""

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: Any = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    await reader.readuntil(START)
                    frame = await reader.readuntil(END)
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    log.warning("MLLP frame over %s bytes from %s; closing", MAX_MESSAGE, peer)
                    break
                message = frame[: -len(END)]
                try:
                    ack = await run_in_threadpool(self.handle_message, message)
                except Exception:
                    log.exception("MLLP message from %s could not be processed", peer)
                    ack = b""
                if ack:
                    writer.write(START + ack + END)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
