"""Just enough distutils for Debian 12's meson 1.0.1 to introspect CPython 3.12+.

meson 1.0's python module imports distutils, which CPython 3.12 removed.
Its introspection needs only two things from it: the install schemes
(checked for Debian's 'deb_system'; empty here, so meson falls back to
sysconfig) and whether extensions link libpython (they do not on Linux).
.ci/run puts this folder on PYTHONPATH only for `meson setup` with a 3.12+
interpreter; nothing is built or installed with it.
"""
