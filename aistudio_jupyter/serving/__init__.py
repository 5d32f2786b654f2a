"""Serving deployments: replica worker processes (``replica``), their supervisor
(``supervisor``), predict routing with dynamic batching (``router``) and input schemas
(``schema``). Nothing here but the replica imports torch; nothing but the supervisor talks to
the database."""
