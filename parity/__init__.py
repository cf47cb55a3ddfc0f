"""parity: step-by-step cross-check of pure against torch_ref."""
