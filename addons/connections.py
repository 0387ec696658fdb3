"""mitmproxy's live connections, as llmtap needs them: to close one, and to know whether answers are unsent.

mitmproxy has no public call for either, so this is the one place that reads its connection handlers (the
`proxyserver` addon's `connections`, each handler's `transports`); it does what mitmproxy's own inactivity timeout
does to close a connection.
"""

from __future__ import annotations

import asyncio

from mitmproxy import ctx, http
from mitmproxy.connection import ConnectionState, Server
from mitmproxy.proxy.server import ConnectionHandler


def client_handlers() -> list[ConnectionHandler]:
    """The handlers of the client connections open now."""
    proxyserver = ctx.master.addons.get("proxyserver")
    return list(proxyserver.connections.values()) if proxyserver else []


def client_handler(client_id: str) -> ConnectionHandler | None:
    proxyserver = ctx.master.addons.get("proxyserver")
    return proxyserver.connections.get(client_id) if proxyserver else None


def client_hung_up(handler: ConnectionHandler) -> bool:
    """Whether the client has closed its side already (its end of file has arrived), though mitmproxy has not yet
    handled the disconnect: after a busy stretch of the event loop, a timer can run before mitmproxy's reading task."""
    io = handler.transports.get(handler.client)
    return io is not None and isinstance(io.reader, asyncio.StreamReader) and io.reader.at_eof()


def close_client(handler: ConnectionHandler, reason: str) -> None:
    """Close a client connection: mitmproxy ends its flows (their error hooks fire) and closes the socket."""
    io = handler.transports.get(handler.client)
    if io is None:
        return
    if io.handler is not None:
        io.handler.cancel(reason)  # the task reading from the client; as mitmproxy's own timeout does
    elif io.writer is not None:
        io.writer.close()


def close_server(flow: http.HTTPFlow, reason: str) -> bool:
    """Close the connection to the server `flow` was sent to, open or still being opened: mitmproxy ends the flow as
    when the server closes it or cannot be reached (its error hook fires, unless an answer had begun). False when
    there was none to close."""
    handler = client_handler(flow.client_conn.id)
    if handler is None:
        return False
    io = handler.transports.get(flow.server_conn)
    if io is None:
        # Still connecting: mitmproxy gives the flow its server connection only once it is open, and waits on a
        # connect as long as the system does (minutes). The one being opened is the transport to the flow's address.
        address = (flow.request.host, flow.request.port)
        io = next((io for connection, io in handler.transports.items()
                   if isinstance(connection, Server) and connection.address == address
                   and connection.state == ConnectionState.CLOSED), None)
    if io is None or io.handler is None:
        return False
    io.handler.cancel(reason)
    return True


def client_bytes_unsent() -> bool:
    """Whether any client connection still has bytes buffered in llmtap, not yet handed to the kernel."""
    for handler in client_handlers():
        io = handler.transports.get(handler.client)
        transport = getattr(io.writer, "transport", None) if io is not None else None
        if transport is not None and not transport.is_closing() and transport.get_write_buffer_size():
            return True
    return False
