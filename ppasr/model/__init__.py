"""The model: DeepSpeech2 network, the config that travels with it, and its checkpoint folders."""
