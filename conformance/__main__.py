from conformance.cli import app

app()
