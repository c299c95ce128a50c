"""`python -m josev_bridge.api`: the API process (api/process.py); the daemon starts it."""

import sys

from .process import main

sys.exit(main())
