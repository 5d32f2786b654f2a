"""Pydantic v2 models: request validation, responses and the OpenAPI document."""
