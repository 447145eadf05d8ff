"""nstvid: neural style transfer for images, folders and video."""
__version__ = "0.1.0"
