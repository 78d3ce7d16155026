"""Can napari's GUI tests run here? The check behind ``tests/conftest.py``'s one-line stop.

On headless Linux the GUI tests need Xvfb (started by pytest-xvfb), Mesa's OpenGL and Qt's xcb
libraries. Without them Qt aborts the whole pytest process (``Fatal Python error: Aborted``)
with no word about why; this check stops the run first, with one line that names the missing
Debian packages and the command that installs them (the same list as ``.ci/run``).
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import sys
from collections.abc import Callable, Mapping

#: Debian/Ubuntu packages the GUI tests need on a headless machine (as installed by .ci/run)
APT_PACKAGES = (
    "xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libgl1 libfontconfig1 libdbus-1-3 "
    "libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
    "libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 "
    "libxcb-xkb1 libxrender1 libxi6 libsm6 libice6"
)
#: shared libraries Qt's xcb platform and napari's OpenGL canvas load, and their packages
LIBRARIES = {
    "GL": "libgl1",
    "EGL": "libegl1",
    "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
}


def missing_display(
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    which: Callable[..., str | None] = shutil.which,
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> str | None:
    """One line saying what the GUI tests lack and how to install it, or None when they can run.

    Args:
        environ: the environment (default ``os.environ``): ``DISPLAY``/``WAYLAND_DISPLAY`` mean
            a display exists; ``PATH`` is searched for ``Xvfb``.
        platform: ``sys.platform`` by default; only Linux needs the check.
        which, find_library: lookups (replaced in tests to simulate a bare machine).
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    missing = []
    has_display = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    if not has_display and which("Xvfb", path=environ.get("PATH", "")) is None:
        missing.append("xvfb (no display and no Xvfb on PATH)")
    missing += [package for lib, package in LIBRARIES.items() if find_library(lib) is None]
    if not missing:
        return None
    return (
        f"napari's GUI tests cannot start here: missing {', '.join(missing)}. On Debian/Ubuntu run "
        f"'sudo apt-get install -y {APT_PACKAGES}' (as .ci/run does), then rerun the tests"
    )
