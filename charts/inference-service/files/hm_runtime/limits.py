"""Limits that keep one client from taking the server: how many predictions are in flight, how many
request-body bytes are buffered at once, how long a body may take to arrive, and how large a request's
head (request line and headers) may be. Health and metrics are never limited.

The same protocol sends a POST's answer in one write: uvicorn writes the status line and headers as
soon as the app starts its response, and the body in a second write; on loopback or a pod network each
write is a system call that also delivers the segment, so two per answer cost about as much CPU as the
whole rest of uvicorn's work for a small request."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

STATUS_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


class Budget:
    """Request-body bytes buffered by all requests together; a request that would exceed it is told to
    come back later (429) instead of growing the server's memory."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used = max(0, self.used - size)


class LimitedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on a request's head: httptools buffers headers without
    limit, so the bytes fed while the head is incomplete are counted and the connection is answered 431
    and closed beyond `max_head_bytes`."""

    max_head_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head, self._head_bytes = True, 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        # Every POST route answers with a body (uvicorn writes it even when empty), so its head can wait
        # for it. Not with Expect: 100-continue (uvicorn's interim answer must go out at once), nor for
        # HEAD (no body write follows).
        if self.scope["method"] == "POST" and not self.expect_100_continue and self.cycle is not None:
            self.cycle.transport = HeadWithBody(self.cycle.transport)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                message = f"request head exceeds {self.max_head_bytes} bytes".encode()
                self.transport.write(
                    STATUS_431
                    + b"content-type: text/plain\r\ncontent-length: "
                    + str(len(message)).encode()
                    + b"\r\nconnection: close\r\n\r\n"
                    + message
                )
                self.transport.close()


class HeadWithBody:
    """A response's transport that holds the first write (uvicorn's status line and headers) and sends
    it together with the next one (the body's first part) in one system call. Closing drops what is
    held: uvicorn closes only a connection whose response cannot be completed."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None  # None: nothing written yet; b"": sent

    def write(self, data: bytes) -> None:
        if self._head is None:
            self._head = bytes(data)
        elif self._head:
            head, self._head = self._head, b""
            self._transport.writelines((head, data))
        else:
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
