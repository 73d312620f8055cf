"""Training loops, batching, history and callbacks (pure torch, no scikit-learn)."""
