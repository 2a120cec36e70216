"""The one validation layer, one module per resource: request bodies and query parameters in,
clean values out. `common` holds what they share; import from the resource's module."""
