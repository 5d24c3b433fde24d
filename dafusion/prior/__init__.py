"""The EDM diffusion prior: denoiser, training, posterior sampler. Not built
yet: see docs/ARCHITECTURE.md for the planned interface."""
