"""leadhub: an open, self-hosted low-code platform for lead management."""

__version__ = "0.1.0"
