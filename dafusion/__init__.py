"""dafusion: sequential data assimilation with a diffusion-model prior."""

__version__ = "0.1.0"
