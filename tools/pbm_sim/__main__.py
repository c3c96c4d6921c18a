"""`python -m pbm_sim ARGS` (with tools/ on the path) = the simulated `pbm ARGS`; tools/pbm_sim/bin/pbm execs this."""

import sys

from .cli import main

sys.exit(main())
