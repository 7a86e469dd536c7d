"""``python -m medadv COMMAND ...``: the ``medadv`` command (:mod:`medadv.cli`) without a console script."""

import sys

from medadv.cli import main

sys.exit(main())
