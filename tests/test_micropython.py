"""Run the pure-Python test scripts under MicroPython (WebAssembly port) and CPython.

Every ``tests/pure/mp_*.py`` script must run to the end and print ``OK`` as its
last line of output, both under CPython and under the MicroPython WebAssembly
port driven by ``tests/micropython/run_mp.mjs`` (Node.js).  The MicroPython
package is installed with ``npm ci --prefix tests/micropython`` (``make test``
does this).  Missing prerequisites are test failures, never skips.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MP_DIR = REPO_ROOT / "tests" / "micropython"
RUN_MP = MP_DIR / "run_mp.mjs"
NODE_MODULES = MP_DIR / "node_modules"
PURE_DIR = REPO_ROOT / "tests" / "pure"
TIMEOUT = 120

# Modules that must stay importable under MicroPython (paths relative to REPO_ROOT).
PURE_MODULES = [
    "core/__init__.py",
    "core/modbus_rtu.py",
    "core/registry.py",
    "core/catalogue.py",
    "core/meter_events.py",
    "core/curve_windows.py",
]

SCRIPTS = sorted(PURE_DIR.glob("mp_*.py"))

INSTALL_HINT = (
    "run `make test`, or install the MicroPython WebAssembly port with "
    "`npm ci --prefix tests/micropython`"
)


def _require_harness():
    """Fail (not skip) when Node.js or the MicroPython npm package is missing."""
    if shutil.which("node") is None:
        pytest.fail("Node.js (`node`) not found on PATH; it is needed to run MicroPython tests")
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES.relative_to(REPO_ROOT)} is missing: {INSTALL_HINT}")
    if not RUN_MP.is_file():
        pytest.fail(f"{RUN_MP.relative_to(REPO_ROOT)} is missing")


def _require_modules():
    missing = [m for m in PURE_MODULES if not (REPO_ROOT / m).is_file()]
    if missing:
        pytest.fail("pure modules listed in PURE_MODULES are missing: " + ", ".join(missing))
    return list(PURE_MODULES)


def _run(cmd, **kwargs):
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT,
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {TIMEOUT}s: {' '.join(map(str, cmd))}\n{exc.stdout or ''}")


def _run_mp(script, modules):
    cmd = ["node", str(RUN_MP), "--root", str(REPO_ROOT)]
    for mod in modules:
        cmd += ["--module", mod]
    cmd.append(str(script))
    return _run(cmd, cwd=str(REPO_ROOT))


def _assert_ok(proc, label):
    lines = proc.stdout.rstrip("\n").splitlines()
    last = lines[-1].strip() if lines else ""
    detail = (
        f"[{label}] exit code {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    assert proc.returncode == 0, detail
    assert last == "OK", f"last stdout line is {last!r}, expected 'OK'\n{detail}"


def _script_param():
    # An empty parameter list would make pytest *skip*; use a sentinel that fails instead.
    if not SCRIPTS:
        return [pytest.param(None, id="no-mp-scripts")]
    return [pytest.param(s, id=s.name) for s in SCRIPTS]


def _require_script(script):
    if script is None:
        pytest.fail(
            f"no tests/pure/mp_*.py scripts found in {PURE_DIR}; "
            f"the pure-module tests must exist ({INSTALL_HINT} to run them)"
        )


@pytest.mark.parametrize("script", _script_param())
def test_pure_script_micropython(script):
    _require_script(script)
    _require_harness()
    proc = _run_mp(script, _require_modules())
    _assert_ok(proc, f"MicroPython {script.name}")


@pytest.mark.parametrize("script", _script_param())
def test_pure_script_cpython(script):
    _require_script(script)
    _require_modules()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = _run([sys.executable, str(script)], cwd=str(REPO_ROOT), env=env)
    _assert_ok(proc, f"CPython {script.name}")


def test_harness_detects_failure(tmp_path):
    _require_harness()
    script = tmp_path / "mp_failing.py"
    script.write_text('print("before")\nassert 1 == 2\nprint("OK")\n', encoding="utf-8")
    proc = _run_mp(script, [])
    assert proc.returncode != 0, f"harness missed a failing assert:\n{proc.stdout}\n{proc.stderr}"
    assert "AssertionError" in proc.stdout + proc.stderr, proc.stderr
    assert "OK" not in proc.stdout.split()
