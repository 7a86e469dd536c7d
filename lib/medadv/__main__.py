"""``python -m medadv COMMAND ...``: the ``medadv`` command (:mod:`medadv.cli`) without a console script."""

from medadv.cli import main
from medadv.console import exit_process

exit_process(main())
