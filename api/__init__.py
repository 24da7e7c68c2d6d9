"""The HTTP API: FastAPI routes, schemas, auth and error rendering."""
