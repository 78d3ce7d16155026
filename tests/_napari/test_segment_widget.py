"""The Segment dock widget in a real viewer, with real napari workers and tiny models."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
import torch
from napari.layers import Labels
from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt, QTimer

from napari_deepseg._napari import segment_run as sw_run
from napari_deepseg._napari import segment_widget as sw
from napari_deepseg._napari.layers import is_edited
from napari_deepseg._napari.model_choices import FILE_ENTRY
from napari_deepseg._napari.segment_run import ResultPlacer
from napari_deepseg._napari.segment_widget import SegmentWidget
from napari_deepseg.inference import segment
from napari_deepseg.models import load_model, save_model
from napari_deepseg.samples import synthetic_nuclei

WAIT_MS = 60_000


@pytest.fixture
def model_file(tmp_path, tiny_unet):
    return save_model(tmp_path / "tiny.pt", tiny_unet)


@pytest.fixture
def errors(monkeypatch):
    """Messages the widget shows with napari's show_error / show_info."""
    shown: dict[str, list[str]] = {"error": [], "info": []}
    notification_manager.records.clear()  # notifications left by earlier tests in this process
    monkeypatch.setattr(sw, "show_error", lambda msg: shown["error"].append(msg))
    monkeypatch.setattr(sw, "show_info", lambda msg: shown["info"].append(msg))
    return shown


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    return viewer, widget


def _choose(widget: SegmentWidget, path, model=None):
    choice = widget.models.add(path)
    widget.model.value = choice
    if model is not None:  # pre-load (e.g. a slowed-down model) into the widget's cache
        widget._remember(choice, model)
    return choice


def _slowed(model, seconds=0.05, favour=None):
    """``model`` sleeping ``seconds`` per forward call (and predicting class ``favour`` if given)."""
    forward = model.forward

    def slow_forward(x):
        time.sleep(seconds)
        logits = forward(x)
        if favour is not None:
            logits[:, favour] += 100.0
        return logits

    model.forward = slow_forward
    return model


def _run(qtbot, widget):
    widget.run()
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def test_pickers_follow_layers_and_image_kind(viewer_widget):
    viewer, widget = viewer_widget
    assert widget.image.value is None
    gray = viewer.add_image(np.zeros((32, 32), np.uint16), name="gray")
    assert widget.image.value is gray
    assert widget.channel_axis.native.isHidden()
    assert widget.channels.native.isHidden()
    rgb = viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="rgb", rgb=True)
    widget.image.value = rgb
    assert not widget.channels.native.isHidden()
    assert widget.channels.value == [0, 1, 2]
    gray.name = "renamed"
    assert "renamed" in [widget.image.native.itemText(i) for i in range(widget.image.native.count())]
    viewer.layers.remove(rgb)
    assert widget.image.value is gray
    devices = widget.device.native.model()
    assert devices.item(1).isEnabled()  # cpu
    assert devices.item(2).isEnabled() == torch.cuda.is_available()


def test_channel_axis_guessed_from_the_layer_and_shown(viewer_widget, qtbot, model_file, errors):
    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((64, 64), seed=1)
    cyx = viewer.add_image(np.stack([image, image[::-1]]), name="two channels", channel_axis=None)
    widget.image.value = cyx
    assert widget.channel_axis.value == 0  # a small first axis: channels, not two Z planes
    assert "small first axis (2)" in widget.channel_note.value
    assert not widget.channel_note.native.isHidden()
    assert widget.channels.value == [0, 1]
    assert widget.channels.native.maximumHeight() < 80  # two rows, not a tall empty box
    plan = widget.plan()
    assert plan.snapshot.axes == "CYX"
    _choose(widget, model_file)
    widget.channels.value = [0]
    _run(qtbot, widget)
    assert errors["error"] == []
    assert viewer.layers["two channels tiny instances"].data.shape == (64, 64)  # one plane, not two
    stack = viewer.add_image(np.zeros((6, 64, 64), np.uint16), name="stack")
    widget.image.value = stack
    assert widget.channel_axis.value is None  # six planes: a Z stack unless the user says otherwise
    assert "none guessed" in widget.channel_note.value
    labelled = viewer.add_image(
        np.zeros((64, 64, 6), np.uint16), name="labelled", axis_labels=("y", "x", "c")
    )
    widget.image.value = labelled
    assert widget.channel_axis.value is None  # C is last here: napari shows it as a slider axis
    tcyx = viewer.add_image(np.zeros((2, 6, 32, 32), np.uint16), name="tc", axis_labels=("t", "c", "y", "x"))
    widget.image.value = tcyx
    assert widget.channel_axis.value == 1
    assert "labelled 'c'" in widget.channel_note.value


