"""The Fine-tune dock widget in a real viewer, with real napari workers and a tiny U-Net."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_deepseg._napari import guard_triton
from napari_deepseg._napari import train_pairs as tp
from napari_deepseg._napari import train_widget as tw
from napari_deepseg._napari.curves import CurveData
from napari_deepseg._napari.model_choices import ModelChoice
from napari_deepseg._napari.reviewed import set_reviewed_mask
from napari_deepseg._napari.train_run import TrainPlan, default_output, train_task
from napari_deepseg._napari.train_widget import FineTuneWidget, segment_widgets
from napari_deepseg.errors import DeepsegError
from napari_deepseg.models import ModelMeta, build_model, load_model, save_model
from napari_deepseg.progress import Progress
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import TrainingPair

WAIT_MS = 240_000  # 2 shared cores: generous


@pytest.fixture
def model_file(tmp_path):
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="tiny", task="instance-boundary").complete(3)
    return save_model(tmp_path / "tiny.pt", model)


@pytest.fixture
def shown(monkeypatch):
    """Messages the widget shows with napari's show_error / show_info."""
    out: dict[str, list[str]] = {"error": [], "info": []}
    for module in (tw, tp):  # the widget and its pair list
        monkeypatch.setattr(module, "show_error", lambda msg: out["error"].append(msg))
        monkeypatch.setattr(module, "show_info", lambda msg: out["info"].append(msg))
    return out


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    guard_triton()  # the canvas has loaded Mesa's LLVM: keep triton out before torchvision loads
    image, labels = synthetic_nuclei((80, 80), seed=1)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels.astype(np.uint16), name="cells truth")
    return viewer


def _widget(viewer, qtbot, model_file, tmp_path, **values) -> FineTuneWidget:
    widget = FineTuneWidget(viewer)
    qtbot.addWidget(widget)
    widget.show()
    widget.model.value = widget.add_model_file(model_file)
    settings = {"epochs": 2, "batch_size": 2, "patch_size": 32, "val_fraction": 0.25, "device": "cpu"}
    settings.update(values)
    for name, value in settings.items():
        getattr(widget, name).value = value
    widget.output.value = tmp_path / "finetuned.pt"
    widget.image.value = viewer.layers["cells"]
    widget.labels.value = viewer.layers["cells truth"]
    return widget


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def test_add_pair_checks_shapes(viewer, qtbot, model_file, tmp_path, shown):
    viewer.add_labels(np.zeros((80, 96), np.uint16), name="wrong shape")
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    widget.labels.value = viewer.layers["wrong shape"]
    assert not widget.add_pair()
    assert "does not match labels shape" in shown["error"][-1]
    assert widget.pairs == []
    assert widget.pair_list.count() == 0
    widget.labels.value = viewer.layers["cells truth"]
    assert widget.add_pair()
    assert not widget.add_pair()  # the same pair twice
    assert widget.pair_list.count() == 1
    viewer.layers.remove("cells truth")
    assert widget.pairs == []
    assert widget.pair_list.count() == 0


def test_end_to_end_trains_saves_lists_and_resegments(
    viewer, qtbot, model_file, tmp_path, shown, progress_log
):
    _, seg = viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    assert widget.add_pair()
    widget.start()
    assert widget.running
    assert not widget.start_button.enabled
    assert widget.stop_button.enabled
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    steps = progress_log.advanced("Fine-tune: step")
    assert steps
    assert progress_log.values[id(steps[-1])][-1] == steps[-1].total  # the bar reached the end
    assert progress_log.open() == []
    out = tmp_path / "finetuned.pt"
    model = load_model(out)
    prov = model.deepseg_meta.provenance
    assert prov["epochs"] == 2
    assert prov["sources"] == ["cells / cells truth"]
    data = widget.curves.data
    assert len(data.loss.x) == prov["steps"] >= 2
    assert data.mean_iou.x == [0, 1, 2]  # the starting model, then each epoch
    assert len(data.val_loss.x) == 3
    entry = ModelChoice("file", str(out.resolve()))
    assert entry in seg.models.entries()
    assert entry in [value for _, value in widget._model_choices()]
    assert widget.resegment_button.visible
    assert "Re-segment cells" in widget.resegment_button.text
    assert widget.resegment() is seg
    assert seg.model.value == entry
    qtbot.waitUntil(lambda: not seg.running, timeout=WAIT_MS)
    names = [layer.name for layer in viewer.layers]
    assert "cells finetuned classes" in names


