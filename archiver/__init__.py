"""archiver: keep a complete, queryable history of fine-tuning jobs served through Portkey."""

__version__ = "0.1.0"
