"""Deployment: exporting the inference model, its backends, infer_path.py's work and the web server."""
