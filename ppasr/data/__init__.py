"""Data: audio, features, text, manifests, create_data.py's work, augmentation, the dataset, corpus downloads."""
