"""A segmentation fault in napari itself (no napari-deepseg code) on Mesa's software OpenGL.

napari 0.9.2, vispy 0.17, PyQt6, Mesa llvmpipe under Xvfb: add two layers (Labels here; Image
or Points layers crash alike), remove both, add two again -> the next draw crashes in
``glDrawArrays`` (every run). One layer at a time does not crash.

Cause: after a layer removal ``napari._vispy.canvas.VispyCanvas._clean_and_update_scenegraph``
calls the vispy context's ``finish()``, which executes the queued GL commands (the removed
visuals' deletions and new objects) outside the canvas' paint, without making the canvas'
OpenGL context current. Calling ``self._scene_canvas.set_current()`` first removes the crash
(that is what ``napari_deepseg._napari.gl_guard`` does until napari does it).

    xvfb-run -a python docs/scripts/napari_two_layers_segfault.py plain; echo $?   # 139
    xvfb-run -a python docs/scripts/napari_two_layers_segfault.py guard; echo $?   # 0

Prints one line per cycle and DONE.
"""

import sys
import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

if sys.argv[1] == "guard":
    import napari_deepseg._napari  # noqa: F401  (installs the GL guard)

viewer = napari.Viewer(show=True)
viewer.add_image(np.random.default_rng(0).random((256, 256)), name="image")
app = QApplication.instance()


def pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


pump(0.5)
for cycle in range(4):
    layers = [viewer.add_labels(np.zeros((256, 256), np.uint8), name=f"r{i}") for i in range(2)]
    pump(0.3)
    for layer in layers:
        viewer.layers.remove(layer)
    pump(0.3)
    print("cycle", cycle, flush=True)
viewer.close()
print("DONE", flush=True)
