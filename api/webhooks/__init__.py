"""Outgoing webhooks: where they may go (``targets``), how they are signed (``signing``), and the
delivery consumer (``delivery``, run as ``python -m api.webhooks``).

The consumer lives beside the API because it sends each resource exactly as
its GET endpoint renders it; it is its own process, so deliveries never wait
behind training.
"""
