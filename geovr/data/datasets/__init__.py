"""Spatial-QA dataset readers and the validated record type."""
from .readers import READERS, ReadResult, read_dataset, read_llava, read_vlm3r, read_vsi590k
from .records import Turn, VideoQA, parse_conversations, parse_record

__all__ = ["READERS", "ReadResult", "Turn", "VideoQA", "parse_conversations", "parse_record",
           "read_dataset", "read_llava", "read_vlm3r", "read_vsi590k"]
