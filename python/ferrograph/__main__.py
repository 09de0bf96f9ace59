"""`python -m ferrograph demo` is `ferrograph demo`."""

import sys

from ferrograph.cli import main

sys.exit(main())
