"""medadv: an open study kit for the safety of medical-imaging AI.

The notebooks in ``notebooks/`` narrate the study; this package does the work. Submodules are imported on demand
(``import medadv.attacks``) so that ``import medadv`` stays light.
"""

from __future__ import annotations

from medadv.errors import CheckpointError, ConfigError, DataError, MedadvError, RunError

__version__ = "0.1.0"
__all__ = ["CheckpointError", "ConfigError", "DataError", "MedadvError", "RunError", "__version__"]
