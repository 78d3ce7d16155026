"""napari alone: add two layers, remove both, add two again (the crash of issue 33 on Mesa).

``python two_layers_cycle.py guard`` installs the plugin's GL guard first; ``plain`` does not.
Prints one line per cycle and DONE; a crash ends the process with SIGSEGV.
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