def test_stop_mid_run_keeps_a_valid_model(viewer, qtbot, model_file, tmp_path, shown):
    widget = _widget(viewer, qtbot, model_file, tmp_path, epochs=200)
    widget.add_pair()
    widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.data.loss.x) >= 2, timeout=WAIT_MS)
    widget.stop()
    assert widget.status.value.startswith("stopping")
    _wait_idle(qtbot, widget)
    steps = len(widget.curves.data.loss.x)
    assert steps < 200 * 10
    model = load_model(tmp_path / "finetuned.pt")
    assert model.deepseg_meta.provenance["stopped_early"] is True
    assert model.deepseg_meta.provenance["steps"] == steps
    assert any("best model so far" in m for m in shown["info"])
    assert widget.start_button.enabled
    assert not widget.stop_button.enabled


def test_shape_changed_after_adding_is_refused_before_training(viewer, qtbot, model_file, tmp_path, shown):
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    widget.add_pair()
    viewer.layers["cells truth"].data = np.zeros((64, 64), np.uint16)
    started = []
    widget_start = tw.workers.start_worker
    tw.workers.start_worker = lambda *a, **k: started.append(a)
    try:
        widget.start()
    finally:
        tw.workers.start_worker = widget_start
    assert started == []
    assert "does not match labels shape" in shown["error"][-1]
    assert not widget.running
    assert widget.status.value == "ready"
    assert not (tmp_path / "finetuned.pt").exists()


def test_unannotated_labels_report_the_core_error(viewer, qtbot, model_file, tmp_path, shown):
    viewer.add_labels(np.zeros((80, 80), np.uint16), name="empty")
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    widget.labels.value = viewer.layers["empty"]
    assert widget.add_pair()
    widget.start()
    _wait_idle(qtbot, widget)
    assert len(shown["error"]) == 1
    assert shown["error"][0].startswith("Fine-tuning failed: ")
    assert "annotated" in shown["error"][0]
    assert widget.status.value == "ready"
    assert widget.start_button.enabled
    assert not widget.resegment_button.visible
    assert not (tmp_path / "finetuned.pt").exists()
    assert widget.curves.data.empty


def test_segment_widgets_found_through_the_window(viewer):
    assert segment_widgets(viewer) == []
    _, seg = viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")
    assert segment_widgets(viewer) == [seg]


def test_curve_data_from_events():
    data = CurveData()
    data.add(Progress("epoch", 0, 2, info={"epoch": 0, "val_loss": 1.0, "mean_iou": 0.1}))
    for step in (1, 2):
        data.add(Progress("step", step, 4, info={"loss": 1.0 / step, "steps_per_epoch": 2}))
    data.add(
        Progress("epoch", 1, 2, info={"epoch": 1, "val_loss": 0.5, "mean_iou": 0.4, "foreground_iou": 0.6})
    )
    assert data.loss.y == [1.0, 0.5]
    assert data.val_loss.x == [0.0, 2.0]
    assert data.mean_iou.y == [0.1, 0.4]
    assert data.fg_iou.x == [1.0]
    assert not data.add(Progress("tiles", 1, 2))


def test_train_task_stops_within_one_step(tmp_path, model_file):
    image, labels = synthetic_nuclei((64, 64), seed=2)
    plan = TrainPlan(
        (TrainingPair(image, labels, name="a"),),
        ModelChoice("file", str(model_file)),
        tmp_path / "out.pt",
        {"epochs": 100, "batch_size": 2, "patch_size": 32, "val_fraction": 0.0, "device": "cpu"},
    )
    stop = threading.Event()
    gen = train_task(plan, stop)
    events = [next(gen), next(gen)]
    stop.set()
    with pytest.raises(StopIteration) as done:
        next(gen)
    outcome = done.value.value
    assert outcome.stopped
    assert outcome.path == tmp_path / "out.pt"
    assert [e.stage for e in events] == ["step", "step"]
    assert load_model(outcome.path).deepseg_meta.provenance["steps"] == 2


