"""One module per REST resource, each with its sync and its async class."""