def test_model_file_entry_opens_a_dialog(viewer_widget, model_file, monkeypatch):
    _viewer, widget = viewer_widget
    answers = iter([(str(model_file), ""), ("", "")])
    monkeypatch.setattr(sw.QFileDialog, "getOpenFileName", lambda *args: next(answers))
    widget.model.value = FILE_ENTRY
    chosen = widget.model.value
    assert chosen.kind == "file"
    assert chosen.ref == str(model_file.resolve())
    widget.model.value = FILE_ENTRY  # dialog cancelled: back to the previous model
    assert widget.model.value == chosen


def test_end_to_end_2d(viewer_widget, qtbot, model_file, errors, monkeypatch, progress_log):
    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((64, 64), seed=2)
    viewer.add_image(image, name="nuclei", scale=(0.5, 0.25), translate=(3, 4))
    choice = _choose(widget, model_file)
    loads = []
    real_load = type(choice).load
    monkeypatch.setattr(type(choice), "load", lambda self: loads.append(1) or real_load(self))
    _run(qtbot, widget)
    assert errors["error"] == []
    assert progress_log.advanced("Segment nuclei: ")  # napari progress bars moved with the run
    assert progress_log.open() == []  # and closed at the end
    classes = viewer.layers["nuclei tiny classes"]
    instances = viewer.layers["nuclei tiny instances"]
    assert isinstance(classes, Labels)
    expected = segment(image, load_model(model_file), axes="YX", outputs=("classes", "instances"))
    np.testing.assert_array_equal(classes.data, expected.classes)
    np.testing.assert_array_equal(instances.data, expected.instances)
    assert instances.data.dtype == np.uint16  # fewer than 32768 objects: drawn without a remapping pass
    np.testing.assert_allclose(classes.scale, (0.5, 0.25))
    np.testing.assert_allclose(instances.translate, (3, 4))
    assert list(classes.features["class"]) == ["background", "interior", "boundary"]
    assert classes.editable
    assert widget.status.value == "ready"
    assert widget.run_button.enabled
    _run(qtbot, widget)  # unedited result: replaced in place; model loaded only once (cached)
    assert loads == [1]
    assert [layer.name for layer in viewer.layers].count("nuclei tiny classes") == 1


def test_rgb_channel_choice_and_probabilities(viewer_widget, qtbot, model_file, errors, monkeypatch):
    viewer, widget = viewer_widget
    gray = synthetic_nuclei((48, 48), seed=6)[0]
    rgb = np.zeros((48, 48, 3), np.uint8)
    rgb[..., 1] = (gray / gray.max() * 255).astype(np.uint8)  # nuclei in the green channel only
    viewer.add_image(rgb, name="rgb", rgb=True, scale=(2.0, 2.0))
    _choose(widget, model_file)
    widget.channels.value = [1]
    for name, value in (("out_classes", False), ("out_instances", False), ("out_probabilities", True)):
        getattr(widget, name).value = value
    plans = []
    recording = lambda viewer, plan: plans.append(plan) or ResultPlacer(viewer, plan)  # noqa: E731
    monkeypatch.setattr(sw, "ResultPlacer", recording)
    _run(qtbot, widget)
    assert errors["error"] == []
    assert plans[0].options.channels == (1,)
    assert plans[0].snapshot.axes == "YXC"
    probs = [layer for layer in viewer.layers if "probability" in layer.name]
    assert [layer.name for layer in probs] == [f"rgb tiny probability {c}" for c in ("interior", "boundary")]
    assert probs[0].data.shape == (48, 48)
    assert 0 <= probs[0].data.min() <= probs[0].data.max() <= 1
    np.testing.assert_allclose(probs[0].scale, (2.0, 2.0))
    assert not [layer for layer in viewer.layers if isinstance(layer, Labels)]


