"""Request and response models: the contract that ``/docs`` shows."""
