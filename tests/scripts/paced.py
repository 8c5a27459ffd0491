"""Prints three lines per rank with sleeps of known length between them: 0.3 s, 0.6 s."""

import time

print("first", flush=True)
time.sleep(0.3)
print("second", flush=True)
time.sleep(0.6)
print("third", flush=True)