def _classes_result(viewer_widget, qtbot, model_file):
    """(viewer, widget, the classes layer) after a run of the tiny model on a 48x48 image."""
    viewer, widget = viewer_widget
    viewer.add_image(synthetic_nuclei((48, 48), seed=4)[0], name="img")
    _choose(widget, model_file)
    widget.out_instances.value = False
    _run(qtbot, widget)
    return viewer, widget, viewer.layers["img tiny classes"]


def test_edited_labels_are_never_overwritten(viewer_widget, qtbot, model_file, errors):
    viewer, widget, first = _classes_result(viewer_widget, qtbot, model_file)
    first.paint((10, 10), 7, refresh=True)
    painted = first.data.copy()
    assert is_edited(first)
    _run(qtbot, widget)
    np.testing.assert_array_equal(first.data, painted)  # untouched
    classes_layers = [layer for layer in viewer.layers if layer.name.startswith("img tiny classes")]
    assert len(classes_layers) == 2
    widget.replace.value = True
    _run(qtbot, widget)
    np.testing.assert_array_equal(first.data, classes_layers[1].data)  # the edited one, replaced
    assert len([layer for layer in viewer.layers if layer.name.startswith("img tiny classes")]) == 2
    assert not is_edited(first)
    assert errors["error"] == []


def test_labels_painted_while_a_run_works_are_kept(viewer_widget, qtbot, model_file, errors, monkeypatch):
    """A stroke on the earlier result while the next run works is an edit too, also one that
    lands after the worker hashed the layer (its result is queued behind the user's mouse
    events): the run's result goes to a new layer, the painted one stays as it is."""
    viewer, widget, first = _classes_result(viewer_widget, qtbot, model_file)
    finish = sw_run.ResultPlacer.finish

    def stroke_then_finish(self, *args, **kwargs):
        first.paint((10, 10), 7, refresh=True)  # after the worker's hash, before the placing
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(sw_run.ResultPlacer, "finish", stroke_then_finish)
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert first.data[10, 10] == 7
    assert len([layer for layer in viewer.layers if layer.name.startswith("img tiny classes")]) == 2
    assert errors["error"] == []


def test_labels_changed_by_code_are_never_overwritten(viewer_widget, qtbot, model_file, errors, monkeypatch):
    """A result layer changed in place by code (no paint event) is found by its content hash,
    computed by the run's worker, not on the GUI thread, and kept."""
    from napari_deepseg._napari import layers

    viewer, widget, first = _classes_result(viewer_widget, qtbot, model_file)
    first.data[:4, :4] = 7  # a console or another plugin writes into the layer
    changed = first.data.copy()
    hashed_on = []  # the thread of every content hash from here on
    digest = layers.data_digest

    def recorded(data):
        hashed_on.append(threading.current_thread())
        return digest(data)

    monkeypatch.setattr(sw_run, "data_digest", recorded)
    monkeypatch.setattr(layers, "data_digest", recorded)
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(first.data, changed)  # untouched
    assert len([layer for layer in viewer.layers if layer.name.startswith("img tiny classes")]) == 2
    assert hashed_on
    assert threading.main_thread() not in hashed_on
    assert errors["error"] == []


def test_stack_planes_appear_as_they_finish(viewer_widget, qtbot, tiny_unet, model_file, errors):
    viewer, widget = viewer_widget
    stack = np.stack([synthetic_nuclei((32, 32), seed=s)[0] for s in range(3)])
    viewer.add_image(stack, name="stack", scale=(2.0, 1.0, 1.0))
    assert widget.channel_axis.value == 0  # 3 small planes look like channels...
    widget.channel_axis.value = None  # ...the user says they are Z planes
    _choose(widget, model_file, _slowed(tiny_unet, 0.02, favour=1))
    widget.out_instances.value = False
    filled_during_run = []
    placer_seen = []

    def watch(event):
        layer = next((lyr for lyr in viewer.layers if lyr.name.endswith("(running)")), None)
        if layer is not None and event.stage == "planes":
            placer_seen.append(layer)
            filled_during_run.append(sum(bool(p.any()) for p in layer.data))

    widget.run()
    widget._worker.yielded.connect(watch)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert errors["error"] == []
    assert filled_during_run[:2] == [1, 2]  # planes showed up one by one
    result = viewer.layers["stack tiny classes"]
    assert result is placer_seen[0]  # the live layer became the result
    assert result.data.shape == (3, 32, 32)
    np.testing.assert_allclose(result.scale, (2.0, 1.0, 1.0))
    assert not any(layer.name.endswith("(running)") for layer in viewer.layers)


