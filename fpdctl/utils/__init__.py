"""Small shared helpers: atomic file output, device selection, process memory."""
