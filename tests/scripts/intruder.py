# A process that knows the channel's address but not the token tries to inject a line.
import json
import os
import socket
import struct

import psutil

# The agent (its parent) has one TCP connection: to the channel. Its address is not read
# from the agent's environment: where the agent runs in a fork of mlxrun, that shows mlxrun's.
(channel,) = [
    c.raddr
    for c in psutil.Process(os.getppid()).net_connections(kind="tcp")
    if c.status == psutil.CONN_ESTABLISHED
]
host, port = channel.ip, channel.port
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
