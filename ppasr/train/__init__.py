"""Training and evaluation: the trainer, the shared evaluation loop, error rates and VisualDL records."""
