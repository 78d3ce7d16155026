"""One model list for the Segment, Fine-tune and Batch widgets, refreshed when a model is saved."""

from __future__ import annotations

from napari_deepseg._napari.batch_widget import BatchWidget
from napari_deepseg._napari.segment_widget import SegmentWidget
from napari_deepseg._napari.train_run import default_output
from napari_deepseg._napari.train_widget import FineTuneWidget
from napari_deepseg.models import save_model
from napari_deepseg.models.catalog import user_model_path

WAIT_MS = 10_000


def _items(combo) -> list[str]:
    """The texts the user sees in a magicgui ComboBox's Qt drop-down."""
    native = combo.native
    return [native.itemText(i) for i in range(native.count())]


def test_three_widgets_list_the_same_models_and_see_new_ones(
    make_napari_viewer, qtbot, tiny_unet, user_models, monkeypatch
):
    import napari_deepseg.models.catalog as catalog

    # one ready model has its weights here: only that one is listed
    monkeypatch.setattr(catalog, "ready_weights_cached", lambda name: name == "deeplabv3_resnet50_coco")
    viewer = make_napari_viewer()
    segment, finetune, batch = SegmentWidget(viewer), FineTuneWidget(viewer), BatchWidget(viewer)
    for name, widget in (("Segment", segment), ("Fine-tune", finetune), ("Batch", batch)):
        viewer.window.add_dock_widget(widget, name=name)
    for widget in (segment, finetune, batch):
        assert _items(widget.model)[0].startswith("nuclei (")  # named by the images it fits
        assert not any("fresh" in text for text in _items(widget.model))
    assert "deeplabv3_resnet50_coco (pretrained)" in _items(segment.model)
    assert "deeplabv3_resnet50_coco (pretrained)" in _items(finetune.model)
    assert not any("fcn_resnet50_coco" in text for text in _items(segment.model))  # no weights here

    save_model(user_model_path("fresh"), tiny_unet)  # as deepseg train --save-as fresh would
    for widget in (segment, finetune, batch):
        qtbot.waitUntil(lambda w=widget: "fresh.pt" in _items(w.model), timeout=WAIT_MS)

    index = _items(segment.model).index("fresh.pt")
    segment.model.native.setCurrentIndex(index)  # the user picks it in the drop-down
    assert segment.model.value.ref == str(user_models / "fresh.pt")
    batch.model.native.setCurrentIndex(_items(batch.model).index("fresh.pt"))
    assert batch._model_ref() == str(user_models / "fresh.pt")


def test_finetune_saves_into_the_user_models_folder_by_default(user_models):
    path = default_output("cells.tif")
    assert path.parent == user_models
    assert path.name == "cells.tif-finetuned.pt"
