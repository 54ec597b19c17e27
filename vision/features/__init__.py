"""Per-frame face features from MediaPipe landmarks: pure, vectorised over a batch."""
