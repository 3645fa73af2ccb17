"""A free-threaded CPython (Py_GIL_DISABLED) gets an ImportError that says
why, never a crash or a wrong dump.

Debian packages no free-threaded interpreter, so the refusal module
(scanner/freethreaded.c, what _scanner and _loader are built from on such
an interpreter) is built for this one as _ft_refusal and imported here.
"""

import importlib.util
import os
import sys
import sysconfig
import unittest


def load_refusal():
    d = os.environ.get("MELIAE_TEST_FT_DIR")
    if not d:
        raise unittest.SkipTest("MELIAE_TEST_FT_DIR not set (run through meson test)")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = os.path.join(d, "_ft_refusal" + suffix)
    spec = importlib.util.spec_from_file_location("_ft_refusal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FreeThreadedRefusalTest(unittest.TestCase):

    def test_import_raises_import_error_naming_free_threading_and_the_gil(self):
        with self.assertRaises(ImportError) as cm:
            load_refusal()
        msg = str(cm.exception)
        self.assertIn("_ft_refusal", msg)
        self.assertIn("free-threaded", msg)
        self.assertIn("Py_GIL_DISABLED", msg)
        self.assertIn("GIL", msg)
        self.assertNotIn("_ft_refusal", sys.modules)

    def test_this_interpreter_has_the_gil_so_the_real_scanner_imports(self):
        # The build picks freethreaded.c exactly on Py_GIL_DISABLED builds.
        gil_disabled = sysconfig.get_config_var("Py_GIL_DISABLED")
        from meliae import _scanner
        self.assertFalse(gil_disabled)
        self.assertTrue(issubclass(_scanner.ScanError, RuntimeError))


if __name__ == "__main__":
    unittest.main()
