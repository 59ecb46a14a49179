"""HL7 v2 over MLLP (TCP): ``<VT> message <FS><CR>`` frames in, ACK frames out.

Each message is journalled durably before its ACK is written. Runs on the gateway's event
loop (``yaolian serve --mllp-port 2575``); conversion and storage each run on a thread of their own.
Each message is converted as it arrives; converted messages from all connections meet in one
queue, and whatever queued while the previous group was being written is stored as the next
group and made durable by one commit (group commit; ``IngestPipeline.store_group``), so the
commit's fsync is shared instead of paid per message, conversion overlaps writing, and no
ACK leaves before its commit. With several workers each
binds the port with SO_REUSEPORT and the kernel spreads connections, so no process holds
state the others need.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.hooks import RequestContext
from gateway.ingest.pipeline import IngestPipeline, Prepared
from gateway.ingest.replies import hl7_reply
from gateway.principal import Principal
from gateway.security.senders import Sender, SenderBinding, message_claims, refusals, sender_principal

log = logging.getLogger("yaolian.mllp")

START, END = b"\x0b", b"\x1c\r"
MAX_MESSAGE = 8 * 1024 * 1024
ADAPTER = "hl7v2"
MAX_GROUP = 64  # messages per commit; bounds the ACK latency a group adds

__all__ = ["MllpServer", "hl7_reply"]


class MllpServer:
    def __init__(
        self, pipeline: IngestPipeline, base_url: str, adapter: str = ADAPTER, *, binding: SenderBinding | None = None
    ) -> None:
        """``binding`` None accepts every sender for any member (``--insecure-dev``); else a
        connection is bound to members (:mod:`gateway.security.senders`) and each message
        runs for the member it comes from, or is refused with AR."""
        self.pipeline = pipeline
        self.base_url = base_url
        self.adapter = adapter
        self.binding = binding
        self.server: asyncio.base_events.Server | None = None
        self._queue: asyncio.Queue[tuple[Prepared, asyncio.Future[bytes]]] = asyncio.Queue()
        # One conversion at a time per process: each is CPU-bound Python, and every extra one
        # in flight takes the GIL from the writer thread while it holds the write lock. A
        # one-thread executor each for converting and writing: a hop costs ~105 µs of CPU
        # there against ~140 µs through anyio's shared pool.
        self._converter = ThreadPoolExecutor(1, thread_name_prefix="mllp-convert")
        self._storer = ThreadPoolExecutor(1, thread_name_prefix="mllp-store")
        self._writer: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        self._writer = asyncio.create_task(self._write_groups())
        tls = self.binding.tls if self.binding is not None else None
        self.server = await asyncio.start_server(
            self._connection, host, port, reuse_port=True, limit=MAX_MESSAGE, ssl=tls
        )
        log.info("MLLP listening on %s:%s%s", host, port, " (TLS)" if tls else "")
        if self.binding is not None and not self.binding.configured:
            log.error("MLLP: no sender is bound to a member (--mllp-senders or --mllp-client-ca): all are refused")

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._converter.shutdown(wait=True)
        self._storer.shutdown(wait=True)

    def context(self, principal: Principal | None = None) -> RequestContext:
        return RequestContext(base_url=self.base_url, interaction="mllp", principal=principal)

    def prepare(self, raw: bytes, sender: Sender | None = None) -> Prepared:
        """Convert and prepare a message for the member it comes from; one its connection may
        not send is refused (AR, kept as a dead letter) without being converted."""
        if self.binding is None:
            return self.pipeline.prepare(self.adapter, raw, self.context())
        bound = sender.members if sender is not None else frozenset()
        refused = refusals(raw, bound)
        if refused:
            return self.pipeline.refuse(self.adapter, raw, refused)
        member, _ = message_claims(raw)
        assert member is not None, "refusals() checked MSH-4"
        return self.pipeline.prepare(
            self.adapter, raw, self.context(sender_principal(member, sender.peer if sender else None))
        )

    def handle_group(self, raws: list[bytes]) -> list[bytes]:
        """ACKs for messages converted and stored together (one commit)."""
        return self.store_group([self.prepare(raw) for raw in raws])

    def store_group(self, prepared: list[Prepared]) -> list[bytes]:
        ctx = self.context()
        results = self.pipeline.store_group(self.adapter, prepared, channel="mllp", ctx=ctx, reply=hl7_reply)
        return [result.reply or b"" for result in results]

    async def _write_groups(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        frozen = False
        while True:
            group = [await queue.get()]
            while len(group) < MAX_GROUP and not queue.empty():
                group.append(queue.get_nowait())
            try:
                acks = await loop.run_in_executor(self._storer, self.store_group, [prepared for prepared, _ in group])
            except Exception:  # nothing was committed: no ACK, the senders send again
                log.exception("MLLP group of %s messages could not be processed", len(group))
                acks = [b""] * len(group)
            for (_, waiting), ack in zip(group, acks, strict=True):
                if not waiting.done():
                    waiting.set_result(ack)
            if not frozen:  # the first message loaded mappings, profiles and search parameters
                gc.collect()
                gc.freeze()  # long-lived from here on: the collector stops re-scanning them
                frozen = True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: Any = writer.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        sender = None
        if self.binding is not None:
            sender = self.binding.sender(peer[0] if peer else None, writer.get_extra_info("peercert"))
            if not sender.members:
                log.warning("MLLP connection from %s is bound to no member; closing", peer)
                writer.close()
                return
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
                try:
                    prepared = await loop.run_in_executor(self._converter, self.prepare, frame[: -len(END)], sender)
                except Exception:  # not journalled: no ACK, the sender sends again
                    log.exception("MLLP message from %s could not be converted", peer)
                    continue
                waiting: asyncio.Future[bytes] = loop.create_future()
                await self._queue.put((prepared, waiting))
                ack = await waiting
                if ack:
                    writer.write(START + ack + END)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
