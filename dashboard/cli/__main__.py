"""``python -m dashboard.cli``."""

import sys

from dashboard.cli.common import main

sys.exit(main())
