"""Reports: spectrogram and loss-curve figures (matplotlib, Agg backend)."""
