"""Drives a command on a real pseudo-terminal, as an operator's shell would: waits for
"ready", types Ctrl-C, and reports (as JSON) what the terminal showed and the exit code.

usage: terminal.py [--wait-raw] CMD ARGS...

--wait-raw: before typing Ctrl-C, wait until the command has put the terminal in raw mode (a
container engine's CLI does so while the container starts, and a Ctrl-C typed before then is
the host terminal's SIGINT, not a keystroke for the agent).
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time

args = sys.argv[1:]
wait_raw = args[:1] == ["--wait-raw"]
if wait_raw:
    args = args[1:]

pid, fd = pty.fork()
if pid == 0:
    os.execvp(args[0], args)

seen = b""


def read_until(token, timeout=60):
    """True once `token` was seen; False when the terminal closed; None on timeout."""
    global seen
    end = time.time() + timeout
    while token not in seen:
        ready, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if not ready:
            return None
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        seen += chunk
    return True


def raw(timeout=60):
    """Waits until the terminal stops turning ^C into SIGINT (the master reports the slave's modes)."""
    end = time.time() + timeout
    while time.time() < end:
        if not termios.tcgetattr(fd)[3] & termios.ISIG:
            return True
        # termios changes have no event to wait on; poll briefly.
        time.sleep(0.01)
    return False


got_ready = read_until(b"ready") is True
if got_ready and wait_raw:
    got_ready = raw()
closed = False
presses = 0
# A keystroke typed while a container engine's CLI is busy (other containers starting and
# stopping beside it, a loaded host) was sometimes lost before it reached the container; an
# operator presses again, and so does this driver, a few times, each after 10 s of no exit.
while got_ready and not closed and presses < 4:
    os.write(fd, b"\x03")
    presses += 1
    closed = read_until(b"\x00never", timeout=10) is False  # until the terminal closes
if not closed:
    # Still running: it missed the keystroke (or never got ready). End it so the test fails
    # instead of hanging.
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
print(json.dumps({"ready": got_ready, "presses": presses, "out": seen.decode(errors="replace"),
                  "code": os.waitstatus_to_exitcode(status)}))
