"""The Chunkwise Aligner: a streaming Aligner-Encoder (docs/streaming.md).

The encoder attends within chunks of C frames plus a left context (NeMo's cache-aware ``chunked_limited``
attention); each chunk's labels are read off its leftmost frames, then an end-of-chunk (EOC) decision moves on.
"""