def test_default_output_never_overwrites(tmp_path):
    first = default_output("my cells.tif", tmp_path)
    assert first == tmp_path / "my_cells.tif-finetuned.pt"
    first.write_bytes(b"x")
    assert default_output("my cells.tif", tmp_path) == tmp_path / "my_cells.tif-finetuned-2.pt"


def test_reviewed_regions_only_takes_the_correct_widgets_mask(viewer, qtbot, model_file, tmp_path, shown):
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    widget.add_pair()
    widget.reviewed.value = True
    with pytest.raises(DeepsegError, match="no reviewed regions"):
        widget.plan()
    widget.start()  # the same message as a notification; nothing starts
    assert "no reviewed regions" in shown["error"][-1]
    assert not widget.running
    mask = np.zeros((80, 80), bool)
    mask[:40] = True
    set_reviewed_mask(viewer.layers["cells truth"], mask)
    plan = widget.plan()
    np.testing.assert_array_equal(plan.pairs[0].reviewed, mask)
    widget.reviewed.value = False
    assert widget.plan().pairs[0].reviewed is None


def test_closing_napari_during_training_asks_then_saves_and_closes(
    viewer, qtbot, model_file, tmp_path, shown, monkeypatch
):
    from napari_deepseg._napari import close_guard

    widget = _widget(viewer, qtbot, model_file, tmp_path, epochs=200)
    viewer.window.add_dock_widget(widget, name="Fine-tune")  # the guard finds the window it is in
    widget.add_pair()
    window = viewer.window._qt_window
    window.show()
    answers, asked = (
        iter([close_guard.QMessageBox.StandardButton.No, close_guard.QMessageBox.StandardButton.Yes]),
        [],
    )
    monkeypatch.setattr(
        close_guard.QMessageBox,
        "question",
        lambda _parent, _title, text, _buttons: asked.append(text) or next(answers),
    )
    closes = []
    monkeypatch.setattr(close_guard.QTimer, "singleShot", lambda _ms, func: closes.append(func.__name__))
    widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.data.loss.x) >= 1, timeout=WAIT_MS)
    window.close()  # "No": napari stays open and training goes on
    assert window.isVisible()
    assert widget.running
    assert str(tmp_path / "finetuned.pt") in asked[0]  # the question says where the model goes
    window.close()  # "Yes": stop, save the best model so far, then close
    assert window.isVisible()  # held until the model is saved
    _wait_idle(qtbot, widget)
    assert closes == ["close"]  # then napari's window is closed (not here: the fixture does it)
    assert len(asked) == 2
    assert load_model(tmp_path / "finetuned.pt").deepseg_meta.provenance["stopped_early"] is True
    assert any(str(tmp_path / "finetuned.pt") in m for m in shown["info"])  # and says where


def test_trains_on_a_two_channel_cyx_layer_through_the_buttons(viewer, qtbot, tmp_path, shown):
    """A (C, Y, X) layer as napari holds it, with its labels: Add pair and Start, clicked."""
    from qtpy.QtCore import Qt

    model = build_model("unet", in_channels=2, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="two", task="instance-boundary", channel_mode="select").complete(3)
    path = save_model(tmp_path / "two.pt", model)
    nuclei, labels = synthetic_nuclei((80, 80), seed=3)
    viewer.add_image(np.stack([nuclei, nuclei[:, ::-1]]), name="cyx")  # one layer, channel axis first
    viewer.add_labels(labels.astype(np.uint16), name="cyx truth")
    widget = _widget(viewer, qtbot, path, tmp_path)
    widget.image.value = viewer.layers["cyx"]
    widget.labels.value = viewer.layers["cyx truth"]
    qtbot.mouseClick(widget.add_button.native, Qt.MouseButton.LeftButton)
    assert widget.pair_list.count() == 1
    qtbot.mouseClick(widget.start_button.native, Qt.MouseButton.LeftButton)
    assert widget.running
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    trained = load_model(tmp_path / "finetuned.pt")
    assert trained.deepseg_arch.in_channels == 2
    assert trained.deepseg_meta.provenance["sources"] == ["cyx / cyx truth"]
    assert trained.deepseg_meta.provenance["steps"] >= 2


