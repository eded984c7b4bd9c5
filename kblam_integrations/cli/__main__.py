"""``python -m kblam_integrations.cli`` (e.g. under ``accelerate launch``) runs the ``kblam`` command line."""

from . import app

app()