def test_cancel_mid_run(viewer_widget, qtbot, tiny_unet, model_file, errors):
    viewer, widget = viewer_widget
    stack = np.stack([synthetic_nuclei((32, 32), seed=s)[0] for s in range(8)])
    viewer.add_image(stack, name="stack")
    _choose(widget, model_file, _slowed(tiny_unet, 0.2))
    events = []
    widget.run()
    widget._worker.yielded.connect(events.append)
    qtbot.waitUntil(lambda: len(events) >= 1, timeout=WAIT_MS)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    planes_done = max((e.done for e in events if e.stage == "planes"), default=0)
    assert planes_done < 8
    assert not [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert len(errors["info"]) == 1
    assert "cancelled" in errors["info"][0]
    assert widget.status.value == "ready"
    assert widget.run_button.enabled


def test_corrupt_model_file_is_a_notification(viewer_widget, qtbot, tmp_path, errors):
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((32, 32), np.uint16), name="img")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model at all")
    _choose(widget, bad)
    _run(qtbot, widget)
    assert len(errors["error"]) == 1
    assert "broken.pt" in errors["error"][0]
    assert not notification_manager.records  # no second notification with a traceback
    assert "\n" not in errors["error"][0]
    assert not [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert widget.status.value == "ready"
    assert widget.run_button.enabled


def test_out_of_memory_after_retries_is_a_notification(viewer_widget, qtbot, tiny_unet, model_file, errors):
    viewer, widget = viewer_widget
    viewer.add_image(synthetic_nuclei((64, 64), seed=1)[0], name="img")

    def no_memory(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    tiny_unet.forward = no_memory
    _choose(widget, model_file, tiny_unet)
    _run(qtbot, widget)  # the engine halves the tile down to its smallest, then gives up
    assert len(errors["error"]) == 1
    assert "out of memory" in errors["error"][0]
    assert "\n" not in errors["error"][0]
    assert not [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert widget.status.value == "ready"


def test_image_the_model_cannot_take(viewer_widget, model_file, errors):
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((2, 2, 2, 2, 16, 16), np.uint8), name="6d")  # channels guessed: 5 left
    _choose(widget, model_file)
    widget.run()  # refused before any worker starts
    assert not widget.running
    assert len(errors["error"]) == 1
    assert "5 non-channel axes" in errors["error"][0]


def test_pretrained_weights_missing_offline(viewer_widget, qtbot, tmp_path, errors, monkeypatch):
    from napari_deepseg.models.pretrained import checkpoint_path, weights_for

    viewer, widget = viewer_widget
    monkeypatch.setenv("DEEPSEG_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert not any(c.ref == "deeplabv3_resnet50_coco" for c in widget.models.entries())  # no weights here
    weights = checkpoint_path(weights_for("coco", "deeplabv3", "resnet50"))
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")  # weights present: the model is listed
    widget.model.reset_choices()
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="photo", rgb=True)
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "deeplabv3_resnet50_coco")
    weights.unlink()  # and removed again before the run
    _run(qtbot, widget)
    assert len(errors["error"]) == 1
    assert ".pth" in errors["error"][0]  # names the weights file to place in the cache
    assert widget.status.value == "ready"


def test_source_renamed_and_deleted_mid_run(viewer_widget, qtbot, tiny_unet, model_file, errors):
    viewer, widget = viewer_widget
    image = synthetic_nuclei((48, 48), seed=5)[0]
    source = viewer.add_image(image, name="src", scale=(3.0, 2.0))
    _choose(widget, model_file, _slowed(tiny_unet, 0.3))
    widget.out_instances.value = False
    widget.run()
    source.name = "renamed"
    viewer.add_image(np.zeros((10, 10)), name="src", scale=(9.0, 9.0))  # a decoy with the old name
    viewer.layers.remove(source)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert errors["error"] == []
    result = viewer.layers["src tiny classes"]
    assert result.data.shape == (48, 48)
    np.testing.assert_allclose(result.scale, (3.0, 2.0))


def test_gui_processes_events_during_a_run(viewer_widget, qtbot, tiny_unet, model_file, errors):
    viewer, widget = viewer_widget
    stack = np.stack([synthetic_nuclei((32, 32), seed=s)[0] for s in range(4)])
    viewer.add_image(stack, name="stack")
    widget.channel_axis.value = None  # four Z planes, not channels
    _choose(widget, model_file, _slowed(tiny_unet, 0.1))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.running))
    timer.start(10)
    try:
        _run(qtbot, widget)
    finally:
        timer.stop()
    assert errors["error"] == []
    assert sum(ticks) >= 10  # the event loop ran many times while the worker segmented


