"""A minimal PostgreSQL client (protocol 3.0, cleartext password inside TLS) for sandboxes with
no psql (the agent image): connects as libpq would from the variables `airlock run` sets,
verifying the gateway's leaf against PGSSLROOTCERT for PGHOST, runs each argument as a Simple
Query and prints one line per query: `ok VALUE` (first column of the first row) or `error CODE
MESSAGE`."""
import os
import socket
import ssl
import struct
import sys


def message(tag, body):
    return tag + struct.pack(">i", len(body) + 4) + body


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("the connection closed")
        data += chunk
    return data


def read(s):
    head = recv_exact(s, 5)
    (n,) = struct.unpack(">i", head[1:])
    return head[:1], recv_exact(s, n - 4)


def fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def until_ready(s):
    """Reads to ReadyForQuery; the first column of the first row, or the error."""
    value, error = None, None
    while True:
        tag, body = read(s)
        if tag == b"D" and value is None:
            (n,) = struct.unpack(">i", body[2:6])
            value = body[6 : 6 + n].decode()
        elif tag == b"E":
            error = fields(body)
        elif tag == b"Z":
            return value, error


env = os.environ
raw = socket.create_connection((env["PGHOST"], int(env["PGPORT"])), timeout=30)
raw.sendall(struct.pack(">ii", 8, 80877103))
assert recv_exact(raw, 1) == b"S", "the gateway refused TLS"
ctx = ssl.create_default_context(cafile=env["PGSSLROOTCERT"])
s = ctx.wrap_socket(raw, server_hostname=env["PGHOST"])
params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in [(b"user", env["PGUSER"]), (b"database", env["PGDATABASE"])]) + b"\0"
s.sendall(struct.pack(">ii", 8 + len(params), 196608) + params)
tag, body = read(s)
assert tag == b"R" and struct.unpack(">i", body[:4])[0] == 3, (tag, body)
s.sendall(message(b"p", env["PGPASSWORD"].encode() + b"\0"))
_, error = until_ready(s)
if error:
    print("login-error", error.get("C"), error.get("M"))
    sys.exit(0)
print("verified", s.version())
for sql in sys.argv[1:]:
    s.sendall(message(b"Q", sql.encode() + b"\0"))
    value, error = until_ready(s)
    print(f"error {error.get('C')} {error.get('M')}" if error else f"ok {value}")
s.sendall(message(b"X", b""))
