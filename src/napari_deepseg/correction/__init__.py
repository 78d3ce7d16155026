"""Object-level corrections of instance labels (numpy/scipy/scikit-image only, no GUI).

Each function acts on a label array (0 = background) or one plane of a stack (``plane=``), changes
only the objects it names, and returns an :class:`Edit` with the bounding box of the change and the
values there before and after. By default the array is modified in place; with ``apply=False`` it
is left untouched so a GUI can apply the edit itself and record one undo step::

    edit = split_label(layer.data, 5, seeds, apply=False)
    layer.data_setitem(edit.indices, edit.values)   # napari: one ctrl-z restores it
"""

from .edit import Edit
from .ops import delete_labels, fill_holes, merge_labels, relabel_sequential, remove_small
from .split import rasterize_polyline, split_label, split_label_by_line

__all__ = [
    "Edit",
    "delete_labels",
    "fill_holes",
    "merge_labels",
    "rasterize_polyline",
    "relabel_sequential",
    "remove_small",
    "split_label",
    "split_label_by_line",
]