def test_placing_a_result_lets_timers_and_repaints_run_between_layers(
    viewer_widget, qtbot, model_file, errors, monkeypatch
):
    """Seen in a real viewer: two 2048² layers placed with zero-delay steps froze the window
    for both at once, and napari's overlay visuals and Python's garbage collection landed in
    the same turn as a layer. Each layer is added hidden with its overlays hidden, the overlays
    and the layer are shown in later steps, automatic collection waits for the end; between
    steps a due timer (as the user's input and the repaint) runs."""
    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((64, 64), seed=2)
    viewer.add_image(image, name="nuclei")
    _choose(widget, model_file)
    ticks, seen = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    layer_list = type(viewer.layers)
    real_insert = layer_list.insert

    def insert(self, index, layer):
        overlays = [o.visible for o in layer._overlays.values()]
        seen.append((len(ticks), layer.visible, any(overlays), gc.isenabled()))
        time.sleep(0.05)  # as adding a 2048² layer does: the timer is due when the step ends
        return real_insert(self, index, layer)

    monkeypatch.setattr(layer_list, "insert", insert)
    timer.start(1)
    try:
        _run(qtbot, widget)
    finally:
        timer.stop()
    assert errors["error"] == []
    assert [s[1:] for s in seen] == [(False, False, False)] * 2  # added hidden, overlays too, no gc
    assert seen[1][0] > seen[0][0] + 3  # the timer ran after each step (layer, 2 overlays, show)
    qtbot.waitUntil(gc.isenabled, timeout=WAIT_MS)  # restored in the turn after the last step
    canvas = viewer.window._qt_viewer.canvas
    for name in ("nuclei tiny classes", "nuclei tiny instances"):
        layer = viewer.layers[name]
        assert layer.visible
        drawn = canvas._layer_overlay_to_visual[layer]  # napari built the overlays' visuals
        assert {layer._overlays["polygon"], layer._overlays["brush_stroke"]} <= set(drawn)
    assert viewer.layers.selection.active is viewer.layers["nuclei tiny instances"]


def test_a_result_over_the_memory_limit_is_a_warning_notification(
    viewer_widget, qtbot, model_file, errors, monkeypatch
):
    """segment() warns when its result alone exceeds the default memory limit and the disk
    lacks the space to hold it in scratch files (naming the fix); in napari the warning, raised
    in the worker, reaches the user as a notification and the run still completes."""
    from napari.utils.notifications import NotificationSeverity

    from napari_deepseg.inference import memory, outputs

    viewer, widget = viewer_widget
    image, _ = synthetic_nuclei((64, 64), seed=2)
    viewer.add_image(image, name="nuclei")
    _choose(widget, model_file)
    monkeypatch.setattr(memory, "DEFAULT_LIMIT", 1024)
    monkeypatch.setattr(outputs, "free_disk", lambda path: 0)
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    warned = [
        str(n.message)
        for n in notification_manager.records
        if n.severity == NotificationSeverity.WARNING and "over the memory limit" in str(n.message)
    ]
    assert warned, [str(n.message) for n in notification_manager.records]
    assert "DEEPSEG_SCRATCH" in warned[0]
    assert errors["error"] == []
    assert viewer.layers["nuclei tiny instances"].data.max() > 0


