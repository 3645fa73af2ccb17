"""What both benchmarks read from /proc, and the line count of a dump."""


def proc_status(*keys):
    """{key: kB} for the named lines of /proc/self/status (VmRSS, VmHWM)."""
    out = {}
    with open("/proc/self/status", "rb") as f:
        for line in f:
            k, _, v = line.partition(b":")
            k = k.decode()
            if k in keys:
                out[k] = int(v.split()[0])  # kB
    return out


def reset_hwm():
    """Reset VmHWM to the current RSS (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def count_lines(path):
    n = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += buf.count(b"\n", 0, k)
    return n
