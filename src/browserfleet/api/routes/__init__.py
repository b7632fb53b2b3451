"""HTTP routes: each parses, calls one service method and renders."""