@pytest.mark.gpu
def test_run_on_the_gpu(viewer_widget, qtbot, model_file, errors):
    viewer, widget = viewer_widget
    viewer.add_image(synthetic_nuclei((64, 64), seed=2)[0], name="img")
    _choose(widget, model_file)
    widget.device.value = "cuda" if torch.cuda.is_available() else "mps"
    _run(qtbot, widget)
    assert errors["error"] == []
    assert viewer.layers["img tiny classes"].data.shape == (64, 64)


def test_object_diameter_estimate_button_and_auto_run(viewer_widget, qtbot, tmp_path, errors):
    from qtpy.QtCore import Qt

    from napari_deepseg.inference.scale import median_diameter, resize_labels, resize_plane

    viewer, widget = viewer_widget
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = 16.0
    path = save_model(tmp_path / "sized.pt", model)
    image, labels = synthetic_nuclei((128, 128), radius=(7, 9), seed=0)[:2]
    big = resize_plane(image[None].astype(np.float32), (256, 256))[0]
    truth = median_diameter(resize_labels(labels, (256, 256)))
    viewer.add_image(big, name="big")
    _choose(widget, path)
    assert widget.diameter.value == 0  # auto
    _run(qtbot, widget)
    assert errors["error"] == []
    assert "(estimated, image scaled x0." in widget.diameter_note.value
    assert viewer.layers["big sized instances"].data.shape == (256, 256)
    qtbot.mouseClick(widget.estimate_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert widget.diameter.value == pytest.approx(truth, rel=0.15)
    assert widget.diameter_note.value.startswith("estimated ")
    widget.diameter.value = 32.0  # a given diameter is used as it is
    _run(qtbot, widget)
    assert "(given, image scaled x0.50" in widget.diameter_note.value


def test_uncertainty_layer_and_list_step_through_objects(viewer_widget, qtbot, errors):
    from qtpy.QtCore import QPoint, Qt

    viewer, widget = viewer_widget
    image = synthetic_nuclei((160, 160), seed=4)[0]
    viewer.add_image(image, name="cells", scale=(0.5, 0.5))
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "nuclei")
    widget.out_classes.value = False
    widget.out_instances.value = False
    box = widget.out_uncertainty.native
    box.setVisible(True)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(6, box.height() // 2))  # tick it
    assert widget.out_uncertainty.value
    _run(qtbot, widget)
    assert errors["error"] == []
    unc = viewer.layers["cells nuclei uncertainty"]
    assert unc.data.shape == image.shape
    assert unc.data.min() >= 0
    assert unc.data.max() <= 1
    instances = viewer.layers["cells nuclei instances"]
    listing = widget.correct_next
    assert listing.isVisibleTo(widget)
    objects = [e for _, e in listing.entries if e.id]
    assert sorted(e.id for e in objects) == sorted(set(np.unique(instances.data)) - {0})
    qtbot.mouseClick(listing.next_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(listing.next_button, Qt.MouseButton.LeftButton)
    second = listing.entries[1][1]
    assert listing.list.currentRow() == 1
    camera = viewer.scene.camera
    np.testing.assert_allclose(camera.center[-2:], (second.y * 0.5, second.x * 0.5), atol=1e-6)
    assert instances.selected_label == second.id


def test_postprocess_fields_preview_on_the_result_and_apply_to_runs(viewer_widget, qtbot, errors):
    from napari_deepseg._napari.layers import is_edited

    viewer, widget = viewer_widget
    image = synthetic_nuclei((160, 160), seed=6)[0]
    viewer.add_image(image, name="cells")
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "nuclei")
    _run(qtbot, widget)
    layer = viewer.layers["cells nuclei instances"]
    before = len(np.unique(layer.data)) - 1
    sizes = np.bincount(layer.data.ravel())[1:]
    big = int(np.median(sizes[sizes > 0]))
    widget.post.min_size.value = big  # preview: objects under the median size disappear
    qtbot.waitUntil(lambda: len(np.unique(layer.data)) - 1 < before, timeout=WAIT_MS)
    after = len(np.unique(layer.data)) - 1
    # about the larger half stays: sizes counted on the run's grid and mapped back to the image
    # move a few objects across the median
    assert before // 3 <= after <= round(0.6 * before) + 1
    assert not is_edited(layer)  # the preview is still the unedited result
    assert "preview:" in widget.post.note.value
    classes = viewer.layers["cells nuclei classes"]
    qtbot.waitUntil(lambda: "classes layer follows" in widget.post.note.value, timeout=WAIT_MS)
    assert (classes.data[layer.data == 0] == 0).all()  # dropped objects left the classes too
    assert (classes.data[layer.data > 0] > 0).all()
    assert not is_edited(classes)
    assert widget.plan().options.postprocess == {"min_size": big}
    layer.paint((80, 80), layer.selected_label)  # the user edits the layer
    widget.post.min_size.value = 0
    qtbot.wait(300)
    assert len(np.unique(layer.data)) - 1 <= after + 1  # edits are never replaced
    assert "edited" in widget.post.note.value


def test_the_preview_with_the_models_own_settings_remakes_the_rescaled_run(viewer_widget, qtbot, errors):
    """Issue 33: on an image run at another scale, a preview with the model's own settings gives
    the run's objects exactly (it re-makes them from the probabilities on the run's grid)."""
    from napari_deepseg.inference.scale import resize_plane

    viewer, widget = viewer_widget
    small = synthetic_nuclei((160, 160), radius=(7, 9), seed=6)[0]
    image = resize_plane(small[None].astype(np.float32), (330, 330))[0]  # objects about 2x: run at ~0.5
    viewer.add_image(image, name="cells")
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "nuclei")
    _run(qtbot, widget)
    layer = viewer.layers["cells nuclei instances"]
    run = np.array(layer.data, copy=True)
    assert widget.preview.source[2] < 0.9  # the run was rescaled
    own = load_model("nuclei").deepseg_meta.postprocess["foreground_threshold"]
    widget.post.foreground.native.setValue(own)  # the model's own value, typed in
    qtbot.waitUntil(lambda: "preview:" in widget.post.note.value, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: widget.preview.worker is None, timeout=WAIT_MS)
    pairs = np.unique(np.stack([run.ravel(), np.asarray(layer.data).ravel()]), axis=1)
    assert (run > 0).sum() > 0
    np.testing.assert_array_equal(np.asarray(layer.data) > 0, run > 0)
    assert len(pairs[0]) == len(np.unique(run)) == len(np.unique(layer.data))  # the same objects


