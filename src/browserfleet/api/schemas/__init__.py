"""Wire models, named as in the Browser Use Cloud OpenAPI."""
