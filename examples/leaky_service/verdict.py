"""Say in one line what the leak is, from meliae-cli's JSON answers.

    python3 verdict.py pick DIFF.json GROWTH.json -> the leaking type's name
    python3 verdict.py say GROWTH.json DIFF.json REFERRERS.json

The suspects are growth's: the types whose count or size has a
significant upward trend that matters (docs/cli-json.md, "growth").  A
leak drags along what its objects hold (a Session's buffer, headers dict,
strings), and those rise just as significantly; the diff tells them
apart.  The leaking type is the suspect whose new objects are held by a
container that belongs to a module (what a cache looks like); a suspect
whose new objects are held by new objects of the leaking type grows with
it.  A group of one is not a leak: when the cache dict itself is resized
between the snapshots it is a new object (a new address), held by its
module.
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


def process(growth):
    """The growth section with the most snapshots."""
    procs = growth["processes"]
    return max(procs, key=lambda p: p["snapshots"]) if procs else None


def suspects(growth):
    p = process(growth)
    return [t for t in p["types"] if t["suspect"]] if p else []


def cached(g):
    h = g.get("holder") or {}
    owner = h.get("owner") or {}
    return (g["count"] > 1 and h.get("type") in ("dict", "list", "set")
            and owner.get("type") == "module")


def pick(diff, growth):
    """The diff group of the leaking type: a suspect held by a module's
    container; else the biggest group of a suspect not held by new
    objects; else (no suspect) None."""
    names = [t["type"] for t in suspects(growth)]
    groups = [g for g in diff["new_objects"]["groups"] if g["type"] in names]
    for g in groups:
        if cached(g):
            return g
    for g in groups:
        if not (g.get("holder") or {}).get("new"):
            return g
    return groups[0] if groups else None


def main():
    if sys.argv[1] == "pick":
        g = pick(load(sys.argv[2]), load(sys.argv[3]))
        print(g["type"] if g else "")
        return
    growth, diff = load(sys.argv[2]), load(sys.argv[3])
    proc = process(growth)
    g = pick(diff, growth)
    if g is None:
        n = proc["snapshots"] if proc else 0
        if n < growth.get("min_snapshots", 5):
            print("meliae: no verdict: %d snapshots, and the trend test "
                  "needs %d or more." % (n, growth.get("min_snapshots", 5)))
        else:
            print("meliae: no leak suspect: no type's memory has a "
                  "significant upward trend over %d snapshots." % n)
        return
    refs = load(sys.argv[4])
    kind = g["type"]
    [t] = [t for t in proc["types"] if t["type"] == kind]
    tr = t["trend"]["bytes"]
    rate = ("%s/h" % human(tr["slope_per_hour"])
            if tr.get("slope_per_hour") is not None else
            "%s a snapshot" % human(tr["slope"]))
    holder = g["holder"]
    module = (holder.get("owner") or {}).get("name", "?")
    chain = refs["chains"][0] if refs["chains"] else []
    path = " <- ".join(h["type"] + ("(%s)" % h["name"] if h.get("name") else "")
                       for h in chain)
    # the other suspects whose new objects the leaking ones hold
    along = []
    for s in suspects(growth):
        if s["type"] == kind:
            continue
        for o in diff["new_objects"]["groups"]:
            h = o.get("holder") or {}
            if (o["type"] == s["type"] and h.get("new")
                    and h.get("type") == kind):
                along.append(s["type"])
                break
    also = ""
    if along:
        names = (", ".join(along[:-1]) + " and " + along[-1]
                 if len(along) > 1 else along[0])
        also = " %s grow%s with it, held by the new %s objects." % (
            names, "" if len(along) > 1 else "s", kind)
    print("meliae: the leak is %s: +%d %s objects (+%s) over %d snapshots, "
          "a rising trend (p=%.2g, +%s), all held by one %s of %d entries "
          "in module %s (%s).%s" % (
              kind, t["count_after"] - t["count_before"], kind,
              human(t["bytes_after"] - t["bytes_before"]), proc["snapshots"],
              min(tr["p"], t["trend"]["count"]["p"]), rate, holder["type"],
              holder.get("len", 0), module, path, also))


if __name__ == "__main__":
    main()
