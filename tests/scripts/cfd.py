# Output written by C code straight to file descriptors 1 and 2.
import ctypes

libc = ctypes.CDLL(None)
for fd, text in ((1, b"c-level stdout\n"), (2, b"c-level stderr\n")):
    libc.write(fd, text, len(text))
libc.printf(b"printf without newline")
libc.fflush(None)
