"""Pure text and formats: normalising, WordPiece token counts, chunking, input decoding, .npy.

No AWS, no I/O: everything here is a function of its arguments.
"""
