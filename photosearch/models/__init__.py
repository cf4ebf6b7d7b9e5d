"""Models behind small protocols: CLIP on onnxruntime, the converter, the model store."""
