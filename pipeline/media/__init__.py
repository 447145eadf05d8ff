"""Media I/O: still images (OpenCV) and video (ffmpeg)."""
