"""Mutation check of the tables: does a wrong table entry make a test fail?

    python -m tools.mutation_check [--tests tests/test_sim_vs_catalogue.py ...]

Copies the repository to a temporary folder, then, one at a time, changes one
catalogue register address, one catalogue scale (multiplier) and one BACnet
unit enumeration of the registry, runs the given tests against that copy and
reports whether they failed (the mutant is "killed") or passed ("survived").
A surviving mutant means the suite would not notice that wrong table. Exit
status 1 when any mutant survives.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TESTS = ("tests/test_sim_vs_catalogue.py", "tests/test_golden_registers.py", "tests/test_bacnet_units.py",
                 "tests/test_catalogue_registry.py", "tests/test_golden_bacnet.py")

# (what, file, regular expression, replacement): each changes exactly one table entry.
MUTANTS = (
    ("catalogue address: Digiware load base 0x4800 -> 0x4900", "core/catalogue.py",
     r"DIGIWARE_LOAD_BASE = 0x4800", "DIGIWARE_LOAD_BASE = 0x4900"),
    ("catalogue address: PMD energy Ea+ at 0xC652 -> 0xC654", "core/catalogue.py",
     r'"ea_pos": \(0xC652,', '"ea_pos": (0xC654,'),
    ("catalogue scale: the first x0.01 multiplier -> x0.1", "core/catalogue.py",
     r"0\.01\)", "0.1)"),
    ("catalogue scale: the first x0.001 multiplier -> x0.01", "core/catalogue.py",
     r"0\.001\)", "0.01)"),
    ("registry BACnet unit: volts 5 -> kilovolts 6", "core/registry.py",
     r"U_VOLTS = 5\b", "U_VOLTS = 6"),
    ("registry BACnet unit: volt-amperes 8 -> kilovolt-amperes 9", "core/registry.py",
     r"U_VA = 8\b", "U_VA = 9"),
)


def copy_repo(destination):
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "state", ".pytest_cache", ".hypothesis")
    shutil.copytree(REPO, destination, ignore=ignore, symlinks=True)


def mutate(root, path, pattern, replacement):
    full = os.path.join(root, path)
    with open(full, encoding="utf-8") as handle:
        text = handle.read()
    mutated, count = re.subn(pattern, replacement, text, count=1)
    if count != 1:
        raise SystemExit("mutant pattern %r not found in %s: update tools/mutation_check.py" % (pattern, path))
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(mutated)
    return text


def run_tests(root, tests):
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"] + list(tests),
                          cwd=root, env=env, capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return proc.returncode, last


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.mutation_check", description=__doc__.split("\n")[0])
    parser.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        root = os.path.join(tmp, "repo")
        copy_repo(root)
        code, last = run_tests(root, args.tests)
        print("unmutated: %s (%s)" % ("pass" if code == 0 else "FAIL", last))
        if code != 0:
            print("the tests must pass on the unmutated tables first")
            return 2
        survived = 0
        for what, path, pattern, replacement in MUTANTS:
            original = mutate(root, path, pattern, replacement)
            try:
                code, last = run_tests(root, args.tests)
            finally:
                with open(os.path.join(root, path), "w", encoding="utf-8") as handle:
                    handle.write(original)
            killed = code != 0
            survived += not killed
            print("%-8s %s (%s)" % ("killed" if killed else "SURVIVED", what, last))
        return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
