"""Data: schema, on-disk format, tensors and batches, converters and external loaders."""
