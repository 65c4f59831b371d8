# Drives `lua5.4 scripts/distill` (the REPL) on a pseudo-terminal, as a
# user at a keyboard would, for spec/repl_spec.lua: two Ctrl-Cs interrupt
# two long commands, a Ctrl-C at the prompt drops the line, a command still
# runs afterwards, Ctrl-D exits. Prints the transcript, then "STATUS <code>".
import os, pty, sys, time, select

def read_until(fd, marker, timeout):
    data = b""
    end = time.time() + timeout
    while marker not in data and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data

pid, fd = pty.fork()
if pid == 0:
    os.environ["DISTILL_HISTORY"] = sys.argv[1]
    os.environ["OMP_WAIT_POLICY"] = "passive"
    os.execvp("lua5.4", ["lua5.4", "scripts/distill"])

log = read_until(fd, b"> ", 30)
for round in (1, 2):
    os.write(fd, b"while true do end\r")
    log += read_until(fd, b"end\r\n", 10)
    time.sleep(0.5)
    os.write(fd, b"\x03")
    log += read_until(fd, b"> ", 10)
os.write(fd, b"abc")
log += read_until(fd, b"abc", 10)
os.write(fd, b"\x03")
log += read_until(fd, b"> ", 10)
os.write(fd, b"40 + 2\r")
log += read_until(fd, b"42", 10)
log += read_until(fd, b"> ", 10)
os.write(fd, b"\x04")
log += read_until(fd, b"\0", 5)
_, status = os.waitpid(pid, 0)
sys.stdout.write(log.decode("utf-8", "replace"))
sys.stdout.write("\nSTATUS %d\n" % (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)))
