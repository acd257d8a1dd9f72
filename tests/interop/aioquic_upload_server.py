#!/usr/bin/env python3
"""An independent HTTP/3 upload server for the interop test (tests/quic_interop.rs).

Built on aioquic (https://github.com/aiortc/aioquic, from PyPI), it accepts any request, reads its
body and answers 200 with a JSON verdict, so that the Rust test can check what arrived with a
QUIC and HTTP/3 stack that is not quinn/h3:

    {"server": "aioquic", "method": "POST", "path": "/upload", "protocol": "HTTP/3",
     "contentType": "...", "contentLength": N, "receivedBytes": N, "bodySha256": "...",
     "fields": [{"name": ..., "value": ...}],
     "files": [{"field": ..., "filename": ..., "size": N, "sha256": ...}]}

multipart/form-data bodies are parsed with the standard library's email parser (an RFC 2046
implementation independent of the client's). Usage:

    aioquic_upload_server.py --cert CERT.pem --key KEY.pem [--host 127.0.0.1] [--port 0]

It prints "listening PORT" on stdout once the UDP socket is bound, and runs until killed.
"""

import argparse
import asyncio
import email.parser
import email.policy
import hashlib
import json
import sys

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


def multipart_parts(content_type: str, body: bytes):
    """(fields, files) of a multipart/form-data body, or ([], []) for anything else."""
    if not content_type.lower().startswith("multipart/form-data"):
        return [], []
    raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields, files = [], []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if filename is None:
            fields.append({"name": name, "value": data.decode("utf-8", "replace")})
        else:
            files.append(
                {
                    "field": name,
                    "filename": filename,
                    "contentType": part.get_content_type(),
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return fields, files


class UploadProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._http = None
        self._requests = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._http is None:
            self._http = H3Connection(self._quic)
        for h3_event in self._http.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event) -> None:
        if isinstance(event, HeadersReceived):
            request = self._requests.setdefault(event.stream_id, {"body": bytearray()})
            request["headers"] = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, DataReceived):
            request = self._requests.setdefault(event.stream_id, {"body": bytearray()})
            request["body"] += event.data
        else:
            return
        if event.stream_ended:
            self._answer(event.stream_id, self._requests.pop(event.stream_id))

    def _answer(self, stream_id: int, request) -> None:
        headers = request.get("headers", {})
        body = bytes(request["body"])
        content_type = headers.get("content-type", "")
        try:
            fields, files = multipart_parts(content_type, body)
            status = 200
        except Exception as e:  # a body the parser refuses: say so
            fields, files, status = [], [], 400
            content_type += f" (unparsable: {e})"
        verdict = {
            "server": "aioquic",
            "method": headers.get(":method"),
            "path": headers.get(":path"),
            "protocol": "HTTP/3",
            "contentType": content_type,
            "contentLength": int(headers["content-length"]) if "content-length" in headers else None,
            "receivedBytes": len(body),
            "bodySha256": hashlib.sha256(body).hexdigest(),
            "fields": fields,
            "files": files,
        }
        data = json.dumps(verdict).encode()
        self._http.send_headers(
            stream_id,
            [
                (b":status", str(status).encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"server", b"aioquic"),
            ],
        )
        self._http.send_data(stream_id, data, end_stream=True)
        self.transmit()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=None)
    config.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=config, create_protocol=UploadProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"listening {port}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
