"""`hwgen.execute`: a batch larger than a slice runs in slices (QONNX's MultiThreshold would hold
frames x channels x pixels x thresholds booleans at once) and gives what one frame at a time gives."""

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.execute import SLICE_FRAMES, execute, execute_context, slices


def test_a_batch_of_several_slices_equals_frame_by_frame(tiny_mlp_onnx):
    model = ModelWrapper(str(tiny_mlp_onnx))
    shape = model.get_tensor_shape(model.graph.input[0].name)[1:]
    frames = 2 * SLICE_FRAMES + 7  # two full slices and a short one
    x = np.random.default_rng(3).integers(0, 256, (frames, *shape)).astype(np.float32)
    whole = execute(model, x)
    assert whole.shape[0] == frames
    every_37th = np.concatenate([execute(model, x[i:i + 1]) for i in range(0, frames, 37)])
    assert np.array_equal(whole[::37], every_37th)
    assert len(np.unique(whole.argmax(axis=1))) > 1  # the frames differ: a slice mix-up would show
    pieces = slices(frames)
    assert [(p.start, p.stop) for p in pieces] == [(0, SLICE_FRAMES), (SLICE_FRAMES, 2 * SLICE_FRAMES),
                                                   (2 * SLICE_FRAMES, frames)]
    out = model.graph.output[0].name
    assert np.array_equal(np.concatenate([execute_context(model, x[p])[out] for p in pieces]), whole)


def test_an_empty_batch_is_one_empty_run(tiny_mlp_onnx):
    model = ModelWrapper(str(tiny_mlp_onnx))
    shape = model.get_tensor_shape(model.graph.input[0].name)[1:]
    assert execute(model, np.zeros((0, *shape), np.float32)).shape[0] == 0
    assert [(p.start, p.stop) for p in slices(0)] == [(0, 0)]
