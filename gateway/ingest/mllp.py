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

Limits (issue 12; settings ``mllp_*``, docs/deployment.md "## Limits"): a connection silent or
mid-frame for ``mllp_idle_timeout`` is closed; connections over ``mllp_max_connections`` (per
listener) or ``mllp_max_connections_per_address`` (per sender address) are closed as they are
accepted; a frame over ``mllp_max_frame`` is read to its end without being kept and answered AR
(YL-0803); a conversion longer than ``mllp_convert_timeout`` is answered AR (YL-0805). Frames
over 64 KB convert on a thread of their own, so a big message delays only big ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Issue, issue
from gateway.hooks import RequestContext
from gateway.ingest.pipeline import IngestPipeline, Prepared
from gateway.ingest.replies import hl7_reply
from gateway.principal import Principal
from gateway.security.senders import Sender, SenderBinding, admit
from gateway.settings import Settings

log = logging.getLogger("yaolian.mllp")

START, END = b"\x0b", b"\x1c\r"
LARGE = 64 * 1024  # frames this big convert on a thread of their own, never ahead of small ones
ADAPTER = "hl7v2"
MAX_GROUP = 64  # messages per commit; bounds the ACK latency a group adds

__all__ = ["MllpServer", "hl7_reply"]


@dataclass
class _Refusal:
    """The outcome of a message refused at the listener (an AR), for the ACK builder."""

    issues: list[Issue] = field(default_factory=list)
    status: str = "rejected"


class _FrameTooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        super().__init__("frame over the limit")
        self.head = head  # the start of the frame (its MSH), for the AR


