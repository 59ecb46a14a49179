"""``/fhir/ws``: the websocket subscribers bind with a token (R5 ``bind-with-token``).

The client sends ``bind-with-token: TOKEN`` (from ``$get-ws-binding-token``); the gateway
answers the handshake Bundle (sent by the delivery worker, before any event) and then every
notification of that subscription as a text frame (:mod:`gateway.events.channels.websocket`).
A bad token is answered with an error text and the socket is closed (code 4401).
"""

from __future__ import annotations

import asyncio

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def endpoint(ws: WebSocket) -> None:
    dispatcher = ws.app.state.dispatcher
    await ws.accept()
    if dispatcher is None:
        await ws.close(code=4404)
        return
    channel = dispatcher.channels["websocket"]
    loop = asyncio.get_running_loop()

    def sender(text: str) -> None:  # called from a delivery thread
        asyncio.run_coroutine_threadsafe(ws.send_text(text), loop).result(timeout=10)

    bound: list[tuple[str, int]] = []
    try:
        while True:
            message = (await ws.receive_text()).strip()
            if not message.startswith("bind-with-token:"):
                continue  # R5 leaves other messages to the server; we ignore them
            sub_id = await asyncio.to_thread(channel.verify, message.split(":", 1)[1].strip())
            if sub_id is None:
                await ws.send_text("error: invalid or expired binding token")
                await ws.close(code=4401)
                return
            bound.append((sub_id, channel.bind(sub_id, sender)))
            await asyncio.to_thread(dispatcher.bound_websocket, sub_id)  # the handshake comes from there
    except WebSocketDisconnect:
        pass
    finally:
        for sub_id, handle in bound:
            channel.unbind(sub_id, handle)


ROUTE = WebSocketRoute("/fhir/ws", endpoint)
