# A minimal RFC 6455 WebSocket client over a plain socket, for the load test and the measurement script
# (Python's standard library has none, and the tests add no PyPI dependency besides Selenium). It does
# what fastar serve's protocol needs: the upgrade handshake, masked text frames out, unfragmented text
# and binary frames in, ping → pong, and the close frame's code. Not a general-purpose client.
import base64
import hashlib
import json
import os
import socket
import struct

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server sent a close frame (code), or the socket ended without one (code None)."""

    def __init__(self, code):
        super().__init__(f"closed with code {code}")
        self.code = code


class WebSocketClient:
    def __init__(self, port, host="127.0.0.1", path="/v1/stream", receive_buffer=None, timeout=10.0, mss=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # before connect, so that the advertised window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if mss:  # e.g. 1448, an Ethernet path's: loopback's 64 KiB segments open a slow reader's window in big steps
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buffer = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise ConnectionError(f"the upgrade was refused: {lines[0]}")
        expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        accept = [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("sec-websocket-accept:")]
        if accept != [expected]:
            raise ConnectionError(f"bad Sec-WebSocket-Accept {accept} (expected {expected})")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed(None)
        self.buffer += data

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))  # client frames are masked (§5.3)
        self.sock.sendall(header + mask + masked)

    def send_text(self, text):
        self._send_frame(OP_TEXT, text.encode())

    def send_json(self, message):
        self.send_text(json.dumps(message))

    def _parse_frame(self):
        """(opcode, payload) of the first whole frame in the buffer, consumed; None while incomplete, so
        that a socket timeout never loses a partly received frame."""
        if len(self.buffer) < 2:
            return None
        b0, b1 = self.buffer[0], self.buffer[1]
        n, at = b1 & 0x7F, 2
        if not b0 & 0x80:
            raise ConnectionError("fragmented message: fastar serve sends none")
        if b1 & 0x80:
            raise ConnectionError("the server masked a frame (RFC 6455 §5.1 forbids it)")
        if n >= 126:
            size = 2 if n == 126 else 8
            if len(self.buffer) < 2 + size:
                return None
            n = int.from_bytes(self.buffer[2:2 + size], "big")
            at += size
        if len(self.buffer) < at + n:
            return None
        payload = bytes(self.buffer[at:at + n])
        del self.buffer[:at + n]
        return b0 & 0x0F, payload

    def recv(self):
        """The next text (str) or binary (bytes) message; raises Closed on a close frame or EOF and
        socket.timeout when nothing whole arrives within the socket's timeout (nothing is lost then)."""
        while True:
            frame = self._parse_frame()
            if frame is None:
                self._fill()
                continue
            opcode, payload = frame
            if opcode == OP_TEXT:
                return payload.decode()
            if opcode == OP_BINARY:
                return payload
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    self._send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise Closed(code)

    def close(self):
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


def frame_header(message):
    """(frame index, chunk index, action_seq, prompt_seq) of a binary media message (the FAR1 header)."""
    if message[:4] != b"FAR1":
        raise ValueError("not a FAR1 media message")
    frame, chunk, action_seq, prompt_seq = struct.unpack_from("<QIII", message, 8)
    return frame, chunk, action_seq, prompt_seq
