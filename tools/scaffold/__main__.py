"""``python -m tools.scaffold NAME ...``: see :mod:`tools.scaffold`."""

import sys

from tools.scaffold import main

sys.exit(main())
