"""napari GUI layer: dock widgets, the worker launcher and layer <-> array helpers.

Only this package imports napari, qtpy or magicgui; the core never does (a test checks it).
"""
