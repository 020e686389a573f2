"""Drives a command on a real pseudo-terminal, as an operator's shell would: waits for
"ready", types Ctrl-C, and reports (as JSON) what the terminal showed and the exit code.

usage: terminal.py CMD ARGS...
"""
import json
import os
import pty
import select
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])

seen = b""


def read_until(token, timeout=60):
    global seen
    end = time.time() + timeout
    while token not in seen:
        ready, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if not ready:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        seen += chunk
    return True


got_ready = read_until(b"ready")
if got_ready:
    os.write(fd, b"\x03")
    read_until(b"\x00never")  # until the terminal closes
_, status = os.waitpid(pid, 0)
print(json.dumps({"ready": got_ready, "out": seen.decode(errors="replace"),
                  "code": os.waitstatus_to_exitcode(status)}))
