"""The review workspace: a FastAPI app (`create_app`) with the REST API, login and pages."""
