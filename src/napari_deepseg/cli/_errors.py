"""One-line CLI messages: OS errors in plain words, API keyword syntax in CLI option syntax.

Every failure of a ``deepseg`` command is printed as one line naming the user's path (never a
temporary file the user did not make), the problem and the fix. The core raises
:class:`~napari_deepseg.errors.DeepsegError` in API words (``batch_size``, ``device='cpu'``);
:func:`cli_message` turns them into the command's own options (``--batch-size``, ``--device cpu``).
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
from pathlib import Path

from ..errors import DeepsegError

# API keyword -> CLI option where the names differ (the rest follow argparse's dest names)
ALIASES = {"chunk_bytes": "--chunk-size", "outputs": "--output", "model_or_path": "--from"}

_PARTIAL = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.partial(\.\w+)?$")

_OS_REASONS = {
    errno.ENOENT: "{path} not found; check the path",
    errno.EEXIST: "{path} is a file where a folder is needed; choose another path or move the file",
    errno.EISDIR: "{path} is a folder where a file is needed; give a file path",
    errno.ENOTDIR: "{path}: part of this path is a file, not a folder; choose another path",
    errno.EACCES: "cannot write or read {path} (permission denied); choose a location you can use",
    errno.EPERM: "cannot write or read {path} (operation not permitted); choose a location you can use",
    errno.EROFS: "cannot write {path} (read-only file system); choose a location you can write to",
    errno.ENOSPC: "no space left on the disk holding {path}; free space or choose another location",
}


def user_path(name: str | bytes | None) -> str:
    """The path the user knows: a temporary ``.NAME.xxxx.partial`` file is shown as ``NAME``."""
    if name is None:
        return "a file"
    path = Path(name.decode() if isinstance(name, bytes) else str(name))
    match = _PARTIAL.match(path.name)
    return str(path.with_name(match.group("name")) if match else path)


def os_message(err: OSError) -> str:
    """An OSError as one line with the user's path and the fix (no ``[Errno N]``)."""
    path = user_path(err.filename)
    template = _OS_REASONS.get(err.errno or -1)
    if template is not None:
        return template.format(path=path)
    reason = (err.strerror or str(err) or type(err).__name__).strip().splitlines()[0]
    return f"{path}: {reason[0].lower() + reason[1:] if reason else 'failed'}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def cli_message(err: BaseException, parser: argparse.ArgumentParser | None = None) -> str:
    """The one-line message for a failed command (OS words translated, CLI option names)."""
    if isinstance(err, OSError):
        return os_message(err)
    if isinstance(err, MemoryError):
        return "out of memory; use a smaller --tile or --chunk-size, or close other programs"
    text = _first_line(err)
    if parser is not None:
        text = to_cli_words(text, parser)
    if not isinstance(err, DeepsegError):
        text = f"{text} ({type(err).__name__}; rerun with --debug for the traceback and report it)"
    return text


def option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{api keyword: --option}`` for every option of ``parser`` (and :data:`ALIASES`)."""
    names = dict(ALIASES)
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in ("help",):
            names[action.dest] = max(longs, key=len)
    return names


def to_cli_words(text: str, parser: argparse.ArgumentParser) -> str:
    """Rewrite ``keyword=value`` and ``snake_case`` keywords of ``text`` as the command's options."""
    switches = {
        a.dest: max(a.option_strings, key=len) for a in parser._actions if a.nargs == 0 and a.const is True
    }
    for dest, flag in switches.items():  # overwrite=True -> --overwrite
        text = re.sub(rf"(?<![\w.-]){dest}=True\b", flag, text)
    for dest, flag in option_names(parser).items():
        text = re.sub(  # channels=[1, 2] -> --channels 1,2
            rf"(?<![\w.-]){dest}=\[([^\]]*)\]", lambda m, f=flag: f"{f} {m.group(1).replace(' ', '')}", text
        )
        text = re.sub(rf"(?<![\w.-]){dest}=(['\"]?)([^\s,;'\")]+)\1", rf"{flag} \2", text)
        if "_" in dest:
            text = re.sub(rf"(?<![\w.-]){dest}(?![\w(])", flag, text)
    return text


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_LIBRARY_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning)


def library_warning(text: str, category: type, filename: str) -> bool:
    """Whether a warning is a library's own note (numpy's "overflow encountered in cast", torch's
    deprecations, anything raised outside napari-deepseg): the user sees it only with --debug."""
    outside = not str(Path(filename).resolve()).startswith(_PACKAGE_DIR)
    numpy_note = issubclass(category, RuntimeWarning) and "encountered in" in text
    return outside or numpy_note or issubclass(category, _LIBRARY_CATEGORIES)


def warning_printer(parser: argparse.ArgumentParser | None = None, debug: bool = False):
    """A ``warnings.showwarning`` for the CLI: one line in the command's words, no source location;
    libraries' own warnings only with ``--debug`` (:func:`library_warning`)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = _first_line(Warning(str(message)))
        if not debug and library_warning(text, category, filename):
            return
        if parser is not None:
            text = to_cli_words(text, parser)
        print(f"deepseg: warning: {text}", file=file or sys.stderr)

    return show
