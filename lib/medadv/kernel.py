"""The Jupyter kernel ``medadv`` that every notebook of the kit names: registering this interpreter as it
(``medadv kernel install``) and making sure, before papermill starts one, that it runs this very interpreter.

Imports nothing heavy: ipykernel and jupyter_client are imported when a kernel is installed or checked, so that
``medadv --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medadv.errors import ConfigError

KERNEL_NAME = "medadv"
KERNEL_DISPLAY_NAME = "Python 3 (medadv)"

__all__ = ["KERNEL_DISPLAY_NAME", "KERNEL_NAME", "ensure_kernel", "install_kernel"]


def install_kernel(where: str = "user", prefix: str | None = None) -> Path:
    """Register this interpreter as the Jupyter kernel ``medadv`` with ipykernel's own installer.

    Args:
        where: ``user`` (the user's Jupyter data folder: every JupyterLab of this user sees it), ``sys-prefix`` (this
            environment's ``share/jupyter``, seen by a JupyterLab of this environment) or ``prefix`` (``prefix``).
        prefix: the folder for ``where="prefix"``.

    Returns:
        The folder the kernel spec was written to.
    """
    from ipykernel.kernelspec import install

    kwargs = {"user": where == "user", "prefix": sys.prefix if where == "sys-prefix" else prefix}
    return Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, **kwargs))


def ensure_kernel() -> str:
    """Make the Jupyter kernel ``medadv`` that papermill starts this very interpreter, and return its name.

    A kernel of our own name keeps a user's personal ``python3`` kernel from running the study in another environment.
    When ``medadv`` is missing or names another interpreter (say a user-wide one of another checkout, from ``medadv
    kernel install``), this interpreter is registered in its own prefix and that prefix is put first on
    ``JUPYTER_PATH`` for the kernels this process starts.

    Returns:
        :data:`KERNEL_NAME`.

    Raises:
        ConfigError: the kernel still names another interpreter after registering this one.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def current() -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        except NoSuchKernel:
            return False
        return Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()

    if not current():
        install_kernel("sys-prefix")
        here = str(Path(sys.prefix) / "share" / "jupyter")
        os.environ["JUPYTER_PATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("JUPYTER_PATH")])])
        if not current():
            raise ConfigError(
                f"the Jupyter kernel {KERNEL_NAME!r} does not start {sys.executable} even after "
                f"registering it in {here}; remove the other 'medadv' kernel (jupyter kernelspec list)."
            )
    return KERNEL_NAME
