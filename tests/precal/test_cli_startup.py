"""Building the command line imports no torch: ``precal --help``, ``precal train --help`` and the
launch of ``precal dashboard`` (whose server process imports torch itself) do not pay its import,
about a second."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["dashboard", "--help"]])
def test_the_command_line_is_built_without_torch(argv) -> None:
    code = ("import sys, contextlib, io\n"
            "from precal.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({argv!r})\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
