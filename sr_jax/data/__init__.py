"""Audio data: I/O, degradations, sliding windows, datasets, the built-in corpus and the input pipeline."""
