"""The eSpeak NG demo corpus generator (tools/generate_audio.py), apart from the recogniser."""
