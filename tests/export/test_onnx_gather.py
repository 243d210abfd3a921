"""Large exports: a graph whose tensors the exporter wrote as separate files is gathered into NAME + NAME.data."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from primedepth.export.onnx import _gather, _has_external_data


def test_an_exporter_graph_with_external_tensors_is_gathered_into_one_data_file(tmp_path):
    weight = np.arange(3 * 512, dtype=np.float32).reshape(3, 512)  # over onnx's 1 kB inline threshold
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (tmp_path / "export").mkdir()
    traced = tmp_path / "export" / "traced.onnx"
    onnx.save_model(
        model, str(traced), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0
    )  # one file per tensor, as the exporter writes models over 2 GB
    staged = tmp_path / "export" / "model.onnx"
    _gather(traced, staged)
    assert (tmp_path / "export" / "model.onnx.data").is_file()
    assert _has_external_data(onnx.load(str(staged), load_external_data=False))
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    y = ort.InferenceSession(str(staged), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    np.testing.assert_array_equal(y, x @ weight)


def test_a_small_graph_stays_one_file(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / "traced.onnx"))
    _gather(tmp_path / "traced.onnx", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx.data").exists()
    assert not _has_external_data(onnx.load(str(tmp_path / "model.onnx")))
