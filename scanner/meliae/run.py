"""python -m meliae run: a program, unmodified, watched from start to exit.

The program runs as `python SCRIPT ARGS...` (or `python -m MODULE ARGS...`)
would: in a fresh __main__ module, with that sys.argv and sys.path[0], its
stdin, stdout and signals as they were (SIGUSR2 excepted: it takes a
snapshot, then calls the handler it replaced), and its exit code.  Before
it starts, a Streamer (meliae/stream.py) or, with --dump-dir, a DirDumper
(meliae/dumpdir.py) is started; at exit, after the program's own atexit
handlers, one last snapshot is taken.  A daemon that cannot be reached is
a warning on stderr, never a failure: the program runs either way.
"""

import atexit
import os
import runpy
import signal
import sys

HELP = """\
usage: python -m meliae run [--socket PATH] [--interval SECONDS] [--label NAME]
                            [--traces N] [--dump-dir DIR]
                            (SCRIPT | -m MODULE) [ARGS...]

Runs SCRIPT (or -m MODULE) as `python SCRIPT ARGS...` would, and streams a
snapshot of its heap to meliae-monitord every --interval seconds, on
SIGUSR2, and once at exit.  Without a daemon it warns once and the program
runs as it would.

options (before SCRIPT or -m):
  --socket PATH       the daemon's socket (default: $MELIAE_SOCKET, else
                      /run/meliae.sock for root, else
                      $XDG_RUNTIME_DIR/meliae.sock)
  --interval SECONDS  between snapshots (default 60)
  --label NAME        stored with every snapshot, to find the process by
  --traces N          start tracemalloc keeping N frames per allocation:
                      every snapshot then carries each object's birth site
                      (the file:line and function that allocated it), for
                      diff, growth and report to show
  --dump-dir DIR      no daemon: write a dump file into DIR at each
                      interval, on SIGUSR2 and at exit, each from a forked
                      child (the program pauses for the fork only);
                      DIR/heap-PID-N.json
  -h, --help          this help

examples:
  python -m meliae run --interval 30 --label web server.py --port 8080
  python -m meliae run -m http.server 8000
  python -m meliae run --dump-dir /tmp/heaps job.py
"""

_DEFAULT_INTERVAL = 60.0
_VALUED = ("--socket", "--interval", "--label", "--traces", "--dump-dir")


class UsageError(Exception):
    pass


def parse(argv):
    """(options dict, "script" or "module", target, program args)."""
    opts = {"interval": _DEFAULT_INTERVAL}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return None
        if a == "-m" or (a.startswith("-m") and len(a) > 2):
            mod = a[2:] or (argv[i + 1] if i + 1 < len(argv) else None)
            if not mod:
                raise UsageError("-m needs a module name")
            rest = argv[i + (1 if a[2:] else 2):]
            return opts, "module", mod, rest
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.partition("=")
        if name not in _VALUED:
            raise UsageError("unknown option %r (see --help)" % a)
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError("%s needs a value" % name)
            value = argv[i + 1]
            i += 1
        opts[name[2:].replace("-", "_")] = value
        i += 1
    if i >= len(argv):
        raise UsageError("no program to run: give SCRIPT or -m MODULE")
    return opts, "script", argv[i], argv[i + 1:]


def _number(opts, key, kind, minimum):
    if key not in opts:
        return None
    try:
        v = kind(opts[key])
    except ValueError:
        v = None
    if v is None or not v >= minimum or v != v or v == float("inf"):
        raise UsageError("--%s wants a number >= %s, not %r"
                         % (key.replace("_", "-"), minimum, opts[key]))
    return v


def _start_watching(opts):
    """A Streamer or a DirDumper, started; None (with a warning) if
    neither could be."""
    interval = _number(opts, "interval", float, 0.001)
    traces = _number(opts, "traces", int, 1)
    try:
        if "dump_dir" in opts:
            from meliae import dumpdir
            return dumpdir.DirDumper(opts["dump_dir"], interval,
                                     signal.SIGUSR2, traces=traces)
        from meliae import stream
        return stream.stream_to(opts.get("socket"), interval=interval,
                                label=opts.get("label"),
                                signal=signal.SIGUSR2, traces=traces)
    except (OSError, ValueError, TypeError) as e:
        sys.stderr.write("meliae: not watching this program: %s\n" % (e,))
        return None


def _at_exit(watcher):
    """The last snapshot, then the watcher's end.  Failures were (or are)
    logged by the watcher; the exit code stays the program's."""
    from meliae.stream import StreamError
    try:
        watcher.snapshot()
    except StreamError:
        pass            # the streamer warned once already
    except Exception as e:
        sys.stderr.write("meliae: the snapshot at exit failed: %s\n" % (e,))
    finally:
        watcher.close()


def _prepare(kind, target, args):
    """sys.argv and sys.path[0] as `python SCRIPT` or `python -m` sets
    them (runpy sets argv[0] for a module)."""
    sys.argv[:] = [target] + list(args)
    if kind == "script":
        # python puts the script's directory first, symlinks resolved;
        # a directory or zip file with __main__.py is itself the entry.
        if _is_archive(target):
            sys.path[0] = target
        else:
            sys.path[0] = os.path.dirname(os.path.realpath(target))
    # -m: we were started by `python -m meliae`: sys.path[0] is already
    # the working directory, as for `python -m MODULE`.


def _is_archive(path):
    """A directory or zip file with a __main__.py, not a script."""
    if os.path.isdir(path):
        return True
    import zipfile
    try:
        return not path.endswith(".py") and zipfile.is_zipfile(path)
    except OSError:
        return False


def _own_frames(tb):
    """tb without the frames of this module and runpy: the traceback
    `python SCRIPT` would print."""
    skip = {__file__, runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return tb


def _run_script(path):
    """As `python SCRIPT` does: a fresh __main__ that stays in
    sys.modules (atexit handlers and the exit snapshot see its globals);
    a directory or zip file through runpy, as python does."""
    if _is_archive(path):
        runpy.run_path(path, run_name="__main__")
        return
    import builtins
    import importlib.machinery
    import io
    import types
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    with io.open_code(path) as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _run_module(name):
    """As `python -m MODULE` does: runpy's entry point for -m, in a fresh
    __main__ (ours holds meliae's own names)."""
    import types
    sys.modules["__main__"] = types.ModuleType("__main__")
    runpy._run_module_as_main(name, alter_argv=True)


def main(argv):
    try:
        parsed = parse(argv)
        if parsed is None:
            sys.stdout.write(HELP)
            return 0
        opts, kind, target, args = parsed
        _number(opts, "interval", float, 0.001)
        traces = _number(opts, "traces", int, 1)
        if "dump_dir" in opts and ("socket" in opts or "label" in opts):
            raise UsageError("--dump-dir writes files: no --socket or "
                             "--label with it")
        if kind == "script" and not os.path.exists(target):
            sys.stderr.write("python -m meliae run: can't open file %r: "
                             "No such file or directory\n" % target)
            return 2
    except UsageError as e:
        sys.stderr.write("python -m meliae run: %s\n" % (e,))
        return 2
    if traces is not None:
        import tracemalloc
        tracemalloc.start(traces)
    watcher = _start_watching(opts)
    if watcher is not None:
        # Registered before the program's own handlers: runs after them.
        atexit.register(_at_exit, watcher)
    _prepare(kind, target, args)
    try:
        if kind == "module":
            _run_module(target)
        else:
            _run_script(target)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:
        # As the interpreter does for an uncaught exception: the program's
        # excepthook, exit code 1 (and atexit handlers).
        tb = _own_frames(e.__traceback__)
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        return 1
    return 0
