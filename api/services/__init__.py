"""The API's services: what a request does, between the thin routes and the stores (repositories)."""
