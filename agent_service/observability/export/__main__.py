"""`python -m agent_service.observability.export`: see `process.py`."""

import sys

from agent_service.observability.export.process import main

sys.exit(main())
