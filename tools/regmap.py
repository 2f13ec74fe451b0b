"""Write the gateway's Modbus register map (CSV or Markdown) to stdout.

    python -m tools.regmap --format md > docs/modbus-register-map.md
    python -m tools.regmap --format csv > register-map.csv

The running daemon serves the same files at /api/files/modbus-register-map.csv and .md.
"""

import argparse
import sys

from protocols.modbus.regmap import as_csv, as_markdown


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.regmap", description=__doc__.split("\n")[0])
    parser.add_argument("--format", choices=("csv", "md"), default="md")
    args = parser.parse_args(argv)
    sys.stdout.write(as_csv() if args.format == "csv" else as_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
