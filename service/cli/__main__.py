"""`python -m service.cli`: the `handover` command (the workers are started this way)."""

import sys

from service.cli import main

sys.exit(main())
