"""`application` for gunicorn: built once per worker process at import time."""
from .app import make_app
from .logs import configure_logging
from .settings import load_settings

settings = load_settings()
configure_logging(settings.log_level, settings.log_format)
application = make_app(settings)
