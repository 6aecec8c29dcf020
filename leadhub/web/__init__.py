"""Flask app factory, REST API and OpenAPI, pages."""
