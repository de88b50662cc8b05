"""Queries and computations behind the routers; no FastAPI types beyond what they return."""
