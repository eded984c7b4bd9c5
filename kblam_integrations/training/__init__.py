"""Training KBLaM adapters: synthetic data, trainer, evaluation."""