def test_an_auto_run_again_on_the_same_image_reuses_the_estimate(viewer_widget, qtbot, errors, monkeypatch):
    """Issue 36: Run pressed again on the same image, model and channels with the diameter on
    auto does not estimate again; another layer (even with equal pixels) does."""
    from napari_deepseg.inference import rescaled

    calls = []
    estimate = rescaled.estimate_diameter
    monkeypatch.setattr(rescaled, "estimate_diameter", lambda *a, **k: calls.append(1) or estimate(*a, **k))
    viewer, widget = viewer_widget
    image = synthetic_nuclei((160, 160), radius=(7, 9), seed=6)[0]
    viewer.add_image(image, name="cells")
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "nuclei")

    def click_run():
        qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    click_run()
    first = np.array(viewer.layers["cells nuclei instances"].data, copy=True)
    assert len(calls) == 1
    assert "estimated" in widget.diameter_note.value
    widget.replace.value = True
    click_run()
    assert len(calls) == 1  # reused
    assert "reused" in widget.diameter_note.value
    np.testing.assert_array_equal(viewer.layers["cells nuclei instances"].data, first)
    viewer.add_image(image.copy(), name="copy")
    widget.image.value = viewer.layers["copy"]
    click_run()
    assert len(calls) == 2  # another layer: measured again


def test_run_again_refills_the_result_layer_hidden_then_shows_it(viewer_widget, qtbot, errors):
    """The reused result layer gets its new data hidden and is shown in a GUI turn of its own
    (napari converts a large plane for display once, alone in that turn)."""
    viewer, widget = viewer_widget
    viewer.add_image(synthetic_nuclei((160, 160), seed=6)[0], name="cells")
    widget.model.value = next(c for c in widget.models.entries() if c.ref == "nuclei")
    _run(qtbot, widget)
    layer = viewer.layers["cells nuclei instances"]
    seen = []
    layer.events.visible.connect(lambda _e: seen.append(layer.visible))
    widget.replace.value = True
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert viewer.layers["cells nuclei instances"] is layer
    assert seen == [False, True]
    assert layer.visible
