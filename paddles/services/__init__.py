"""Rules and queries. Every function takes a session, raises paddles.errors, never commits."""
