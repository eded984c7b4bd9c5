"""KBLaMModel: a frozen HF decoder + trained knowledge adapters and KB query heads."""
