"""Runs inside an airlock sandbox and reports, as JSON, what the agent can reach and find.

argv[1] is a JSON list of checks:
  ["tcp", host, port]        -> "connected" or the error
  ["dns", name]              -> the addresses, or the error
  ["exists", path]           -> true/false
  ["search", hex]            -> where the bytes occur: process environments and command
                                lines, and files outside /proc, /sys, /dev and /usr (given
                                in hex, so the probe's own command line does not hold them)
  ["processes"]              -> every process visible: {"pid", "environ": the variables'
                                names, "cmdline": its arguments}, null where unreadable
"""
import json
import os
import socket
import sys


def tcp(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as e:
        return f"error: {e}"


def dns(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 443)})
    except OSError as e:
        return f"error: {e}"


def search(needle_hex):
    needle = bytes.fromhex(needle_hex)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if needle in f.read():
                        found.append(f"/proc/{pid}/{part}")
            except OSError:
                pass
    for root, dirs, files in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr")]
        for name in files:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 64 << 20:
                    continue
                with open(path, "rb") as f:
                    if needle in f.read():
                        found.append(path)
            except OSError:
                pass
    return found


def processes():
    out = []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        entry = {"pid": int(pid)}
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    items = [i.decode("latin-1") for i in f.read().split(b"\0") if i]
            except OSError:
                entry[part] = None
                continue
            entry[part] = [i.split("=", 1)[0] for i in items] if part == "environ" else items
        out.append(entry)
    return out


out = []
for check in json.loads(sys.argv[1]):
    kind, args = check[0], check[1:]
    if kind == "tcp":
        out.append(tcp(*args))
    elif kind == "dns":
        out.append(dns(*args))
    elif kind == "exists":
        out.append(os.path.exists(args[0]))
    elif kind == "search":
        out.append(search(args[0]))
    elif kind == "processes":
        out.append(processes())
    else:
        out.append(f"unknown check {kind}")
print(json.dumps(out))
