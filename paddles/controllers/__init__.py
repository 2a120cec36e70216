"""HTTP layer: parse the request, call one service, shape the answer."""
