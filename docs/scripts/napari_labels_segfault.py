"""A segmentation fault in napari itself (no napari-deepseg code), on Mesa's software OpenGL.

Issue 13 saw napari crash in ``glDrawArrays`` when Labels layers were removed after plugin
activity. This script reproduces it with napari alone (napari 0.9.2, vispy 0.17, PyQt6, Mesa
llvmpipe under Xvfb: 3 crashes in 3 runs): 2D Labels layers, then a 3D image removed and added
again (as when a user closes and reopens the stack a result came from), then the Labels layers
removed -> segmentation fault during the next draw. Adding the image once (before or after the
labels) does not crash. The plugin's own contribution to the crashes seen was a second, separate
one: ``triton`` (imported by torchvision) loaded after Mesa's LLVM crashes the process at import;
``napari_deepseg._napari.guard_triton`` prevents that one.

    xvfb-run -a python docs/scripts/napari_labels_segfault.py; echo "exit code $?"   # 139
"""

import faulthandler

import napari
import numpy as np
from qtpy.QtTest import QTest

faulthandler.enable()
viewer = napari.Viewer(show=True)
rng = np.random.default_rng(0)
stack = (rng.random((3, 256, 256)) * 1000).astype(np.uint16)
labels = (rng.random((256, 256)) * 20).astype(np.uint16)
viewer.add_image(stack, name="stack")
viewer.add_labels(labels, name="a")
viewer.add_labels(labels.astype(np.uint8), name="b")
QTest.qWait(100)
viewer.layers.remove("stack")
QTest.qWait(100)
viewer.add_image(stack, name="stack")
QTest.qWait(100)
for name in ("b", "a", "stack"):
    print("removing", name, flush=True)
    viewer.layers.remove(name)
    QTest.qWait(200)
print("no crash", flush=True)
