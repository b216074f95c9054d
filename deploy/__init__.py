"""Deployment helpers: the local process stack and the container images."""
