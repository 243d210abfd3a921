"""Model export to deployment formats (ONNX)."""
