"""``python3 -m exporter.simulator``: same as ``bybit-dcp-exporter simulate``."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
