"""``python -m sink``: the same command as ``readygate sink``."""

from __future__ import annotations

import argparse

from sink.cli import add_arguments, main

parser = argparse.ArgumentParser(prog="python -m sink")
add_arguments(parser)
raise SystemExit(main(parser.parse_args()))
