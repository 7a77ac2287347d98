"""The classic sample's wsgi.py: gunicorn imports `app` from here."""

import predictor

app = predictor.app
