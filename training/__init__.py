"""Training, evaluation and metrics over SynthTV (or any episodes in the same schema)."""
