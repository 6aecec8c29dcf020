"""The metadata model: field types, object and field definitions, their
validation, the registry and its cache, and the service that changes them."""