class MllpServer:
    def __init__(
        self,
        pipeline: IngestPipeline,
        base_url: str,
        adapter: str = ADAPTER,
        settings: Settings | None = None,
        *,
        binding: SenderBinding | None = None,
    ) -> None:
        """``binding`` None accepts every sender for any member (``--insecure-dev``); else a
        connection is bound to members (:mod:`gateway.security.senders`) and each message
        runs for the member it comes from, or is refused with AR."""
        self.pipeline = pipeline
        self.base_url = base_url
        self.adapter = adapter
        self.settings = settings or pipeline.service.settings
        self.binding = binding
        self.server: asyncio.base_events.Server | None = None
        self._queue: asyncio.Queue[tuple[Prepared, asyncio.Future[bytes]]] = asyncio.Queue()
        # One conversion at a time per process: each is CPU-bound Python, and every extra one
        # in flight takes the GIL from the writer thread while it holds the write lock. A
        # one-thread executor each for converting and writing: a hop costs ~105 µs of CPU
        # there against ~140 µs through anyio's shared pool. Large frames have a converter of
        # their own, so one sender's big message never queues the small ones of the others.
        self._converter = ThreadPoolExecutor(1, thread_name_prefix="mllp-convert")
        self._large_converter = ThreadPoolExecutor(1, thread_name_prefix="mllp-convert-large")
        self._storer = ThreadPoolExecutor(1, thread_name_prefix="mllp-store")
        self._writer: asyncio.Task[None] | None = None
        self._open = 0
        self._by_address: dict[str, int] = {}

    async def start(self, host: str, port: int) -> None:
        self._writer = asyncio.create_task(self._write_groups())
        tls = self.binding.tls if self.binding is not None else None
        self.server = await asyncio.start_server(
            self._connection, host, port, reuse_port=True, limit=self.settings.mllp_max_frame + len(END), ssl=tls
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
        self._large_converter.shutdown(wait=True)
        self._storer.shutdown(wait=True)

    def context(self, principal: Principal | None = None) -> RequestContext:
        return RequestContext(base_url=self.base_url, interaction="mllp", principal=principal)

    def prepare(self, raw: bytes, sender: Sender | None = None) -> Prepared:
        """Convert and prepare a message for the member it comes from; one its connection may
        not send is refused (AR, kept as a dead letter) without being converted."""
        if self.binding is None:
            return self.pipeline.prepare(self.adapter, raw, self.context())
        runs_as = admit(raw, sender if sender is not None else Sender(None, frozenset()))
        if isinstance(runs_as, list):
            return self.pipeline.refuse(self.adapter, raw, runs_as)
        return self.pipeline.prepare(self.adapter, raw, self.context(runs_as))

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

    def _admit(self, address: str) -> bool:
        """Count a new connection in, or refuse it (over either connection limit)."""
        limits = self.settings
        if self._open >= limits.mllp_max_connections:
            log.warning("MLLP connection from %s refused: %s open (mllp_max_connections)", address, self._open)
            return False
        if self._by_address.get(address, 0) >= limits.mllp_max_connections_per_address:
            log.warning("MLLP connection from %s refused: mllp_max_connections_per_address reached", address)
            return False
        self._open += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return True

    def _leave(self, address: str) -> None:
        self._open -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes:
        """The next frame's payload; :class:`_FrameTooLarge` (after reading past its end) when
        it is over ``mllp_max_frame``."""
        while True:
            try:
                await reader.readuntil(START)
                break
            except asyncio.LimitOverrunError as exc:  # bytes outside any frame: dropped as they come
                await reader.readexactly(max(exc.consumed, 1))
        try:
            return (await reader.readuntil(END))[: -len(END)]
        except asyncio.LimitOverrunError:
            pass
        head = await reader.read(64 * 1024)  # the MSH, for the AR; the rest is dropped as it comes
        while True:
            try:
                await reader.readuntil(END)
                raise _FrameTooLarge(head)
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(max(exc.consumed, 1))

    def _refuse(self, head: bytes, code: str, limit: object, setting: str) -> bytes:
        return hl7_reply(head, _Refusal([issue(code, severity="fatal", limit=limit, setting=setting)]))

    async def _convert(self, frame: bytes, sender: Sender | None = None) -> Prepared | bytes:
        """The converted message, or the AR of a conversion over ``mllp_convert_timeout`` (the
        thread finishes in the background; its result is dropped and nothing is stored)."""
        loop = asyncio.get_running_loop()
        executor = self._large_converter if len(frame) > LARGE else self._converter
        limit = self.settings.mllp_convert_timeout
        work = loop.run_in_executor(executor, self.prepare, frame, sender)
        try:
            return await asyncio.wait_for(asyncio.shield(work), limit)
        except TimeoutError:
            work.add_done_callback(lambda done: done.exception())  # retrieve it: no "never retrieved"
            return self._refuse(frame, "YL-0805", limit=limit, setting="mllp_convert_timeout")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: Any = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self._admit(address):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return
        sender = None
        if self.binding is not None:
            sender = self.binding.sender(address, writer.get_extra_info("peercert"))
            if not sender.members:
                log.warning("MLLP connection from %s is bound to no member; closing", peer)
                self._leave(address)
                writer.close()
                return
        idle = self.settings.mllp_idle_timeout
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(self._read_frame(reader), idle)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except TimeoutError:
                    log.info("MLLP connection from %s silent for %s s (mllp_idle_timeout); closing", peer, idle)
                    break
                except _FrameTooLarge as exc:
                    limit = self.settings.mllp_max_frame
                    log.warning("MLLP frame over %s bytes from %s; answered AR", limit, peer)
                    ack = self._refuse(exc.head, "YL-0803", limit=limit, setting="mllp_max_frame")
                else:
                    try:
                        converted = await self._convert(frame, sender)
                    except Exception:  # not journalled: no ACK, the sender sends again
                        log.exception("MLLP message from %s could not be converted", peer)
                        continue
                    if isinstance(converted, bytes):
                        ack = converted
                    else:
                        waiting: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                        await self._queue.put((converted, waiting))
                        ack = await waiting
                if ack:
                    writer.write(START + ack + END)
                    await asyncio.wait_for(writer.drain(), idle)  # a peer that never reads is dropped
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._leave(address)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)
