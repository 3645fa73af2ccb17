"""Say in one line what the leak is, from meliae-cli's JSON answers.

    python3 verdict.py pick DIFF.json            -> the leaking type's name
    python3 verdict.py say GROWTH.json DIFF.json REFERRERS.json

The leaking type is the biggest group of new objects (diff) held by a
container that belongs to a module: what a cache looks like.  Objects that
hang off those (a Session's buffers) are new too, but their holder is the
leaking object, not a module's container.  A group of one is not a leak:
when the cache dict itself is resized between the snapshots it is a new
object (a new address), held by its module, and may outweigh the
Sessions of a short, slow run.
"""

import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return "%d B" % n if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0


def pick(diff):
    groups = diff["new_objects"]["groups"]
    for g in groups:
        h = g.get("holder") or {}
        owner = h.get("owner") or {}
        if (g["count"] > 1 and h.get("type") in ("dict", "list", "set")
                and owner.get("type") == "module"):
            return g
    return groups[0]


def main():
    if sys.argv[1] == "pick":
        print(pick(load(sys.argv[2]))["type"])
        return
    growth, diff, refs = (load(p) for p in sys.argv[2:5])
    g = pick(diff)
    kind = g["type"]
    series = {}
    for proc in growth["processes"]:
        for t in proc["types"]:
            if t["type"] == kind:
                series = dict(t, snapshots=proc["snapshots"])
    holder = g["holder"]
    module = (holder.get("owner") or {}).get("name", "?")
    chain = refs["chains"][0] if refs["chains"] else []
    path = " <- ".join(h["type"] + ("(%s)" % h["name"] if h.get("name") else "")
                       for h in chain)
    grew = ("+%d %s objects (+%s) over %d snapshots%s" % (
        series["count_after"] - series["count_before"], kind,
        human(series["bytes_after"] - series["bytes_before"]),
        series["snapshots"],
        ", bigger in every one" if series.get("suspect") else "")
        if series else "%d new %s objects" % (g["count"], kind))
    print("meliae: the leak is %s: %s, all held by one %s of %d entries in "
          "module %s (%s)." % (kind, grew, holder["type"], holder.get("len", 0),
                               module, path))


if __name__ == "__main__":
    main()
