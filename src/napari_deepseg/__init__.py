"""napari-deepseg: deep-learning segmentation for napari, with a CLI and Python API."""

__version__ = "0.1.0"
