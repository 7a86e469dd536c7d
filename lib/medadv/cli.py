"""The ``medadv`` command: one entry point for the kit's command-line tools.

``medadv run ...`` runs the study's notebooks (:func:`medadv.pipeline.main`, the engine behind ``./run_all.sh``);
``medadv run --sweep ...`` and ``medadv sweep ...`` run a seed / size sweep (:func:`medadv.sweep.main`, where the
installed kit has it);
``medadv pretrain`` makes the kit's pretrained Vnet for the CPU widths (:func:`medadv.train.pretrain.main`);
``medadv reader serve|import RUN`` serves a run's reader study to a class or imports the offline app's answers
(:func:`medadv.reader_app.server.main`; the console script ``medadv-reader`` is the same command);
``medadv report RUN`` writes a run's (or a sweep's) ``report/index.html`` (:func:`medadv.run_report.main`);
``medadv kernel install`` registers this interpreter as the Jupyter kernel ``medadv`` that the notebooks name.
``python -m medadv ...`` is the same command without a console script (Windows, a plain ``pip install -e .``).

Sub-commands are imported only when chosen, so ``medadv --help`` never imports torch and answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

from medadv import __version__
from medadv.console import console_logger, exit_process
from medadv.kernel import KERNEL_DISPLAY_NAME, KERNEL_NAME, install_kernel

PROG = "medadv"
COMMANDS = {
    "run": ("medadv.pipeline", "run the study's notebooks in order with papermill (resumable)"),
    "sweep": ("medadv.sweep", "run the study over several seeds or sizes (Dask): medadv sweep N"),
    "reader": (
        "medadv.reader_app.server",
        "the reader study of a run: serve it to a class, import the offline app's answers (also 'medadv-reader')",
    ),
    "report": ("medadv.run_report", "write a run's or a sweep's report/index.html (figures, tables, notebooks)"),
    "pretrain": ("medadv.train.pretrain", "make the kit's pretrained Vnet (paper 001's network at the CPU widths)"),
    "kernel": (None, "manage the Jupyter kernel 'medadv' that the notebooks use"),
}


def _kernel_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} kernel", description=COMMANDS["kernel"][1] + ".")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = sub.add_parser(
        "install",
        prog=f"{PROG} kernel install",
        help="register this interpreter as the kernel 'medadv'",
        description="Register this Python (the one with medadv installed) as the Jupyter kernel 'medadv', the kernel "
        "every notebook of the kit names. By default for the user, so that any JupyterLab the user "
        "starts offers it.",
    )
    place = install.add_mutually_exclusive_group()
    place.add_argument(
        "--user",
        dest="where",
        action="store_const",
        const="user",
        help="into the user's Jupyter data folder (the default)",
    )
    place.add_argument(
        "--sys-prefix",
        dest="where",
        action="store_const",
        const="sys-prefix",
        help=f"into this environment ({sys.prefix})",
    )
    place.add_argument("--prefix", metavar="DIR", help="into DIR/share/jupyter/kernels")
    install.set_defaults(where="user")
    return parser


def kernel_main(argv: Sequence[str]) -> int:
    """``medadv kernel install [--user | --sys-prefix | --prefix DIR]``, logging where it went to ``medadv.run``.

    Returns:
        The exit status, 0.
    """
    args = _kernel_parser().parse_args(argv)
    where = "prefix" if args.prefix else args.where
    path = install_kernel(where, args.prefix)
    log = console_logger()
    log.info(f"{PROG}: kernel '{KERNEL_NAME}' ({sys.executable}) installed in {path}")
    log.info(f"{PROG}: in JupyterLab pick it with Kernel > Change Kernel... > {KERNEL_DISPLAY_NAME}")
    return 0


def _module_main(module: str) -> Callable[[Sequence[str]], int] | None:
    """The ``main(argv)`` of ``module``, or ``None`` when this installation of the kit lacks that module."""
    if importlib.util.find_spec(module) is None:
        return None
    return importlib.import_module(module).main


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the sub-command and everything after it (parsed by the sub-command itself).

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="medadv: an open study kit for the safety of medical-imaging AI. "
        f"'{PROG} COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``medadv COMMAND ...`` to the command's own ``main``.

    Returns:
        The command's exit status; 2 when this installation lacks the command's module.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv[:1])
    rest = rest + argv[1:]
    if args.command == "kernel":
        return kernel_main(rest)
    sweep = args.command == "run" and any(a == "--sweep" or a.startswith("--sweep=") for a in rest)
    module = COMMANDS["sweep" if sweep else args.command][0]
    command = _module_main(module)
    if command is None:
        console_logger().error(
            f"{PROG}: error: '{PROG} {args.command}' is not available in this installation of the "
            f"kit (it has no module {module}); update the kit's checkout and reinstall it."
        )
        return 2
    if args.command == "reader":
        return int(command(rest, prog=f"{PROG} reader") or 0)
    return int(command(rest) or 0)


if __name__ == "__main__":
    exit_process(main())
