# A process that knows the channel's address but not the token tries to inject a line.
import json
import os
import socket
import struct

env = dict(
    item.split("=", 1)
    for item in open(f"/proc/{os.getppid()}/environ").read().split("\0")
    if "=" in item
)
host, port = env["MLXRUN_CHANNEL"].rsplit(":", 1)
with socket.create_connection((host, int(port))) as s:
    hello = json.dumps(
        {"token": "0" * 32, "rank": 0, "pid": 1, "pgid": 1, "host": "x", "machine": "x"}
    ).encode()
    s.sendall(struct.pack("!BI", 1, len(hello)) + hello)
    line = b"INJECTED\n"
    s.sendall(struct.pack("!BI", 2, len(line)) + line)
    s.settimeout(5)
    closed = s.recv(1) == b""
print("intruder was hung up on" if closed else "intruder stayed connected")