def test_corrected_pixels_of_a_result_reach_the_core_as_emphasis(viewer, qtbot, model_file, tmp_path, shown):
    from napari_deepseg._napari.corrected import corrected_mask_for, keep_original

    labels = viewer.layers["cells truth"]
    keep_original(labels)  # as Segment does when it places a result
    assert not corrected_mask_for(labels).any()
    labels.selected_label = 77
    labels.brush_size = 5
    labels.paint((40, 40), 77)  # the user draws a missing object
    widget = _widget(viewer, qtbot, model_file, tmp_path)
    assert widget.add_pair()
    assert widget.plan().pairs[0].emphasis is None  # weight 1: corrections count like the rest
    widget.corrections.value = 3.0
    plan = widget.plan()
    (pair,) = plan.pairs
    np.testing.assert_array_equal(pair.emphasis, labels.data == 77)
    assert plan.options["config"].correction_weight == 3.0


def test_replay_pairs_are_ticked_listed_and_reach_the_core(viewer, qtbot, model_file, tmp_path, shown):
    from qtpy.QtCore import Qt

    image, labels = synthetic_nuclei((80, 80), seed=5)
    viewer.add_image(image, name="old")
    viewer.add_labels(labels.astype(np.uint16), name="old truth")
    widget = _widget(viewer, qtbot, model_file, tmp_path, epochs=1)
    click = Qt.MouseButton.LeftButton
    qtbot.mouseClick(widget.add_button.native, click)
    qtbot.mouseClick(widget.pair_picker.replay_box.native, click)
    assert widget.pair_picker.replay_box.value
    widget.image.value, widget.labels.value = viewer.layers["old"], viewer.layers["old truth"]
    qtbot.mouseClick(widget.add_button.native, click)
    rows = [widget.pair_list.item(i).text() for i in range(widget.pair_list.count())]
    assert rows[0].endswith("cells truth")
    assert rows[1].endswith("old truth  (replay)")
    assert [p.name for p in widget.plan().replay_pairs] == ["old / old truth"]
    qtbot.mouseClick(widget.start_button.native, click)
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    prov = load_model(tmp_path / "finetuned.pt").deepseg_meta.provenance
    assert prov["sources"] == ["cells / cells truth"]
    assert prov["replay"] == {"regions": 1, "share": 0.25}
    widget.pair_list.setCurrentRow(1)
    qtbot.mouseClick(widget.remove_button.native, click)
    assert widget.pair_picker.replay == []
    assert len(widget.pairs) == 1
    viewer.layers.remove("cells truth")
    assert widget.pairs == []


@pytest.mark.parametrize("answer", ["no", "yes"])
def test_an_existing_model_file_is_replaced_only_when_the_user_says_so(
    viewer, qtbot, model_file, tmp_path, shown, monkeypatch, answer
):
    out = tmp_path / "finetuned.pt"
    out.write_bytes(b"the user's earlier model")
    asked = []
    yes, no = tw.QMessageBox.StandardButton.Yes, tw.QMessageBox.StandardButton.No
    monkeypatch.setattr(
        tw.QMessageBox,
        "question",
        lambda parent, title, text: asked.append(text) or (yes if answer == "yes" else no),
    )
    widget = _widget(viewer, qtbot, model_file, tmp_path, epochs=1)
    assert widget.add_pair()
    widget.start()
    assert len(asked) == 1
    assert str(out) in asked[0]
    if answer == "no":
        assert not widget.running
        assert out.read_bytes() == b"the user's earlier model"
        return
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    assert load_model(out).deepseg_meta.provenance["epochs"] == 1


def test_a_tie_says_not_better_and_keeps_the_start(viewer, qtbot, tmp_path, shown):
    """Add pair and Start, clicked, on a model whose held-out score cannot move: the verdict
    under the curves says 'not better' and the written model is the starting one."""
    import torch
    from qtpy.QtCore import Qt

    from tests.training.test_validation import stuck_model

    start = stuck_model(tmp_path / "stuck.pt")
    widget = _widget(viewer, qtbot, start, tmp_path, lr=1e-6)
    qtbot.mouseClick(widget.add_button.native, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.start_button.native, Qt.MouseButton.LeftButton)
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    assert widget.verdict.value.startswith("not better than the starting model")
    assert "better means at least +0.005" in widget.verdict.value
    kept, begun = load_model(tmp_path / "finetuned.pt").state_dict(), load_model(start).state_dict()
    assert all(torch.equal(kept[k], begun[k]) for k in begun)
